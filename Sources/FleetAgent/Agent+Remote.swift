import FleetProtocol
import Glibc
import Synchronization

/// The remote thread: while the server's heartbeat answers say the project allows it, it
/// long-polls for operators' commands (`flotilla exec`, `flotilla fetch`) and runs each on a
/// thread of its own, sending its output back as it comes and then its result. No port is
/// opened on the device: this is the same outbound link as everything else.
extension Agent {
    func remoteLoop(_ identity: Identity) {
        let api = makeAPI(token: identity.deviceToken)
        var backoff = Backoff()
        while !stopped.load(ordering: .relaxed) {
            guard remoteAllowed.load(ordering: .relaxed) else {
                Clock.sleep(seconds: 1)
                continue
            }
            do throws(AgentAPI.Failure) {
                let (list, askAgainIn) = try api.commands(waitSeconds: 30)
                backoff.reset()
                if list.commands.isEmpty, let pause = Backoff.deferral(askAgainIn) { pauseUnlessStopped(seconds: pause) }
                for command in list.commands where remoteRunning.withLock({ $0.insert(command.id).inserted }) {
                    // The command's words are not logged: an operator may have typed a password into one.
                    Log.info("remote \(command.kind.rawValue) \(command.id) from an operator")
                    let token = identity.deviceToken
                    Worker.detached { [self] in
                        serve(command, api: makeAPI(token: token))
                        remoteRunning.withLock { _ = $0.remove(command.id) }
                    }
                }
            } catch {
                if handle(error) { return }
                let delay = backoff.next(retryAfter: error.retryAfter)
                Log.warning("cannot fetch remote commands (\(error)); trying again in \(Int(delay)) s")
                Clock.sleep(seconds: delay)
            }
        }
    }

    /// Runs (or reads) one command, sending its output while it runs and its result at the end.
    func serve(_ command: RemoteCommand, api: AgentAPI) {
        let output = RemoteOutput(limit: command.maximumBytes)
        // The server takes output and the result until the command's timeout and grace have passed.
        var sender = RemoteSender(id: command.id, api: api, deadline: Clock.monotonic() + Double(command.timeoutSeconds) + 25)
        let result: RemoteCommandResult
        switch command.kind {
        case .exec where command.command.first?.isEmpty ?? true:
            result = RemoteCommandResult(exitCode: nil, outputBytes: 0, message: "no command to run")
        case .exec:
            let outcome = Mutex<Result<ProcessRunner.Outcome, AgentError>?>(nil)
            let runner = Worker.start {
                let ran = Result { () throws(AgentError) in
                    try ProcessRunner.run(command.command, timeoutSeconds: Double(command.timeoutSeconds), onOutput: { output.append($0) })
                }
                outcome.withLock { $0 = ran }
            }
            // Output goes out about twice a second while the command runs.
            while outcome.withLock({ $0 }) == nil {
                Clock.sleep(seconds: 0.5)
                if !sender.ended { sender.send(output) }
            }
            runner.join()
            result = Self.result(of: outcome.withLock { $0 }!, command: command, output: output)
        case .fetch:
            result = Self.fetch(command, into: output, agentData: configuration.dataDirectory)
        }
        var said = result
        said.message = result.message.map(Self.shown)
        sender.finish(output, result: said)
        Log.info("remote \(command.kind.rawValue) \(command.id) ended\(result.message.map { ": \($0)" } ?? "")")
    }

    /// `O_PATH`, which <fcntl.h> defines only for _GNU_SOURCE (the same value on every Linux
    /// the agent is built for).
    static let pathOnly: Int32 = 0o10_000_000

    /// A result's message as the server accepts it: at most 1 KiB, no control characters (a path
    /// a local user named, or a link's target, may hold any byte). Refused, the result would be
    /// lost and the operator left with a timeout.
    static func shown(_ message: String) -> String { DisplayText.printable(message, maximumBytes: 1_024) }

    static func result(of outcome: Result<ProcessRunner.Outcome, AgentError>, command: RemoteCommand, output: RemoteOutput)
        -> RemoteCommandResult {
        let (count, dropped) = output.counts
        switch outcome {
        case .failure(let error):
            return RemoteCommandResult(exitCode: nil, outputBytes: count, message: error.description)
        case .success(let ran):
            var message: String?
            if ran.timedOut {
                message = "timed out after \(command.timeoutSeconds) s; its process group was killed"
            } else if let signal = ran.signal {
                message = "killed by signal \(signal)"
            }
            return RemoteCommandResult(exitCode: ran.exitCode, timedOut: ran.timedOut, truncated: dropped > 0, droppedBytes: dropped,
                                       outputBytes: count, message: message)
        }
    }

