public import FleetProtocol
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
    /// The project the server's configuration assigned it (`serve --config`); nil for one started
    /// with `--repo`, whose project is whatever its repository's fleet.yaml names.
    var assignedProject: String? { get }
    /// The version and digest the desired state in force gives `group`'s target of `app`; nil
    /// when there is no such target (or no commit yet). An approval is of this digest.
    func target(app: String, group: String) async -> (version: String, digest: String, approval: Bool)?
    /// Among replicas, the one whose controller this answers for; nil on a single server.
    func leader() async -> String?
    /// What the commit in force lets operators do on the devices (`remote:` in fleet.yaml);
    /// nil before a commit validated, which allows nothing.
    func remoteAccess() async -> RemoteAccess?
    /// The groups and the tags git declares for devices in the commit in force, for the console;
    /// nil before a commit validated.
    func inventory() async -> FleetInventory?
    /// The alert rules of the commit in force and where alerts go; nil before a commit validated.
    func alerting() async -> AlertingSettings?
}

/// The groups of a commit in force and the tags it declares for devices: what the console
/// needs to search by group and to tell declared tags from reported ones.
public struct FleetInventory: Sendable, Equatable, Codable {
    public struct Group: Sendable, Equatable, Codable {
        public var name: String
        /// The group's label selector in its canonical form; nil for a group of listed devices only.
        public var selector: String?
        public var devices: [String]

        public init(name: String, selector: String?, devices: [String]) {
            self.name = name
            self.selector = selector
            self.devices = devices
        }
    }

    public var groups: [Group]
    /// Device id → the tags git declares for it (they win over what the device reports).
    public var declaredTags: [String: [String: String]]

    public init(groups: [Group], declaredTags: [String: [String: String]]) {
        self.groups = groups
        self.declaredTags = declaredTags
    }

    /// The tags groups see for a device: what it reports, overridden by what git declares.
    public func effectiveTags(of id: String, reported: [String: String]) -> [String: String] {
        declaredTags[id].map { reported.merging($0) { _, fromGit in fromGit } } ?? reported
    }
}

extension ControllerHandle {
    public var assignedProject: String? { nil }
    /// Among replicas, the one whose controller this answers for; nil on a single server.
    public func leader() async -> String? { nil }
    public func remoteAccess() async -> RemoteAccess? { nil }
    public func inventory() async -> FleetInventory? { nil }
    public func alerting() async -> AlertingSettings? { nil }
}

/// How much work the controller's reconcile passes are: numbers only; the server's Prometheus
/// registry turns them into metrics.
public struct ControllerMetrics: Sendable, Equatable {
    public var passes = 0
    public var passSeconds = 0.0
    public var lastPassSeconds = 0.0
    /// Executions the last pass read from the store, and of them those its decision reads: the
    /// first grows with the project's history, the second with its fleet.
    public var lastExecutionsRead = 0
    public var lastExecutionsKept = 0

    public init() {}
}
