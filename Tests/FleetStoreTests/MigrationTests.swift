import FleetProtocol
import FleetStore
@testable import FleetStoreSQLite
import Foundation
import GRDB
import Testing

/// A database written by an older release opens in this one with nothing lost.
struct MigrationTests {
    /// One written by a newer release is refused with one sentence, not misread.
    @Test func aDatabaseOfANewerReleaseIsRefused() throws {
        let path = NSTemporaryDirectory() + "flotilla-migration-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        _ = try SQLiteFleetStore(path: path)
        let queue = try DatabaseQueue(path: path)
        try queue.write { try $0.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('2099-01-01 from the future')") }
        try queue.close()
        #expect {
            try SQLiteFleetStore(path: path)
        } throws: { error in
            "\(error)".contains("was migrated by a newer release of flotilla")
        }
    }

    /// Rows whose body dates were JSONEncoder's default (seconds since 2001) read back as the
    /// same instants once the store has moved them to seconds since 1970.
    @Test func bodyDatesFromBefore1970SecondsReadAsTheSameInstants() async throws {
        let path = NSTemporaryDirectory() + "flotilla-migration-\(UUID().uuidString).sqlite"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let created = Date(timeIntervalSince1970: 1_796_000_000.25)
        let updated = Date(timeIntervalSince1970: 1_796_000_321.5)
        let taken = Date(timeIntervalSince1970: 1_796_000_100.125)
        let deployment = DeploymentRecord(id: "dep-1", project: "acme", app: "thermostat", version: "2.5.0", flow: "compose-app", digest: "d1",
                                          parameters: [:], steps: [], rollback: [], artifactAllowlist: [], createdAt: created, createdBy: "test")
        let executions = [
            ExecutionRecord(id: "e-1", deploymentID: "dep-1", deviceID: "d-1", state: .running, updatedAt: updated, takenAt: taken),
            ExecutionRecord(id: "e-2", deploymentID: "dep-1", deviceID: "d-2", updatedAt: updated),
        ]
        // The database as the release before wrote it.
        let old = JSONEncoder()
        old.outputFormatting = .sortedKeys
        old.dateEncodingStrategy = .deferredToDate
        let queue = try DatabaseQueue(path: path)
        try SQLiteFleetStore.migrator.migrate(queue, upTo: "2026-12-03 app suspensions")
        try await queue.write { db in
            try db.execute(sql: "INSERT INTO project (name, created_at) VALUES ('acme', 0)")
            try db.execute(sql: "INSERT INTO deployment (id, project, created_at, aborted, body) VALUES (?, 'acme', ?, 0, ?)",
                           arguments: [deployment.id, created.timeIntervalSince1970, String(decoding: try old.encode(deployment), as: UTF8.self)])
            for execution in executions {
                try db.execute(sql: "INSERT INTO execution (id, deployment_id, device_id, state, body) VALUES (?, ?, ?, ?, ?)",
                               arguments: [execution.id, execution.deploymentID, execution.deviceID, execution.state.rawValue,
                                           String(decoding: try old.encode(execution), as: UTF8.self)])
            }
        }
        try queue.close()

        let store = try SQLiteFleetStore(path: path)
        let read = try #require(try await store.deployment(id: "dep-1"))
        #expect(abs(read.createdAt.timeIntervalSince(created)) < 0.001)
        let stored = try await store.executions(deploymentID: "dep-1")
        #expect(stored.map(\.id) == ["e-1", "e-2"])
        #expect(stored.allSatisfy { abs($0.updatedAt.timeIntervalSince(updated)) < 0.001 })
        #expect(abs(try #require(stored.first?.takenAt).timeIntervalSince(taken)) < 0.001)
        #expect(stored.last?.takenAt == nil)
        let summaries = try await store.executionSummaries(deploymentIDs: ["dep-1"])
        #expect(summaries.allSatisfy { abs($0.updatedAt.timeIntervalSince(updated)) < 0.001 })
        // The summary columns are filled from the bodies of rows written before they were.
        #expect(abs(try #require(summaries.first?.takenAt).timeIntervalSince(taken)) < 0.001)
        #expect(summaries.last?.takenAt == nil)
        #expect(summaries.allSatisfy { !$0.healthPassed })
    }
}
