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
        let ledgers = AppLedger.build(snapshot)
        let facts = DeploymentFacts(snapshot.deployments)
        var actions: [RolloutAction] = []
        var report = FleetStatusReport(commit: snapshot.commit, head: snapshot.head, headErrors: snapshot.headErrors, apps: [])
        var recheckAt: Date?
        for (number, appPlan) in plan.apps.enumerated() {
            let app = snapshot.fleet.apps[number]
            var ledger = ledgers[number]
            var appDecision = AppDecision(app: app, snapshot: snapshot, plan: plan, appPlan: appPlan, facts: facts)
            appDecision.endExecutions(&ledger)
            ledger.indexDevices(snapshot, facts: facts)
            var status = FleetStatusReport.App(name: app.name, targets: [], drifted: [])
            for targetPlan in appPlan.targets {
                status.targets.append(appDecision.decide(targetPlan, ledger: ledger, drifted: &status.drifted, drift: &status.drift))
            }
            Self.probeFailures(of: app.name, snapshot: snapshot, into: &status)
            actions += appDecision.actions
            report.apps.append(status)
            if let at = appDecision.recheckAt, recheckAt.map({ at < $0 }) ?? true { recheckAt = at }
        }
        for (index, reason) in snapshot.locked.enumerated() {
            if let reason { report.locked.append(.init(device: snapshot.inventory.ids[index], reason: reason)) }
        }
        // In id order, whatever order the registry listed the devices in.
        report.locked.sort { $0.device < $1.device }
        return RolloutDecision(actions: actions, report: report, recheckAt: recheckAt)
    }

    /// The devices whose probe of `app` could not tell what runs, in id order.
    static func probeFailures(of app: String, snapshot: FleetSnapshot, into status: inout FleetStatusReport.App) {
        guard !snapshot.probes.isEmpty else { return }
        var failures: [FleetStatusReport.DeviceReason] = []
        for (index, probes) in snapshot.probes {
            if let error = probes[app]?.error { failures.append(.init(device: snapshot.inventory.ids[index], reason: error)) }
        }
        status.probeFailed = failures.count
        status.probeFailures = Array(failures.sorted { $0.device < $1.device }.prefix(FleetStatusReport.App.probeFailureLimit))
    }
}

/// What the decision compares of every deployment, as plain columns: read once per execution of a
/// fleet of hundreds of thousands, they must not cost a string comparison each.
struct DeploymentFacts {
    enum Kind: UInt8 { case manual, rollout, heal, rollback }

    var created: [Double] = []
    var kind: [Kind] = []
    /// The digest as a number (`digestNumber`).
    var digest: [Int32] = []
    private var numbers: [String: Int32] = [:]

    init(_ deployments: [FleetSnapshot.Deployment]) {
        created.reserveCapacity(deployments.count)
        for deployment in deployments {
            created.append(deployment.createdAt.timeIntervalSinceReferenceDate)
            let kind: Kind = switch deployment.purpose {
            case .manual: .manual
            case .rollout: .rollout
            case .heal: .heal
            case .rollback: .rollback
            }
            self.kind.append(kind)
            digest.append(intern(deployment.digest))
        }
    }

    /// The number of a digest; -1 for one no deployment has.
    func digestNumber(_ digest: String) -> Int32 { numbers[digest] ?? -1 }

    private mutating func intern(_ digest: String) -> Int32 {
        if let known = numbers[digest] { return known }
        let number = Int32(numbers.count)
        numbers[digest] = number
        return number
    }

    /// A rollout or a heal: the executions that say where a target's rollout stands.
    func isRolloutOrHeal(_ index: Int) -> Bool { kind[index] == .rollout || kind[index] == .heal }
}

/// One app's deployments and executions, indexed for the decision.
struct AppLedger {
    /// The app's executions in creation order (indices into the snapshot's), and the state the
    /// decision has given each.
    var source: [Int32] = []
    var state: [ExecutionState] = []
    /// For each execution, its deployment (index into the snapshot's deployments).
    var deploymentOf: [Int] = []
    /// For each execution, its device's inventory index, -1 for a device the registry no longer has.
    var deviceOf: [Int32] = []
    /// Per device: its unfinished execution, or one the server gave up on that the device says it
    /// resumed; and its newest execution that was not cancelled (the one that says where it stands).
    var inFlight = DeviceSlots()
    var newest = DeviceSlots()

