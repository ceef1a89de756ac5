public import FleetProtocol
public import FleetStore
public import Foundation
import Logging
import PostgresNIO

/// Alerts: one row per rule and device, the record as JSON. Replicas change a row only from the
/// version and start they read (`WHERE version = … AND since = …`), so two that saw the same
/// heartbeat's effect never both notify, and a row removed and made again is not taken for the old.
extension PostgresFleetStore {
    public func alerts(project: String) async throws -> [AlertRecord] {
        try await rows("SELECT body FROM alert WHERE project = \(project) ORDER BY rule, device_id") { row in
            try Self.decode(AlertRecord.self, try row["body"])
        }
    }

    public func alerts(deviceID: String) async throws -> [AlertRecord] {
        try await rows("SELECT body FROM alert WHERE device_id = \(deviceID) ORDER BY rule, project") { row in
            try Self.decode(AlertRecord.self, try row["body"])
        }
    }

    public func saveAlert(_ record: AlertRecord, replacing current: AlertRecord?) async throws -> AlertRecord? {
        var stored = record
        stored.version = (current?.version ?? 0) + 1
        let body = try Self.json(stored)
        let version = stored.version, since = stored.since.timeIntervalSince1970, state = stored.state.rawValue
        let resolved = stored.resolvedAt?.timeIntervalSince1970
        let changed: [Int] = try await write { connection in
            guard let current else {
                return try await Self.rows(connection, self.logger, """
                    INSERT INTO alert (project, rule, device_id, version, since, state, resolved_at, body)
                    VALUES (\(record.project), \(record.rule), \(record.device), \(version), \(since), \(state), \(resolved), \(body))
                    ON CONFLICT DO NOTHING RETURNING version
                    """) { row in Int(try row["version"] as Int32) }
            }
            return try await Self.rows(connection, self.logger, """
                UPDATE alert SET version = \(version), since = \(since), state = \(state), resolved_at = \(resolved), body = \(body)
                WHERE project = \(current.project) AND rule = \(current.rule) AND device_id = \(current.device)
                  AND version = \(current.version) AND since = \(current.since.timeIntervalSince1970)
                RETURNING version
                """) { row in Int(try row["version"] as Int32) }
        }
        return changed.isEmpty ? nil : stored
    }

    public func removeAlert(_ current: AlertRecord) async throws -> Bool {
        try await write { connection in
            try await !Self.rows(connection, self.logger, """
                DELETE FROM alert WHERE project = \(current.project) AND rule = \(current.rule) AND device_id = \(current.device)
                  AND version = \(current.version) AND since = \(current.since.timeIntervalSince1970) RETURNING 1
                """, { _ in () }).isEmpty
        }
    }

    public func pruneAlerts(resolvedBefore date: Date) async throws {
        try await execute("DELETE FROM alert WHERE state = 'resolved' AND resolved_at < \(date.timeIntervalSince1970)")
    }
}
