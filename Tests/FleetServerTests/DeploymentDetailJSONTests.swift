import FleetProtocol
@testable import FleetServer
import FleetStore
import Foundation
import Testing

/// `GET /api/v1/deployments/{id}` writes its executions with the wire writer: the same JSON value
/// JSONEncoder (sorted keys, ISO 8601 dates) wrote before, field for field.
struct DeploymentDetailJSONTests {
    @Test func theWireWrittenDetailIsTheEncodersJSON() throws {
        let created = Date(timeIntervalSince1970: 1_796_400_000.75)
        let deployment = DeploymentRecord(id: "dep-1", project: "acme", app: "web", version: "2.0", flow: "install", digest: "abc",
                                          parameters: ["url": "https://example.com/a/b?c=d"], steps: [], rollback: [],
                                          artifactAllowlist: ["https://cdn.example/"], createdAt: created, createdBy: "controller",
                                          purpose: .rollback(abortedDigest: "def"), group: "all")
        var passed = ExecutionRecord(id: "e-1", deploymentID: "dep-1", deviceID: "d-1", state: .succeeded,
                                     results: [StepResult(index: 0, name: "install", status: .succeeded, exitCode: 0,
                                                          outputTail: "path /opt/web\n\"quoted\" \\ tab\there \u{1} é ✓")],
                                     message: "done / ok", updatedAt: created.addingTimeInterval(59.999), takenAt: created.addingTimeInterval(0.5),
                                     revision: 3)
        passed.healthPassedAt = created.addingTimeInterval(3_600.25)
        let queued = ExecutionRecord(id: "e-2", deploymentID: "dep-1", deviceID: "d-2", updatedAt: Date(timeIntervalSince1970: 0))
        let failed = ExecutionRecord(id: "e-3", deploymentID: "dep-1", deviceID: "d-3", state: .failed,
                                     results: [StepResult(index: 1, name: "restore", status: .failed, rollback: true, attempts: 2, exitCode: 7)],
                                     updatedAt: Date(timeIntervalSince1970: 4_102_444_799.9))
        // A hair before a whole second: counted from 1970 it rounds up to it; Foundation's is the second before.
        let edge = ExecutionRecord(id: "e-4", deploymentID: "dep-1", deviceID: "d-4",
                                   updatedAt: Date(timeIntervalSinceReferenceDate: 800_000_000.0.nextDown))
        let detail = DeploymentDetail(deployment: deployment, executions: [passed, queued, failed, edge])

        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        let before = try JSONSerialization.jsonObject(with: try encoder.encode(detail)) as? NSDictionary
        let written = try JSONBody.bytes(detail)
        let after = try JSONSerialization.jsonObject(with: Data(written)) as? NSDictionary
        #expect(before != nil && after == before, "\(String(decoding: written, as: UTF8.self))")
        // Dates as the API has always given them.
        let text = String(decoding: written, as: UTF8.self)
        #expect(text.contains(#""updatedAt":"2026-12-04T16:01:00Z""#))
        #expect(text.contains(#""updatedAt":"1970-01-01T00:00:00Z""#))
        #expect(text.contains(#""updatedAt":"2099-12-31T23:59:59Z""#))
        #expect(text.contains(#""updatedAt":"2026-05-09T06:13:19Z""#))
        // And it reads back as the record it was, to the second.
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let read = try decoder.decode(DeploymentDetail.self, from: Data(written))
        #expect(read.executions.map(\.id) == ["e-1", "e-2", "e-3", "e-4"])
        #expect(read.executions[0].results == passed.results)
        #expect(read.executions[0].healthPassedAt == Date(timeIntervalSince1970: (passed.healthPassedAt!.timeIntervalSince1970).rounded(.down)))
    }
}
