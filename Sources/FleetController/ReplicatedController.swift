public import FleetProtocol
public import FleetStore
import Foundation
public import Logging
public import ServiceLifecycle
import Synchronization

/// A controller on one of several replicas. While this replica leads it is the controller (and
/// publishes what standbys need); on a standby it answers from the leader's last snapshot and
/// passes requests on to the leader. Either way an operator or device may reach any replica.
public final class ReplicatedController: ControllerHandle, Service, Sendable {
    private let local: FleetController
    private let role: any ReplicaRole
    private let relay: any ControllerRelay
    private let store: any FleetStore
    private let logger: Logger
    public let key: String
    /// A standby reads the snapshot at most this often (every execution report asks for scope).
    static let snapshotLifetime: Duration = .seconds(1)
    private let cached = Mutex<(snapshot: ControllerSnapshot?, at: ContinuousClock.Instant)?>(nil)

    public init(_ local: FleetController, role: any ReplicaRole, relay: any ControllerRelay, requests: ControllerRequests,
                store: any FleetStore, logger: Logger) {
        self.local = local
        self.role = role
        self.relay = relay
        self.store = store
        self.logger = logger
        key = local.replicaKey
        requests.handle(key: key) { [role, local] request in
            guard role.isLeading else { return }
            switch request {
            case .poll: await local.requestPoll()
            case .executionEnded: await local.executionEnded()
            }
        }
    }

    /// Runs the controller (only ever called on the leader), and publishes its snapshot when it
    /// changes.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.local.run() }
            group.addTask {
                var published: ControllerSnapshot?
                while !Task.isCancelled, !Task.isShuttingDownGracefully {
                    if var snapshot = await self.local.snapshot(leader: self.role.holder, at: Date()) {
                        snapshot.publishedAt = published?.publishedAt ?? snapshot.publishedAt
                        if snapshot != published {
                            snapshot.publishedAt = Date()
                            do {
                                try await self.relay.publish(snapshot, key: self.key)
                                published = snapshot
                            } catch {
                                self.logger.warning("cannot publish the controller's state for the standby replicas", metadata: ["error": "\(error)"])
                            }
                        }
                    }
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(500)) }
                }
            }
            try await group.next()
            group.cancelAll()
        }
    }

    /// The leader's snapshot, read again at most once a second.
    private func snapshot() async -> ControllerSnapshot? {
        let now = ContinuousClock.now
        if let cached = cached.withLock({ $0 }), now - cached.at < Self.snapshotLifetime { return cached.snapshot }
        let snapshot: ControllerSnapshot?
        do {
            snapshot = try await relay.snapshot(key: key)
        } catch {
            logger.warning("cannot read the leading replica's controller state", metadata: ["error": "\(error)"])
            return nil
        }
        cached.withLock { $0 = (snapshot, now) }
        return snapshot
    }

    public func requestPoll() async {
        if role.isLeading { await local.requestPoll() } else { await relay.forward(.poll, key: key) }
    }

    public func executionEnded() async {
        if role.isLeading { await local.executionEnded() } else { await relay.forward(.executionEnded, key: key) }
    }

    public func statusJSON() async -> [UInt8]? {
        if role.isLeading { return await local.statusJSON() }
        return await snapshot()?.status.map { Array($0.utf8) }
    }

    public func setSuspended(_ suspended: Bool, app: String) async throws {
        if role.isLeading { return try await local.setSuspended(suspended, app: app) }
        guard let project = await snapshot()?.project else { throw StoreError(.notFound, "the controller has not read a commit yet") }
        try await store.setSuspended(suspended, app: app, project: project, at: Date())
        await relay.forward(.poll, key: key)
    }

    public var watchedBranch: String { local.watchedBranch }
    public var assignedProject: String? { local.assignedProject }

    public func metrics() async -> ControllerMetrics { await local.metrics() }

    public func scope() async -> (project: String, apps: [String])? {
        if role.isLeading { return await local.scope() }
        return await snapshot().map { ($0.project, $0.apps) }
    }

    public func target(app: String, group: String) async -> (version: String, digest: String, approval: Bool)? {
        if role.isLeading { return await local.target(app: app, group: group) }
        return await snapshot()?.targets.first { $0.app == app && $0.group == group }.map { ($0.version, $0.digest, $0.approval) }
    }

    public func inventory() async -> FleetInventory? {
        if role.isLeading { return await local.inventory() }
        return await snapshot()?.inventory
    }

    public func alerting() async -> AlertingSettings? {
        if role.isLeading { return await local.alerting() }
        return await snapshot()?.alerting
    }

    public func remoteAccess() async -> RemoteAccess? {
        if role.isLeading { return await local.remoteAccess() }
        return await snapshot()?.remote
    }

    /// Which replica published what this one serves (nil while this one leads or none has).
    public func leader() async -> String? {
        role.isLeading ? role.holder : await snapshot()?.leader
    }
}
