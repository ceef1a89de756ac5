import FleetCore
import FleetProtocol
import FleetStore
import FoundationEssentials
import FoundationInternationalization

/// The rollout engine's invariants, checked after every decision the simulator applies.
extension FleetSimulator {
    /// The decision over the history a controller reads (`ExecutionHistory`) is the decision
    /// over the whole history.
    func checkHistoryCut(_ full: FleetSnapshot, decision: RolloutDecision, at second: Int) {
        var cut = full
        cut.executions = ExecutionHistory.kept(in: full)
        historyDropped += full.executions.count - cut.executions.count
        let again = try? RolloutDecision.decide(cut)
        if again?.actions != decision.actions || again?.report != decision.report || again?.recheckAt != decision.recheckAt {
            violate(second, "deciding over the \(cut.executions.count) executions kept of \(full.executions.count) changed the decision: "
                + "\(decision.actions) over all, \(again?.actions ?? []) over those kept")
        }
    }

    func checkInvariants(at second: Int) {
        let app = fleet.apps[0]
        let policy = app.app.rollout
        var inFlightByDevice: [String: Int] = [:]
        for execution in executions where !execution.state.isFinal {
            inFlightByDevice[execution.deviceID, default: 0] += 1
            let deployment = deployments[deploymentIndex[execution.deploymentID]!]
            // No execution for a device outside its target.
            if deployment.purpose == .rollout || deployment.purpose == .heal {
                let ring = registry.first { $0.id == execution.deviceID }!.ring
                let target = app.targets.first { $0.group == "all" || $0.group == ring }
                if target?.digest != deployment.digest {
                    violate(second, "\(execution.deviceID) has \(execution.id) of \(deployment.version), which its target does not want")
                }
            }
            // Every execution is final within executionTimeout of the device taking it.
            if let taken = execution.takenAt {
                let age = date(second).timeIntervalSince(taken)
                if age > Double(scenario.executionTimeout + Self.decideAtLeastEvery + Self.tick) {
                    violate(second, "\(execution.id) on \(execution.deviceID) is \(execution.state.rawValue) \(Int(age)) s after it was taken")
                }
            }
        }
        for (device, count) in inFlightByDevice where count > 1 {
            violate(second, "\(device) has \(count) executions of one app in flight")
        }
        // Never more than maxUnavailable devices of a target with an execution in flight.
        for target in app.targets {
            let members = registry.filter { target.group == "all" || target.group == $0.ring }
            let limit = max(1, policy.maxUnavailable.devices(of: members.count))
            let busy = members.filter { inFlightByDevice[$0.id] != nil }.count
            if busy > limit { violate(second, "\(busy) devices of \(target.group) updating at once; maxUnavailable allows \(limit)") }
        }
        // No split fleet: what the server holds of a finished execution is what the device did.
        for device in devices {
            for id in device.delivered {
                let execution = executions[executionIndex[id]!]
                let state = execution.state
                // A success whose device then failed the health checks is failed, with why.
                if state == .failed, device.outcomes[id] == .succeeded, execution.message?.hasPrefix("health check") == true { continue }
                if state != device.outcomes[id] {
                    violate(second, "\(device.id) finished \(id) as \(device.outcomes[id]!.rawValue) but the server holds \(state.rawValue)")
                }
            }
        }
    }

