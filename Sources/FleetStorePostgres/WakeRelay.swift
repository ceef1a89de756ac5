public import FleetStore
import Foundation
public import Logging
import PostgresNIO
public import ServiceLifecycle

/// What one replica must tell the others at once, through PostgreSQL's NOTIFY, every replica
/// LISTENing on one dedicated connection. Nothing polls the database.
///
/// - Work queued for a device wakes its long-poll on whichever replica holds it. A notification
///   is a hint, never the work itself: the device reads its assignments from the store. While the
///   listening connection is down, long-polls end at their timeout, so nothing is lost, only later.
/// - A standby's controller requests (poll now, an execution ended) reach the leader's controller.
/// - A device deleted or its identity reset (`RegistryEvents`) is forgotten by every replica's
///   device cache, so none lets a revoked token in. When the listening connection was down,
///   events may have been missed: on every (re)connect the whole cache is dropped.
public final class WakeRelay: Service, Sendable {
    public static let channel = "flotilla_wake"
    public static let registryChannel = "flotilla_registry"
    /// PostgreSQL's payload limit is 8,000 bytes; device ids go in chunks under it.
    static let payloadLimit = 7_000

    private let store: PostgresFleetStore
    private let board: AssignmentBoard
    private let registry: RegistryEvents
    private let requests: ControllerRequests
    private let logger: Logger

    public init(store: PostgresFleetStore, board: AssignmentBoard, registry: RegistryEvents = RegistryEvents(),
                requests: ControllerRequests = ControllerRequests(), logger: Logger) {
        self.store = store
        self.board = board
        self.registry = registry
        self.requests = requests
        self.logger = logger
    }

    /// Announces that `devices` have new work (one NOTIFY per chunk of ids).
    public func publish(_ devices: [String]) async {
        for payload in Self.payloads(devices) {
            do {
                try await store.execute("SELECT pg_notify(\(Self.channel), \(payload))")
            } catch {
                logger.warning("cannot announce work to the other replicas; their devices get it at their next poll",
                               metadata: ["error": "\(error)"])
                return
            }
        }
    }

    static func payloads(_ devices: [String]) -> [String] {
        var payloads: [String] = [], current = ""
        for device in devices {
            if !current.isEmpty, current.utf8.count + device.utf8.count + 1 > payloadLimit {
                payloads.append(current)
                current = ""
            }
            current += current.isEmpty ? device : "\n" + device
        }
        if !current.isEmpty { payloads.append(current) }
        return payloads
    }

    /// How often the listening connection is checked: a connection cut without a word (a NAT
    /// forgetting it) would otherwise look alive while nothing arrives.
    static let ping: Duration = .seconds(5)

    /// Relays this replica's notifications and listens for the others', until cancelled.
    public func run() async throws {
        registry.isConnected = false
        await board.relay { [weak self] devices in await self?.publish(devices) }
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                let connection = try await PostgresConnection.connect(configuration: try store.url.connectionConfiguration, id: 1, logger: logger)
                defer { Task { try? await connection.close() } }
                let work = try await connection.listen(Self.channel)
                let registryChanges = try await connection.listen(Self.registryChannel)
                let controllerRequests = try await connection.listen(PostgresControllerRelay.channel)
                // Listening from here: caches are trusted again, and what they held is dropped.
                registry.isConnected = true
                try await cancelWhenGracefulShutdown { [board, registry, requests, logger] in
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            for try await notification in work {
                                await board.wakeHere(notification.payload.split(separator: "\n").map(String.init))
                            }
                        }
                        group.addTask {
                            for try await notification in registryChanges {
                                registry.changed(notification.payload.split(separator: "\n").map(String.init))
                            }
                        }
                        group.addTask {
                            for try await notification in controllerRequests {
                                guard let (request, key) = PostgresControllerRelay.parse(notification.payload) else { continue }
                                await requests.deliver(request, key: key)
                            }
                        }
                        group.addTask {
                            while true {
                                try await Task.sleep(for: Self.ping)
                                try await withDeadline(Self.ping) { _ = try await connection.query("SELECT 1", logger: logger) }
                            }
                        }
                        // Whichever ends first (the connection closed, a ping unanswered) ends all.
                        try await group.next()
                        group.cancelAll()
                    }
                }
                if !Task.isCancelled, !Task.isShuttingDownGracefully {
                    registry.isConnected = false
                    logger.warning("the database's notifications stopped; reconnecting")
                }
            } catch where !Task.isCancelled {
                // Revocations made meanwhile would not be heard: no cache is trusted until back.
                registry.isConnected = false
                logger.warning("lost the database's notifications; devices on this replica wait for their poll timeout until they are back",
                               metadata: ["error": "\(PostgresFleetStore.describe(error))"])
            } catch {
                return
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(2)) }
        }
    }
}
