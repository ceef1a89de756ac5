public import FleetProtocol
public import Foundation
import Synchronization

/// What a standby replica answers in its controller's place: the leading replica's last word on
/// the same controller (same repository, branch and project), as the leader published it.
public struct ControllerSnapshot: Sendable, Equatable, Codable {
    public struct Target: Sendable, Equatable, Codable {
        public var app: String
        public var group: String
        public var version: String
        public var digest: String
        public var approval: Bool

        public init(app: String, group: String, version: String, digest: String, approval: Bool) {
            self.app = app
            self.group = group
            self.version = version
            self.digest = digest
            self.approval = approval
        }
    }

    public var project: String
    public var apps: [String]
    public var targets: [Target]
    /// The status report as the leader serves it; nil before its first reconcile.
    public var status: String?
    /// The replica that published it.
    public var leader: String
    public var publishedAt: Date
    /// What the commit in force lets operators do on the devices; absent from an older leader (nothing).
    public var remote: RemoteAccess?
    /// The groups and declared tags of the commit in force, for the console; absent from an older leader.
    public var inventory: FleetInventory?
    /// The alert rules and receivers of the commit in force; absent from an older leader (none).
    public var alerting: AlertingSettings?

    public init(project: String, apps: [String], targets: [Target], status: String?, leader: String, publishedAt: Date,
                remote: RemoteAccess? = nil, inventory: FleetInventory? = nil, alerting: AlertingSettings? = nil) {
        self.alerting = alerting
        self.remote = remote
        self.inventory = inventory
        self.project = project
        self.apps = apps
        self.targets = targets
        self.status = status
        self.leader = leader
        self.publishedAt = publishedAt
    }
}

/// What a standby passes on to the leader for one of its controllers.
public enum ControllerRequest: String, Sendable, CaseIterable {
    /// Poll the repository now (a webhook, `flotilla reconcile`, an approval, a suspension).
    case poll
    /// A device finished an execution: the next wave may be due.
    case executionEnded = "ended"
}

/// How replicas share their controllers' state: the leader publishes snapshots and standbys
/// read them; standbys forward requests, and the leader hears them (`ControllerRequests`).
public protocol ControllerRelay: Sendable {
    func publish(_ snapshot: ControllerSnapshot, key: String) async throws
    func snapshot(key: String) async throws -> ControllerSnapshot?
    func forward(_ request: ControllerRequest, key: String) async
}

/// Requests forwarded by standbys, delivered to the controller they name (by key) on whichever
/// replica hears them; each controller acts on them only while its replica leads.
public final class ControllerRequests: Sendable {
    private let handlers = Mutex<[String: @Sendable (ControllerRequest) async -> Void]>([:])

    public init() {}

    public func handle(key: String, _ handler: @escaping @Sendable (ControllerRequest) async -> Void) {
        handlers.withLock { $0[key] = handler }
    }

    public func deliver(_ request: ControllerRequest, key: String) async {
        guard let handler = handlers.withLock({ $0[key] }) else { return }
        await handler(request)
    }
}
