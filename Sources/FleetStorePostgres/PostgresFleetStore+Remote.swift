public import FleetProtocol
public import FleetStore
public import Foundation
import Logging
import NIOCore
import PostgresNIO

/// Operators' remote commands: each device's record as JSON, its output in a column of its own.
/// A device's updates lock its row, so two replicas never both append the same bytes.
extension PostgresFleetStore {
    public func queueCommands(_ commands: [RemoteCommandRecord]) async throws {
        let rows = try commands.map { ($0, try Self.json($0)) }
        try await write { connection in
            for (command, body) in rows {
                try await connection.query("""
                    INSERT INTO remote_command (id, batch, project, device_id, state, requested_at, body)
                    VALUES (\(command.id), \(command.batch), \(command.project), \(command.deviceID), \(command.state.rawValue),
                            \(command.requestedAt.timeIntervalSince1970), \(body))
                    """, logger: self.logger)
            }
        }
    }

    public func takeCommands(deviceID: String, kinds: Set<RemoteCommand.Kind>, at date: Date) async throws -> [RemoteCommandRecord] {
        try await write { connection in
            let queued = try await Self.rows(connection, self.logger, """
                SELECT body FROM remote_command WHERE device_id = \(deviceID) AND state = 'queued' ORDER BY requested_at, id FOR UPDATE
                """) { row in try Self.decode(RemoteCommandRecord.self, try row["body"]) }
            var taken: [RemoteCommandRecord] = []
            for command in queued {
                guard kinds.contains(command.command.kind), let record = command.taken(at: date) else { continue }
                try await Self.store(record, append: [], connection, self.logger)
                taken.append(record)
            }
            return taken
        }
    }

    public func updateCommand(id: String, deviceID: String, _ change: @escaping @Sendable (RemoteCommandRecord) -> RemoteCommandUpdate)
        async throws -> RemoteCommandUpdate {
        try await write { connection in
            guard let record = try await Self.rows(connection, self.logger, """
                SELECT body FROM remote_command WHERE id = \(id) AND device_id = \(deviceID) FOR UPDATE
                """, { row in try Self.decode(RemoteCommandRecord.self, try row["body"]) }).first else { return .notFound }
            let update = change(record)
            if case .accepted(let updated, let append) = update { try await Self.store(updated, append: append, connection, self.logger) }
            return update
        }
    }

    public func commands(batch: String, project: String, at date: Date) async throws -> [RemoteCommandRecord] {
        try await rows("SELECT body FROM remote_command WHERE batch = \(batch) AND project = \(project) ORDER BY device_id") { row in
            try Self.decode(RemoteCommandRecord.self, try row["body"]).settled(at: date)
        }
    }

    public func commandOutput(id: String, project: String, offset: Int) async throws -> [UInt8]? {
        guard try await !rows("SELECT 1 FROM remote_command WHERE id = \(id) AND project = \(project)", { _ in () }).isEmpty else { return nil }
        let pieces = try await rows("""
            SELECT start, bytes FROM remote_output WHERE command_id = \(id) AND start + length(bytes) > \(max(0, offset)) ORDER BY start
            """) { row -> (start: Int, bytes: [UInt8]) in
            var bytes: ByteBuffer = try row["bytes"]
            return (Int(try row["start"] as Int32), bytes.readBytes(length: bytes.readableBytes) ?? [])
        }
        return RemoteCommandRecord.join(pieces, from: offset)
    }

    public func openCommands(deviceID: String, at date: Date) async throws -> Int {
        try await rows("SELECT body FROM remote_command WHERE device_id = \(deviceID) AND state IN ('queued', 'running')") { row in
            try Self.decode(RemoteCommandRecord.self, try row["body"]).settled(at: date)
        }.filter { !$0.state.isFinal }.count
    }

    public func pruneCommands(before date: Date) async throws {
        try await write { connection in
            try await connection.query("""
                DELETE FROM remote_output WHERE command_id IN (SELECT id FROM remote_command WHERE requested_at < \(date.timeIntervalSince1970))
                """, logger: self.logger)
            try await connection.query("DELETE FROM remote_command WHERE requested_at < \(date.timeIntervalSince1970)", logger: self.logger)
        }
    }

    private static func store(_ record: RemoteCommandRecord, append: [UInt8], _ connection: PostgresConnection, _ logger: Logger)
        async throws {
        try await connection.query("UPDATE remote_command SET state = \(record.state.rawValue), body = \(try json(record)) WHERE id = \(record.id)",
                                   logger: logger)
        if !append.isEmpty {
            try await connection.query("""
                INSERT INTO remote_output (command_id, start, bytes) VALUES (\(record.id), \(Int32(record.outputBytes - append.count)), \(ByteBuffer(bytes: append)))
                """, logger: logger)
        }
    }
}
