public import FleetProtocol
public import FoundationEssentials

extension RolloutDecision {
    /// The whole reconcile decision: a snapshot in, the actions and the status report out.
    ///
    /// Level-triggered and pure: it keeps nothing between calls, so the same snapshot gives the
    /// same decision — after a restart too — and nothing is deployed twice to a device that
    /// finished. Per app, in order:
    /// 1. executions the server must end: superseded, not taken by a device that went offline,
    ///    stalled past `executionTimeout` (counted from when the device took it). An offline
    ///    device's execution is cancelled, never failed.
    /// 2. per target, where the rollout stands (from each device's newest execution), then
    ///    abort and roll back past `maxFailures`; else heal drift; else the next wave of online
    ///    devices, `RolloutPolicy.waveSize` at a time, never more than `maxUnavailable` in flight.
    ///
    /// - Throws: `PlanError` when the snapshot lists a device twice.
    public static func decide(_ snapshot: FleetSnapshot) throws(PlanError) -> RolloutDecision {
        let plan = try Planner.plan(snapshot.fleet, inventory: snapshot.inventory)
        let ledgers = AppLedger.build(snapshot, plan: plan)
        var actions: [RolloutAction] = []
        var report = FleetStatusReport(commit: snapshot.commit, head: snapshot.head, headErrors: snapshot.headErrors, apps: [])
        for (number, appPlan) in plan.apps.enumerated() {
            let app = snapshot.fleet.apps[number]
            var ledger = ledgers[number]
            var appDecision = AppDecision(app: app, snapshot: snapshot, plan: plan)
            appDecision.endExecutions(&ledger)
            ledger.indexDevices(snapshot)
            var status = FleetStatusReport.App(name: app.name, targets: [], drifted: [])
            for targetPlan in appPlan.targets {
                status.targets.append(appDecision.decide(targetPlan, ledger: ledger, drifted: &status.drifted))
            }
            actions += appDecision.actions
            report.apps.append(status)
        }
        return RolloutDecision(actions: actions, report: report)
    }
}

/// One app's deployments and executions, indexed for the decision.
struct AppLedger {
    /// The app's executions in creation order, with the state the decision has given them.
    var executions: [FleetSnapshot.Execution] = []
    /// For each execution, its deployment (index into the snapshot's deployments).
    var deploymentOf: [Int] = []
    /// For each execution, its device's inventory index, -1 for a device the registry no longer has.
    var deviceOf: [Int32] = []
    /// Per device: its unfinished execution, or one the server gave up on that the device says it
    /// resumed; and its newest execution that was not cancelled (the one that says where it stands).
    var inFlight = DeviceSlots()
    var newest = DeviceSlots()

    static func build(_ snapshot: FleetSnapshot, plan: FleetPlan) -> [AppLedger] {
        var appNumber: [String: Int] = [:]
        for (number, app) in snapshot.fleet.apps.enumerated() { appNumber[app.name] = number }
        var deploymentIndex: [String: (index: Int, app: Int)] = [:]
        deploymentIndex.reserveCapacity(snapshot.deployments.count)
        for (index, deployment) in snapshot.deployments.enumerated() {
            guard let app = appNumber[deployment.app] else { continue }
            deploymentIndex[deployment.id] = (index, app)
        }
        var deviceIndex: [String: Int32] = [:]
        deviceIndex.reserveCapacity(snapshot.inventory.count)
        for (index, id) in snapshot.inventory.ids.enumerated() { deviceIndex[id] = Int32(index) }
        var ledgers = Array(repeating: AppLedger(), count: snapshot.fleet.apps.count)
        for execution in snapshot.executions {
            guard let (deployment, app) = deploymentIndex[execution.deploymentID] else { continue }
            ledgers[app].executions.append(execution)
            ledgers[app].deploymentOf.append(deployment)
            ledgers[app].deviceOf.append(deviceIndex[execution.deviceID] ?? -1)
        }
        return ledgers
    }

