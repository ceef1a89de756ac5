public import FleetProtocol
public import FleetStore
public import Foundation
import GRDB

/// Alerts: one row per rule and device, the record as JSON, changed only from the version (and
/// start) read: a row removed and made again starts at version 1 again, and its `since` tells
/// the two apart.
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

    public func saveAlert(_ record: AlertRecord, replacing current: AlertRecord?) async throws -> AlertRecord? {
        let stored = { var next = record; next.version = (current?.version ?? 0) + 1; return next }()
        let body = try Self.json(stored)
        return try await write { db in
            guard let current else {
                try db.execute(sql: """
                    INSERT INTO alert (project, rule, device_id, version, since, state, resolved_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT DO NOTHING
                    """, arguments: [record.project, record.rule, record.device, stored.version, stored.since.timeIntervalSince1970,
                                     stored.state.rawValue, stored.resolvedAt?.timeIntervalSince1970, body])
                return db.changesCount == 1 ? stored : nil
            }
            try db.execute(sql: """
                UPDATE alert SET version = ?, since = ?, state = ?, resolved_at = ?, body = ?
                WHERE project = ? AND rule = ? AND device_id = ? AND version = ? AND since = ?
                """, arguments: [stored.version, stored.since.timeIntervalSince1970, stored.state.rawValue,
                                 stored.resolvedAt?.timeIntervalSince1970, body, current.project, current.rule, current.device,
                                 current.version, current.since.timeIntervalSince1970])
            return db.changesCount == 1 ? stored : nil
        }
    }

    public func removeAlert(_ record: AlertRecord) async throws -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM alert WHERE project = ? AND rule = ? AND device_id = ? AND version = ? AND since = ?",
                           arguments: [record.project, record.rule, record.device, record.version, record.since.timeIntervalSince1970])
            return db.changesCount == 1
        }
    }

    public func pruneAlerts(resolvedBefore date: Date) async throws {
        try await write { db in
            try db.execute(sql: "DELETE FROM alert WHERE state = 'resolved' AND resolved_at < ?", arguments: [date.timeIntervalSince1970])
        }
    }
}
