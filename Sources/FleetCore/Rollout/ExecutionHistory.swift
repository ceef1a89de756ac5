public import FoundationEssentials

/// The part of a project's execution history that `RolloutDecision.decide` reads: the decision
/// over it is the decision over the whole history (the simulator checks this at every
/// decision), and it stays about the size of the fleet however many rollouts came before.
///
/// A version bump of 10,000 devices adds 10,000 executions; after a hundred, a pass that read
/// every execution of the project would read a million to decide over a fleet of 10,000.
///
/// Kept, in creation order:
/// - every execution of a *live* deployment: one of a digest a target of its app wants now, a
///   rollback from such a digest, or one made within `selfHealInterval` (a recent heal holds
///   the next). The decision reads all of these: where a target's rollout stands, when it
///   converged, which devices got an aborted digest, which were healed lately.
/// - every execution not finished (the server may end it), and every one a device says it
///   works on;
/// - of the other executions, per device and app, only two: the newest finished and not
///   cancelled (where the device stands when nothing newer is), and the newest success (what a
///   rollback restores: it is of another digest than the aborted one, which is wanted, so live).
///
/// "Newest" is the decision's order: by the deployment's creation time, then creation order.
public struct ExecutionHistory: Sendable {
    private struct Facts {
        var app: Int32
        var created: Double
        var live: Bool
    }

    private struct Candidate {
        var position: Int64
        var created: Double
        var execution: FleetSnapshot.Execution

        /// Newer than `other` in the decision's order: a tie in time goes to the one made later.
        func supersedes(_ other: Candidate?) -> Bool {
            guard let other else { return true }
            return created > other.created || created == other.created && position > other.position
        }
    }

    private struct Slots {
        var newest: Candidate?
        var success: Candidate?
    }

    private let facts: [String: Facts]
    private let appCount: Int
    private let executing: Set<String>
    private var kept: [(position: Int64, execution: FleetSnapshot.Execution)] = []
    /// Per device (numbered as first offered) and app: `appCount` slots a device.
    private var deviceNumbers: [String: Int] = [:]
    private var slots: [Slots] = []
    /// A deployment's executions come together: its facts are looked up once per run of them.
    private var last: (deploymentID: String?, facts: Facts?) = (nil, nil)
    private var offered = 0

    /// How many executions were offered.
    public var offeredCount: Int { offered }

    /// - Parameters:
    ///   - deployments: the deployments the executions belong to; executions of others are dropped
    ///     (the decision reads none of them).
    ///   - executing: the execution ids devices report working on.
    public init(fleet: CompiledFleet, deployments: [FleetSnapshot.Deployment], executing: Set<String>, now: Date,
                settings: RolloutSettings) {
        var appNumber: [String: Int32] = [:]
        var wanted: [Set<String>] = []
        for app in fleet.apps {
            appNumber[app.name] = Int32(wanted.count)
            wanted.append(Set(app.targets.map(\.digest)))
        }
        let recent = now.timeIntervalSinceReferenceDate - settings.selfHealInterval
        var facts: [String: Facts] = [:]
        facts.reserveCapacity(deployments.count)
        for deployment in deployments where facts[deployment.id] == nil {
            // An id listed twice is the first listed, as in the decision; one of an app not in
            // the fleet has no facts (its executions are dropped).
            guard let app = appNumber[deployment.app] else {
                facts[deployment.id] = Facts(app: -1, created: 0, live: false)
                continue
            }
            var live = wanted[Int(app)].contains(deployment.digest) || deployment.createdAt.timeIntervalSinceReferenceDate >= recent
            if case .rollback(let aborted) = deployment.purpose, wanted[Int(app)].contains(aborted) { live = true }
            facts[deployment.id] = Facts(app: app, created: deployment.createdAt.timeIntervalSinceReferenceDate, live: live)
        }
        self.facts = facts
        appCount = wanted.count
        self.executing = executing
    }

    /// Offers an execution, in any order: `position` is its place in creation order (an
    /// execution made later has a larger one), which breaks ties in time and orders the result.
    public mutating func offer(_ execution: FleetSnapshot.Execution, position: Int64) {
        offered += 1
        if execution.deploymentID != last.deploymentID { last = (execution.deploymentID, facts[execution.deploymentID]) }
        guard let facts = last.facts, facts.app >= 0 else { return }
        if facts.live || !execution.state.isFinal || !executing.isEmpty && executing.contains(execution.id) {
            kept.append((position, execution))
            if facts.live || !execution.state.isFinal { return }
        }
        guard execution.state != .cancelled else { return }
        let candidate = Candidate(position: position, created: facts.created, execution: execution)
        let device: Int
        if let known = deviceNumbers[execution.deviceID] {
            device = known
        } else {
            device = deviceNumbers.count
            deviceNumbers[execution.deviceID] = device
            slots.append(contentsOf: repeatElement(Slots(), count: appCount))
        }
        let slot = device * appCount + Int(facts.app)
        if candidate.supersedes(slots[slot].newest) { slots[slot].newest = candidate }
        if execution.state == .succeeded, candidate.supersedes(slots[slot].success) { slots[slot].success = candidate }
    }

    /// What is kept, in creation order.
    public func executions() -> [FleetSnapshot.Execution] {
        var all = kept
        for slot in slots {
            if let newest = slot.newest { all.append((newest.position, newest.execution)) }
            if let success = slot.success { all.append((success.position, success.execution)) }
        }
        all.sort { $0.position < $1.position }
        var result: [FleetSnapshot.Execution] = []
        result.reserveCapacity(all.count)
        var last: Int64 = -1
        for (position, execution) in all where position != last {
            result.append(execution)
            last = position
        }
        return result
    }

    /// The snapshot's history cut to what its decision reads.
    public static func kept(in snapshot: FleetSnapshot) -> [FleetSnapshot.Execution] {
        var history = ExecutionHistory(fleet: snapshot.fleet, deployments: snapshot.deployments,
                                       executing: Set(snapshot.executing.compactMap { $0 }), now: snapshot.now, settings: snapshot.settings)
        for (index, execution) in snapshot.executions.enumerated() { history.offer(execution, position: Int64(index)) }
        return history.executions()
    }
}
