public import FleetProtocol
public import FleetStore
public import Foundation
import GRDB

/// Alerts: one row per rule and device, the record as JSON, changed only from the version read.
extension SQLiteFleetStore {
    public func alerts(project: String) async throws -> [AlertRecord] {
        try await read { db in
            try String.fetchAll(db, sql: "SELECT body FROM alert WHERE project = ? ORDER BY rule, device_id", arguments: [project])
                .map { try Self.decode(AlertRecord.self, $0) }
        }
    }

    public func alerts(deviceID: String) async throws -> [AlertRecord] {
        try await read { db in
            try String.fetchAll(db, sql: "SELECT body FROM alert WHERE device_id = ? ORDER BY rule, project", arguments: [deviceID])
                .map { try Self.decode(AlertRecord.self, $0) }
        }
    }

    public func saveAlert(_ record: AlertRecord) async throws -> AlertRecord? {
        let stored = { var next = record; next.version += 1; return next }()
        let body = try Self.json(stored)
        return try await write { db in
            if record.version == 0 {
                try db.execute(sql: """
                    INSERT INTO alert (project, rule, device_id, version, state, resolved_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT DO NOTHING
                    """, arguments: [record.project, record.rule, record.device, stored.version, stored.state.rawValue,
                                     stored.resolvedAt?.timeIntervalSince1970, body])
            } else {
                try db.execute(sql: """
                    UPDATE alert SET version = ?, state = ?, resolved_at = ?, body = ?
                    WHERE project = ? AND rule = ? AND device_id = ? AND version = ?
                    """, arguments: [stored.version, stored.state.rawValue, stored.resolvedAt?.timeIntervalSince1970, body,
                                     record.project, record.rule, record.device, record.version])
            }
            return db.changesCount == 1 ? stored : nil
        }
    }

    public func removeAlert(project: String, rule: String, device: String, version: Int) async throws -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM alert WHERE project = ? AND rule = ? AND device_id = ? AND version = ?",
                           arguments: [project, rule, device, version])
            return db.changesCount == 1
        }
    }

    public func pruneAlerts(resolvedBefore date: Date) async throws {
        try await write { db in
            try db.execute(sql: "DELETE FROM alert WHERE state = 'resolved' AND resolved_at < ?", arguments: [date.timeIntervalSince1970])
        }
    }
}
