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