    /// Fills `inFlight` and `newest` from the executions as the endings left them.
    mutating func indexDevices(_ snapshot: FleetSnapshot) {
        inFlight = DeviceSlots(count: snapshot.inventory.count)
        newest = DeviceSlots(count: snapshot.inventory.count)
        for index in executions.indices {
            let device = deviceOf[index]
            guard device >= 0 else { continue }
            let execution = executions[index]
            if !execution.state.isFinal || snapshot.executing[Int(device)] == execution.id {
                if inFlight[device] == nil { inFlight[device] = index }
            }
            guard execution.state != .cancelled else { continue }
            if let known = newest[device],
               snapshot.deployments[deploymentOf[known]].createdAt > snapshot.deployments[deploymentOf[index]].createdAt { continue }
            newest[device] = index
        }
    }
}

/// One execution index per device (an array, not a dictionary: the decision reads it for every
/// device of a fleet of hundreds of thousands).
struct DeviceSlots {
    private var slots: [Int32] = []

    init(count: Int = 0) { slots = Array(repeating: -1, count: count) }

    subscript(device: Int32) -> Int? {
        get { slots[Int(device)] < 0 ? nil : Int(slots[Int(device)]) }
        set { slots[Int(device)] = newValue.map(Int32.init) ?? -1 }
    }
}

/// The decision for one app, target by target; collects the actions.
struct AppDecision {
    let app: CompiledApp
    let snapshot: FleetSnapshot
    let plan: FleetPlan
    let policy: RolloutPolicy
    let timeout: Double
    let wanted: Set<String>
    let held: Bool
    var actions: [RolloutAction] = []

    init(app: CompiledApp, snapshot: FleetSnapshot, plan: FleetPlan) {
        self.app = app
        self.snapshot = snapshot
        self.plan = plan
        policy = app.app.rollout
        let parts = policy.executionTimeout.components
        timeout = Double(parts.seconds) + Double(parts.attoseconds) / 1e18
        wanted = Set(app.targets.map(\.digest))
        held = snapshot.suspended.contains(app.name)
    }

    private func deployment(_ ledger: AppLedger, _ execution: Int) -> FleetSnapshot.Deployment {
        snapshot.deployments[ledger.deploymentOf[execution]]
    }

    private func online(_ device: Int32) -> Bool { device >= 0 && snapshot.inventory.online[Int(device)] }

    /// A controller deployment no target wants any more. A rollback is wanted while the version
    /// it rolls back from is still wanted (it is what undoes that rollout).
    private func isSuperseded(_ deployment: FleetSnapshot.Deployment) -> Bool {
        guard deployment.purpose.isController, !wanted.contains(deployment.digest) else { return false }
        if case .rollback(let aborted) = deployment.purpose, wanted.contains(aborted) { return false }
        return true
    }

    /// Step 1: what the server gives up on. Only the controller's own executions; an operator's
    /// run as the operator asked.
    mutating func endExecutions(_ ledger: inout AppLedger) {
        for index in ledger.executions.indices where !ledger.executions[index].state.isFinal {
            let execution = ledger.executions[index]
            let deployment = deployment(ledger, index)
            guard deployment.purpose.isController else { continue }
            let device = ledger.deviceOf[index]
            // Queued: since it was made; taken: since the device took it.
            let overdue = snapshot.now.timeIntervalSince(execution.takenAt ?? execution.updatedAt) > timeout
            let reason: RolloutAction.EndReason?
            if isSuperseded(deployment) {
                reason = .superseded
            } else if execution.state == .queued {
                reason = !online(device) ? .offlineBeforeTaking : overdue ? .notTaken : nil
            } else if overdue {
                reason = online(device) ? .stalled : .offlineWhileRunning
            } else {
                reason = nil
            }
            guard let reason else { continue }
            actions.append(.end(app: app.name, execution: execution.id, device: execution.deviceID, as: reason.state, reason: reason,
                                unlessUpdatedAfter: execution.updatedAt))
            ledger.executions[index].state = reason.state
        }
    }

