import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process started by a test: its output lines as they arrive, its exit status, and
/// signals sent to exactly this pid (never by name).
public final class ManagedProcess: Sendable {
    public let pid: pid_t
    let output = Mutex<(lines: [String], partial: String, waiters: [(String, CheckedContinuation<String?, Never>)])>(([], "", []))
    /// The status becomes visible once the process has been reaped and both pipes reached end of file.
    let exit = Mutex<(status: Int32?, signal: Int32?, open: Int, waiters: [CheckedContinuation<Int32, Never>])>((nil, nil, 3, []))
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

    /// Starts `executable` with `arguments`, stdin from /dev/null, stdout and stderr captured.
    ///
    /// Spawned with `posix_spawn`, not Foundation's `Process`: the pipes are created close-on-exec
    /// (so a child started concurrently by another test never inherits them and holds them open),
    /// they are drained by blocking reads on their own threads, and the child is reaped by
    /// `waitpid` on a third. No run-loop callback can be missed, so a test never waits forever
    /// for an exit that already happened.
    ///
    /// `environment` is added to (and overrides) this process's environment for the child.
    ///
    /// The child dies with the test process: it is started through util-linux `setpriv
    /// --pdeathsig KILL` (which sets `PR_SET_PDEATHSIG` and then `exec`s, so the pid is the
    /// child's own), from ``Spawner``'s one thread that lives as long as the process. Linux sends
    /// the death signal when the *thread* that forked the child exits, and the concurrency pool's
    /// threads come and go, so spawning from them would kill children at random. A test binary
    /// that crashes or is SIGKILLed therefore leaves no etcd member or node behind. Where
    /// `setpriv` is missing the child is spawned directly (and may outlive a crash).
    public init(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws {
        // Pipes are made close-on-exec and the child spawned under one lock, so no other child
        // started by a test can inherit these descriptors between `pipe` and `fcntl`.
        var stdoutPipe: [Int32] = [-1, -1], stderrPipe: [Int32] = [-1, -1]
        let (child, result) = try Self.spawnLock.withLock { _ throws -> (pid_t, Int32) in
            guard pipe(&stdoutPipe) == 0 else { throw POSIXError(.EMFILE) }
            guard pipe(&stderrPipe) == 0 else {
                close(stdoutPipe[0]); close(stdoutPipe[1])
                throw POSIXError(.EMFILE)
            }
            for descriptor in stdoutPipe + stderrPipe { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
            let (stdout, stderr) = (stdoutPipe[1], stderrPipe[1])
            return Spawner.shared.run {
                Self.spawn(executable, arguments, environment: environment, stdout: stdout, stderr: stderr)
            }
        }
        close(stdoutPipe[1])
        close(stderrPipe[1])
        guard result == 0 else {
            close(stdoutPipe[0]); close(stderrPipe[0])
            throw POSIXError(POSIXErrorCode(rawValue: result) ?? .ENOENT)
        }
        pid = child
        Self.drain(stdoutPipe[0]) { [weak self] data in self?.received(stdout: data) } finished: { [weak self] in self?.closed(status: nil, signal: nil) }
        Self.drain(stderrPipe[0]) { [weak self] data in self?.errors.withLock { $0 += String(decoding: data, as: UTF8.self) } } finished: { [weak self] in self?.closed(status: nil, signal: nil) }
        Thread.detachNewThread { [weak self] in
            var status: Int32 = 0
            while waitpid(child, &status, 0) == -1, errno == EINTR {}
            // WIFEXITED / WEXITSTATUS / WTERMSIG, spelled out (the C macros are not imported).
            let signal = status & 0x7f
            if signal == 0 {
                self?.closed(status: (status >> 8) & 0xff, signal: nil)
            } else {
                self?.closed(status: 128 + signal, signal: signal)
            }
        }
    }

    static let spawnLock = Mutex(())

    /// util-linux `setpriv`, which can set the parent-death signal before it `exec`s the command.
    static let setpriv: String? = ["/usr/bin/setpriv", "/bin/setpriv"].first { FileManager.default.isExecutableFile(atPath: $0) }

    static func spawn(_ executable: String, _ arguments: [String], environment: [String: String],
                      stdout: Int32, stderr: Int32) -> (pid_t, Int32) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        let command = setpriv.map { [$0, "--pdeathsig", "KILL", "--", executable] } ?? [executable]
        let argv: [UnsafeMutablePointer<CChar>?] = (command + arguments).map { strdup($0) } + [nil]
        var variables = ProcessInfo.processInfo.environment
        for (name, value) in environment { variables[name] = value }
        let envp: [UnsafeMutablePointer<CChar>?] = variables.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") } + [nil]
        var child: pid_t = 0
        let result = posix_spawn(&child, command[0], &actions, nil, argv, envp)
        for pointer in argv + envp { free(pointer) }
        posix_spawn_file_actions_destroy(&actions)
        return (child, result)
    }

    /// Reads `descriptor` until end of file on a dedicated thread, then closes it.
    static func drain(_ descriptor: Int32, _ body: @escaping @Sendable ([UInt8]) -> Void, finished: @escaping @Sendable () -> Void) {
        Thread.detachNewThread {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count > 0 {
                    body(Array(buffer[0..<count]))
                } else if count == 0 || errno != EINTR {
                    break
                }
            }
            close(descriptor)
            finished()
        }
    }

