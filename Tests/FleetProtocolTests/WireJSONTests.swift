import FleetProtocol
import Foundation
import Testing

@Suite struct WireJSONTests {
    @Test func parsesTheGrammar() throws {
        let text = #" { "a" : [1, -2, 3.5, 1e3, -0, true, false, null], "b\u00e9\n\"" : {"c": "\ud83d\ude80 tab\t/\/"} } "#
        let value = try #require(WireJSON.parse(Array(text.utf8)))
        #expect(value == .object([
            .init("a", .array([.number(1, integer: 1), .number(-2, integer: -2), .number(3.5, integer: nil),
                               .number(1000, integer: nil), .number(0, integer: 0), .bool(true), .bool(false), .null])),
            .init("bé\n\"", .object([.init("c", .string("🚀 tab\t//"))])),
        ]))
        #expect(WireJSON.parse(Array("9223372036854775807".utf8)) == .number(9.223372036854775807e18, integer: Int64.max))
        #expect(WireJSON.parse(Array("18446744073709551616".utf8)) == .number(1.8446744073709552e19, integer: nil))
    }

    /// Each of these is refused by the parser and, as a cross-check, by JSONSerialization — except
    /// trailing commas and overflowing numbers, which Foundation lets through and RFC 8259 does not.
    static let invalid: [String] = [
        "", " ", "{", "}", "[1,]", "{\"a\":1,}", "{'a':1}", "01", "1.", ".5", "1e", "-", "+1", "NaN", "Infinity",
        "\"unterminated", "\"tab\there\"", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00\"", "[1 2]", "{\"a\" 1}",
        "{\"a\":1} x", "tru", "nulls", "[", "[[]", "{\"a\":}", "1e999",
    ]

    @Test(arguments: invalid)
    func refusesWhatIsNotJSON(_ text: String) {
        #expect(WireJSON.parse(Array(text.utf8)) == nil, "\(text)")
        #expect((try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) == nil
            || ["1e999", "[1,]", "{\"a\":1,}"].contains(text), "\(text)")
    }

    @Test func refusesInvalidUTF8AndDeepNesting() {
        #expect(WireJSON.parse([UInt8(ascii: "\""), 0xC3, 0x28, UInt8(ascii: "\"")]) == nil)
        #expect(WireJSON.parse(Array((String(repeating: "[", count: 64) + String(repeating: "]", count: 64)).utf8)) != nil)
        #expect(WireJSON.parse(Array((String(repeating: "[", count: 65) + String(repeating: "]", count: 65)).utf8)) == nil)
    }

    /// No store keeps U+0000 (PostgreSQL's text cannot): a device's report holding one is refused
    /// whole, instead of failing the batch of other devices' reports it is committed with.
    @Test func refusesTheNullCharacter() {
        #expect(WireJSON.parse(Array(#"{"reportID":"a\u0000b"}"#.utf8)) == nil)
        #expect(WireJSON.parse(Array(#"{"a\u0000":1}"#.utf8)) == nil)
        #expect(WireJSON.parse(Array(#"{"reportID":"a\u0001b"}"#.utf8)) != nil)
    }

    static func randomHeartbeat(_ generator: inout some RandomNumberGenerator) -> Heartbeat {
        func maybe<T>(_ make: () -> T) -> T? { Bool.random(using: &generator) ? make() : nil }
        let words = ["/", "/data", "nginx", "a\"quote", "back\\slash", "new\nline", "ünï", "🚀", "\u{01}"]
        func word() -> String { words.randomElement(using: &generator)! + String(Int.random(in: 0..<100, using: &generator)) }
        return Heartbeat(
            reportID: word(),
            sentAtMilliseconds: maybe { Int64.random(in: 0...Int64.max, using: &generator) },
            cpuPercent: maybe { [0, 100, 12.5, 33.333333333333336, 0.1][Int.random(in: 0..<5, using: &generator)] },
            memory: maybe { .init(usedBytes: Int64.random(in: 0...1 << 40, using: &generator), totalBytes: 1 << 40) },
            disks: maybe { (0..<Int.random(in: 0...3, using: &generator)).map { _ in .init(mount: word(), usedBytes: 5, totalBytes: 9) } },
            uptimeSeconds: maybe { Int64.random(in: 0...1 << 32, using: &generator) },
            load: maybe { [0.1, 1.25, 3] },
            processes: maybe { [.init(name: word(), running: Bool.random(using: &generator))] },
            custom: maybe { Dictionary((0..<3).map { _ in (word(), word()) }, uniquingKeysWith: { first, _ in first }) },
            apps: maybe {
                Dictionary([(word(), InstalledApp(version: "2.4.1")), (word(), InstalledApp(version: word(), digest: word()))],
                           uniquingKeysWith: { first, _ in first })
            },
            agentVersion: maybe { word() },
            lock: maybe { .init(reason: word(), untilMilliseconds: maybe { Int64.random(in: 0...1 << 45, using: &generator) }) })
    }

    /// The wire forms and Codable agree both ways, byte for byte with sorted keys.
    @Test func heartbeatAgreesWithCodable() throws {
        var generator = SystemRandomNumberGenerator()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for _ in 0..<300 {
            let heartbeat = Self.randomHeartbeat(&generator)
            let wire = heartbeat.wireJSON()
            #expect(try JSONDecoder().decode(Heartbeat.self, from: Data(wire.utf8)) == heartbeat)
            let codable = try encoder.encode(heartbeat)
            #expect(try Heartbeat.decode(wire: codable) == heartbeat)
            #expect(wire == String(decoding: codable, as: UTF8.self))
            #expect(try JSONSerialization.jsonObject(with: Data(wire.utf8)) as? NSDictionary
                == JSONSerialization.jsonObject(with: codable) as? NSDictionary)
        }
    }

    @Test(arguments: [
        (#"{"cpuPercent":1}"#, "reportID", "'reportID' is required"),
        (#"{"reportID":null}"#, "reportID", "'reportID' must not be null"),
        (#"{"reportID":7}"#, "reportID", "'reportID' has the wrong type"),
        (#"{"reportID":"r","uptimeSeconds":1.5}"#, "uptimeSeconds", "'uptimeSeconds' has the wrong type"),
        (#"{"reportID":"r","disks":[{"mount":"/","usedBytes":1,"totalBytes":2},{"mount":"/x","usedBytes":1}]}"#,
         "disks[1].totalBytes", "'disks[1].totalBytes' is required"),
        (#"{"reportID":"r","apps":{"web":{"version":"1","colour":"red"}}}"#, "apps.web.colour", "unknown field 'apps.web.colour'"),
        (#"{"reportID":"r","custom":{"k":1}}"#, "custom.k", "'custom.k' has the wrong type"),
        (#"{"reportID":"r","processes":[{"name":"x","running":"yes"}]}"#, "processes[0].running", "'processes[0].running' has the wrong type"),
        (#"{"reportID":"r","extra":true}"#, "extra", "unknown field 'extra'"),
        (#"{"reportID":"r","sentAtMilliseconds":-9223372036854775809}"#, "sentAtMilliseconds", "'sentAtMilliseconds' has the wrong type"),
        (#"{"reportID":"r","sentAtMilliseconds":9223372036854775808}"#, "sentAtMilliseconds", "'sentAtMilliseconds' has the wrong type"),
        (#"{"reportID":"r","uptimeSeconds":9007199254740993.0}"#, "uptimeSeconds", "'uptimeSeconds' has the wrong type"),
        (#"["reportID"]"#, "", "'' has the wrong type"),
        (#"{"reportID":"r""#, "", "the body is not valid JSON"),
    ])
    func heartbeatErrorsNameTheField(_ testCase: (String, String, String)) {
        #expect(throws: WireDecodingError(field: testCase.1, message: testCase.2)) {
            try Heartbeat.decode(wire: Array(testCase.0.utf8))
        }
    }

    /// The agent slices its output by the count a server acknowledges: a negative one (from a
    /// hostile or broken server) once crashed it, killing the step it was running.
    @Test func anAcknowledgementWithANegativeCountIsRefused() throws {
        #expect(throws: WireDecodingError.self) {
            try RemoteCommandAcknowledgement.decode(wire: Array(#"{"outputBytes":-1,"ended":false}"#.utf8))
        }
        #expect(try RemoteCommandAcknowledgement.decode(wire: Array(#"{"outputBytes":0,"ended":true}"#.utf8)).ended)
    }

    @Test func integralDoublesAreIntegersAndNullsAreAbsent() throws {
        let heartbeat = try Heartbeat.decode(wire: Array(#"{"reportID":"r","uptimeSeconds":12.0,"agentVersion":null,"other":null}"#.utf8))
        #expect(heartbeat == Heartbeat(reportID: "r", uptimeSeconds: 12))
        // An integer written plainly is exact to Int64's ends.
        let largest = try Heartbeat.decode(wire: Array(#"{"reportID":"r","uptimeSeconds":9223372036854775807}"#.utf8))
        #expect(largest.uptimeSeconds == .max)
    }
}

/// Every type the agent sends or receives reads and writes the same JSON as its Codable form.
@Suite struct WireFormsAgreeWithCodable {
    static let step = AssignedStep(name: "fetch \"it\"", kind: .download, url: "https://a/b", sha256: String(repeating: "a", count: 64),
                                   destination: "/opt/x", timeoutSeconds: 30, retries: 2, onFailure: "rollback", idempotent: true)

    func roundTrip<T: Codable & Equatable & WireDecodable & WireEncodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let codable = try encoder.encode(value)
        #expect(try T.decode(wire: codable) == value)
        #expect(try JSONDecoder().decode(T.self, from: Data(value.wireJSON().utf8)) == value)
        #expect(value.wireJSON() == String(decoding: codable, as: UTF8.self))
    }

    @Test func eachType() throws {
        try roundTrip(EnrollmentRequest(token: "t", hardwareID: "h", deviceSecret: "s", name: "n", tags: ["a": "b"], attributes: ["arch": "x86_64"]))
        try roundTrip(EnrollmentRequest(token: "t", hardwareID: "h", deviceSecret: "s", claimCode: "c0de"))
        try roundTrip(EnrollmentResponse(deviceID: "d", project: "p", deviceToken: "jwt", heartbeatIntervalSeconds: 25))
        try roundTrip(Self.step)
        try roundTrip(Assignment(executionID: "e", deploymentID: "dep", app: "web", version: "1.2", digest: "abc",
                                 steps: [Self.step, AssignedStep(name: "run", kind: .run, command: "echo hi\nexit 0", timeoutSeconds: 5,
                                                                 retries: 0, onFailure: "continue", idempotent: false)],
                                 rollback: [], artifactAllowlist: ["https://a/"]))
        try roundTrip(StepResult(index: 2, name: "n", status: .failed, rollback: true, attempts: 3, exitCode: 7, outputTail: "line\n"))
        try roundTrip(ExecutionReport(reportID: "r", state: .failed, step: StepResult(index: 0, name: "n", status: .succeeded), message: "why"))
    }

    @Test func serverAnswersAreReadLeniently() throws {
        let list = try AssignmentList.decode(wire: Array(#"{"assignments":[],"newField":1}"#.utf8))
        #expect(list.assignments.isEmpty)
        let error = try ErrorResponse.decode(wire: Array(#"{"error":{"code":"c","message":"m","field":"f","hint":"h"}}"#.utf8))
        #expect(error == ErrorResponse(code: "c", message: "m", field: "f"))
        let ack = try ExecutionReportAcknowledgement.decode(wire: Array(#"{"reportID":"r","accepted":false,"state":"succeeded"}"#.utf8))
        #expect(ack == ExecutionReportAcknowledgement(reportID: "r", accepted: false, state: .succeeded))
    }
}
