public import FleetCore

/// Where one rollout stands — one app target's desired digest — as its executions show it.
public struct RolloutProgress: Sendable, Equatable {
    public var succeeded: Set<String> = []
    /// Failed or timed out.
    public var failed: Set<String> = []
    /// Queued, assigned or running.
    public var active: Set<String> = []

    public init(succeeded: Set<String> = [], failed: Set<String> = [], active: Set<String> = []) {
        self.succeeded = succeeded
        self.failed = failed
        self.active = active
    }
}

/// What the controller does next for one rollout. Level-triggered: the same inputs give the same
/// answer, so a restarted controller picks up where the last one stood, and nothing is deployed
/// twice to a device that finished.
public enum RolloutStep: Sendable, Equatable {
    /// Every device that should change has.
    case converged
    /// A wave is running; the next starts when it is done.
    case waiting(active: Int)
    /// Start the next wave on these devices.
    case deploy([String])
    /// More devices failed than the policy tolerates: no more waves. The devices that did
    /// change are listed for `onAbort: rollback`.
    case aborted(failed: Int, allowed: Int, changed: [String])
    /// No device left to try, but some failed within the tolerance.
    case finishedWithFailures(Int)

    /// Decides the next step.
    ///
    /// - Parameters:
    ///   - pending: devices whose version differs from the target's, in the planner's order
    ///     (online first); devices busy with another execution of the app are left out by the caller.
    ///   - progress: this rollout's executions so far.
    public static func next(pending: [String], progress: RolloutProgress, policy: RolloutPolicy) -> RolloutStep {
        // A device that finished this rollout is done with it, even before its next heartbeat
        // reports the new version.
        let candidates = pending.filter { !progress.failed.contains($0) && !progress.active.contains($0) && !progress.succeeded.contains($0) }
        let total = Set(pending).union(progress.succeeded).union(progress.failed).union(progress.active).count
        let allowed = policy.maxFailures.allowance(of: total)
        if progress.failed.count > allowed {
            return .aborted(failed: progress.failed.count, allowed: allowed, changed: progress.succeeded.sorted())
        }
        if !progress.active.isEmpty { return .waiting(active: progress.active.count) }
        if candidates.isEmpty { return progress.failed.isEmpty ? .converged : .finishedWithFailures(progress.failed.count) }
        let wave = max(1, min(policy.batchSize.devices(of: total), policy.maxUnavailable.devices(of: total)))
        return .deploy(Array(candidates.prefix(wave)))
    }
}
