import FleetProtocol
import Glibc
import Synchronization

/// The heartbeat thread: system metrics on the interval the server names, queued in the outbox
/// while the server cannot be reached.
extension Agent {
    func heartbeatLoop(_ identity: Identity) {
        let api = makeAPI(token: identity.deviceToken)
        let metrics = SystemMetrics()
        var backoff = Backoff()
        // The next beat is reckoned from the last one by the interval as it is now: the first
        // acknowledgement after a start sets the server's interval, which counts from that beat
        // (not from the next, a whole configured interval later).
        var lastBeat: Double?
        var nextBeat: Double { lastBeat.map { $0 + Double(interval.load(ordering: .relaxed)) } ?? 0 }
        var nextAttempt = 0.0
        while !stopped.load(ordering: .relaxed) {
            let now = Clock.monotonic()
            if now >= nextBeat || heartbeatNow.exchange(false, ordering: .relaxed) {
                lastBeat = now
                let body = Array(heartbeat(metrics).wireJSON().utf8)
                if outbox.isEmpty, now >= nextAttempt {
                    do throws(AgentAPI.Failure) {
                        heard(try api.heartbeat(body))
                        backoff.reset()
                    } catch {
                        if handle(error) { return }
                        queue(body)
                        nextAttempt = now + backoff.next(retryAfter: error.retryAfter)
                    }
                } else {
                    queue(body)
                }
            }
            if !outbox.isEmpty, Clock.monotonic() >= nextAttempt {
                let waiting = outbox.entries.count
                do throws(AgentAPI.Failure) {
                    try flushOutbox(api)
                    backoff.reset()
                    Log.info("the server is reachable again; queued reports delivered")
                } catch {
                    if handle(error) { return }
                    // Some went through before a refusal that says when to ask again (a server
                    // holding the device to its allowance of requests): wait what it says, not
                    // longer each time — a backlog would otherwise drain ever more slowly. Other
                    // failures (an overloaded server, a timeout) still back off further.
                    if outbox.entries.count < waiting, error.retryAfter != nil { backoff.reset() }
                    let delay = backoff.next(retryAfter: error.retryAfter)
                    nextAttempt = Clock.monotonic() + delay
                    Log.warning("server unreachable (\(error)); \(outbox.entries.count) reports queued; next try in \(Int(delay)) s")
                }
            }
            let wake = outbox.isEmpty ? nextBeat : min(nextBeat, max(nextAttempt, Clock.monotonic() + 0.05))
            // Short naps, so a finished execution's heartbeat goes out at once.
            Clock.sleep(seconds: min(0.25, max(0.01, wake - Clock.monotonic())))
        }
    }

    /// What a heartbeat's acknowledgement tells: the interval the server wants, whether remote
    /// access is on, and that the server hears this agent (a new agent waits for that).
    func heard(_ acknowledgement: HeartbeatAcknowledgement) {
        interval.store(max(1, acknowledgement.heartbeatIntervalSeconds), ordering: .relaxed)
        remoteAllowed.store(acknowledgement.remote ?? false, ordering: .relaxed)
        heardBack.store(true, ordering: .relaxed)
    }

    /// Sends what is queued. A heartbeat queued behind a report (as at every start that resumes
    /// an execution) is acknowledged like one sent at once: otherwise the interval the server
    /// wants, and its hearing a new agent, would wait for the next heartbeat sent directly —
    /// 25 s on the default interval.
    func flushOutbox(_ api: AgentAPI) throws(AgentAPI.Failure) {
        try outbox.flush(api) { acknowledgement in self.heard(acknowledgement) }
    }

    func queue(_ body: [UInt8]) {
        do { try outbox.enqueue(heartbeat: body) } catch { Log.error("cannot queue a heartbeat: \(error)") }
    }

    /// Stops the agent on a deleted device; says whether the caller should stop.
    func handle(_ failure: AgentAPI.Failure) -> Bool {
        if case .deleted = failure {
            stopped.store(true, ordering: .relaxed)
            Log.error("this device was deleted by an operator; stopping")
            return true
        }
        return false
    }

    func heartbeat(_ metrics: SystemMetrics) -> Heartbeat {
        let custom = configuration.custom.map(CustomData.read) ?? [:]
        let processes = metrics.processes(configuration.processes)
        return Heartbeat(reportID: "h-" + Random.hex(bytes: 12), sentAtMilliseconds: Clock.epochMilliseconds(),
                         cpuPercent: metrics.cpuPercent(), memory: metrics.memory(), disks: metrics.disks(configuration.mounts),
                         uptimeSeconds: metrics.uptimeSeconds(), load: metrics.load(), processes: processes.isEmpty ? nil : processes,
                         custom: custom.isEmpty ? nil : custom, apps: reportedApps(), agentVersion: Self.version,
                         executing: executing.withLock { $0 }, lock: UpdateLockFile.read(configuration.lockPath))
    }

    /// The installed apps, each with what its probe last said.
    func reportedApps() -> [String: InstalledApp] {
        var reported = apps.withLock { $0 }
        for (name, result) in probeResults.withLock({ $0 }) where reported[name] != nil { reported[name]?.probe = result }
        return reported
    }
}