    static func build(_ snapshot: FleetSnapshot) -> [AppLedger] {
        var appNumber: [String: Int] = [:]
        for (number, app) in snapshot.fleet.apps.enumerated() { appNumber[app.name] = number }
        let deploymentIDs = snapshot.deployments.map(\.id)
        let deploymentTable = IDTable(deploymentIDs)
        let deploymentApp = snapshot.deployments.map { appNumber[$0.app] ?? -1 }
        let deviceTable = IDTable(snapshot.inventory.ids)
        var ledgers = Array(repeating: AppLedger(), count: snapshot.fleet.apps.count)
        let ids = snapshot.inventory.ids
        snapshot.executions.withUnsafeBufferPointer { executions in
            // Executions come in creation order, a deployment's together: its id is looked up once per run.
            var last: (id: String?, position: Int?) = (nil, nil)
            for index in executions.indices {
                if executions[index].deploymentID != last.id {
                    last = (executions[index].deploymentID, deploymentTable.position(of: executions[index].deploymentID, in: deploymentIDs))
                }
                guard let deployment = last.position else { continue }
                let app = deploymentApp[deployment]
                guard app >= 0 else { continue }
                ledgers[app].source.append(Int32(index))
                ledgers[app].state.append(executions[index].state)
                ledgers[app].deploymentOf.append(deployment)
                ledgers[app].deviceOf.append(deviceTable.position(of: executions[index].deviceID, in: ids).map(Int32.init) ?? -1)
            }
        }
        return ledgers
    }

    /// The execution as the snapshot has it (its state may since have been ended: see `state`).
    func execution(_ index: Int, _ snapshot: FleetSnapshot) -> FleetSnapshot.Execution { snapshot.executions[Int(source[index])] }

