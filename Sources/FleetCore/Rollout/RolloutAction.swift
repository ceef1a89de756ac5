public import FleetProtocol
public import FoundationEssentials

/// What the rollout decision asks the controller to do. Each is idempotent against the store:
/// applying it twice, or after a restart, changes nothing more.
public enum RolloutAction: Sendable, Equatable {
    /// Start the next wave of `app`'s rollout of `digest` to `group` on these devices.
    case startWave(app: String, group: String, digest: String, devices: [String])
    /// Put drifted devices back on the target's version.
    case heal(app: String, group: String, digest: String, devices: [String])
    /// Mark the rollout of `digest` aborted: its deployments stop, what has not finished is cancelled.
    case abortRollout(app: String, group: String, digest: String, deployments: [String], failed: Int, allowed: Int)
    /// Give devices changed by the aborted rollout of `abortedDigest` their last good version
    /// again: a copy of deployment `restoring` for them.
    case rollBack(app: String, abortedDigest: String, restoring: String, devices: [String])
    /// End an unfinished execution from the server's side — unless it moved after
    /// `unlessUpdatedAfter`, which means progress came in while the decision was made.
    case end(app: String, execution: String, device: String, as: ExecutionState, reason: EndReason, unlessUpdatedAfter: Date)
    /// Nothing starts for this target now, and why (shown in status, never an error).
    case hold(app: String, group: String, reason: String)
    /// The device's heartbeats since its update failed the app's health checks: mark the
    /// succeeded execution failed, with why. It then counts toward maxFailures.
    case failHealth(app: String, group: String, execution: String, device: String, message: String)
    /// The device passed the app's health checks after its update: record it, so it is never
    /// judged again.
    case passHealth(app: String, group: String, execution: String, device: String)

    /// The app the action concerns.
    public var app: String {
        switch self {
        case .startWave(let app, _, _, _), .heal(let app, _, _, _), .abortRollout(let app, _, _, _, _, _), .rollBack(let app, _, _, _),
             .end(let app, _, _, _, _, _), .hold(let app, _, _), .failHealth(let app, _, _, _, _), .passHealth(let app, _, _, _):
            app
        }
    }

    /// Why the server ends an execution.
    public enum EndReason: String, Sendable, Equatable {
        /// No target wants its digest any more.
        case superseded
        /// Its device went offline before it took the assignment; it is given the newest
        /// desired version when it is heard again.
        case offlineBeforeTaking
        /// Its device refuses updates (an update lock) and had not taken it; it is offered again
        /// when the lock is gone.
        case lockedBeforeTaking
        /// Its device's maintenance window closed before it took it; it is offered again when
        /// the window opens.
        case outsideWindowBeforeTaking
        /// Its device, online, did not take it within the execution timeout.
        case notTaken
        /// Its device went offline while running it; not a failure. If the device finishes it
        /// later, its report is recorded.
        case offlineWhileRunning
        /// Its device is online and did not finish it within the execution timeout of taking it: a failure.
        case stalled

        /// The state the execution ends in: only a stall is a failure.
        public var state: ExecutionState { self == .stalled ? .timedOut : .cancelled }

        /// The execution's message.
        public var message: String {
            switch self {
            case .superseded: "superseded: no target wants this version any more"
            case .offlineBeforeTaking: "the device went offline before it took the assignment; it is updated when it returns"
            case .lockedBeforeTaking: "the device refuses updates now (update lock) and had not taken it; it is offered again when unlocked"
            case .outsideWindowBeforeTaking: "the device's maintenance window closed before it took the assignment; it is offered again when the window opens"
            case .notTaken: "the device did not take the assignment in time; it is offered again"
            case .offlineWhileRunning: "the device went offline while it ran; not a failure — its report is recorded if it comes"
            case .stalled: "not finished within the execution timeout of the device taking it"
            }
        }
    }
}

/// The outcome of one decision: what to do, and what to report.
public struct RolloutDecision: Sendable {
    public var actions: [RolloutAction]
    public var report: FleetStatusReport
    /// When deciding again may decide otherwise with nothing else changed: a device still
    /// observed for its health passes at its first heartbeat after its observation ends. Nil:
    /// nothing time-bound of that kind is pending.
    public var recheckAt: Date?

    public init(actions: [RolloutAction], report: FleetStatusReport, recheckAt: Date? = nil) {
        self.actions = actions
        self.report = report
        self.recheckAt = recheckAt
    }
}
