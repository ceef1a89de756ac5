public import Foundation

/// What the server needs of a controller running beside it: a way to ask for a poll now, and its
/// last status. The server knows nothing of git; `flotilla serve --repo` wires one in.
public protocol ControllerHandle: Sendable {
    func requestPoll() async
    /// The last status report as JSON, nil before the first reconcile.
    func statusJSON() async -> [UInt8]?
    /// Holds (or releases) new waves, heals and rollbacks of `app`; what runs, runs on.
    func setSuspended(_ suspended: Bool, app: String) async throws
    /// The branch it reconciles; a push webhook for another ref is acknowledged and ignored.
    var watchedBranch: String { get }
    /// Its reconcile passes so far, for `/metrics`.
    func metrics() async -> ControllerMetrics
    /// A device's execution reached a final state: the rollout it belongs to may move on.
    func executionEnded() async
    /// The project of the desired state in force and its apps; nil before a commit validated.
    /// Operator routes act on the controller only for a token of this project.
    func scope() async -> (project: String, apps: [String])?
}

/// How much work the controller's reconcile passes are.
public struct ControllerMetrics: Sendable, Equatable {
    public var passes = 0
    public var passSeconds = 0.0
    public var lastPassSeconds = 0.0

    public init() {}

    /// The Prometheus text exposition of these numbers.
    public var exposition: String {
        """
        # HELP flotilla_controller_passes_total Reconcile passes of the fleet repository's desired state.
        # TYPE flotilla_controller_passes_total counter
        flotilla_controller_passes_total \(passes)
        # HELP flotilla_controller_pass_seconds_total Time spent in reconcile passes.
        # TYPE flotilla_controller_pass_seconds_total counter
        flotilla_controller_pass_seconds_total \(passSeconds)
        # HELP flotilla_controller_last_pass_seconds How long the last reconcile pass took.
        # TYPE flotilla_controller_last_pass_seconds gauge
        flotilla_controller_last_pass_seconds \(lastPassSeconds)

        """
    }
}