    /// Reads the file a fetch names, when its real path (every link followed) is under the real
    /// path of an allowed one, and it is a regular file: a link that leads out, a device node,
    /// a FIFO that would block, are refused with a sentence.
    /// Whatever the server sends, the agent's own directory (its device secret and token, the
    /// journal with an execution's secrets) is never sent, nor anything when an allowed path
    /// resolves to `/`.
    static func fetch(_ command: RemoteCommand, into output: RemoteOutput, agentData: String) -> RemoteCommandResult {
        func refused(_ why: String) -> RemoteCommandResult { RemoteCommandResult(exitCode: nil, outputBytes: 0, message: why) }
        guard let path = command.path, RemoteAccess.pathProblem(path) == nil else { return refused("not an absolute, plain path") }
        guard let real = realPath(path) else { return refused("cannot open \(path): \(String(cString: strerror(errno)))") }
        let allowed = command.allowedPaths.compactMap(realPath).filter { $0 != "/" }
        let own = realPath(agentData) ?? agentData
        func isAllowed(_ candidate: String) -> Bool {
            allowed.contains { RemoteAccess.path(candidate, isUnder: $0) } && !RemoteAccess.path(candidate, isUnder: own)
        }
        guard isAllowed(real) else {
            return refused("\(path) leads to \(real), which is not under a path the project allows (\(command.allowedPaths.joined(separator: ", ")))")
        }
        // Only a regular file is opened at all: opening a device node can act (a watchdog arms, a
        // serial line resets what hangs on it). So the path is first only looked up (O_PATH opens
        // nothing), and what it found is checked — its real path, and that it is a regular file —
        // before that very file is opened for reading through its descriptor: a directory on the
        // way swapped for a link (to /dev, say) after the check above is caught before any open.
        let found = open(real, Self.pathOnly | O_NOFOLLOW | O_CLOEXEC)
        guard found >= 0 else { return refused("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(found) }
        guard let opened = realPath("/proc/self/fd/\(found)"), isAllowed(opened) else {
            return refused("\(path) changed while it was opened; not sent")
        }
        var seen = stat()
        guard fstat(found, &seen) == 0, seen.st_mode & S_IFMT == S_IFREG else { return refused("\(path) is not a regular file") }
        let descriptor = open("/proc/self/fd/\(found)", O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)
        guard descriptor >= 0 else { return refused("cannot open \(path): \(String(cString: strerror(errno)))") }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG, status.st_ino == seen.st_ino, status.st_dev == seen.st_dev else {
            return refused("\(path) changed while it was opened; not sent")
        }
        let deadline = Clock.monotonic() + Double(command.timeoutSeconds)
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while Clock.monotonic() < deadline {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            if count < 0 { return refused("cannot read \(path): \(String(cString: strerror(errno)))") }
            if count == 0 { break }
            output.append(buffer[0..<count])
            // Past the limit the rest is not read: its size says what was left out (less what
            // the last read already counted).
            let (kept, dropped) = output.counts
            if kept >= command.maximumBytes {
                output.drop(max(0, Int64(status.st_size) - Int64(kept) - dropped))
                break
            }
        }
        let (count, dropped) = output.counts
        return RemoteCommandResult(exitCode: 0, truncated: dropped > 0, droppedBytes: dropped, outputBytes: count)
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}

/// A command's output as it arrives: the first `limit` bytes kept, the rest counted.
final class RemoteOutput: Sendable {
    private struct State {
        var bytes: [UInt8] = []
        var dropped: Int64 = 0
    }

    private let state = Mutex(State())
    let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    func append(_ chunk: ArraySlice<UInt8>) {
        state.withLock { state in
            let room = max(0, limit - state.bytes.count)
            state.bytes += chunk.prefix(room)
            state.dropped += Int64(max(0, chunk.count - room))
        }
    }

    func drop(_ count: Int64) { state.withLock { $0.dropped += count } }

    var counts: (bytes: Int, dropped: Int64) { state.withLock { ($0.bytes.count, $0.dropped) } }

    func bytes(from offset: Int, maximum: Int) -> [UInt8] {
        state.withLock { state in
            guard offset >= 0, offset < state.bytes.count else { return [] }
            return Array(state.bytes[offset..<min(state.bytes.count, offset + maximum)])
        }
    }
}

/// Sends one command's output in order and then its result, following what the server says
/// it holds; gives up at the deadline, when the server says the command ended, or refuses it.
struct RemoteSender {
    let id: String
    let api: AgentAPI
    let deadline: Double
    /// The bytes the server holds.
    var sent = 0
    var ended = false

    static let piece = RemoteCommand.pieceBytes

    mutating func send(_ output: RemoteOutput) {
        var backoff = Backoff(base: 0.5, cap: 5)
        while !ended, Clock.monotonic() < deadline {
            let piece = output.bytes(from: sent, maximum: Self.piece)
            guard !piece.isEmpty else { return }
            do throws(AgentAPI.Failure) {
                let ack = try api.commandOutput(id: id, offset: sent, piece)
                ended = ack.ended || ack.outputBytes > output.counts.bytes
                sent = ack.outputBytes
            } catch {
                guard case .unavailable = error else { return giveUp(error) }
                Clock.sleep(seconds: min(backoff.next(retryAfter: error.retryAfter), max(0, deadline - Clock.monotonic())))
            }
        }
    }

    mutating func finish(_ output: RemoteOutput, result: RemoteCommandResult) {
        var backoff = Backoff(base: 0.5, cap: 5)
        while !ended, Clock.monotonic() < deadline {
            send(output)
            guard !ended else { return }
            do throws(AgentAPI.Failure) {
                let ack = try api.commandResult(id: id, result)
                // Behind: the output is sent again from where the server is, then the result. (A
                // server that says it holds more than was sent cannot be put right: nothing more.)
                if ack.ended || ack.outputBytes > output.counts.bytes { ended = true } else { sent = ack.outputBytes }
            } catch {
                guard case .unavailable = error else { return giveUp(error) }
                Clock.sleep(seconds: min(backoff.next(retryAfter: error.retryAfter), max(0, deadline - Clock.monotonic())))
            }
        }
        if !ended { Log.warning("remote command \(id): the server did not take its result in time") }
    }

    private mutating func giveUp(_ error: AgentAPI.Failure) {
        Log.warning("remote command \(id): \(error); nothing more is sent")
        ended = true
    }
}
