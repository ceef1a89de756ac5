public import FleetProtocol
import Glibc
import Synchronization

/// The agent's release as `flotilla-agent --version` prints it and heartbeats report it, read
/// from a marker kept whole in the binary (`what(1)`'s `@(#)`), so a build can be told from
/// another by its bytes alone.
enum AgentVersion {
    static let marker = "@(#)flotilla-agent 0.1.0"
    static let current = String(marker.dropFirst("@(#)flotilla-agent ".count))
}

/// An `agentUpdate` step: the agent replaces its own binary and restarts, and the step succeeds
/// only once the new agent reported in.
///
/// 1. The new binary is downloaded beside the running one (`.flotilla-agent.new`, checked against
///    the sha256 and the artifact allowlist), made executable, and must answer `--version`.
/// 2. The running binary is copied to `.flotilla-agent.previous`, and `self-update.env` in the data
///    directory records the swap: the binary, the previous one, both versions, the deadline.
/// 3. The new binary is renamed over the old (atomic), and the agent exits with status 75;
///    systemd starts it again (`Restart=always`).
/// 4. The new agent finds the journal at this step and `self-update.env`: once a heartbeat of its
///    new version is acknowledged, the step succeeds and the execution goes on.
///
/// If the new agent does not start, or does not report in by the deadline, `flotilla-agent-watchdog`
/// — a shell script systemd runs before every start (`ExecStartPre`) and on a timer, which never
/// depends on the new binary working — puts the previous binary back and writes
/// `self-update.rolled-back` with why. The old agent then ends the step failed with that reason.
extension Agent {
    var selfUpdatePath: String { root + "/self-update.env" }
    var selfUpdateRolledBackPath: String { root + "/self-update.rolled-back" }
    var selfUpdateStartsPath: String { root + "/self-update.starts" }

    /// The exit status that asks systemd to start the (new) agent.
    static let restartStatus: Int32 = 75

    struct PendingUpdate {
        var execution: String
        var binary: String
        var previous: String
        var from: String
        var to: String
        var deadline: Int

        var text: String {
            "execution=\(execution)\nbinary=\(binary)\nprevious=\(previous)\nfrom=\(from)\nto=\(to)\ndeadline=\(deadline)\n"
        }