    /// Fills `inFlight` and `newest` from the executions as the endings left them.
    mutating func indexDevices(_ snapshot: FleetSnapshot, facts: DeploymentFacts) {
        inFlight = DeviceSlots(count: snapshot.inventory.count)
        newest = DeviceSlots(count: snapshot.inventory.count)
        for index in state.indices {
            let device = deviceOf[index]
            guard device >= 0 else { continue }
            let state = state[index]
            if !state.isFinal || (snapshot.executing[Int(device)] != nil && snapshot.executing[Int(device)] == execution(index, snapshot).id) {
                if inFlight[device] == nil { inFlight[device] = index }
            }
            guard state != .cancelled else { continue }
            if let known = newest[device], facts.created[deploymentOf[known]] > facts.created[deploymentOf[index]] { continue }
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
    let facts: DeploymentFacts
    /// Devices outside their maintenance window now.
    let windows: WindowState
    var actions: [RolloutAction] = []
    /// Targets decided so far in this pass, by group: whether each converged, and when its
    /// last rollout execution succeeded (nil: converged without one). `after` reads them.
    var outcomes: [String: (converged: Bool, since: Date?)] = [:]
    /// When an observed device's observation ends (or now, when one already ended and its
    /// next heartbeat is awaited).
    var recheckAt: Date?

    init(app: CompiledApp, snapshot: FleetSnapshot, plan: FleetPlan, appPlan: AppPlan, facts: DeploymentFacts) {
        self.app = app
        windows = WindowState(app: app, plan: appPlan, snapshot: snapshot)
        self.facts = facts
        self.snapshot = snapshot
        self.plan = plan
        policy = app.app.rollout
        timeout = policy.executionTimeout.seconds
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
        for index in ledger.state.indices where !ledger.state[index].isFinal {
            let execution = ledger.execution(index, snapshot)
            let deployment = deployment(ledger, index)
            guard deployment.purpose.isController else { continue }
            let device = ledger.deviceOf[index]
            // Queued: since it was made; taken: since the device took it.
            let overdue = snapshot.now.timeIntervalSince(execution.takenAt ?? execution.updatedAt) > timeout
            let reason: RolloutAction.EndReason?
            if isSuperseded(deployment) {
                reason = .superseded
            } else if execution.state == .queued {
                reason = !online(device) ? .offlineBeforeTaking : snapshot.locked[Int(device)] != nil ? .lockedBeforeTaking
                    : windows.isClosed(device) ? .outsideWindowBeforeTaking : overdue ? .notTaken : nil
            } else if overdue {
                reason = online(device) ? .stalled : .offlineWhileRunning
            } else {
                reason = nil
            }
            guard let reason else { continue }
            actions.append(.end(app: app.name, execution: execution.id, device: execution.deviceID, as: reason.state, reason: reason,
                                unlessUpdatedAfter: execution.updatedAt))
            ledger.state[index] = reason.state
        }
    }

    /// Step 2 for one target, remembering how it ended for the targets promoted after it.
    mutating func decide(_ targetPlan: TargetPlan, ledger: AppLedger, drifted: inout [String],
                         drift: inout [FleetStatusReport.DeviceReason]) -> FleetStatusReport.Target {
        let status = decideTarget(targetPlan, ledger: ledger, drifted: &drifted, drift: &drift)
        let target = targetPlan.target
        // When it converged is read from the executions only for a target another one follows.
        let followed = app.targets.contains { $0.gate.after == target.group }
        if status.state == "converged", followed {
            var since: Date?
            for index in ledger.state.indices where ledger.state[index] == .succeeded {
                let deployment = deployment(ledger, index)
                guard deployment.digest == target.digest, deployment.purpose == .rollout, deployment.group == nil || deployment.group == target.group
                else { continue }
                let at = ledger.execution(index, snapshot).updatedAt
                if since.map({ at > $0 }) ?? true { since = at }
            }
            outcomes[target.group] = (true, since)
        } else {
            outcomes[target.group] = (status.state == "converged", nil)
        }
        return status
    }

    /// Why a target that has not started may not start now; nil when it may.
    func gateReason(_ target: DesiredTarget) -> String? {
        let gate = target.gate
        if let notBefore = gate.notBefore, snapshot.now < notBefore {
            return "waiting until \(Timestamp.format(notBefore)) (notBefore)"
        }
        if let after = gate.after {
            guard let outcome = outcomes[after], outcome.converged else { return "waiting for \(after) to converge (after)" }
            if gate.bakeSeconds > 0, let since = outcome.since, snapshot.now.timeIntervalSince(since) < gate.bakeSeconds {
                return "baking: \(after) converged at \(Timestamp.format(since)); starts at \(Timestamp.format(since.addingTimeInterval(gate.bakeSeconds)))"
            }
        }
        if gate.approval, !snapshot.approvals.contains(FleetSnapshot.approvalKey(app: app.name, group: target.group, digest: target.digest)) {
            return "awaiting approval of \(target.digest.prefix(12)) (flotilla approve \(app.name) \(target.group))"
        }
        return nil
    }

    private mutating func decideTarget(_ targetPlan: TargetPlan, ledger: AppLedger, drifted: inout [String],
                                       drift: inout [FleetStatusReport.DeviceReason]) -> FleetStatusReport.Target {
        let target = targetPlan.target
        let progress = TargetProgress(targetPlan, ledger: ledger, snapshot: snapshot, facts: facts, windows: windows)
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
                                              converged: targetPlan.unchanged.count - progress.unconvergedUnchanged, updating: progress.inFlight, failed: progress.failed.count,
                                              offline: progress.offlineWaiting, state: "updating", locked: progress.lockedWaiting,
                                              outsideWindow: progress.outsideWindow)
        status.observing = progress.observing.count
        if let ends = progress.firstObservationEnds {
            // Once ended, the device's next heartbeat decides: a few seconds on, not every second.
            let at = max(ends, snapshot.now.addingTimeInterval(5))
            if recheckAt.map({ at < $0 }) ?? true { recheckAt = at }
        }
        for (device, execution, message) in progress.unhealthy {
            let id = plan.deviceID(device)
            actions.append(.failHealth(app: app.name, group: target.group, execution: ledger.execution(execution, snapshot).id, device: id, message: message))
            status.unhealthy.append(.init(device: id, reason: message))
        }
        for (device, execution) in progress.healthy {
            actions.append(.passHealth(app: app.name, group: target.group, execution: ledger.execution(execution, snapshot).id, device: plan.deviceID(device)))
        }
        status.unhealthy += progress.unhealthyBefore.map { .init(device: plan.deviceID($0.device), reason: $0.message) }
        status.unhealthy.sort { $0.device < $1.device }
        let driftedHere = progress.drifted(settings: snapshot.settings)
        drifted += driftedHere.map(plan.deviceID)
        drift += driftReasons(driftedHere, targetPlan: targetPlan)

        if abortMarked || progress.failed.count > allowed {
            if !abortMarked {
                actions.append(.abortRollout(app: app.name, group: target.group, digest: target.digest,
                                             deployments: rolloutDeployments.map { snapshot.deployments[$0].id }.sorted(),
                                             failed: progress.failed.count, allowed: allowed))
            }
            status.state = "aborted"
            if policy.onAbort == .rollback, !held {
                let waiting = rollBack(progress, unchanged: targetPlan.unchanged, ledger: ledger, digest: target.digest, capacity: capacity)
                if waiting > 0 { status.reason = "\(waiting) devices wait for their window to be rolled back" }
            }
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
                let due = progress.dueForHeal(driftedHere, ledger: ledger, snapshot: snapshot, facts: facts).filter { !windows.isClosed($0) }
                    .prefix(capacity)
                if !due.isEmpty {
                    actions.append(.heal(app: app.name, group: target.group, digest: target.digest, devices: due.map(plan.deviceID)))
                    capacity -= due.count
                }
            }
            // The next wave starts when the devices of the last one have passed their checks.
            // (How many are observed is in the status's fields: a reason that came and went
            // with every wave would make every wave a change of state.)
            if progress.active.isEmpty, progress.observing.isEmpty, !progress.candidates.isEmpty || progress.outsideWindow > 0 {
                // A target that has not started waits for its gate; once started, it goes on.
                let gate = rolloutDeployments.isEmpty && !target.gate.isOpen ? gateReason(target) : nil
                // Devices that may start, but none inside its window now.
                if let reason = gate ?? (progress.candidates.isEmpty ? windows.reason(for: target) : nil) {
                    status.state = "waiting"
                    status.reason = reason
                    actions.append(.hold(app: app.name, group: target.group, reason: reason))
                    return status
                }
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

    /// What says each drifted device runs something else: its probe, or what its agent recorded.
    private func driftReasons(_ drifted: [Int32], targetPlan: TargetPlan) -> [FleetStatusReport.DeviceReason] {
        guard !drifted.isEmpty else { return [] }
        let from = Dictionary(targetPlan.changes.map { ($0.device, $0) }, uniquingKeysWith: { first, _ in first })
        let desired = "desired \(targetPlan.target.version)"
        return drifted.map { device in
            let id = plan.deviceID(device)
            if let probe = snapshot.probes[Int(device)]?[app.name], probe.error == nil {
                return .init(device: id, reason: "\(probe.summary), \(desired)")
            }
            let reported = from[device].flatMap(plan.fromVersion).map { "reports \($0)" } ?? "reports no version"
            return .init(device: id, reason: "\(reported), \(desired)")
        }
    }

    /// Gives the devices the aborted rollout changed their last good version, `capacity` at a
    /// time; offline ones when they are heard again.
    ///
    /// Changed means what the device runs: it finished this rollout, or it reports the aborted
    /// digest and got it from a rollout of it (once, perhaps, before a later version failed on it
    /// and left it there). A device whose rollback already ran (and failed) is not tried again.
    ///
    /// Returns how many devices to roll back wait for their maintenance window.
    @discardableResult
    private mutating func rollBack(_ progress: TargetProgress, unchanged: [Int32], ledger: AppLedger, digest: String, capacity: Int) -> Int {
        guard capacity > 0 else { return 0 }
        let number = facts.digestNumber(digest)
        let runningIt = Set(unchanged)
        var gotIt = Set<Int32>()
        // A device whose update was failed for its health after it succeeded runs the version too.
        for index in ledger.state.indices where ledger.state[index] == .succeeded || ledger.state[index] == .failed {
            guard runningIt.contains(ledger.deviceOf[index]) else { continue }
            let deployment = ledger.deploymentOf[index]
            if facts.digest[deployment] == number, facts.isRolloutOrHeal(deployment) { gotIt.insert(ledger.deviceOf[index]) }
        }
        let due = Set(progress.succeeded).union(gotIt).filter { device in
            guard online(device), snapshot.locked[Int(device)] == nil, ledger.inFlight[device] == nil else { return false }
            guard let newest = ledger.newest[device] else { return true }
            return deployment(ledger, newest).purpose != .rollback(abortedDigest: digest)
        }
        guard !due.isEmpty else { return 0 }
        // Each changed device's newest success of another digest.
        var lastGood: [Int32: Int] = [:]
        for index in ledger.state.indices where ledger.state[index] == .succeeded {
            let device = ledger.deviceOf[index]
            guard due.contains(device), deployment(ledger, index).digest != digest else { continue }
            if let known = lastGood[device], deployment(ledger, known).createdAt > deployment(ledger, index).createdAt { continue }
            lastGood[device] = index
        }
        // Devices outside their maintenance window are rolled back when it opens.
        let changed = due.filter { !windows.isClosed($0) }
        let waiting = due.filter { windows.isClosed($0) && lastGood[$0] != nil }.count
        guard !changed.isEmpty else { return waiting }
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
        return waiting
    }
}
