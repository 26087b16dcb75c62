import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process started by a test: its output lines as they arrive, its exit status, and
/// signals sent to exactly this pid (never by name).
public final class ManagedProcess: Sendable {
    public let process: Process
    let output = Mutex<(lines: [String], partial: String, waiters: [(String, CheckedContinuation<String?, Never>)])>(([], "", []))
    /// The status becomes visible once the process has exited and both pipes reached end of file.
    let exit = Mutex<(status: Int32?, open: Int, waiters: [CheckedContinuation<Int32, Never>])>((nil, 3, []))
    public let errors = Mutex("")

    /// The `medledger` executable built next to the test bundle.
    public static var medledgerPath: String {
        let here = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [here, here.deletingLastPathComponent()] {
            let path = candidate.appendingPathComponent("medledger").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        // swift test runs the bundle from .build/<config>/; fall back to the conventional path.
        return FileManager.default.currentDirectoryPath + "/.build/debug/medledger"
    }

    public init(_ executable: String, _ arguments: [String]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe(), stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        stdout.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            guard !data.isEmpty else {
                handle.readabilityHandler = nil
                self.closed(status: nil)
                return
            }
            let ready = self.output.withLock { state -> [(CheckedContinuation<String?, Never>, String)] in
                state.partial += String(decoding: data, as: UTF8.self)
                var parts = state.partial.components(separatedBy: "\n")
                state.partial = parts.removeLast()
                state.lines += parts
                var resumed: [(CheckedContinuation<String?, Never>, String)] = []
                state.waiters.removeAll { waiter in
                    guard let line = parts.first(where: { $0.contains(waiter.0) }) ?? nil else { return false }
                    resumed.append((waiter.1, line))
                    return true
                }
                return resumed
            }
            for (continuation, line) in ready { continuation.resume(returning: line) }
        }
        stderr.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard let self else { return }
            if data.isEmpty {
                handle.readabilityHandler = nil
                self.closed(status: nil)
            } else {
                self.errors.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        process.terminationHandler = { [weak self] process in
            self?.closed(status: process.terminationStatus)
        }
        try process.run()
    }

    private func closed(status: Int32?) {
        let (final, waiters) = exit.withLock { state -> (Int32?, [CheckedContinuation<Int32, Never>]) in
            if let status { state.status = status }
            state.open -= 1
            guard state.open == 0, let status = state.status else { return (nil, []) }
            defer { state.waiters = [] }
            return (status, state.waiters)
        }
        guard let final else { return }
        let lineWaiters = output.withLock { state in
            if !state.partial.isEmpty {
                state.lines.append(state.partial)
                state.partial = ""
            }
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in lineWaiters {
            waiter.1.resume(returning: output.withLock { $0.lines.first { $0.contains(waiter.0) } })
        }
        for waiter in waiters { waiter.resume(returning: final) }
    }

    public convenience init(medledger arguments: String...) throws {
        try self.init(Self.medledgerPath, arguments)
    }

    public var pid: Int32 { process.processIdentifier }

    public var stdoutLines: [String] { output.withLock { $0.lines } }

    /// The first output line containing `text`, or nil if the process exits first.
    public func line(containing text: String) async -> String? {
        await withCheckedContinuation { continuation in
            let found = output.withLock { state -> String?? in
                if let line = state.lines.first(where: { $0.contains(text) }) { return .some(line) }
                if exit.withLock({ $0.open == 0 }) { return .some(nil) }
                state.waiters.append((text, continuation))
                return .none
            }
            if let found { continuation.resume(returning: found) }
        }
    }

    /// Waits for the process to exit and returns its status.
    public func waitForExit() async -> Int32 {
        await withCheckedContinuation { continuation in
            let status = exit.withLock { state -> Int32? in
                if state.open == 0, let status = state.status { return status }
                state.waiters.append(continuation)
                return nil
            }
            if let status { continuation.resume(returning: status) }
        }
    }

    /// Waits at most `timeout` for the process to exit; past that it is killed (SIGKILL) and the
    /// answer is nil, so a test fails instead of hanging.
    public func waitForExit(timeout: Duration) async -> Int32? {
        let watchdog = Task { () -> Bool in
            do { try await Task.sleep(for: timeout) } catch { return false }
            send(SIGKILL)
            return true
        }
        let status = await waitForExit()
        watchdog.cancel()
        return await watchdog.value ? nil : status
    }

    /// Sends `signal` to this process (and only this one).
    public func send(_ signal: Int32) {
        if process.isRunning { kill(process.processIdentifier, signal) }
    }

    /// Runs a command to completion and returns its exit status and output.
    /// A command that has not exited after `timeout` is killed and reported with status -1.
    public static func run(_ executable: String, _ arguments: [String], timeout: Duration = .seconds(180)) async throws -> (status: Int32, stdout: String, stderr: String) {
        let child = try ManagedProcess(executable, arguments)
        let status = await child.waitForExit(timeout: timeout) ?? -1
        return (status, child.stdoutLines.joined(separator: "\n"), child.errors.withLock { $0 })
    }

    public static func medledger(_ arguments: String...) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await run(medledgerPath, arguments)
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}