    private func received(stdout data: [UInt8]) {
        let ready = output.withLock { state -> [(CheckedContinuation<String?, Never>, String)] in
            state.partial += String(decoding: data, as: UTF8.self)
            var parts = state.partial.components(separatedBy: "\n")
            state.partial = parts.removeLast()
            state.lines += parts
            var resumed: [(CheckedContinuation<String?, Never>, String)] = []
            state.waiters.removeAll { waiter in
                guard let line = parts.first(where: { $0.contains(waiter.0) }) else { return false }
                resumed.append((waiter.1, line))
                return true
            }
            return resumed
        }
        for (continuation, line) in ready { continuation.resume(returning: line) }
    }

    private func closed(status: Int32?, signal: Int32?) {
        let (final, waiters) = exit.withLock { state -> (Int32?, [CheckedContinuation<Int32, Never>]) in
            if let status {
                state.status = status
                state.signal = signal
            }
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

    /// The signal that ended the process, once it has exited (nil if it exited normally).
    public var terminatingSignal: Int32? { exit.withLock { $0.signal } }

    private var isRunning: Bool { exit.withLock { $0.status == nil } }

    public convenience init(medledger arguments: String...) throws {
        try self.init(Self.medledgerPath, arguments)
    }

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
        if isRunning { kill(pid, signal) }
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

    public static func medledger(_ arguments: [String]) async throws -> (status: Int32, stdout: String, stderr: String) {
        try await run(medledgerPath, arguments)
    }

    deinit {
        if isRunning { kill(pid, SIGKILL) }
    }
}

/// One thread, alive as long as the process, that spawns every ``ManagedProcess`` child: the
/// parent-death signal is tied to the thread that forked the child (see ``ManagedProcess/init(_:_:environment:)``).
final class Spawner: Sendable {
    static let shared = Spawner()

    private let jobs = Mutex<[@Sendable () -> Void]>([])
    private let pending = DispatchSemaphore(value: 0)

    private init() {
        Thread.detachNewThread { [self] in loop() }
    }

    private func loop() -> Never {
        while true {
            pending.wait()
            let ready = jobs.withLock { jobs in defer { jobs = [] }; return jobs }
            for job in ready { job() }
        }
    }

    /// Runs `body` on the spawner thread and returns its result.
    func run<Result: Sendable>(_ body: @escaping @Sendable () -> Result) -> Result {
        let result = Mutex<Result?>(nil)
        let done = DispatchSemaphore(value: 0)
        jobs.withLock { $0.append { result.withLock { $0 = body() }; done.signal() } }
        pending.signal()
        done.wait()
        return result.withLock { $0! }
    }
}
