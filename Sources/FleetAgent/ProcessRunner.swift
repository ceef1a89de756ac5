import Glibc
import Synchronization

/// Runs a program with a deadline, capturing the tail of its output (standard output and error
/// together). On timeout its whole process group gets SIGTERM, then SIGKILL five seconds later.
public enum ProcessRunner {
    public struct Outcome: Sendable {
        /// The exit status; nil when it was killed by a signal or timed out.
        public var exitCode: Int?
        public var timedOut: Bool
        public var signal: Int32?
        /// The last `tailBytes` of what it wrote (of its standard error alone, when its standard
        /// output was kept apart).
        public var output: String
        /// The first `headBytes` of its standard output, when it was kept apart.
        public var standardOutput: [UInt8] = []

        public var succeeded: Bool { exitCode == 0 }

        /// A sentence for a failed run.
        public var failure: String {
            if timedOut { return "timed out" }
            if let signal { return "killed by signal \(signal)" }
            return "exited with status \(exitCode ?? -1)"
        }
    }

    /// Held while pipes are made and while a program is started (see `run`).
    private static let spawning = Mutex<Void>(())

    /// `posix_spawn_file_actions_addclosefrom_np`, looked up when the agent runs rather than
    /// linked: the same binary starts on a C library without it (and sweeps instead).
    static let closeFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
    }()

    /// Marks every descriptor above standard error close-on-exec, so a program the agent starts
    /// gets only its own 0, 1 and 2: not the agent's connections to the server (libcurl opens
    /// them close-on-exec too, see `flotilla_curl_private_sockets`), not its journal, and not
    /// whatever the agent's own parent left open in it. A daemon a step starts lives on with
    /// what it inherited. Called under `spawning`, right before a program is started.
    static func closeOnExecInherited() {
        guard let directory = opendir("/proc/self/fd") else { return }
        defer { closedir(directory) }
        let own = dirfd(directory)
        for name in Files.names(in: directory) {
            guard let fd = Int32(name), fd > 2, fd != own else { continue }
            let flags = fcntl(fd, F_GETFD)
            if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(fd, F_SETFD, flags | FD_CLOEXEC) }
        }
    }

    public static let tailBytes = 4_096
    public static let headBytes = 4_096

    /// Runs `arguments` (the first is looked up on PATH) with `environment` added to the agent's.
    /// Every value in `hiding` is replaced by `[secret]` in the output, before its tail is cut, so
    /// no part of one survives at the cut. With `separateStandardOutput`, the first `headBytes`
    /// of standard output are kept apart (the rest is read and dropped) and `output` is the tail
    /// of standard error.
    /// `onOutput` is given everything read from the merged output as it arrives.
    public static func run(_ arguments: [String], environment: [String: String] = [:], hiding: [String] = [],
                           timeoutSeconds: Double, separateStandardOutput: Bool = false,
                           onOutput: ((ArraySlice<UInt8>) -> Void)? = nil) throws(AgentError) -> Outcome {
        let secrets = hiding.filter { !$0.isEmpty }.map { Array($0.utf8) }
        // The window kept while reading: the tail, and room for a secret that ends inside it.
        let window = tailBytes + (secrets.map(\.count).max() ?? 0)
        var pipeEnds: [Int32] = [0, 0]
        // Only the child's copies (dup2'd onto 1 and 2) survive its exec. The pipes are made and
        // marked close-on-exec under the lock every spawn takes, so a program another thread
        // starts in between inherits none of them.
        var outputEnds: [Int32] = [-1, -1]
        let made = spawning.withLock { _ -> Bool in
            func make(_ ends: inout [Int32]) -> Bool {
                guard pipe(&ends) == 0 else { return false }
                _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
                _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
                return true
            }
            guard make(&pipeEnds) else { return false }
            guard !separateStandardOutput || make(&outputEnds) else {
                close(pipeEnds[0])
                close(pipeEnds[1])
                return false
            }
            return true
        }
        guard made else { throw .system("cannot make a pipe for", arguments[0]) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, separateStandardOutput ? outputEnds[1] : pipeEnds[1], 1)
        posix_spawn_file_actions_adddup2(&actions, pipeEnds[1], 2)
        // Where the C library has it (glibc 2.34 and later), the child closes everything above
        // 2 itself: nothing another thread opens between the sweep below and the start (libcurl's
        // resolver makes socket pairs without close-on-exec) reaches the program either.
        if let closeFrom = Self.closeFrom { _ = closeFrom(&actions, 3) }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Its own process group, so a timeout stops its children too; default signal handling.
        var defaults = sigset_t()
        sigfillset(&defaults)
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var variables: [String] = []
        var index = 0
        while let entry = environ[index] {
            let text = String(cString: entry)
            let name = text.prefix(while: { $0 != "=" })
            if environment[String(name)] == nil { variables.append(text) }
            index += 1
        }
        for (name, value) in environment.sorted(by: { $0.key < $1.key }) { variables.append("\(name)=\(value)") }

        var pid: pid_t = 0
        var status: Int32 = 0
        // ETXTBSY: a program written a moment ago may still be open for writing in a child another
        // thread is starting; that passes within milliseconds.
        for attempt in 0..<5 {
            status = withCStrings(arguments) { argv in
                withCStrings(variables) { envp in
                    spawning.withLock { _ in
                        closeOnExecInherited()
                        return posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
                    }
                }
            }
            guard status == ETXTBSY, attempt < 4 else { break }
            Clock.sleep(seconds: 0.05 * Double(attempt + 1))
        }
        close(pipeEnds[1])
        if separateStandardOutput { close(outputEnds[1]) }
        guard status == 0 else {
            close(pipeEnds[0])
            if separateStandardOutput { close(outputEnds[0]) }
            throw AgentError("cannot start \(arguments[0]): \(String(cString: strerror(status)))")
        }
        // Standard output, when kept apart: its head is kept, the rest drained so the program never blocks.
        var head: [UInt8] = []
        var outputOpen = separateStandardOutput
        defer { if separateStandardOutput { close(outputEnds[0]) } }

        let deadline = Clock.monotonic() + timeoutSeconds
        var tail: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16_384)
        func keep(_ count: Int) { head.append(contentsOf: buffer[0..<min(count, max(0, headBytes - head.count))]) }
        var timedOut = false
        var killAt: Double?
        var open = true
        while open {
            let now = Clock.monotonic()
            if !timedOut, now >= deadline {
                timedOut = true
                kill(-pid, SIGTERM)
                killAt = now + 5
            }
            if let at = killAt, now >= at {
                kill(-pid, SIGKILL)
                killAt = nil
            }
            let wait = timedOut ? 0.2 : min(deadline - now, 0.5)
            var descriptors = [pollfd(fd: pipeEnds[0], events: Int16(POLLIN), revents: 0),
                               pollfd(fd: outputOpen ? outputEnds[0] : -1, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&descriptors, 2, Int32(max(wait, 0.01) * 1000))
            if ready < 0, errno != EINTR { break }
            guard ready > 0 else {
                // Children that keep the pipe open after the program exits must not hold the step.
                var probe: Int32 = 0
                if waitpid(pid, &probe, WNOHANG) == pid {
                    // Timed out: what the group still holds (a child that ignored SIGTERM) goes too.
                    if timedOut { kill(-pid, SIGKILL) }
                    var result = finish(pid: nil, status: probe, tail: hide(secrets, in: tail), timedOut: timedOut, pipe: pipeEnds[0])
                    result.standardOutput = head
                    return result
                }
                continue
            }
            if outputOpen, descriptors[1].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(outputEnds[0], $0.baseAddress, $0.count) }
                if count > 0 {
                    keep(count)
                } else if count == 0 || errno != EINTR {
                    outputOpen = false
                }
            }
            guard descriptors[0].revents != 0 else { continue }
            let count = buffer.withUnsafeMutableBytes { read(pipeEnds[0], $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            if count <= 0 { open = false; break }
            onOutput?(buffer[0..<count])
            tail.append(contentsOf: buffer[0..<count])
            if tail.count > window * 2 { tail.removeFirst(tail.count - window) }
        }
        // Standard error closed; what standard output still holds is read until it closes too (or the deadline).
        while outputOpen {
            var descriptor = pollfd(fd: outputEnds[0], events: Int16(POLLIN), revents: 0)
            let remaining = deadline - Clock.monotonic()
            guard remaining > 0 else { break }
            guard poll(&descriptor, 1, Int32(min(remaining, 0.5) * 1000)) > 0 else {
                // A child the program left behind may hold standard output open: not past the program's own exit.
                var info = siginfo_t()
                if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0, info._sifields._sigchld.si_pid == pid { break }
                continue
            }
            let count = buffer.withUnsafeMutableBytes { read(outputEnds[0], $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            keep(count)
        }
        var result = finish(pid: pid, status: 0, tail: hide(secrets, in: tail), timedOut: timedOut, pipe: pipeEnds[0], deadline: deadline)
        result.standardOutput = head
        return result
    }

    private static func finish(pid: pid_t?, status: Int32, tail: [UInt8], timedOut: Bool, pipe: Int32,
                               deadline: Double = 0) -> Outcome {
        close(pipe)
        var status = status
        if let pid {
            // The pipe closed; the program may still be running (it closed its output). Past the
            // deadline it gets SIGTERM, and SIGKILL after a grace, also when the SIGTERM was sent
            // before its output closed: a program that ignores SIGTERM never holds the caller.
            var timedOut = timedOut
            var killAt: Double? = timedOut ? Clock.monotonic() + 5 : nil
            while true {
                let done = waitpid(pid, &status, WNOHANG)
                if done == pid || (done < 0 && errno != EINTR) { break }
                if !timedOut, Clock.monotonic() >= deadline {
                    timedOut = true
                    kill(-pid, SIGTERM)
                    killAt = Clock.monotonic() + 2
                }
                if let at = killAt, Clock.monotonic() >= at {
                    kill(-pid, SIGKILL)
                    killAt = nil
                }
                Clock.sleep(seconds: 0.02)
            }
            if timedOut { kill(-pid, SIGKILL) }
            return outcome(status: status, tail: tail, timedOut: timedOut)
        }
        return outcome(status: status, tail: tail, timedOut: timedOut)
    }

    /// `bytes` with every occurrence of each secret replaced by `[secret]`, longest first.
    static func hide(_ secrets: [[UInt8]], in bytes: [UInt8]) -> [UInt8] {
        guard !secrets.isEmpty else { return bytes }
        var bytes = bytes
        let mark = Array("[secret]".utf8)
        for secret in secrets.sorted(by: { $0.count > $1.count }) {
            var result: [UInt8] = []
            result.reserveCapacity(bytes.count)
            var index = 0
            while index < bytes.count {
                if bytes[index] == secret[0], index + secret.count <= bytes.count, bytes[index..<index + secret.count].elementsEqual(secret) {
                    result += mark
                    index += secret.count
                } else {
                    result.append(bytes[index])
                    index += 1
                }
            }
            bytes = result
        }
        return bytes
    }

    private static func outcome(status: Int32, tail: [UInt8], timedOut: Bool) -> Outcome {
        let kept = tail.count > tailBytes ? Array(tail.suffix(tailBytes)) : tail
        let exited = status & 0x7f == 0
        return Outcome(exitCode: exited && !timedOut ? Int((status >> 8) & 0xff) : nil, timedOut: timedOut,
                       signal: exited ? nil : status & 0x7f, output: String(decoding: kept, as: UTF8.self))
    }

    private static func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        var pointers = strings.map { strdup($0) }
        pointers.append(nil)
        defer { for pointer in pointers { free(pointer) } }
        return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
    }
}
