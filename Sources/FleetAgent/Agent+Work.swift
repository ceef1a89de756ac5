import FleetProtocol
import Glibc
import Synchronization

/// The work thread: long-polls for assignments and runs them step by step, journaling before
/// and after each step so a power cut never runs a finished step twice.
extension Agent {
    func workLoop(_ identity: Identity) {
        let api = makeAPI(token: identity.deviceToken)
        if let progress = loadJournal() {
            Log.info("resuming execution \(progress.assignment.executionID) after a restart")
            var progress = progress
            if let outcome = resumeSelfUpdate(progress) {
                // The update of the agent itself, carried across its restart.
                let result = progress.complete(succeeded: outcome.succeeded, attempts: 1, exitCode: nil, output: outcome.output,
                                               reason: outcome.reason)
                save(progress)
                clearSelfUpdateRecords()
                if !outcome.succeeded { Log.warning("the agent's update failed: \(outcome.reason ?? "")") }
                enqueue(progress.report(for: result), progress)
            } else if let interrupted = progress.recoverInterruptedStep() {
                Log.warning("step '\(interrupted.name)' was interrupted; counted as failed")
            }
            save(progress)
            // Reports already made may not have reached the server; their ids make a resend harmless.
            for result in progress.results { enqueue(progress.report(for: result), progress) }
            run(&progress, api)
        }
        var entityTag: String?
        var backoff = Backoff()
        var lockedSaid = false
        while !stopped.load(ordering: .relaxed) {
            // Locked: no new work is taken (the server skips the device too); what ran, finished.
            if let lock = UpdateLockFile.read(configuration.lockPath) {
                if !lockedSaid { Log.info("updates locked (\(lock.reason)); taking no new work until unlocked") }
                lockedSaid = true
                try? flushOutbox(api)
                Clock.sleep(seconds: 1)
                continue
            }
            if lockedSaid { Log.info("updates unlocked") }
            lockedSaid = false
            do throws(AgentAPI.Failure) {
                try? flushOutbox(api)
                switch try api.assignments(entityTag: entityTag, waitSeconds: 30) {
                case .unchanged(let askAgainIn):
                    if let pause = Backoff.deferral(askAgainIn) { pauseUnlessStopped(seconds: pause) }
                case .changed(let list, let tag):
                    entityTag = tag
                    let finished = Set(finishedExecutions())
                    // An id no report could be kept under is not run: its end could never be recorded.
                    for refused in list.assignments where !Outbox.canKeep(execution: refused.executionID) {
                        Log.error("refused an assignment whose execution id cannot name a file: \(refused.executionID.prefix(80).debugDescription)")
                    }
                    if let assignment = list.assignments.first(where: { !finished.contains($0.executionID) && Outbox.canKeep(execution: $0.executionID) }) {
                        var progress = ExecutionProgress(assignment: assignment)
                        Log.info("execution \(assignment.executionID): \(assignment.app) \(assignment.version), \(assignment.steps.count) steps")
                        save(progress)
                        run(&progress, api)
                        entityTag = nil
                    }
                }
                backoff.reset()
            } catch {
                if handle(error) { return }
                let delay = backoff.next(retryAfter: error.retryAfter)
                Log.warning("cannot fetch assignments (\(error)); trying again in \(Int(delay)) s")
                Clock.sleep(seconds: delay)
            }
        }
    }

    /// Sleeps `seconds` in slices of a second, ending early once the agent stops.
    func pauseUnlessStopped(seconds: Double) {
        let end = Clock.monotonic() + seconds
        while !stopped.load(ordering: .relaxed), case let left = end - Clock.monotonic(), left > 0 {
            Clock.sleep(seconds: min(left, 1))
        }
    }

    /// Runs the execution's remaining steps, journaling before and after each one.
    func run(_ progress: inout ExecutionProgress, _ api: AgentAPI) {
        executing.withLock { $0 = progress.assignment.executionID }
        executionBoundary(app: progress.assignment.app)
        defer {
            executing.withLock { $0 = nil }
            executionBoundary(app: progress.assignment.app)
        }
        while let (step, index, rollback) = progress.current {
            let point = "\(rollback ? "rollback" : "step"):\(index)"
            progress.begin()
            save(progress)
            injectFault("begun:" + point)
            Log.info("\(rollback ? "rollback " : "")step \(index + 1) '\(step.name)' (\(step.kind.rawValue))")
            let outcome = step.kind == .agentUpdate ? selfUpdate(step, progress) : executor.execute(step, of: progress.assignment)
            injectFault("ran:" + point)
            let result = progress.complete(succeeded: outcome.succeeded, attempts: outcome.attempts, exitCode: outcome.exitCode,
                                           output: outcome.output, reason: outcome.reason)
            save(progress)
            injectFault("completed:" + point)
            if !outcome.succeeded { Log.warning("step '\(step.name)' failed: \(outcome.reason ?? "no reason given")") }
            enqueue(progress.report(for: result), progress)
            try? flushOutbox(api)
        }
        finish(progress, api)
    }

