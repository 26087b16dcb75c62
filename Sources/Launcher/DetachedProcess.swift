import Foundation
#if canImport(Glibc)
import Glibc
#endif
public import LedgerCore

/// Processes that outlive the command that started them, named by pid *and* start time.
public enum DetachedProcess {
    /// Field 22 of `/proc/<pid>/stat` (start time, clock ticks after boot), nil when no such process.
    public static func startTime(of pid: Int32) -> UInt64? {
        statFields(pid).flatMap { $0.count > 19 ? UInt64($0[19]) : nil }
    }

    /// The fields of `/proc/<pid>/stat` after the command name (field 3, the state, first).
    /// The name is in parentheses and may itself hold spaces and parentheses: split after the last ")".
    static func statFields(_ pid: Int32) -> [Substring]? {
        guard pid > 0, let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// Whether `pid` is still the process that started at `startTime` and has not exited (a zombie
    /// waiting for its parent to reap it has exited).
    public static func isRunning(pid: Int32, startTime: UInt64) -> Bool {
        guard let fields = statFields(pid), fields.count > 19, UInt64(fields[19]) == startTime else { return false }
        return fields[0] != "Z" && fields[0] != "X"
    }

    /// Starts `executable` in a new session (its own process group, no controlling terminal, so a
    /// Ctrl-C at the terminal that ran `network up` does not reach it), stdin from /dev/null,
    /// stdout and stderr appended to `log` (created 0600), no other descriptor inherited, signal
    /// dispositions and mask reset. Returns its pid and start time.
    public static func spawn(_ executable: String, _ arguments: [String], log: String,
                             environment: [String: String]? = nil) throws(LedgerError) -> (pid: Int32, startTime: UInt64) {
        let descriptor = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw LedgerError(.io, "cannot open \(log): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, descriptor, 1)
        posix_spawn_file_actions_adddup2(&actions, descriptor, 2)
        // Every other descriptor this process has open now (`closefrom` is not visible to Swift;
        // glibc ignores a close that finds the descriptor already closed).
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.compactMap { Int32($0) } ?? []
        for other in open where other > 2 { posix_spawn_file_actions_addclose(&actions, other) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        // POSIX_SPAWN_SETSID (glibc 2.26+) is 0x80; spelled out where the header hides it.
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | 0x80))
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        let environment = environment ?? ProcessInfo.processInfo.environment
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in envp { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
        guard result == 0 else {
            throw LedgerError(.io, "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        // The child exists once posix_spawn returns (glibc waits for the exec), so its stat does too.
        guard let startTime = startTime(of: pid) else {
            throw LedgerError(.io, "\(executable) (pid \(pid)) exited at once; see \(log)")
        }
        return (pid, startTime)
    }

    /// What ``stop(_:grace:)`` found for one record.
    public enum StopOutcome: Sendable, Equatable {
        /// It was running and stopped on SIGTERM within the grace period.
        case stopped
        /// It was running, ignored SIGTERM for the grace period, and was killed (SIGKILL).
        case killed
        /// No process has this pid any more.
        case alreadyGone
        /// The pid now belongs to a process with another start time (the number was reused): left alone.
        case pidReused
    }

    /// Stops each process that is still the one recorded (pid and start time): SIGTERM to all,
    /// waits up to `grace` for them to exit, then SIGKILL to those left, and waits for those too.
    /// Never signals a pid whose start time differs. Reaps those that are this process's children.
    public static func stop(_ records: [ProcessTable.Record], grace: Duration) async -> [ProcessTable.Record: StopOutcome] {
        var outcomes: [ProcessTable.Record: StopOutcome] = [:]
        var running: [ProcessTable.Record] = []
        for record in records {
            reap(record.pid)
            if isRunning(pid: record.pid, startTime: record.startTime) {
                running.append(record)
            } else {
                outcomes[record] = startTime(of: record.pid) == nil || startTime(of: record.pid) == record.startTime ? .alreadyGone : .pidReused
            }
        }
        for record in running where isRunning(pid: record.pid, startTime: record.startTime) { kill(record.pid, SIGTERM) }
        let deadline = ContinuousClock.now + grace
        var left = running
        while !left.isEmpty, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
            left.removeAll { record in
                reap(record.pid)
                guard !isRunning(pid: record.pid, startTime: record.startTime) else { return false }
                outcomes[record] = .stopped
                return true
            }
        }
        for record in left {
            if isRunning(pid: record.pid, startTime: record.startTime) { kill(record.pid, SIGKILL) }
            outcomes[record] = .killed
        }
        // SIGKILL is not ignorable, but the kernel takes a moment to tear a process down.
        let killDeadline = ContinuousClock.now + .seconds(10)
        while left.contains(where: { isRunning(pid: $0.pid, startTime: $0.startTime) }), ContinuousClock.now < killDeadline {
            for record in left { reap(record.pid) }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return outcomes
    }

    /// Collects the exit status of `pid` if it is this process's exited child (so it leaves no
    /// zombie); does nothing for any other pid.
    static func reap(_ pid: Int32) {
        var status: Int32 = 0
        _ = waitpid(pid, &status, WNOHANG)
    }
}

extension ProcessTable.Record: Hashable {
    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(pid)
        hasher.combine(startTime)
    }
}