    /// A gated target's first wave of a digest starts only once the gate is open, as the
    /// simulator's own records show it: not before notBefore, not without an approval of that
    /// digest, not before every execution of the canary's rollout ended and its last success
    /// is `bake` old.
    func checkGate(group: String, digest: String, at second: Int) {
        guard let gate = scenario.gate, group == "main" else { return }
        let started = deployments.contains { $0.group == "main" && $0.digest == digest && $0.purpose == .rollout && $0.createdAt < date(second) }
        guard !started else { return }
        if let notBefore = gate.notBefore, second < notBefore {
            violate(second, "main started at \(second)s, before its notBefore at \(notBefore)s")
        }
        if gate.approval, !approvals.contains(FleetSnapshot.approvalKey(app: "app", group: "main", digest: digest)) {
            violate(second, "main started \(digest.prefix(8)) without an approval of that digest")
        }
        guard gate.after, let canary = fleet.apps[0].targets.first(where: { $0.group == "canary" }) else { return }
        let canaryRollouts = Set(deployments.filter { $0.group == "canary" && $0.digest == canary.digest && $0.purpose == .rollout }.map(\.id))
        let canaryExecutions = executions.filter { canaryRollouts.contains($0.deploymentID) }
        if canaryExecutions.contains(where: { !$0.state.isFinal }) {
            violate(second, "main started while the canary's rollout still ran")
        }
        if deployments.contains(where: { canaryRollouts.contains($0.id) && $0.aborted }) {
            violate(second, "main started after the canary's rollout aborted")
        }
        if let last = canaryExecutions.filter({ $0.state == .succeeded }).map(\.updatedAt).max(),
           date(second).timeIntervalSince(last) < Double(gate.bakeSeconds) {
            violate(second, "main started \(Int(date(second).timeIntervalSince(last)))s after the canary converged; bake is \(gate.bakeSeconds)s")
        }
        // Offline and locked canary devices do not hold the promotion: they are updated when they can be.
        let online = registry.filter { $0.ring == "canary" && second - $0.lastHeard <= Int(settings.offlineAfter) && !$0.locked }
        for device in online where device.apps["app"]?.digest != canary.digest && !devices.contains(where: { $0.id == device.id && $0.tampered }) {
            violate(second, "main started while canary device \(device.id) (online) runs \(device.apps["app"]?.version ?? "nothing")")
        }
    }

    /// No new work goes to a device whose last heartbeat said it is locked.
    func checkNotLocked(_ ids: [String], at second: Int) {
        for id in ids where registry.first(where: { $0.id == id })?.locked == true {
            violate(second, "\(id) was given new work while its heartbeat said it is locked")
        }
    }

