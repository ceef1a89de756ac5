public import FoundationEssentials

/// Where one target's rollout stands, from each of its devices' executions: the devices that
/// finished it, failed it, are running it, and the ones still to go.
struct TargetProgress {
    /// Finished the rollout (their newest execution of the app is a success of this digest).
    var succeeded: [Int32] = []
    /// Failed it, or stalled while online. Never a device that merely went offline.
    var failed: [Int32] = []
    /// Running this digest now.
    var active: [Int32] = []
    /// Running this digest to heal drift.
    var healing: Set<Int32> = []
    /// Devices of the target with any execution of the app in flight (maxUnavailable counts these).
    var inFlight = 0
    /// Online devices that need the version and have nothing in flight, in the plan's order:
    /// the next waves take them from the front.
    var candidates: [Int32] = []
    /// Offline devices that need the version: they wait, and become candidates when heard.
    var offlineWaiting = 0
    /// Online devices that need the version and refuse updates now (an update lock): skipped,
    /// never failed; candidates again when the lock is gone.
    var lockedWaiting = 0
    /// Online, unlocked devices that need the version and are outside their maintenance window
    /// now: candidates again when it opens.
    var outsideWindow = 0
    /// Online devices that finished the update and whose health is still being observed: the
    /// next wave waits for them. With when the last observation ends.
    var observing: [Int32] = []
    var observedUntil: Date?
    var firstObservationEnds: Date?
    /// Devices whose heartbeats since the update failed a health check now, with the
    /// execution that is to be marked failed and why. Also in `failed`.
    var unhealthy: [(device: Int32, execution: Int, message: String)] = []
    /// Devices that passed their health checks now, with the execution to record it on.
    var healthy: [(device: Int32, execution: Int)] = []
    /// Devices whose health failed before (their update is marked failed), with why, while
    /// their heartbeats of then are kept.
    var unhealthyBefore: [(device: Int32, message: String)] = []
    /// Devices that report the version but are not converged: failed, or still observed.
    var unconvergedUnchanged = 0
    /// Devices that need the version and finished (succeeded) — waiting for a heartbeat to
    /// confirm it, or drifted since — with when they finished.
    var finishedAt: [Int32: Date] = [:]
    /// Devices in the rollout: the base of its percentages. It stays the same while it runs:
    /// a device that converged still counts.
    var total = 0
    /// Devices still changing that are not candidates, offline or finished (busy with another
    /// version of the app).
    var busyElsewhere = 0
    private let changes: [Int32]
    private let lastHeard: [Date?]

