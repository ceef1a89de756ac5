public import FleetProtocol
public import FleetStore
public import Foundation
import GRDB

/// Operators' remote commands: each device's record as JSON, its output in a column of its own.
extension SQLiteFleetStore {
    public func queueCommands(_ commands: [RemoteCommandRecord]) async throws {
        let rows = try commands.map { ($0, try Self.json($0)) }
        try await write { db in
            for (command, body) in rows {
                try db.execute(sql: """
                    INSERT INTO remote_command (id, batch, project, device_id, state, requested_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [command.id, command.batch, command.project, command.deviceID, command.state.rawValue,
                                     command.requestedAt.timeIntervalSince1970, body])
            }
        }
    }

    public func takeCommands(deviceID: String, kinds: Set<RemoteCommand.Kind>, at date: Date) async throws -> [RemoteCommandRecord] {
        try await write { db in
            let queued = try String.fetchAll(db, sql: """
                SELECT body FROM remote_command WHERE device_id = ? AND state = 'queued' ORDER BY requested_at, id
                """, arguments: [deviceID]).map { try Self.decode(RemoteCommandRecord.self, $0) }
            return try queued.compactMap { command in
                guard kinds.contains(command.command.kind), let taken = command.taken(at: date) else { return nil }
                try Self.store(taken, append: [], db)
                return taken
            }
        }
    }

    public func updateCommand(id: String, deviceID: String, _ change: @escaping @Sendable (RemoteCommandRecord) -> RemoteCommandUpdate)
        async throws -> RemoteCommandUpdate {
        try await write { db in
            guard let body = try String.fetchOne(db, sql: "SELECT body FROM remote_command WHERE id = ? AND device_id = ?",
                                                 arguments: [id, deviceID]) else { return .notFound }
            let update = change(try Self.decode(RemoteCommandRecord.self, body))
            if case .accepted(let record, let append) = update { try Self.store(record, append: append, db) }
            return update
        }
    }

    public func commands(batch: String, project: String, at date: Date) async throws -> [RemoteCommandRecord] {
        try await read { db in
            try String.fetchAll(db, sql: "SELECT body FROM remote_command WHERE batch = ? AND project = ? ORDER BY device_id",
                                arguments: [batch, project]).map { try Self.decode(RemoteCommandRecord.self, $0).settled(at: date) }
        }
    }

    public func commandOutput(id: String, project: String, offset: Int) async throws -> [UInt8]? {
        try await read { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM remote_command WHERE id = ? AND project = ?", arguments: [id, project]) != nil else {
                return nil
            }
            let pieces = try Row.fetchAll(db, sql: """
                SELECT start, bytes FROM remote_output WHERE command_id = ? AND start + length(bytes) > ? ORDER BY start
                """, arguments: [id, max(0, offset)])
            return RemoteCommandRecord.join(pieces.map { (start: $0["start"] as Int, bytes: [UInt8]($0["bytes"] as Data)) }, from: offset)
        }
    }

    public func openCommands(deviceID: String, at date: Date) async throws -> Int {
        try await read { db in
            try String.fetchAll(db, sql: "SELECT body FROM remote_command WHERE device_id = ? AND state IN ('queued', 'running')",
                                arguments: [deviceID])
                .filter { !(try Self.decode(RemoteCommandRecord.self, $0).settled(at: date).state.isFinal) }.count
        }
    }

    public func pruneCommands(before date: Date) async throws {
        try await write { db in
            try db.execute(sql: """
                DELETE FROM remote_output WHERE command_id IN (SELECT id FROM remote_command WHERE requested_at < ?)
                """, arguments: [date.timeIntervalSince1970])
            try db.execute(sql: "DELETE FROM remote_command WHERE requested_at < ?", arguments: [date.timeIntervalSince1970])
        }
    }

    private static func store(_ record: RemoteCommandRecord, append: [UInt8], _ db: Database) throws {
        try db.execute(sql: "UPDATE remote_command SET state = ?, body = ? WHERE id = ?",
                       arguments: [record.state.rawValue, try json(record), record.id])
        if !append.isEmpty {
            try db.execute(sql: "INSERT INTO remote_output (command_id, start, bytes) VALUES (?, ?, ?)",
                           arguments: [record.id, record.outputBytes - append.count, Data(append)])
        }
    }
}