    /// Nothing starts on a device outside its maintenance window, by the device's own wall
    /// clock as Foundation's calendar reads it (not the decision's arithmetic).
    func checkInsideWindow(_ ids: [String], at second: Int) {
        guard let windows = scenario.windows else { return }
        for id in ids {
            let index = devices.firstIndex { $0.id == id }!
            let zone = scenario.devices[index].zone.map { String($0.map { $0 == "." ? "/" : $0 }) } ?? "UTC"
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: zone)!
            let parts = calendar.dateComponents([.weekday, .hour, .minute], from: date(second))
            let weekday = (parts.weekday! + 5) % 7 // Monday is 0
            let minute = parts.hour! * 60 + parts.minute!
            let inside = weekday != windows.denyDay && (minute - windows.startHour * 60 + 1_440) % 1_440 < windows.hours * 60
            if !inside {
                violate(second, "\(id) was given new work at \(parts.hour!):\(parts.minute!) on day \(weekday) in \(zone), outside its window (\(windows))")
            }
        }
    }

    /// A target is never reported converged while one of its devices runs its version and that
    /// version breaks the app's health (by the scenario's own account, not the checks').
    func checkHealthyWhenConverged(_ report: FleetStatusReport, at second: Int) {
        guard let health = scenario.health else { return }
        for (number, target) in fleet.apps[0].targets.enumerated() where report.apps[0].targets[number].state == "converged" {
            guard let regression = health.regressions[target.version] else { continue }
            for (index, device) in registry.enumerated() where (target.group == "all" || target.group == device.ring)
                && devices[index].installed.version == target.version {
                violate(second, "\(target.group) says converged, but \(device.id) runs \(target.version), which breaks its health (\(regression.rawValue))")
            }
        }
    }

    /// A wave starts only when the online devices of the ones before passed their health checks.
    func checkNoneObserved(group: String, digest: String, at second: Int) {
        guard scenario.health != nil else { return }
        // Online and not busy with another execution (that one is what it is judged by next).
        for device in registry where second - device.lastHeard <= Int(settings.offlineAfter) && device.executing == nil
            && !(executionsOf[device.id] ?? []).contains(where: { !executions[$0].state.isFinal }) {
            let newest = (executionsOf[device.id] ?? []).map { executions[$0] }.filter { $0.state != .cancelled }
                .max { deployments[deploymentIndex[$0.deploymentID]!].createdAt < deployments[deploymentIndex[$1.deploymentID]!].createdAt }
            guard let newest, newest.state == .succeeded, newest.healthPassedAt == nil else { continue }
            let deployment = deployments[deploymentIndex[newest.deploymentID]!]
            guard deployment.digest == digest, deployment.group == group, deployment.purpose == .rollout || deployment.purpose == .heal else { continue }
            violate(second, "a wave of \(group) started while \(device.id) (online) was still observed after \(newest.id)")
        }
    }

    /// No device gets the same digest twice in one rollout, except by heal or rollback.
    func checkReceivedOnce(_ index: Int, at second: Int) {
        let received = devices[index].received
        guard let last = received.last, last.purpose == .rollout else { return }
        let twice = received.dropLast().contains { $0.digest == last.digest && $0.episode == last.episode && $0.purpose == .rollout }
        if twice { violate(second, "\(devices[index].id) was given \(last.digest.prefix(8)) twice in one rollout") }
    }

    /// After the calm phase: every target converged, or aborted with its changed devices rolled back.
    func checkConverged(at second: Int) {
        decide(at: second, restart: false)
        guard let report = lastReport, violations.isEmpty else { return }
        let app = fleet.apps[0]
        for (number, target) in app.targets.enumerated() {
            let status = report.apps[0].targets[number]
            let members = devices.indices.filter { target.group == "all" || target.group == registry[$0].ring }
            if status.offline > 0 { violate(second, "\(status.offline) devices of \(target.group) still counted offline with every device online") }
            if status.locked > 0 { violate(second, "\(status.locked) devices of \(target.group) still counted locked with every lock gone") }
            switch status.state {
            case "aborted":
                if app.app.rollout.onAbort == .rollback, !suspended.contains("app") {
                    // A rollback that itself failed is not retried: the device stays, reported as failed.
                    for index in members where devices[index].installed.digest == target.digest && devices[index].received.contains(where: {
                        $0.digest == target.digest && $0.purpose == .rollout }) && !devices[index].received.contains(where: {
                        $0.purpose == .rollback(abortedDigest: target.digest) && devices[index].outcomes[$0.id] == .failed }) {
                        violate(second, "\(devices[index].id) still runs the aborted \(target.version) after the rollback")
                    }
                }
            case "failed":
                // Failed devices are not retried; every other device converged.
                continue
            case "converged":
                for index in members where devices[index].installed.version != target.version {
                    violate(second, "\(target.group) says converged, but \(devices[index].id) runs \(devices[index].installed.version)")
                }
            case "drifted" where !app.app.selfHeal:
                continue
            case "suspended" where suspended.contains("app"):
                continue
            case "waiting":
                // Only for what will not change by itself: an approval not given for this digest,
                // or a canary that did not converge.
                let approved = approvals.contains(FleetSnapshot.approvalKey(app: "app", group: target.group, digest: target.digest))
                let canaryConverged = report.apps[0].targets.first?.state == "converged"
                if scenario.gate?.approval == true, !approved { continue }
                if scenario.gate?.after == true, !canaryConverged { continue }
                violate(second, "\(target.group) is \(status.label) \(calmSeconds) s into a calm phase, with its gate open")
            default:
                violate(second, "\(target.group) is \(status.label) \(calmSeconds) s into a calm phase (bound from the policy)")
            }
        }
    }
}
