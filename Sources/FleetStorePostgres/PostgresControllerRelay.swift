public import FleetStore
import Foundation
public import Logging
import PostgresNIO

/// `ControllerRelay` on the shared database: snapshots in a table, requests by NOTIFY on
/// `flotilla_controller` (which `WakeRelay` listens to and hands to `ControllerRequests`).
public struct PostgresControllerRelay: ControllerRelay {
    public static let channel = "flotilla_controller"
    private let store: PostgresFleetStore
    private let logger: Logger

    public init(store: PostgresFleetStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public func publish(_ snapshot: ControllerSnapshot, key: String) async throws {
        let body = try PostgresFleetStore.json(snapshot)
        try await store.execute("""
            INSERT INTO controller_snapshot (key, body) VALUES (\(key), \(body))
            ON CONFLICT (key) DO UPDATE SET body = excluded.body, published_at = now()
            """)
    }

    public func snapshot(key: String) async throws -> ControllerSnapshot? {
        try await store.rows("SELECT body FROM controller_snapshot WHERE key = \(key)") {
            try PostgresFleetStore.decode(ControllerSnapshot.self, try $0["body"])
        }.first
    }

    public func forward(_ request: ControllerRequest, key: String) async {
        do {
            try await store.execute("SELECT pg_notify(\(Self.channel), \(request.rawValue + "\n" + key))")
        } catch {
            logger.warning("cannot pass a request on to the leading replica; it acts at its next pass",
                           metadata: ["request": "\(request.rawValue)", "error": "\(error)"])
        }
    }

    /// A notification's payload as a request and the controller key it is for.
    static func parse(_ payload: String) -> (ControllerRequest, String)? {
        guard let newline = payload.firstIndex(of: "\n"), let request = ControllerRequest(rawValue: String(payload[..<newline])) else { return nil }
        return (request, String(payload[payload.index(after: newline)...]))
    }
}
