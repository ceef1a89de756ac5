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
        /// Seconds the new agent has to report in, from its first start (the watchdog notes when).
        var window: Int

        var text: String {
            "execution=\(execution)\nbinary=\(binary)\nprevious=\(previous)\nfrom=\(from)\nto=\(to)\nwindow=\(window)\n"
        }

        /// A record with each field once, each as written (a field twice is not ours).
        static func parse(_ text: String) -> PendingUpdate? {
            var fields: [String: String] = [:]
            for line in text.split(byte: 0x0A) {
                guard let equals = line.firstIndex(of: "=") else { continue }
                let key = String(line[..<equals])
                guard fields[key] == nil else { return nil }
                fields[key] = String(line[line.index(after: equals)...])
            }
            guard let execution = fields["execution"], let binary = fields["binary"], let previous = fields["previous"],
                  let from = fields["from"], let to = fields["to"], let window = fields["window"].flatMap({ Int($0) }) else { return nil }
            return PendingUpdate(execution: execution, binary: binary, previous: previous, from: from, to: to, window: window)
        }

        /// What may go into the record: the watchdog reads it with sed, as root.
        static func isPlain(_ value: String) -> Bool {
            !value.isEmpty && value.utf8.count <= 1_024
                && value.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7F && $0 != "=" && $0 != "\\" && $0 != "`" && $0 != "$" }
        }
    }

    /// The shortest time a new agent is given to report in: a start, a TLS connection and a
    /// heartbeat, after systemd's `RestartSec`.
    static let minimumWindow = 30

    /// The running binary's real path.
    static func runningBinary() -> String? {
        var buffer = [CChar](repeating: 0, count: 4_096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    var watchdog: String? {
        if let configured = configuration.selfUpdateWatchdog { return Files.exists(configured) ? configured : nil }
        return AgentConfiguration.watchdogPaths.first(where: Files.exists)
    }

    /// Runs an `agentUpdate` step up to the restart; returns the outcome when it ends before (a
    /// failure, or the same version already running). On success it does not return.
    func selfUpdate(_ step: AssignedStep, _ progress: ExecutionProgress) -> StepOutcome {
        guard let executor = executor as? SystemStepExecutor else {
            return StepOutcome(succeeded: false, reason: "this agent cannot replace itself")
        }
        guard watchdog != nil else {
            return StepOutcome(succeeded: false, reason: "refused: flotilla-agent-watchdog is not installed on this device (it puts the agent back "
                               + "when a new one does not take); install this release's package or install-agent.sh first")
        }
        guard let binary = Self.runningBinary(), PendingUpdate.isPlain(binary) else {
            return StepOutcome(succeeded: false, reason: "cannot tell where the running agent is (/proc/self/exe)")
        }
        guard !binary.hasSuffix(" (deleted)"), Files.exists(binary) else {
            return StepOutcome(succeeded: false, reason: "the running agent's binary was replaced on disk (a package upgrade?); restart the agent first")
        }
        let execution = progress.assignment.executionID
        guard PendingUpdate.isPlain(execution) else { return StepOutcome(succeeded: false, reason: "refused: an execution id that is not plain") }
        let directory = Files.parent(of: binary)
        let new = directory + "/.flotilla-agent.new", previous = directory + "/.flotilla-agent.previous"
        let prepared = executor.prepareAgentUpdate(step, of: progress.assignment, into: new)
        guard prepared.succeeded, let version = prepared.output else { return prepared }
        guard version == progress.assignment.version, version.utf8.count <= 64 else {
            Files.remove(new)
            return StepOutcome(succeeded: false, reason: "the new binary says it is flotilla-agent \(version), but the deployment is of \(progress.assignment.version)")
        }
        if version == Self.version {
            Files.remove(new)
            return StepOutcome(succeeded: true, output: "flotilla-agent \(version) is running already")
        }
        do {
            try Files.copy(binary, to: previous, mode: 0o755)
            let pending = PendingUpdate(execution: execution, binary: binary, previous: previous, from: Self.version, to: version,
                                        window: max(step.timeoutSeconds, Self.minimumWindow))
            clearSelfUpdateRecords()
            try Files.writeAtomically(selfUpdatePath, Array(pending.text.utf8), mode: 0o600)
        } catch {
            Files.remove(new)
            Files.remove(previous)
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

    /// `self-update.env` once the watchdog took it to put the previous agent back, or once the new
    /// agent took it, heard.
    var selfUpdateRestoringPath: String { selfUpdatePath + ".restoring" }
    var selfUpdateConfirmedPath: String { selfUpdatePath + ".confirmed" }

    /// Forgets the records of an update; called once its outcome is in the journal.
    func clearSelfUpdateRecords() {
        for path in [selfUpdatePath, selfUpdateRestoringPath, selfUpdateConfirmedPath, selfUpdateStartsPath, selfUpdateRolledBackPath,
                     root + "/self-update.why"] {
            Files.remove(path)
        }
    }

    /// On start, with the journal at an `agentUpdate` step: the new agent waits until its
    /// heartbeat is acknowledged; the old one, put back by the watchdog, says why. Returns the
    /// step's outcome, or nil when no swap was under way. The records stay until the caller has
    /// journaled the outcome (`clearSelfUpdateRecords`), so a power cut in between decides the
    /// same again.
    ///
    /// The new agent and the watchdog each take the record by renaming it (`self-update.env` →
    /// `.confirmed` or `.restoring`): one rename wins, so the watchdog never puts the old binary
    /// back under an agent that was just heard, nor is an agent it replaced reported a success.
    func resumeSelfUpdate(_ progress: ExecutionProgress) -> StepOutcome? {
        guard let (step, _, _) = progress.current, step.kind == .agentUpdate else { return nil }
        func read(_ path: String) -> PendingUpdate? {
            ((try? Files.readText(path)) ?? nil).flatMap(PendingUpdate.parse).flatMap { $0.execution == progress.assignment.executionID ? $0 : nil }
        }
        if let confirmed = read(selfUpdateConfirmedPath), Self.version == confirmed.to {
            Files.remove(confirmed.previous)
            return StepOutcome(succeeded: true, output: "flotilla-agent \(confirmed.to) reported in (was \(confirmed.from))")
        }
        if let restoring = read(selfUpdateRestoringPath) {
            let finished = ((try? Files.readText(selfUpdateRolledBackPath)) ?? nil)?.trimmed
            // The watchdog finished but could not put the previous agent back (its copy was gone):
            // this one stays, and says so, rather than restarting for ever to wait for the other.
            if let why = finished, Self.version == restoring.to, Self.version != restoring.from {
                return StepOutcome(succeeded: false, reason: "flotilla-agent \(restoring.to) was to be rolled back to \(restoring.from), "
                                       + "which could not be put back: \(why); \(restoring.to) keeps running")
            }
            guard let why = finished, Self.version == restoring.from else {
                // The watchdog has not finished putting the previous agent back: it does at the next start.
                Log.warning("the watchdog is putting flotilla-agent \(restoring.from) back; restarting")
                exit(Self.restartStatus)
            }
            Files.remove(restoring.previous)
            return StepOutcome(succeeded: false, reason: "flotilla-agent \(restoring.to) was rolled back to \(restoring.from): \(why)")
        }
        guard let pending = read(selfUpdatePath) else {
            return Files.exists(selfUpdatePath) ? StepOutcome(succeeded: false, reason: "the record of the agent's update cannot be read") : nil
        }
        guard Self.version == pending.to else {
            Files.remove(pending.previous)
            return StepOutcome(succeeded: false, reason: "the agent restarted as \(Self.version), not \(pending.to): the new binary was not put in place")
        }
        Log.info("running as flotilla-agent \(pending.to); waiting for the server to hear it")
        while !heardBack.load(ordering: .relaxed) {
            // Deleted meanwhile: stop as a deleted device does (systemd does not restart status 3).
            if stopped.load(ordering: .relaxed) { exit(3) }
            heartbeatNow.store(true, ordering: .relaxed)
            Clock.sleep(seconds: 0.2)
        }
        guard rename(selfUpdatePath, selfUpdateConfirmedPath) == 0 else {
            // The watchdog took the record first: the previous binary is going back on disk. Stop, so
            // the old agent starts and reports why.
            Log.warning("the watchdog put flotilla-agent \(pending.from) back before this agent was heard; restarting")
            exit(Self.restartStatus)
        }
        Files.syncDirectory(of: selfUpdateConfirmedPath)
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