    init(_ targetPlan: TargetPlan, ledger: AppLedger, snapshot: FleetSnapshot, facts: DeploymentFacts, windows: WindowState) {
        let digest = facts.digestNumber(targetPlan.target.digest)
        let health = targetPlan.target.health
        changes = targetPlan.changes.map(\.device)
        lastHeard = snapshot.lastHeard
        var counted = 0
        func classify(_ device: Int32, changing: Bool) -> Bool {
            if let index = ledger.inFlight[device] {
                inFlight += 1
                let deployment = ledger.deploymentOf[index]
                guard facts.digest[deployment] == digest, facts.isRolloutOrHeal(deployment) else {
                    if changing { busyElsewhere += 1 }
                    return changing
                }
                active.append(device)
                if facts.kind[deployment] == .heal { healing.insert(device) }
                return true
            }
            guard let index = ledger.newest[device] else { return false }
            let deployment = ledger.deploymentOf[index]
            guard facts.digest[deployment] == digest, facts.isRolloutOrHeal(deployment) else { return false }
            let installed = (app: snapshot.deployments[deployment].app, version: snapshot.deployments[deployment].version)
            switch ledger.state[index] {
            case .succeeded:
                if let health, !ledger.execution(index, snapshot).healthPassed {
                    let execution = ledger.execution(index, snapshot)
                    // Past the judging horizon (a success from before the checks were declared,
                    // or a device not heard for a day since): taken as passed, and recorded.
                    let verdict = snapshot.now.timeIntervalSince(execution.updatedAt) > health.observeSeconds + HealthPolicy.judgingHorizon
                        ? .passed
                        : health.verdict(samples: snapshot.samples[execution.deviceID] ?? [], takenAt: execution.takenAt,
                                         succeededAt: execution.updatedAt, installed: installed)
                    switch verdict {
                    case .passed:
                        healthy.append((device, index))
                    case .observing(let until):
                        if !changing { unconvergedUnchanged += 1 }
                        // Offline too: a device that went quiet after its update holds the next
                        // wave (never a failure) until it is heard or the horizon passes.
                        observing.append(device)
                        if observedUntil.map({ until > $0 }) ?? true { observedUntil = until }
                        if firstObservationEnds.map({ until < $0 }) ?? true { firstObservationEnds = until }
                        return true
                    case .failed(let message):
                        if !changing { unconvergedUnchanged += 1 }
                        failed.append(device)
                        unhealthy.append((device, index, message))
                        return true
                    }
                }
                succeeded.append(device)
                if changing { finishedAt[device] = ledger.execution(index, snapshot).updatedAt }
                return true
            case .failed, .timedOut:
                if !changing { unconvergedUnchanged += 1 }
                failed.append(device)
                // (A device that reports the version failed after its update: its health.)
                if let health, ledger.state[index] == .failed, !changing {
                    let execution = ledger.execution(index, snapshot)
                    if let samples = snapshot.samples[execution.deviceID],
                       case .failed(let message) = health.verdict(samples: samples, takenAt: execution.takenAt, succeededAt: execution.updatedAt, installed: installed) {
                        unhealthyBefore.append((device, message))
                    }
                }
                return true
            default:
                return false
            }
        }
        for change in targetPlan.changes {
            if classify(change.device, changing: true) { continue }
            if !snapshot.inventory.online[Int(change.device)] {
                offlineWaiting += 1
            } else if snapshot.locked[Int(change.device)] != nil {
                lockedWaiting += 1
            } else if windows.isClosed(change.device) {
                outsideWindow += 1
            } else {
                candidates.append(change.device)
            }
        }
        for device in targetPlan.unchanged where classify(device, changing: false) { counted += 1 }
        total = changes.count + counted
    }

    /// Changing devices that finished this rollout and were heard `driftGrace` after it still
    /// reporting another version, with nothing in flight; and those being healed.
    func drifted(settings: RolloutSettings) -> [Int32] {
        changes.filter { device in
            if healing.contains(device) { return true }
            guard let finished = finishedAt[device], let heard = lastHeard[Int(device)] else { return false }
            return heard.timeIntervalSince(finished) >= settings.driftGrace
        }
    }

    /// The drifted devices not healed within the self-heal interval.
    func dueForHeal(_ drifted: [Int32], ledger: AppLedger, snapshot: FleetSnapshot, facts: DeploymentFacts) -> [Int32] {
        let candidates = Set(drifted.filter { !healing.contains($0) && ledger.inFlight[$0] == nil && snapshot.locked[Int($0)] == nil })
        guard !candidates.isEmpty else { return [] }
        var recent = Set<Int32>()
        for index in ledger.state.indices where candidates.contains(ledger.deviceOf[index]) {
            let deployment = ledger.deploymentOf[index]
            if facts.kind[deployment] == .heal,
               snapshot.now.timeIntervalSinceReferenceDate - facts.created[deployment] < snapshot.settings.selfHealInterval {
                recent.insert(ledger.deviceOf[index])
            }
        }
        return drifted.filter { candidates.contains($0) && !recent.contains($0) }
    }

    /// Nothing left to do but wait for offline (or locked) devices. Devices waiting for their
    /// window are work left: the window opens by itself.
    var isDone: Bool { active.isEmpty && candidates.isEmpty && busyElsewhere == 0 && finishedAt.isEmpty && outsideWindow == 0 && observing.isEmpty }

    /// The target's word when no wave, abort or hold decided it.
    func label(drifted: Int) -> String {
        if !active.isEmpty || !candidates.isEmpty || busyElsewhere > 0 || !observing.isEmpty { return "updating" }
        if !failed.isEmpty { return "failed" }
        // Finished devices whose heartbeat has not confirmed the version yet, or drifted since.
        let unconfirmed = finishedAt.count
        if unconfirmed == 0 { return "converged" }
        return unconfirmed == drifted ? "drifted" : "updating"
    }
}
