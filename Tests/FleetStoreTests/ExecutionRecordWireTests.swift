import FleetProtocol
import FleetStore
import Foundation
import Testing

/// Stored executions are written by the wire writer, other bodies by `StoredJSON`'s encoder: each
/// must read the other's text, field for field.
struct ExecutionRecordWireTests {
    static let records: [ExecutionRecord] = [
        ExecutionRecord(id: "e1", deploymentID: "dep1", deviceID: "d1", updatedAt: Date(timeIntervalSinceReferenceDate: 786_000_000)),
        ExecutionRecord(id: "e2", deploymentID: "dep1", deviceID: "d-\"quoted\"\n", state: .failed,
                        results: [StepResult(index: 0, name: "fetch", status: .succeeded, attempts: 2, exitCode: 0, outputTail: "ok\n"),
                                  StepResult(index: 0, name: "undo ✓", status: .failed, rollback: true, exitCode: 137, outputTail: nil)],
                        message: "step 'start' failed", updatedAt: Date(timeIntervalSinceReferenceDate: 786_012_345.678_901), revision: 7),
    ]

    @Test(arguments: records)
    func theWireTextIsJSONEncodersText(_ record: ExecutionRecord) throws {
        let foundation = String(decoding: try StoredJSON.encoder().encode(record), as: UTF8.self)
        #expect(record.wireJSON() == foundation)
        #expect(try ExecutionRecord.decode(wire: foundation.utf8) == record)
        #expect(try StoredJSON.decoder().decode(ExecutionRecord.self, from: Data(record.wireJSON().utf8)) == record)
        // Dates are seconds since 1970, whatever JSONEncoder's default is.
        let updatedAt = WireJSON.parse(record.wireJSON().utf8)?.members?.first { $0.key == "updatedAt" }?.value
        guard case .number(let seconds, _)? = updatedAt else { Issue.record("updatedAt is not a number"); return }
        #expect(seconds == record.updatedAt.timeIntervalSince1970)
    }

    @Test func aBrokenRowNamesTheField() {
        #expect(throws: WireDecodingError(field: "state", message: "'state' has the wrong type")) {
            try ExecutionRecord.decode(wire: #"{"deploymentID":"d","deviceID":"x","id":"e","results":[],"revision":0,"state":"lost","updatedAt":1}"#.utf8)
        }
    }
}

/// Stored heartbeats are read by the wire reader, and rows written by JSONEncoder (older
/// releases) still read.
struct StoredHeartbeatTests {
    static let report = Heartbeat(reportID: "r-1", sentAtMilliseconds: 1_764_800_000_000, cpuPercent: 12.5,
                                  memory: .init(usedBytes: 100 << 20, totalBytes: 1 << 30), uptimeSeconds: 3_600,
                                  processes: [.init(name: "thermostat", running: true)],
                                  apps: ["thermostat": .init(version: "2.4.1")], agentVersion: "0.1.0")

    @Test func theWireTextAndTheEncodersTextReadTheSame() throws {
        let wire = Self.report.wireJSON()
        let encoded = String(decoding: try StoredJSON.encoder().encode(Self.report), as: UTF8.self)
        #expect(try StoredColumns.heartbeat(wire, decoder: StoredJSON.decoder()) == Self.report)
        #expect(try StoredColumns.heartbeat(encoded, decoder: StoredJSON.decoder()) == Self.report)
        #expect(throws: (any Error).self) { try StoredColumns.heartbeat("{\"not\": \"a heartbeat\"}", decoder: StoredJSON.decoder()) }
    }
}
