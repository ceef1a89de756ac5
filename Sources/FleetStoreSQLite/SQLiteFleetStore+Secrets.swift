public import FleetStore
public import Foundation
import GRDB

/// Held apps, kept with the project so that every controller of it (and every replica) sees them.
extension SQLiteFleetStore {
    public func suspendedApps(project: String) async throws -> Set<String> {
        try await read { db in
            Set(try String.fetchAll(db, sql: "SELECT app FROM app_suspension WHERE project = ?", arguments: [project]))
        }
    }

    public func setSuspended(_ suspended: Bool, app: String, project: String, at date: Date) async throws {
        try await write { db in
            if suspended {
                try db.execute(sql: "INSERT OR IGNORE INTO app_suspension (project, app, suspended_at) VALUES (?, ?, ?)",
                               arguments: [project, app, date.timeIntervalSince1970])
            } else {
                try db.execute(sql: "DELETE FROM app_suspension WHERE project = ? AND app = ?", arguments: [project, app])
            }
        }
    }
}

extension SQLiteFleetStore {
    public func approve(_ approval: ApprovalRecord) async throws -> ApprovalRecord {
        try await write { db in
            try db.execute(sql: """
                INSERT OR IGNORE INTO approval (project, app, grp, digest, approved_by, approved_at) VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [approval.project, approval.app, approval.group, approval.digest, approval.approvedBy,
                                 approval.approvedAt.timeIntervalSince1970])
            let row = try Row.fetchOne(db, sql: """
                SELECT approved_by, approved_at FROM approval WHERE project = ? AND app = ? AND grp = ? AND digest = ?
                """, arguments: [approval.project, approval.app, approval.group, approval.digest])
            var kept = approval
            if let row {
                kept.approvedBy = row["approved_by"]
                kept.approvedAt = Date(timeIntervalSince1970: row["approved_at"])
            }
            return kept
        }
    }

    public func approvals(project: String) async throws -> [ApprovalRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: """
                SELECT app, grp, digest, approved_by, approved_at FROM approval WHERE project = ? ORDER BY approved_at, rowid
                """, arguments: [project]).map { row in
                ApprovalRecord(project: project, app: row["app"], group: row["grp"], digest: row["digest"], approvedBy: row["approved_by"],
                               approvedAt: Date(timeIntervalSince1970: row["approved_at"]))
            }
        }
    }
}

/// Sealed secrets: the store keeps bytes it cannot open (the server holds the key).
extension SQLiteFleetStore {
    public func putSecret(_ secret: SecretRecord) async throws -> SecretRecord {
        try await write { db in
            var secret = secret
            let current = try Int.fetchOne(db, sql: "SELECT version FROM secret WHERE project = ? AND name = ?",
                                           arguments: [secret.project, secret.name]) ?? 0
            secret.version = current + 1
            try db.execute(sql: """
                INSERT INTO secret (project, name, sealed, version, updated_at, updated_by) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT (project, name) DO UPDATE SET sealed = excluded.sealed, version = excluded.version,
                    updated_at = excluded.updated_at, updated_by = excluded.updated_by
                """, arguments: [secret.project, secret.name, Data(secret.sealed), secret.version,
                                 secret.updatedAt.timeIntervalSince1970, secret.updatedBy])
            return secret
        }
    }

    public func secret(project: String, name: String) async throws -> SecretRecord? {
        try await read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM secret WHERE project = ? AND name = ?", arguments: [project, name]).map(Self.secret)
        }
    }

    public func secrets(project: String) async throws -> [SecretRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM secret WHERE project = ? ORDER BY name", arguments: [project]).map(Self.secret)
        }
    }

    public func deleteSecret(project: String, name: String) async throws -> Bool {
        try await write { db in
            try db.execute(sql: "DELETE FROM secret WHERE project = ? AND name = ?", arguments: [project, name])
            return db.changesCount > 0
        }
    }

    private static func secret(_ row: Row) -> SecretRecord {
        SecretRecord(project: row["project"], name: row["name"], sealed: Array((row["sealed"] as Data?) ?? Data()), version: row["version"],
                     updatedAt: Date(timeIntervalSince1970: row["updated_at"]), updatedBy: row["updated_by"])
    }
}
