import FleetProtocol
import FleetStore
import FleetStoreSQLite
import Foundation
import Testing

/// One suite, every store: what the server relies on holds for each implementation.
struct StoreConformanceTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case memory, sqlite
        var testDescription: String { rawValue }

        func make() throws -> any FleetStore {
            switch self {
            case .memory: return MemoryFleetStore()
            case .sqlite: return try SQLiteFleetStore(path: NSTemporaryDirectory() + "flotilla-store-\(UUID().uuidString).sqlite")
            }
        }
    }

    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func device(_ id: String, hardware: String, project: String = "acme") -> DeviceRecord {
        DeviceRecord(id: id, project: project, name: id, hardwareID: hardware, secretHash: "hash-\(id)",
                     reportedTags: ["site": "berlin"], attributes: ["arch": "arm64"], enrolledAt: now)
    }

    func heartbeat(_ device: String, _ report: String, at offset: TimeInterval, version: String = "1.0") -> HeartbeatRecord {
        HeartbeatRecord(deviceID: device, receivedAt: now.addingTimeInterval(offset),
                        report: Heartbeat(reportID: report, cpuPercent: 12.5, memory: .init(usedBytes: 1, totalBytes: 2),
                                          apps: ["thermostat": InstalledApp(version: version)], agentVersion: "0.1.0"))
    }

    @Test(arguments: Kind.allCases)
    func projectsAndTokens(_ kind: Kind) async throws {
        let store = try kind.make()
        try await store.ensureProject("acme", at: now)
        try await store.ensureProject("acme", at: now.addingTimeInterval(60))
        #expect(try await store.projects() == [ProjectRecord(name: "acme", createdAt: now)])

        let token = AccessTokenRecord(id: "t1", kind: .enrollment, project: "acme", group: "canary", secretHash: "abc",
                                      createdAt: now, expiresAt: now.addingTimeInterval(3_600))
        try await store.insertToken(token)
        #expect(try await store.token(id: "t1") == token)
        await #expect(throws: StoreError.self) { try await store.insertToken(token) }
        try await store.revokeToken(id: "t1")
        #expect(try await store.token(id: "t1")?.revoked == true)
        #expect(try await store.tokens(project: "acme").map(\.id) == ["t1"])
        #expect(try await store.token(id: "nope") == nil)
    }

    @Test(arguments: Kind.allCases)
    func theSameHardwareEnrollsAsTheSameDevice(_ kind: Kind) async throws {
        let store = try kind.make()
        let first = try await store.enroll(device("d1", hardware: "serial-1"))
        let again = try await store.enroll(device("d2", hardware: "serial-1"))
        #expect(again.id == first.id)
        let other = try await store.enroll(device("d3", hardware: "serial-2"))
        #expect(other.id == "d3")
        #expect(try await store.devices(project: "acme").map(\.id) == ["d1", "d3"])

        // Once deleted, the hardware enrolls as a new device.
        try await store.deleteDevice(id: "d1")
        #expect(try await store.device(id: "d1")?.deleted == true)
        #expect(try await store.enroll(device("d4", hardware: "serial-1")).id == "d4")
        #expect(try await store.devices(project: "acme").map(\.id) == ["d3", "d4"])
    }

    @Test(arguments: Kind.allCases)
    func heartbeatsAreStoredOnceAndUpdateTheDevice(_ kind: Kind) async throws {
        let store = try kind.make()
        _ = try await store.enroll(device("d1", hardware: "serial-1"))
        let accepted = try await store.recordHeartbeats([
            heartbeat("d1", "r1", at: 10),
            heartbeat("d1", "r2", at: 20, version: "1.1"),
            heartbeat("d1", "r1", at: 30),   // a retry of r1
            heartbeat("ghost", "r1", at: 30), // not a device
        ])
        #expect(accepted == [true, true, false, false])
        #expect(try await store.recordHeartbeats([heartbeat("d1", "r2", at: 40)]) == [false])

        let stored = try await store.heartbeats(deviceID: "d1", limit: 10)
        #expect(stored.map(\.report.reportID) == ["r2", "r1"])
        #expect(stored.first?.report.memory == .init(usedBytes: 1, totalBytes: 2))
        let device = try #require(try await store.device(id: "d1"))
        #expect(device.apps == ["thermostat": InstalledApp(version: "1.1")])
        #expect(device.attributes == ["arch": "arm64", "agentVersion": "0.1.0"])
        #expect(device.lastHeartbeatAt == now.addingTimeInterval(20))

        try await store.pruneHeartbeats(before: now.addingTimeInterval(15))
        #expect(try await store.heartbeats(deviceID: "d1", limit: 10).map(\.report.reportID) == ["r2"])
    }

    @Test(arguments: Kind.allCases)
    func theAuditLogIsPerProjectNewestFirst(_ kind: Kind) async throws {
        let store = try kind.make()
        for (index, project) in ["acme", "other", "acme"].enumerated() {
            try await store.appendAudit(AuditRecord(at: now.addingTimeInterval(Double(index)), project: project, actor: "cli",
                                                    action: "token.create", subject: "t\(index)"))
        }
        #expect(try await store.audit(project: "acme", limit: 10).map(\.subject) == ["t2", "t0"])
        #expect(try await store.audit(project: "acme", limit: 1).map(\.subject) == ["t2"])
    }

    @Test func theSQLiteStoreKeepsItsDataAcrossReopening() async throws {
        let path = NSTemporaryDirectory() + "flotilla-store-\(UUID().uuidString).sqlite"
        do {
            let store = try SQLiteFleetStore(path: path)
            _ = try await store.enroll(device("d1", hardware: "serial-1"))
            _ = try await store.recordHeartbeats([heartbeat("d1", "r1", at: 1)])
        }
        let reopened = try SQLiteFleetStore(path: path)
        #expect(try await reopened.device(id: "d1")?.lastHeartbeatAt == now.addingTimeInterval(1))
        #expect(try await reopened.recordHeartbeats([heartbeat("d1", "r1", at: 2)]) == [false])
    }
}