        static func parse(_ text: String) -> PendingUpdate? {
            var fields: [String: String] = [:]
            for line in text.split(byte: 0x0A) {
                guard let equals = line.firstIndex(of: "=") else { continue }
                fields[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            guard let execution = fields["execution"], let binary = fields["binary"], let previous = fields["previous"],
                  let from = fields["from"], let to = fields["to"], let deadline = fields["deadline"].flatMap({ Int($0) }) else { return nil }
            return PendingUpdate(execution: execution, binary: binary, previous: previous, from: from, to: to, deadline: deadline)
        }
    }

    /// The running binary's real path.
    static func runningBinary() -> String? {
        var buffer = [CChar](repeating: 0, count: 4_096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Runs an `agentUpdate` step up to the restart; returns the outcome when it ends before (a
    /// failure, or the same version already running). On success it does not return.
    func selfUpdate(_ step: AssignedStep, _ progress: ExecutionProgress) -> StepOutcome {
        guard let executor = executor as? SystemStepExecutor else {
            return StepOutcome(succeeded: false, reason: "this agent cannot replace itself")
        }
        guard let binary = Self.runningBinary(), !binary.contains("\n") else {
            return StepOutcome(succeeded: false, reason: "cannot tell where the running agent is (/proc/self/exe)")
        }
        let directory = Files.parent(of: binary)
        let new = directory + "/.flotilla-agent.new", previous = directory + "/.flotilla-agent.previous"
        let prepared = executor.prepareAgentUpdate(step, of: progress.assignment, into: new)
        guard prepared.succeeded, let version = prepared.output else { return prepared }
        if version == Self.version {
            Files.remove(new)
            return StepOutcome(succeeded: true, output: "flotilla-agent \(version) is running already")
        }
        do {
            try Files.copy(binary, to: previous, mode: 0o755)
            let pending = PendingUpdate(execution: progress.assignment.executionID, binary: binary, previous: previous,
                                        from: Self.version, to: version, deadline: Int(Clock.wall()) + max(step.timeoutSeconds, 10))
            Files.remove(selfUpdateRolledBackPath)
            Files.remove(selfUpdateStartsPath)
            try Files.writeAtomically(selfUpdatePath, Array(pending.text.utf8), mode: 0o644)
        } catch {
            Files.remove(new)
            return StepOutcome(succeeded: false, reason: "cannot keep the running agent to go back to: \(error)")
        }
        guard rename(new, binary) == 0 else {
            let why = String(cString: strerror(errno))
            Files.remove(new)
            Files.remove(selfUpdatePath)
            return StepOutcome(succeeded: false, reason: "cannot put the new agent in place: \(why)")
        }
        Files.syncDirectory(of: binary)
        Log.info("flotilla-agent \(version) is in place of \(Self.version); restarting to run it")
        // What is queued in the outbox is on disk: the new agent delivers it.
        stopped.store(true, ordering: .relaxed)
        exit(Self.restartStatus)
    }

    /// On start, with the journal at an `agentUpdate` step: the new agent waits until its
    /// heartbeat is acknowledged; the old one, put back by the watchdog, says why. Returns the
    /// step's outcome, or nil when no swap was under way.
    func resumeSelfUpdate(_ progress: ExecutionProgress) -> StepOutcome? {
        guard let (step, _, _) = progress.current, step.kind == .agentUpdate,
              let text = (try? Files.readText(selfUpdatePath)) ?? nil else { return nil }
        defer {
            Files.remove(selfUpdatePath)
            Files.remove(selfUpdateStartsPath)
            Files.remove(selfUpdateRolledBackPath)
        }
        guard let pending = PendingUpdate.parse(text), pending.execution == progress.assignment.executionID else {
            return StepOutcome(succeeded: false, reason: "the record of the agent's update cannot be read")
        }
        if let why = ((try? Files.readText(selfUpdateRolledBackPath)) ?? nil)?.trimmed {
            return StepOutcome(succeeded: false, reason: "flotilla-agent \(pending.to) was rolled back to \(pending.from): \(why)")
        }
        guard Self.version == pending.to else {
            return StepOutcome(succeeded: false, reason: "the agent restarted as \(Self.version), not \(pending.to)")
        }
        Log.info("running as flotilla-agent \(pending.to); waiting for the server to hear it")
        while !heardBack.load(ordering: .relaxed) {
            if stopped.load(ordering: .relaxed) { exit(0) }
            heartbeatNow.store(true, ordering: .relaxed)
            Clock.sleep(seconds: 0.2)
        }
        Files.remove(pending.previous)
        return StepOutcome(succeeded: true, output: "flotilla-agent \(pending.to) reported in (was \(pending.from))")
    }
}

extension SystemStepExecutor {
    /// Downloads an `agentUpdate` step's binary to `path` (checked as a download is), makes it
    /// executable, and asks it its version: the outcome's output is that version.
    public func prepareAgentUpdate(_ step: AssignedStep, of assignment: Assignment, into path: String) -> StepOutcome {
        if let refusal = refusal(step, of: assignment) { return StepOutcome(succeeded: false, reason: refusal) }
        var download = step
        download.kind = .download
        download.destination = path
        let fetched = downloadFile(download, timeoutSeconds: min(max(step.timeoutSeconds, 30), 600))
        guard fetched.succeeded else { return fetched }
        chmod(path, 0o755)
        do {
            let result = try ProcessRunner.run([path, "--version"], environment: [:], hiding: [], timeoutSeconds: 10)
            let words = result.output.split(whereSeparator: { $0 == " " || $0 == "\n" })
            guard result.succeeded, words.count >= 2, words[0] == "flotilla-agent", StepRules.versionProblem(String(words[1])) == nil else {
                Files.remove(path)
                return StepOutcome(succeeded: false, output: result.output,
                                   reason: "the new binary does not answer --version as flotilla-agent does (\(result.failure ?? "exit 0"))")
            }
            return StepOutcome(succeeded: true, output: String(words[1]))
        } catch {
            Files.remove(path)
            return StepOutcome(succeeded: false, reason: "the new binary does not run: \(error.description)")
        }
    }
}