    /// Step 2 for one target.
    mutating func decide(_ targetPlan: TargetPlan, ledger: AppLedger, drifted: inout [String]) -> FleetStatusReport.Target {
        let target = targetPlan.target
        let progress = TargetProgress(targetPlan, ledger: ledger, snapshot: snapshot)
        let total = progress.total
        let allowed = policy.maxFailures.allowance(of: total)
        var capacity = max(1, policy.maxUnavailable.devices(of: total)) - progress.inFlight
        let rolloutDeployments = snapshot.deployments.indices.filter {
            let deployment = snapshot.deployments[$0]
            return deployment.app == app.name && deployment.digest == target.digest && deployment.purpose == .rollout
                && (deployment.group == nil || deployment.group == target.group)
        }
        let abortMarked = rolloutDeployments.contains { snapshot.deployments[$0].aborted }

        var status = FleetStatusReport.Target(group: target.group, version: target.version, devices: targetPlan.unchanged.count + targetPlan.changes.count,
                                              converged: targetPlan.unchanged.count, updating: progress.inFlight, failed: progress.failed.count,
                                              offline: progress.offlineWaiting, state: "updating")
        let driftedHere = progress.drifted(settings: snapshot.settings)
        drifted += driftedHere.map(plan.deviceID)

        if abortMarked || progress.failed.count > allowed {
            if !abortMarked {
                actions.append(.abortRollout(app: app.name, group: target.group, digest: target.digest,
                                             deployments: rolloutDeployments.map { snapshot.deployments[$0].id }.sorted(),
                                             failed: progress.failed.count, allowed: allowed))
            }
            status.state = "aborted"
            if policy.onAbort == .rollback, !held { rollBack(progress, ledger: ledger, digest: target.digest, capacity: capacity) }
            return status
        }
        if held {
            if !progress.isDone {
                status.state = "suspended"
                status.reason = "suspended by an operator"
                actions.append(.hold(app: app.name, group: target.group, reason: "suspended by an operator"))
                return status
            }
        } else {
            if app.app.selfHeal, capacity > 0 {
                let due = progress.dueForHeal(driftedHere, app: app.name, ledger: ledger, snapshot: snapshot).prefix(capacity)
                if !due.isEmpty {
                    actions.append(.heal(app: app.name, group: target.group, digest: target.digest, devices: due.map(plan.deviceID)))
                    capacity -= due.count
                }
            }
            if progress.active.isEmpty, !progress.candidates.isEmpty {
                if capacity > 0 {
                    let wave = progress.candidates.prefix(min(policy.waveSize(total: total), capacity))
                    actions.append(.startWave(app: app.name, group: target.group, digest: target.digest, devices: wave.map(plan.deviceID)))
                    return status
                }
                status.reason = "\(progress.inFlight) devices already updating (maxUnavailable)"
            }
        }
        status.state = progress.label(drifted: driftedHere.count)
        return status
    }

    /// Gives the devices the aborted rollout changed their last good version, `capacity` at a
    /// time; offline ones when they are heard again.
    private mutating func rollBack(_ progress: TargetProgress, ledger: AppLedger, digest: String, capacity: Int) {
        let changed = progress.succeeded.filter { online($0) && ledger.inFlight[$0] == nil }
        guard capacity > 0, !changed.isEmpty else { return }
        let wanted = Set(changed)
        // Each changed device's newest success of another digest.
        var lastGood: [Int32: Int] = [:]
        for index in ledger.executions.indices where ledger.executions[index].state == .succeeded {
            let device = ledger.deviceOf[index]
            guard wanted.contains(device), deployment(ledger, index).digest != digest else { continue }
            if let known = lastGood[device], deployment(ledger, known).createdAt > deployment(ledger, index).createdAt { continue }
            lastGood[device] = index
        }
        var groups: [(deployment: String, devices: [String])] = []
        // In id order, whatever order the registry listed the devices in.
        for device in changed.sorted(by: { plan.deviceID($0) < plan.deviceID($1) }).prefix(capacity) {
            guard let execution = lastGood[device] else { continue }
            let restoring = deployment(ledger, execution).id
            if let at = groups.firstIndex(where: { $0.deployment == restoring }) {
                groups[at].devices.append(plan.deviceID(device))
            } else {
                groups.append((restoring, [plan.deviceID(device)]))
            }
        }
        for group in groups {
            actions.append(.rollBack(app: app.name, abortedDigest: digest, restoring: group.deployment, devices: group.devices))
        }
    }
}
