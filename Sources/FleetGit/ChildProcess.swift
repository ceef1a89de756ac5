import CLibGit2
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs other programs (ssh-keygen, gpg, git, servers in tests) with `posix_spawn` and
/// `waitpid`. Foundation's `Process` can miss a child's exit when several are started from
/// different threads at once, and hands children the spawning thread's blocked signals.
package enum ChildProcess {
    package struct Failure: Error, CustomStringConvertible {
        package var message: String
        package var description: String { message }
    }

    package struct Result {
        package var status: Int32
        package var output: [UInt8]
        package var errorOutput: [UInt8]

        package var outputText: String { String(decoding: output, as: UTF8.self) }
        package var errorText: String { String(decoding: errorOutput, as: UTF8.self) }
    }

    /// Runs `executable` to completion, feeding it `input`, and returns what it printed.
    package static func run(_ executable: String, _ arguments: [String], directory: String? = nil,
                            environment: [String: String]? = nil, input: [UInt8] = []) throws(Failure) -> Result {
        let files = try (0..<3).map { _ throws(Failure) in try temporaryFile() }
        defer { for (descriptor, path) in files { close(descriptor); unlink(path) } }
        let written = input.withUnsafeBytes { write(files[0].descriptor, $0.baseAddress, $0.count) }
        guard written == input.count, lseek(files[0].descriptor, 0, SEEK_SET) == 0 else {
            throw Failure(message: "cannot stage input for \(executable)")
        }
        let pid = try spawn(executable, arguments, directory: directory, environment: environment,
                            standardInput: files[0].descriptor, standardOutput: files[1].descriptor, standardError: files[2].descriptor)
        let status = wait(pid)
        return Result(status: status, output: try readAll(files[1].descriptor), errorOutput: try readAll(files[2].descriptor))
    }

    /// Starts `executable` in the background with its output discarded; stop it with `kill`.
    package static func start(_ executable: String, _ arguments: [String]) throws(Failure) -> Int32 {
        let null = open("/dev/null", O_RDWR)
        defer { close(null) }
        return try spawn(executable, arguments, directory: nil, environment: nil, standardInput: null, standardOutput: null, standardError: null)
    }

    /// Starts `executable` in the background with extra environment variables, its output and
    /// errors appended to `logPath`; stop it with `kill` or reap it with `waitForExit`.
    package static func start(_ executable: String, _ arguments: [String], environment extra: [String: String],
                              logPath: String) throws(Failure) -> Int32 {
        let null = open("/dev/null", O_RDWR)
        defer { close(null) }
        let log = open(logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        guard log >= 0 else { throw Failure(message: "cannot open \(logPath)") }
        defer { close(log) }
        let environment = ProcessInfo.processInfo.environment.merging(extra) { _, new in new }
        return try spawn(executable, arguments, directory: nil, environment: environment, standardInput: null, standardOutput: log,
                         standardError: log)
    }

    /// A started child's exit status (128 + signal when a signal ended it), reaping it; nil
    /// while it runs.
    package static func exitStatus(_ pid: Int32) -> Int32? {
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Kills a started child at once and reaps it.
    package static func kill(_ pid: Int32) {
        _ = Glibc.kill(pid, SIGKILL)
        _ = wait(pid)
    }

    /// Whether a started child is still running.
    package static func isRunning(_ pid: Int32) -> Bool {
        var status: Int32 = 0
        return waitpid(pid, &status, WNOHANG) == 0
    }

    private static func spawn(_ executable: String, _ arguments: [String], directory: String?, environment: [String: String]?,
                              standardInput: Int32, standardOutput: Int32, standardError: Int32) throws(Failure) -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, standardInput, 0)
        posix_spawn_file_actions_adddup2(&actions, standardOutput, 1)
        posix_spawn_file_actions_adddup2(&actions, standardError, 2)
        if let directory { posix_spawn_file_actions_addchdir_np(&actions, directory) }

        // A clean signal state: no blocked signals, default handlers.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t(), all = sigset_t()
        sigemptyset(&empty)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &empty)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        let variables = (environment ?? ProcessInfo.processInfo.environment).map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { variables.forEach { free($0) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, argv, variables)
        guard result == 0 else {
            throw Failure(message: "cannot run \(executable): \(String(cString: strerror(result)))")
        }
        return pid
    }

    private static func wait(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        // Exit status when it exited, 128 + signal when a signal ended it, as shells report.
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    private static func temporaryFile() throws(Failure) -> (descriptor: Int32, path: String) {
        var template = Array((NSTemporaryDirectory() + "flotilla-child-XXXXXX").utf8CString)
        let descriptor = mkstemp(&template)
        guard descriptor >= 0 else { throw Failure(message: "cannot create a temporary file") }
        return (descriptor, String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    private static func readAll(_ descriptor: Int32) throws(Failure) -> [UInt8] {
        guard lseek(descriptor, 0, SEEK_SET) == 0 else { throw Failure(message: "cannot read a child's output") }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }
}