    /// Records the outcome: the installed version changes only when every step succeeded.
    func finish(_ progress: ExecutionProgress, _ api: AgentAPI) {
        guard let report = progress.finalReport else { return }
        let assignment = progress.assignment
        if report.state == .succeeded {
            let installed = apps.withLock { apps in
                apps[assignment.app] = InstalledApp(version: assignment.version, digest: assignment.digest.isEmpty ? nil : assignment.digest)
                return apps
            }
            do { try Files.writeAtomically(appsPath, Array(installed.wireJSON().utf8)) } catch { Log.error("cannot record installed apps: \(error)") }
            self.installed(app: assignment.app, probe: assignment.probe)
        }
        // Without the record of its end and its final report, the next poll would start this
        // execution again from its first step: stop instead, journal kept, and finish it from the
        // journal when started again (as a journal that cannot be written stops the agent).
        do {
            try recordFinished(assignment.executionID)
            try outbox.enqueue(report: report, execution: assignment.executionID)
        } catch {
            Log.error("cannot record the end of execution \(assignment.executionID): \(error); stopping, to finish it from the journal")
            exit(1)
        }
        Files.remove(journalPath)
        Log.info("execution \(assignment.executionID) \(report.state.rawValue)\(report.message.map { ": \($0)" } ?? "")")
        heartbeatNow.store(true, ordering: .relaxed)
        try? flushOutbox(api)
    }

    func enqueue(_ report: ExecutionReport, _ progress: ExecutionProgress) {
        do { try outbox.enqueue(report: report, execution: progress.assignment.executionID) } catch {
            Log.error("cannot queue a report: \(error)")
        }
    }

    func save(_ progress: ExecutionProgress) {
        do { try Files.writeAtomically(journalPath, Array(progress.wireJSON().utf8)) } catch {
            // Without a journal a crash could run a step twice: stop rather than go on blind.
            Log.error("cannot write the journal: \(error); stopping")
            exit(1)
        }
    }

    func loadJournal() -> ExecutionProgress? {
        // Read whole (a long flow's journal holds every step's output tail), and a journal that
        // is there but cannot be read (an I/O error, no descriptors left) stops the agent: taken
        // for no journal, its execution would start again from its first step.
        let bytes: [UInt8]
        do {
            guard let read = try Files.read(journalPath, limit: 256 << 20) else { return nil }
            bytes = read
        } catch {
            Log.error("the journal \(journalPath) cannot be read (\(error)); stopping rather than start its execution again")
            exit(1)
        }
        do {
            return try ExecutionProgress.decode(wire: bytes)
        } catch {
            Log.error("the journal \(journalPath) cannot be read (\(error.message)); set aside as journal.json.unreadable")
            abandon(unreadable: bytes)
            rename(journalPath, journalPath + ".unreadable")
            return nil
        }
    }

    /// The execution of a journal that cannot be decoded ends failed, rather than starting again
    /// from its first step when the server assigns it again: which of its steps ran is unknown,
    /// and running one twice is what the journal is for. Its end is recorded before the journal
    /// is set aside; when that cannot be written the agent stops, journal kept.
    func abandon(unreadable bytes: [UInt8]) {
        guard let execution = ExecutionProgress.executionID(inUnreadable: bytes), Outbox.canKeep(execution: execution) else {
            Log.error("the unreadable journal names no execution; whatever it was running is not resumed")
            return
        }
        let report = ExecutionReport(reportID: "\(execution):final", state: .failed,
                                     message: "the agent's journal of this execution could not be read after a restart; "
                                         + "which steps ran is unknown, so none was run again")
        do {
            try recordFinished(execution)
            try outbox.enqueue(report: report, execution: execution)
        } catch {
            Log.error("cannot record the end of execution \(execution): \(error); stopping")
            exit(1)
        }
        Log.warning("execution \(execution) reported failed: its journal could not be read")
    }

    /// Records that `execution` ended, so the next poll does not start it again. The record
    /// keeps the last 64.
    func recordFinished(_ execution: String) throws(AgentError) {
        var finished = finishedExecutions()
        if !finished.contains(execution) { finished.append(execution) }
        var writer = WireWriter()
        writer.beginArray()
        for id in finished.suffix(64) { writer.string(id) }
        writer.endArray()
        try Files.writeAtomically(finishedPath, writer.bytes)
    }

    func finishedExecutions() -> [String] {
        guard let bytes = (try? Files.read(finishedPath)) ?? nil, case .array(let items)? = WireJSON.parse(bytes) else { return [] }
        return items.compactMap { if case .string(let id) = $0 { id } else { nil } }
    }

    /// Test hook: `FLOTILLA_AGENT_FAULT=begun:step:1` kills the agent with SIGKILL at that point.
    func injectFault(_ point: String) {
        guard let fault, fault == point else { return }
        Log.warning("fault injection: killing the agent at \(point)")
        kill(getpid(), SIGKILL)
    }
}
