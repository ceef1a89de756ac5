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
        var nextBeat = Clock.monotonic()
        var nextAttempt = 0.0
        while !stopped.load(ordering: .relaxed) {
            let now = Clock.monotonic()
            if now >= nextBeat || heartbeatNow.exchange(false, ordering: .relaxed) {
                nextBeat = now + Double(interval.load(ordering: .relaxed))
                let body = Array(heartbeat(metrics).wireJSON().utf8)
                if outbox.isEmpty, now >= nextAttempt {
                    do throws(AgentAPI.Failure) {
                        let ack = try api.heartbeat(body)
                        interval.store(max(1, ack.heartbeatIntervalSeconds), ordering: .relaxed)
                        remoteAllowed.store(ack.remote ?? false, ordering: .relaxed)
                        heardBack.store(true, ordering: .relaxed)
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
                do throws(AgentAPI.Failure) {
                    try outbox.flush(api)
                    backoff.reset()
                    Log.info("the server is reachable again; queued reports delivered")
                } catch {
                    if handle(error) { return }
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
