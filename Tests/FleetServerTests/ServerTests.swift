import Crypto
import FleetProtocol
@testable import FleetServer
import FleetStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// The agent and operator APIs through the real router, against an in-memory store.
struct ServerTests {
    let store = MemoryFleetStore()
    let configuration: ServerConfiguration = {
        var configuration = ServerConfiguration(maximumBodyBytes: 4_096, batchMilliseconds: 5)
        configuration.maximumOperatorBodyBytes = 16_384
        configuration.longPollSeconds = 3
        return configuration
    }()

    /// A server with one project, an enrollment token and an operator token, and a client.
    func withServer(longPollSeconds: Double? = nil, maximumLongPolls: Int? = nil, operatorBodyLimit: Int? = nil, metricsReadBytes: Int? = nil,
                    deviceRequests: DeviceRequestAllowance? = .standard, enrollments: DeviceRequestAllowance? = .enrollments,
                    controller: (any ControllerHandle)? = nil,
                    controllers: ControllerSet? = nil, secrets: SecretBox? = SecretBox(key: SymmetricKey(size: .bits256)),
                    _ body: @Sendable (any TestClientProtocol, Tokens) async throws -> Void) async throws {
        let keyFile = NSTemporaryDirectory() + "flotilla-key-\(UUID().uuidString).pem"
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        let deviceTokens = try await DeviceTokens.load(keyFile: keyFile)
        let now = Date()
        let enrollment = AccessTokens.make(kind: .enrollment, project: "acme", group: "canary", now: now)
        let expired = AccessTokens.make(kind: .enrollment, project: "acme", expiresAt: now.addingTimeInterval(-1), now: now)
        let operatorToken = AccessTokens.make(kind: .operator, project: "acme", now: now)
        let otherOperator = AccessTokens.make(kind: .operator, project: "other", now: now)
        for made in [enrollment, expired, operatorToken, otherOperator] { try await store.insertToken(made.record) }
        var configuration = self.configuration
        if let longPollSeconds { configuration.longPollSeconds = longPollSeconds }
        if let maximumLongPolls { configuration.maximumLongPolls = maximumLongPolls }
        if let operatorBodyLimit { configuration.maximumOperatorBodyBytes = operatorBodyLimit }
        if let metricsReadBytes { configuration.maximumMetricsReadBytes = metricsReadBytes }
        configuration.deviceRequests = deviceRequests
        configuration.enrollments = enrollments
        let app = FleetServer.buildApplication(configuration: configuration, store: store, tokens: deviceTokens,
                                               controllers: controllers ?? ControllerSet(controller.map { [ControllerSet.Entry($0)] } ?? []),
                                               secrets: secrets)
        let tokens = Tokens(enrollment: enrollment.text, expired: expired.text, operator: operatorToken.text, otherOperator: otherOperator.text)
        try await app.test(.router) { client in try await body(JSONClient(raw: client), tokens) }
    }

    /// Sends bodies as `Content-Type: application/json` unless a test says otherwise, as every
    /// real client does; `raw` sends exactly what it is given.
    struct JSONClient: TestClientProtocol {
        let raw: any TestClientProtocol

        func executeRequest(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws -> TestResponse {
            var headers = headers
            if body != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
            return try await raw.executeRequest(uri: uri, method: method, headers: headers, body: body)
        }

        var port: Int? { raw.port }
    }

    /// Waits until the server holds `count` long-polls (`flotilla_long_polls_held` on /metrics).
    func waitUntilHeld(_ client: some TestClientProtocol, _ count: Int) async throws {
        for _ in 0..<3_000 {
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            if String(buffer: metrics.body).split(separator: "\n").contains(where: { $0 == "flotilla_long_polls_held \(count).0" }) { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        Issue.record("the server never held \(count) long-polls")
    }

    struct Tokens: Sendable {
        var enrollment: String
        var expired: String
        var `operator`: String
        var otherOperator: String
    }

    static func json(_ value: some Encodable) throws -> ByteBuffer {
        ByteBuffer(bytes: try JSONEncoder().encode(value))
    }

    static func decode<T: Decodable>(_ type: T.Type, _ response: TestResponse) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(type, from: Data(response.body.readableBytesView))
    }

    static func error(_ response: TestResponse) throws -> ErrorResponse.Detail {
        try decode(ErrorResponse.self, response).error
    }

    func enroll(_ client: some TestClientProtocol, token: String, hardware: String = "serial-1", secret: String? = nil,
                claimCode: String? = nil) async throws -> TestResponse {
        try await client.execute(uri: "/agent/v1/enroll", method: .post,
                                 body: Self.json(EnrollmentRequest(token: token, hardwareID: hardware, deviceSecret: secret ?? "secret-of-\(hardware)-0000",
                                                                   tags: ["site": "berlin"], attributes: ["arch": "arm64"], claimCode: claimCode)))
    }

    @Test func enrollHeartbeatAndSeeTheDeviceThroughTheOperatorAPI() async throws {
        try await withServer { client, tokens in
            let first = try await enroll(client, token: tokens.enrollment)
            #expect(first.status == .created)
            let enrolled = try Self.decode(EnrollmentResponse.self, first)
            #expect(enrolled.project == "acme")
            #expect(enrolled.heartbeatIntervalSeconds == 25)

            // The same hardware enrolling again is the same device.
            let again = try await enroll(client, token: tokens.enrollment)
            #expect(again.status == .ok)
            #expect(try Self.decode(EnrollmentResponse.self, again).deviceID == enrolled.deviceID)

            let beat = Heartbeat(reportID: "r-1", cpuPercent: 7.5, memory: .init(usedBytes: 100, totalBytes: 1_000),
                                 disks: [.init(mount: "/", usedBytes: 5, totalBytes: 10)], load: [0.1, 0.2, 0.3],
                                 apps: ["thermostat": InstalledApp(version: "2.4.1")], agentVersion: "0.1.0")
            let auth: HTTPFields = [.authorization: "Bearer \(enrolled.deviceToken)"]
            let ack = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: auth, body: Self.json(beat))
            #expect(ack.status == .ok)
            #expect(try Self.decode(HeartbeatAcknowledgement.self, ack) == HeartbeatAcknowledgement(reportID: "r-1", accepted: true, heartbeatIntervalSeconds: 25))
            // A retried report is acknowledged but not counted twice.
            let retry = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: auth, body: Self.json(beat))
            #expect(try Self.decode(HeartbeatAcknowledgement.self, retry).accepted == false)
            #expect(try await store.heartbeats(deviceID: enrolled.deviceID, limit: 10).count == 1)

            let operatorAuth: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            let list = try await client.execute(uri: "/api/v1/devices?selector=site%3Dberlin,group%3Dcanary&online=true", method: .get, headers: operatorAuth)
            #expect(list.status == .ok)
            let devices = try Self.decode([String: [OperatorController.DeviceView]].self, list)["devices"] ?? []
            #expect(devices.map(\.id) == [enrolled.deviceID])
            #expect(devices.first?.apps == ["thermostat": InstalledApp(version: "2.4.1")])
            #expect(devices.first?.attributes["agentVersion"] == "0.1.0")
            let byVersion = try await client.execute(uri: "/api/v1/devices?app=thermostat&version=2.5.0", method: .get, headers: operatorAuth)
            #expect((try Self.decode([String: [OperatorController.DeviceView]].self, byVersion)["devices"] ?? []).isEmpty)

            let detail = try await client.execute(uri: "/api/v1/devices/\(enrolled.deviceID)", method: .get, headers: operatorAuth)
            #expect(try Self.decode(OperatorController.DeviceDetail.self, detail).heartbeats == [beat])
            // The secret's hash never leaves the server.
            #expect(!String(buffer: detail.body).contains("secret"))
        }
    }

    /// A compromised device sending without pause is answered 429 with Retry-After once past an
    /// allowance — before its body is read, and with nothing stored — on every route it can
    /// call, each kind of request counted apart; another device is not held back by it, and the
    /// enrollment token (on every device) enrolls no more devices than its own allowance.
    @Test func aDevicePastItsAllowanceIsRefusedBeforeItsBodyIsRead() async throws {
        let allowance = DeviceRequestAllowance(perSecond: 0.001, burst: 2)
        try await withServer(deviceRequests: allowance, enrollments: allowance) { client, tokens in
            let flooding = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let other = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment, hardware: "serial-2"))
            let third = try await enroll(client, token: tokens.enrollment, hardware: "serial-3")
            #expect(third.status == .tooManyRequests)
            #expect(try Self.error(third).message.hasPrefix("this enrollment token was used for more than its allowance of enrollments"))
            let auth: HTTPFields = [.authorization: "Bearer \(flooding.deviceToken)"]
            for index in 0..<2 {
                let ack = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: auth, body: Self.json(Heartbeat(reportID: "r-\(index)")))
                #expect(ack.status == .ok)
            }
            let refused = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: auth, body: Self.json(Heartbeat(reportID: "r-2")))
            #expect(refused.status == .tooManyRequests)
            #expect(try Self.error(refused).code == "rate_limited")
            // A token a thousand seconds, less what came back while the test ran (on a busy machine, seconds).
            #expect(refused.headers[.retryAfter].flatMap { Int($0) }.map { (900...1_000).contains($0) } == true, "\(refused.headers)")
            // Refused before the body is read: an oversized one is not what it is answered for.
            let oversized = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: auth,
                                                     body: ByteBuffer(string: String(repeating: " ", count: 10_000)))
            #expect(oversized.status == .tooManyRequests)
            // Reports count with heartbeats.
            let report = try await client.execute(uri: "/agent/v1/executions/exe-none/report", method: .post, headers: auth,
                                                  body: Self.json(ExecutionReport(reportID: "p-1", state: .running)))
            #expect(report.status == .tooManyRequests)
            // Remote output and results have an allowance of their own; so do polls.
            func output() async throws -> HTTPResponse.Status {
                try await client.execute(uri: "/agent/v1/commands/cmd-none/output?offset=0", method: .post,
                                         headers: auth.merging([.contentType: "application/octet-stream"]), body: ByteBuffer(string: "x")).status
            }
            #expect(try await output() == .notFound)
            #expect(try await output() == .notFound)
            let result = try await client.execute(uri: "/agent/v1/commands/cmd-none/result", method: .post, headers: auth,
                                                  body: ByteBuffer(string: #"{"exitCode":0,"outputBytes":0}"#))
            #expect(result.status == .tooManyRequests)
            for expected in [HTTPResponse.Status.ok, .ok, .tooManyRequests] {
                #expect(try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: auth).status == expected)
            }
            #expect(try await store.heartbeats(deviceID: flooding.deviceID, limit: 10).map(\.report.reportID).sorted() == ["r-0", "r-1"])
            // Another device is let through; an unauthenticated flood takes nothing from anyone's allowance.
            for _ in 0..<5 {
                #expect(try await client.execute(uri: "/agent/v1/heartbeat", method: .post, body: Self.json(Heartbeat(reportID: "x"))).status == .unauthorized)
            }
            let ack = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: [.authorization: "Bearer \(other.deviceToken)"],
                                               body: Self.json(Heartbeat(reportID: "o-1")))
            #expect(ack.status == .ok)
            let metrics = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(metrics.split(separator: "\n").contains("flotilla_device_requests_limited_total 6"), "\(metrics)")
        }
    }

    /// The enrollment token is on every device: with it and a known hardware id, an attacker
    /// must not become that device.
    @Test func enrollingAsAKnownDeviceNeedsItsSecretAndAnOperatorCanResetIt() async throws {
        try await withServer { client, tokens in
            let enrolled = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let impostor = try await enroll(client, token: tokens.enrollment, secret: "a-guessed-secret-0123")
            #expect(impostor.status == .forbidden)
            #expect(try Self.error(impostor).code == "device_secret_mismatch")
            #expect(!String(buffer: impostor.body).contains("deviceToken"))
            #expect(try Self.error(impostor).message.contains("flotilla devices reset-identity \(enrolled.deviceID)"))
            #expect(try await store.audit(project: "acme", limit: 1).first?.action == "device.reenroll.refused")
            // The device itself, with its own secret, enrolls again as itself.
            let again = try await enroll(client, token: tokens.enrollment)
            #expect(again.status == .ok)
            #expect(try Self.decode(EnrollmentResponse.self, again).deviceID == enrolled.deviceID)

            // Another project's operator cannot reset it; this project's can.
            let path = "/api/v1/devices/\(enrolled.deviceID)/reset-identity"
            let foreign = try await client.execute(uri: path, method: .post, headers: [.authorization: "Bearer \(tokens.otherOperator)"])
            #expect(foreign.status == .notFound)
            let operatorAuth: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            for bad in [#"{"claimExpiresInSeconds": 59}"#, #"{"claimExpiresInSeconds": 9223372036854775807}"#] {
                let refused = try await client.execute(uri: path, method: .post, headers: operatorAuth, body: ByteBuffer(string: bad))
                #expect(refused.status == .badRequest)
                #expect(try Self.error(refused).field == "claimExpiresInSeconds")
            }
            let beat: HTTPFields = [.authorization: "Bearer \(enrolled.deviceToken)"]
            #expect(try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: beat,
                                             body: Self.json(Heartbeat(reportID: "before"))).status == .ok)
            let reset = try await client.execute(uri: path, method: .post, headers: operatorAuth)
            #expect(reset.status == .ok)
            let code = try Self.decode(ResetIdentityResponse.self, reset).claimCode
            #expect(try await store.audit(project: "acme", limit: 1).first?.action == "device.reset-identity")
            // Every token the device held is refused at once, the re-enrolled one included.
            let revoked = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: beat,
                                                   body: Self.json(Heartbeat(reportID: "after")))
            #expect(revoked.status == .unauthorized)
            #expect(try Self.error(revoked).code == "token_revoked")
            // Whoever enrolls first after the reset does not become the device: only the claim code does.
            let first = try await enroll(client, token: tokens.enrollment, secret: "an-attackers-secret-0123")
            #expect(first.status == .forbidden)
            #expect(try Self.error(first).code == "claim_code_required")
            let guessed = try await enroll(client, token: tokens.enrollment, secret: "an-attackers-secret-0123",
                                           claimCode: String(repeating: "0", count: 32))
            #expect(try Self.error(guessed).code == "claim_code_mismatch")
            #expect(try await store.audit(project: "acme", limit: 1).first?.action == "device.reenroll.refused")
            // The replaced board enrolls with the code and its new secret, and keeps the device's place.
            let replaced = try await enroll(client, token: tokens.enrollment, secret: "the-new-boards-secret-99", claimCode: code)
            #expect(replaced.status == .ok)
            let claimed = try Self.decode(EnrollmentResponse.self, replaced)
            #expect(claimed.deviceID == enrolled.deviceID)
            #expect(try await store.audit(project: "acme", limit: 1).first?.action == "device.identity.claim")
            #expect(try await client.execute(uri: "/agent/v1/heartbeat", method: .post,
                                             headers: [.authorization: "Bearer \(claimed.deviceToken)"],
                                             body: Self.json(Heartbeat(reportID: "claimed"))).status == .ok)
            // The code works once; then the old secret, and the code with another secret, are wrong.
            #expect(try Self.error(try await enroll(client, token: tokens.enrollment, secret: "a-third-boards-secret-77",
                                                    claimCode: code)).code == "device_secret_mismatch")
            #expect(try await enroll(client, token: tokens.enrollment).status == .forbidden)
            #expect(try await enroll(client, token: tokens.enrollment, secret: "the-new-boards-secret-99").status == .ok)
        }
    }

    /// A claim code past its expiry is refused, even the right one.
    @Test func anExpiredClaimCodeIsRefused() async throws {
        try await withServer { client, tokens in
            let enrolled = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            _ = try await store.resetIdentity(deviceID: enrolled.deviceID, claimHash: AccessTokens.hash("the-right-code"),
                                              claimExpiresAt: Date().addingTimeInterval(-1))
            let late = try await enroll(client, token: tokens.enrollment, secret: "the-new-boards-secret-99", claimCode: "the-right-code")
            #expect(late.status == .forbidden)
            #expect(try Self.error(late).code == "claim_code_expired")
            #expect(try await store.device(id: enrolled.deviceID)?.secretHash.isEmpty == true)
        }
    }

    @Test func aDeletedDeviceIsGoneForItsAgent() async throws {
        try await withServer { client, tokens in
            let enrolled = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let deleted = try await client.execute(uri: "/api/v1/devices/\(enrolled.deviceID)", method: .delete,
                                                   headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(deleted.status == .noContent)
            let beat = try await client.execute(uri: "/agent/v1/heartbeat", method: .post,
                                                headers: [.authorization: "Bearer \(enrolled.deviceToken)"],
                                                body: Self.json(Heartbeat(reportID: "r-1")))
            #expect(beat.status == .gone)
            #expect(try Self.error(beat).code == "device_deleted")
            // Enrolling again after deletion makes a new device.
            let fresh = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            #expect(fresh.deviceID != enrolled.deviceID)
            let audit = try await store.audit(project: "acme", limit: 10).map(\.action)
            #expect(audit == ["device.enroll", "device.delete", "device.enroll"])
        }
    }

    /// (path, body, expected status, expected code, expected field) for the agent's enrollment.
    static let enrollmentCases: [(String, String, HTTPResponse.Status, String, String?)] = [
        ("malformed JSON", #"{"token": "#, .badRequest, "malformed_json", nil),
        ("unknown field", #"{"token":"x","hardwareID":"h","deviceSecret":"0123456789abcdef","colour":"red"}"#, .badRequest, "invalid_field", "colour"),
        ("wrong type", #"{"token":"x","hardwareID":42,"deviceSecret":"0123456789abcdef"}"#, .badRequest, "invalid_field", "hardwareID"),
        ("missing field", #"{"token":"x","hardwareID":"h"}"#, .badRequest, "invalid_field", "deviceSecret"),
        ("nested wrong type", #"{"token":"x","hardwareID":"h","deviceSecret":"0123456789abcdef","tags":{"a":1}}"#, .badRequest, "invalid_field", "tags.a"),
        ("forged token", #"{"token":"fle_000000000000_00000000000000000000000000000000","hardwareID":"h","deviceSecret":"0123456789abcdef"}"#, .unauthorized, "unauthorized", nil),
        ("not a token", #"{"token":"hello","hardwareID":"h","deviceSecret":"0123456789abcdef"}"#, .unauthorized, "unauthorized", nil),
        ("too large", #"{"token":""# + String(repeating: "x", count: 5_000) + #""}"#, .contentTooLarge, "body_too_large", nil),
    ]

    /// What a device says of itself is shown in the console, the API and terminals, and its tags
    /// are matched by selectors: checked as the fleet repository's are, with the field named.
    @Test func whatADeviceSaysOfItselfAtEnrollmentIsChecked() async throws {
        try await withServer { client, tokens in
            func enroll(name: String? = nil, tags: [String: String] = [:], attributes: [String: String] = [:]) async throws -> TestResponse {
                try await client.execute(uri: "/agent/v1/enroll", method: .post,
                                         body: Self.json(EnrollmentRequest(token: tokens.enrollment, hardwareID: "hw-1", deviceSecret: "0123456789abcdef",
                                                                           name: name, tags: tags, attributes: attributes)))
            }
            let refused: [(TestResponse, String)] = [
                (try await enroll(name: "\u{1B}[2J"), "name"),
                (try await enroll(name: String(repeating: "n", count: 257)), "name"),
                (try await enroll(tags: ["site": "berlin west"]), "tags"),
                (try await enroll(tags: ["-site": "berlin"]), "tags"),
                (try await enroll(tags: Dictionary(uniqueKeysWithValues: (0..<65).map { ("t\($0)", "v") })), "tags"),
                (try await enroll(name: "thermostat\u{202E}lmth.exe"), "name"),
                (try await enroll(attributes: ["": "x"]), "attributes"),
                (try await enroll(attributes: ["o\u{9B}s": "x"]), "attributes"),
            ]
            for (number, (response, field)) in refused.enumerated() {
                #expect(response.status == .badRequest, "case \(number)")
                #expect(try Self.error(response).field == field, "case \(number)")
            }
            // Attributes are facts the device read: an odd byte in its os-release is replaced, not refused.
            let accepted = try await enroll(name: "Thermostat 4 (hall)", tags: ["site": "berlin", "example.com/hw": "rpi4", "empty": ""],
                                            attributes: ["os": "Debian GNU/Linux 12 (bookworm)\r\u{1B}]0;owned\u{07}", "long": String(repeating: "x", count: 2_000)])
            #expect(accepted.status == .created)
            let device = try Self.decode(EnrollmentResponse.self, accepted).deviceID
            let shown = try await client.execute(uri: "/api/v1/devices/\(device)", method: .get, headers: [.authorization: "Bearer \(tokens.operator)"])
            let attributes = try Self.decode(OperatorDeviceDetail.self, shown).device.attributes
            #expect(attributes["os"] == "Debian GNU/Linux 12 (bookworm)\u{FFFD}\u{FFFD}]0;owned\u{FFFD}")
            #expect(attributes["long"].map { $0.utf8.count <= 1_024 && $0.hasSuffix("\u{2026}") } == true)
        }
    }

    @Test(arguments: enrollmentCases)
    func enrollmentRejectsBadInput(_ testCase: (String, String, HTTPResponse.Status, String, String?)) async throws {
        try await withServer { client, _ in
            let response = try await client.execute(uri: "/agent/v1/enroll", method: .post, body: ByteBuffer(string: testCase.1))
            #expect(response.status == testCase.2, "\(testCase.0)")
            let error = try Self.error(response)
            #expect(error.code == testCase.3, "\(testCase.0)")
            #expect(error.field == testCase.4, "\(testCase.0)")
        }
    }

    @Test func expiredAndWrongKindTokensAreRefused() async throws {
        try await withServer { client, tokens in
            let expired = try await enroll(client, token: tokens.expired)
            #expect(expired.status == .unauthorized)
            #expect(try Self.error(expired).code == "token_expired")
            // An operator token does not enroll devices.
            let operatorToken = try await enroll(client, token: tokens.operator)
            #expect(operatorToken.status == .unauthorized)
            // An enrollment token does not open the operator API.
            let api = try await client.execute(uri: "/api/v1/devices", method: .get, headers: [.authorization: "Bearer \(tokens.enrollment)"])
            #expect(api.status == .unauthorized)
        }
    }

    @Test func heartbeatsNeedAValidDeviceTokenAndValidFields() async throws {
        try await withServer { client, tokens in
            let enrolled = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let none = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, body: Self.json(Heartbeat(reportID: "r")))
            #expect(none.status == .unauthorized)
            var forged = enrolled.deviceToken
            forged.removeLast(4)
            forged += "AAAA"
            let bad = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: [.authorization: "Bearer \(forged)"],
                                               body: Self.json(Heartbeat(reportID: "r")))
            #expect(bad.status == .unauthorized)
            #expect(try Self.error(bad).message == "not a valid device token")
            // The token is checked before the body is read: without a valid one, neither a body
            // over the limit nor one of another type is looked at.
            let oversized = ByteBuffer(string: #"{"reportID":""# + String(repeating: "r", count: 8_000) + #""}"#)
            for headers: HTTPFields in [[:], [.authorization: "Bearer \(forged)"], [.authorization: "Bearer \(forged)", .contentType: "text/plain"]] {
                let refused = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: headers, body: oversized)
                #expect(refused.status == .unauthorized, "\(headers)")
            }

            let auth: HTTPFields = [.authorization: "Bearer \(enrolled.deviceToken)"]
            for (body, field) in [(#"{"reportID":"r","cpuPercent":250}"#, "cpuPercent"), (#"{"reportID":""}"#, "reportID"),
                                  (#"{"reportID":"r","disks":[{"mount":"/","usedBytes":1}]}"#, "disks[0].totalBytes"),
                                  (#"{"reportID":"r","memory":{"usedBytes":1,"totalBytes":2,"swap":3}}"#, "memory.swap"),
                                  (#"{"reportID":"r","memory":{"usedBytes":-1,"totalBytes":2}}"#, "memory.usedBytes"),
                                  (#"{"reportID":"r","disks":[{"mount":"/","usedBytes":1,"totalBytes":-9}]}"#, "disks[0].totalBytes"),
                                  (#"{"reportID":"r","uptimeSeconds":-5}"#, "uptimeSeconds"),
                                  (#"{"reportID":"r","apps":{"../etc":{"version":"1"}}}"#, "apps"),
                                  (#"{"reportID":"r","apps":{"web":{"version":"1\u001b[2J"}}}"#, "apps.web.version"),
                                  (#"{"reportID":"r","apps":{"web":{"version":"1","probe":{"version":"1 (ok)","atMilliseconds":1}}}}"#, "apps.web.probe.version"),
                                  (#"{"reportID":"r","apps":{"web":{"version":"1","probe":{"error":"\u001b[31mred","atMilliseconds":1}}}}"#, "apps.web.probe.error"),
                                  (#"{"reportID":"r","apps":{"web":{"version":"1","probe":{"atMilliseconds":-1}}}}"#, "apps.web.probe.atMilliseconds"),
                                  (#"{"reportID":"r","apps":{"web":{"version":"1","probe":{"version":"1"}}}}"#, "apps.web.probe.atMilliseconds"),
                                  (#"{"reportID":"r","executing":"\#(String(repeating: "e", count: 129))"}"#, "executing"),
                                  (#"{"reportID":"r\u0007"}"#, "reportID"),
                                  (#"{"reportID":"r","custom":{"mode\u001b[2J":"eco"}}"#, "custom"),
                                  (#"{"reportID":"r","custom":{"big":"\#(String(repeating: "b", count: 1_025))"}}"#, "custom"),
                                  ("{\"reportID\":\"r\",\"custom\":{" + (0..<65).map { "\"k\($0)\":\"v\"" }.joined(separator: ",") + "}}", "custom"),
                                  (#"{"reportID":"r","reportID":"s"}"#, "reportID")] {
                let response = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: auth, body: ByteBuffer(string: body))
                #expect(response.status == .badRequest, "\(body)")
                #expect(try Self.error(response).field == field, "\(body)")
            }
            // A custom value may hold a newline (a file's lines): it is taken, and escaped where it is shown.
            let lines = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: auth,
                                                 body: ByteBuffer(string: #"{"reportID":"lines","custom":{"log":"a\nb"}}"#))
            #expect(lines.status == .ok)
            // A NUL anywhere is not the protocol's JSON (no store could keep it).
            let null = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: auth,
                                                body: ByteBuffer(string: #"{"reportID":"r\u0000"}"#))
            #expect(null.status == .badRequest)
        }
    }

    /// The device cache trusts what it holds only while revocations made elsewhere reach it, and
    /// only as long as its lifetime: a reset on another replica whose notice was lost is seen.
    @Test func theDeviceCacheIsNotTrustedBlindlyAmongReplicas() async throws {
        let store = MemoryFleetStore()
        let events = RegistryEvents(cacheLifetime: .milliseconds(200))
        let directory = DeviceDirectory(store: store, events: events)
        _ = try await store.enroll(DeviceRecord(id: "d1", project: "acme", name: "d1", hardwareID: "hw", secretHash: "h", reportedTags: [:],
                                                attributes: [:], enrolledAt: Date()))
        #expect(try await directory.entry(for: "d1")?.tokenGeneration == 0)
        // Another replica resets it, and its notice never arrives.
        _ = try await store.resetIdentity(deviceID: "d1", claimHash: "c", claimExpiresAt: Date().addingTimeInterval(60))
        #expect(try await directory.entry(for: "d1")?.tokenGeneration == 0)
        // While the notices do not arrive, nothing cached is trusted.
        events.isConnected = false
        #expect(try await directory.entry(for: "d1")?.tokenGeneration == 1)
        // Back, the cache is trusted again: read once, kept (even past a reset whose notice is lost).
        events.isConnected = true
        #expect(try await directory.entry(for: "d1")?.tokenGeneration == 1)
        _ = try await store.resetIdentity(deviceID: "d1", claimHash: "c", claimExpiresAt: Date().addingTimeInterval(60))
        #expect(try await directory.entry(for: "d1")?.tokenGeneration == 1)
        // And what is cached expires.
        try await Task.sleep(for: .milliseconds(250))
        #expect(try await directory.entry(for: "d1")?.tokenGeneration == 2)
        // A notice makes it read again at once.
        _ = try await store.resetIdentity(deviceID: "d1", claimHash: "c", claimExpiresAt: Date().addingTimeInterval(60))
        events.changed(["d1"])
        #expect(try await directory.entry(for: "d1")?.tokenGeneration == 3)
    }

    /// An enrollment that read the device just before an operator deleted it (or reset its
    /// identity) and reaches the cache after the revocation does not bring the old identity
    /// back: on one server the cache is never read again, so the old token would work until a
    /// restart.
    @Test func aRevocationWinsOverAnEnrollmentReadBeforeIt() async throws {
        let store = MemoryFleetStore()
        let directory = DeviceDirectory(store: store)
        let enrolled = try await store.enroll(DeviceRecord(id: "d1", project: "acme", name: "d1", hardwareID: "hw", secretHash: "h",
                                                           reportedTags: [:], attributes: [:], enrolledAt: Date()))
        #expect(try await directory.entry(for: "d1")?.deleted == false)
        // Read by an enrollment, then deleted by an operator, then remembered by the enrollment.
        let mark = directory.mark
        var deleted = enrolled
        deleted.deleted = true
        directory.revoked(deleted)
        directory.remember(enrolled, readSince: mark)
        #expect(try await directory.entry(for: "d1")?.deleted == true)
        // Without a mark (or with one taken after), a later state still wins over an earlier one.
        directory.remember(enrolled)
        #expect(try await directory.entry(for: "d1")?.deleted == true)
        var reset = enrolled
        reset.tokenGeneration = 2
        let other = DeviceDirectory(store: store)
        other.revoked(reset)
        other.remember(enrolled, readSince: other.mark)
        #expect(try await other.entry(for: "d1")?.tokenGeneration == 2)
        // A newer record is taken.
        reset.tokenGeneration = 3
        other.remember(reset, readSince: other.mark)
        #expect(try await other.entry(for: "d1")?.tokenGeneration == 3)
    }

    /// Path parameters are percent-decoded, and checked like body fields.
    @Test func pathParametersAreDecodedAndChecked() async throws {
        try await withServer { client, tokens in
            let enrolled = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let auth: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            let encoded = enrolled.deviceID.replacingOccurrences(of: "-", with: "%2D")
            let found = try await client.execute(uri: "/api/v1/devices/\(encoded)", method: .get, headers: auth)
            #expect(found.status == .ok)
            for bad in ["%2Fetc%2Fpasswd", "a%0Ab", "%ZZ", String(repeating: "x", count: 129)] {
                let refused = try await client.execute(uri: "/api/v1/devices/\(bad)", method: .get, headers: auth)
                #expect(refused.status == .badRequest, "\(bad)")
                #expect(try Self.error(refused).field == "id", "\(bad)")
            }
        }
    }

    @Test func operatorsSeeOnlyTheirProject() async throws {
        try await withServer { client, tokens in
            let enrolled = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let other: HTTPFields = [.authorization: "Bearer \(tokens.otherOperator)"]
            let detail = try await client.execute(uri: "/api/v1/devices/\(enrolled.deviceID)", method: .get, headers: other)
            #expect(detail.status == .notFound)
            let list = try await client.execute(uri: "/api/v1/devices", method: .get, headers: other)
            #expect((try Self.decode([String: [OperatorController.DeviceView]].self, list)["devices"] ?? []).isEmpty)
            let selector = try await client.execute(uri: "/api/v1/devices?selector=site%20in%20(berlin", method: .get,
                                                    headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(selector.status == .badRequest)
            #expect(try Self.error(selector).message == "invalid selector at column 16: expected ')' to close the list of values")
            #expect(try Self.error(selector).field == "selector")
        }
    }

    @Test func operatorsMakeTokensThatWork() async throws {
        try await withServer { client, tokens in
            let made = try await client.execute(uri: "/api/v1/tokens", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                                body: ByteBuffer(string: #"{"kind":"enrollment","group":"lab","expiresInSeconds":600}"#))
            #expect(made.status == .created)
            let created = try Self.decode(OperatorController.CreatedToken.self, made)
            #expect(created.info.group == "lab")
            #expect(try await enroll(client, token: created.token, hardware: "serial-9").status == .created)
            let badKind = try await client.execute(uri: "/api/v1/tokens", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                                   body: ByteBuffer(string: #"{"kind":"admin"}"#))
            #expect(badKind.status == .badRequest)
            #expect(try Self.error(badKind).field == "kind")
        }
    }

    @Test func unknownRoutesAnswerInJSON() async throws {
        try await withServer { client, _ in
            let response = try await client.execute(uri: "/api/v2/nothing", method: .get)
            #expect(response.status == .notFound)
            #expect(try Self.error(response).code == "not_found")
        }
    }
}

/// The group commit behind heartbeats.
struct HeartbeatIngestTests {
    @Test func concurrentReportsShareBatchesAndAreDurableWhenAcknowledged() async throws {
        let store = MemoryFleetStore()
        _ = try await store.enroll(DeviceRecord(id: "d1", project: "acme", name: "d1", hardwareID: "h", secretHash: "x", enrolledAt: Date()))
        let ingest = HeartbeatIngest(store: store, batchSize: 1_000, interval: .milliseconds(20))
        let results = try await withThrowingTaskGroup(of: Bool.self) { group in
            for index in 0..<200 {
                group.addTask {
                    try await ingest.submit(HeartbeatRecord(deviceID: "d1", receivedAt: Date(), report: Heartbeat(reportID: "r\(index % 100)")))
                }
            }
            return try await group.reduce(into: [Bool]()) { $0.append($1) }
        }
        #expect(results.filter { $0 }.count == 100)
        #expect(try await store.heartbeats(deviceID: "d1", limit: 1_000).count == 100)
        let batches = await ingest.committedBatches
        #expect(batches >= 1 && batches < 20, "200 reports took \(batches) commits")
    }
}

/// Shutting down commits what is waiting, so an acknowledged heartbeat is never lost.
struct GracefulShutdownTests {
    /// A store whose first heartbeat commit is held until released, so reports pile up behind it.
    actor HeldStore {
        let inner = MemoryFleetStore()
        private var held: CheckedContinuation<Void, Never>?
        private var holding = true
        private(set) var started = false

        func recordHeartbeats(_ records: [HeartbeatRecord]) async throws -> [Bool] {
            if holding {
                holding = false
                started = true
                await withCheckedContinuation { held = $0 }
            }
            return try await inner.recordHeartbeats(records)
        }

        func release() { held?.resume(); held = nil }
    }

    @Test func shutdownCommitsHeartbeatsStillWaiting() async throws {
        let held = HeldStore()
        _ = try await held.inner.enroll(DeviceRecord(id: "d1", project: "acme", name: "d1", hardwareID: "h", secretHash: "x", enrolledAt: Date()))
        let store = HeldFleetStore(held: held)
        // A batch window far longer than the test: only the shutdown commits the second report.
        let ingest = HeartbeatIngest(store: store, batchSize: 1_000, interval: .seconds(600))
        let group = ServiceGroup(configuration: .init(services: [ingest], logger: Logger(label: "test")))
        let running = Task { try await group.run() }
        func report(_ id: String) -> HeartbeatRecord { HeartbeatRecord(deviceID: "d1", receivedAt: Date(), report: Heartbeat(reportID: id)) }
        let first = Task { try await ingest.submit(report("r1")) }
        while !(await held.started) { try await Task.sleep(for: .milliseconds(5)) }
        let second = Task { try await ingest.submit(report("r2")) }
        while await ingest.waiting == 0 { try await Task.sleep(for: .milliseconds(5)) }

        await group.triggerGracefulShutdown()
        try await running.value
        #expect(try await second.value == true)
        await held.release()
        #expect(try await first.value == true)
        #expect(Set(try await held.inner.heartbeats(deviceID: "d1", limit: 10).map(\.report.reportID)) == ["r1", "r2"])
    }
}

/// A long-poll the server is too full to hold reads the device's work once more before telling
/// it to ask again later: work committed just after the first read, whose wake has not come yet,
/// is handed out now rather than 15–30 s later.
struct LongPollDeferralTests {
    @Test func workCommittedAfterTheFirstReadIsHandedOutNotDeferred() async throws {
        let held = GracefulShutdownTests.HeldStore()
        let inner = held.inner
        let enrollment = AccessTokens.make(kind: .enrollment, project: "acme", now: Date())
        try await inner.insertToken(enrollment.record)
        let slipIn = Mutex<String?>(nil)
        var store = HeldFleetStore(held: held)
        store.afterActiveExecutions = { device in
            guard slipIn.withLock({ armed in defer { if armed == device { armed = nil } }; return armed == device }) else { return }
            // Made behind the board's back: no wake comes for it.
            let deployment = DeploymentRecord(id: "dep-late", project: "acme", app: "thermostat", version: "2.5.0", flow: "compose", digest: "d",
                                              parameters: [:], steps: [], rollback: [], artifactAllowlist: [], createdAt: Date(), createdBy: "operator:t")
            try await inner.createDeployment(deployment, executions: [ExecutionRecord(id: "exe-late", deploymentID: deployment.id, deviceID: device,
                                                                                      updatedAt: Date())])
        }
        var configuration = ServerConfiguration()
        configuration.maximumLongPolls = 1
        configuration.longPollSeconds = 2
        let keyFile = NSTemporaryDirectory() + "flotilla-key-\(UUID().uuidString).pem"
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        let app = FleetServer.buildApplication(configuration: configuration, store: store, tokens: try await DeviceTokens.load(keyFile: keyFile))
        let tests = ServerTests()
        try await app.test(.router) { raw in
            let client = ServerTests.JSONClient(raw: raw)
            let deferrable: HTTPFields = [.flotillaPoll: LongPollDeferral.value]
            var devices: [(id: String, waiting: HTTPFields)] = []
            for hardware in ["serial-1", "serial-2"] {
                let enrolled = try ServerTests.decode(EnrollmentResponse.self, try await tests.enroll(client, token: enrollment.text, hardware: hardware))
                let auth: HTTPFields = [.authorization: "Bearer \(enrolled.deviceToken)"]
                let idle = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: auth)
                devices.append((enrolled.deviceID, auth.merging([.ifNoneMatch: try #require(idle.headers[.eTag])]).merging(deferrable)))
            }
            let first = devices[0].waiting
            async let holding = client.execute(uri: "/agent/v1/assignments", method: .get, headers: first)
            try await tests.waitUntilHeld(client, 1)
            slipIn.withLock { $0 = devices[1].id }
            let answer = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: devices[1].waiting)
            #expect(answer.status == .ok)
            #expect(try ServerTests.decode(AssignmentList.self, answer).assignments.map(\.executionID) == ["exe-late"])
            #expect(try await holding.status == .notModified)
        }
    }
}

/// An error no handler turned into an API error — a store failing — still reaches the client as
/// the API's JSON error, and is counted as what was sent.
struct StoreFailureTests {
    @Test(arguments: [
        (StoreError(.unavailable, "database is locked"), 500, "internal"),
        (StoreError(.duplicate, "UNIQUE constraint failed"), 409, "conflict"),
    ])
    func aFailingStoreIsAnsweredAsTheAPIsError(failure: StoreError, status: Int, code: String) async throws {
        let held = GracefulShutdownTests.HeldStore()
        let operatorToken = AccessTokens.make(kind: .operator, project: "acme", now: Date())
        try await held.inner.insertToken(operatorToken.record)
        var store = HeldFleetStore(held: held)
        store.failDevices = failure
        let keyFile = NSTemporaryDirectory() + "flotilla-key-\(UUID().uuidString).pem"
        defer { try? FileManager.default.removeItem(atPath: keyFile) }
        let app = FleetServer.buildApplication(configuration: ServerConfiguration(), store: store,
                                               tokens: try await DeviceTokens.load(keyFile: keyFile))
        try await app.test(.router) { client in
            let response = try await client.execute(uri: "/api/v1/devices", method: .get,
                                                    headers: [.authorization: "Bearer \(operatorToken.text)"])
            #expect(response.status.code == status)
            #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
            let error = try ServerTests.error(response)
            #expect(error.code == code)
            #expect(!error.message.contains("database is locked") && !error.message.contains("UNIQUE"), "\(error.message)")
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            let exposition = String(buffer: metrics.body)
            #expect(exposition.contains("flotilla_http_requests_total{status=\"\(status / 100)xx\"} 1"), "\(exposition)")
        }
    }
}

/// Forwards to a `HeldStore` for heartbeats, and can make a rollup or a device listing fail.
struct HeldFleetStore: FleetStore {
    let held: GracefulShutdownTests.HeldStore
    /// Makes every rollup fail, as a store refusing a write would.
    var failRollUp = false
    /// Thrown by `devices(project:)`: a store failing under an operator's request.
    var failDevices: StoreError? = nil
    /// Called with the device after each `activeExecutions` read, before its result is returned:
    /// a change made there is one committed just after the read.
    var afterActiveExecutions: (@Sendable (String) async throws -> Void)? = nil
    func recordHeartbeats(_ heartbeats: [HeartbeatRecord]) async throws -> [Bool] { try await held.recordHeartbeats(heartbeats) }
    func ensureProject(_ name: String, at date: Date) async throws { try await held.inner.ensureProject(name, at: date) }
    func projects() async throws -> [ProjectRecord] { try await held.inner.projects() }
    func insertToken(_ token: AccessTokenRecord) async throws { try await held.inner.insertToken(token) }
    func token(id: String) async throws -> AccessTokenRecord? { try await held.inner.token(id: id) }
    func tokens(project: String) async throws -> [AccessTokenRecord] { try await held.inner.tokens(project: project) }
    func revokeToken(id: String) async throws { try await held.inner.revokeToken(id: id) }
    func enroll(_ device: DeviceRecord) async throws -> DeviceRecord { try await held.inner.enroll(device) }
    func device(id: String) async throws -> DeviceRecord? { try await held.inner.device(id: id) }
    func devices(project: String) async throws -> [DeviceRecord] {
        if let failDevices { throw failDevices }
        return try await held.inner.devices(project: project)
    }
    func deleteDevice(id: String) async throws { try await held.inner.deleteDevice(id: id) }
    func resetIdentity(deviceID: String, claimHash: String, claimExpiresAt: Date) async throws -> DeviceRecord {
        try await held.inner.resetIdentity(deviceID: deviceID, claimHash: claimHash, claimExpiresAt: claimExpiresAt)
    }
    func claimIdentity(deviceID: String, claimHash: String, secretHash: String, at date: Date) async throws -> DeviceRecord? {
        try await held.inner.claimIdentity(deviceID: deviceID, claimHash: claimHash, secretHash: secretHash, at: date)
    }
    func heartbeats(deviceID: String, before: Date, limit: Int) async throws -> [HeartbeatRecord] {
        try await held.inner.heartbeats(deviceID: deviceID, before: before, limit: limit)
    }
    func pruneHeartbeats(before date: Date) async throws { try await held.inner.pruneHeartbeats(before: date) }
    func heartbeats(deviceID: String, since: Date, until: Date, limit: Int, maximumBytes: Int) async throws -> HeartbeatSpan {
        try await held.inner.heartbeats(deviceID: deviceID, since: since, until: until, limit: limit, maximumBytes: maximumBytes)
    }
    func rollUpHeartbeats(before date: Date, bucketSeconds: Int) async throws -> Int {
        if failRollUp { throw StoreError(.unavailable, "the disk is full") }
        return try await held.inner.rollUpHeartbeats(before: date, bucketSeconds: bucketSeconds)
    }
    func metrics(deviceID: String, since: Date, until: Date) async throws -> [MetricBucket] {
        try await held.inner.metrics(deviceID: deviceID, since: since, until: until)
    }
    func pruneMetrics(before date: Date) async throws { try await held.inner.pruneMetrics(before: date) }
    func createDeployment(_ deployment: DeploymentRecord, executions: [ExecutionRecord]) async throws {
        try await held.inner.createDeployment(deployment, executions: executions)
    }
    func deployment(id: String) async throws -> DeploymentRecord? { try await held.inner.deployment(id: id) }
    func execution(id: String, deviceID: String) async throws -> ExecutionRecord? { try await held.inner.execution(id: id, deviceID: deviceID) }
    func suspendedApps(project: String) async throws -> Set<String> { try await held.inner.suspendedApps(project: project) }
    func approve(_ approval: ApprovalRecord) async throws -> ApprovalRecord { try await held.inner.approve(approval) }
    func approvals(project: String) async throws -> [ApprovalRecord] { try await held.inner.approvals(project: project) }
    func queueCommands(_ commands: [RemoteCommandRecord]) async throws { try await held.inner.queueCommands(commands) }
    func takeCommands(deviceID: String, kinds: Set<RemoteCommand.Kind>, at date: Date) async throws -> [RemoteCommandRecord] {
        try await held.inner.takeCommands(deviceID: deviceID, kinds: kinds, at: date)
    }
    func updateCommand(id: String, deviceID: String, _ change: @escaping @Sendable (RemoteCommandRecord) -> RemoteCommandUpdate) async throws
        -> RemoteCommandUpdate { try await held.inner.updateCommand(id: id, deviceID: deviceID, change) }
    func commands(batch: String, project: String, at date: Date) async throws -> [RemoteCommandRecord] {
        try await held.inner.commands(batch: batch, project: project, at: date)
    }
    func commandOutput(id: String, project: String, offset: Int) async throws -> [UInt8]? {
        try await held.inner.commandOutput(id: id, project: project, offset: offset)
    }
    func openCommands(deviceID: String, at date: Date) async throws -> Int { try await held.inner.openCommands(deviceID: deviceID, at: date) }
    func pruneCommands(before date: Date) async throws { try await held.inner.pruneCommands(before: date) }
    func alerts(project: String) async throws -> [AlertRecord] { try await held.inner.alerts(project: project) }
    func alerts(deviceID: String) async throws -> [AlertRecord] { try await held.inner.alerts(deviceID: deviceID) }
    func saveAlert(_ record: AlertRecord, replacing current: AlertRecord?) async throws -> AlertRecord? {
        try await held.inner.saveAlert(record, replacing: current)
    }
    func removeAlert(_ current: AlertRecord) async throws -> Bool { try await held.inner.removeAlert(current) }
    func pruneAlerts(resolvedBefore date: Date) async throws { try await held.inner.pruneAlerts(resolvedBefore: date) }
    func pruneSessions(expiredBefore date: Date) async throws -> Int { try await held.inner.pruneSessions(expiredBefore: date) }
    func executions(deviceID: String, limit: Int) async throws -> [ExecutionRecord] { try await held.inner.executions(deviceID: deviceID, limit: limit) }
    func setSuspended(_ suspended: Bool, app: String, project: String, at date: Date) async throws {
        try await held.inner.setSuspended(suspended, app: app, project: project, at: date)
    }
    func putSecret(_ secret: SecretRecord) async throws -> SecretRecord { try await held.inner.putSecret(secret) }
    func secret(project: String, name: String) async throws -> SecretRecord? { try await held.inner.secret(project: project, name: name) }
    func secrets(project: String) async throws -> [SecretRecord] { try await held.inner.secrets(project: project) }
    func deleteSecret(project: String, name: String) async throws -> Bool { try await held.inner.deleteSecret(project: project, name: name) }
    func deployments(project: String, limit: Int) async throws -> [DeploymentRecord] { try await held.inner.deployments(project: project, limit: limit) }
    func executions(deploymentID: String) async throws -> [ExecutionRecord] { try await held.inner.executions(deploymentID: deploymentID) }
    func executionSummaries(deploymentIDs: [String]) async throws -> [ExecutionSummary] { try await held.inner.executionSummaries(deploymentIDs: deploymentIDs) }
    func activeExecutions(deviceID: String) async throws -> [ExecutionRecord] {
        let read = try await held.inner.activeExecutions(deviceID: deviceID)
        try await afterActiveExecutions?(deviceID)
        return read
    }
    func applyExecutionReport(executionID: String, deviceID: String, report: ExecutionReport, at date: Date) async throws -> ExecutionReportOutcome {
        try await held.inner.applyExecutionReport(executionID: executionID, deviceID: deviceID, report: report, at: date)
    }
    func abortDeployment(id: String, at date: Date) async throws -> [ExecutionRecord] { try await held.inner.abortDeployment(id: id, at: date) }
    func endExecution(id: String, as state: ExecutionState, message: String, unlessUpdatedAfter: Date?, at date: Date) async throws
        -> ExecutionRecord? {
        try await held.inner.endExecution(id: id, as: state, message: message, unlessUpdatedAfter: unlessUpdatedAfter, at: date)
    }
    func takeExecutions(deviceID: String, at date: Date) async throws -> [ExecutionRecord] {
        try await held.inner.takeExecutions(deviceID: deviceID, at: date)
    }
    func appendAudit(_ entry: AuditRecord) async throws { try await held.inner.appendAudit(entry) }
    func audit(project: String, limit: Int) async throws -> [AuditRecord] { try await held.inner.audit(project: project, limit: limit) }
}

/// The metrics history stays bounded.
struct HeartbeatRetentionTests {
    @Test func oldHeartbeatsArePrunedAndRecentOnesKept() async throws {
        let store = MemoryFleetStore()
        _ = try await store.enroll(DeviceRecord(id: "d1", project: "acme", name: "d1", hardwareID: "h", secretHash: "x", enrolledAt: Date()))
        _ = try await store.recordHeartbeats([
            HeartbeatRecord(deviceID: "d1", receivedAt: Date().addingTimeInterval(-7_200), report: Heartbeat(reportID: "old")),
            HeartbeatRecord(deviceID: "d1", receivedAt: Date(), report: Heartbeat(reportID: "new")),
        ])
        let retention = HeartbeatRetention(store: store, retention: .seconds(3_600), metricsRetention: .seconds(7 * 86_400),
                                           every: .milliseconds(10))
        let running = Task { try await retention.run() }
        for _ in 0..<500 where try await store.heartbeats(deviceID: "d1", limit: 10).count > 1 {
            try await Task.sleep(for: .milliseconds(10))
        }
        running.cancel()
        try await running.value
        #expect(try await store.heartbeats(deviceID: "d1", limit: 10).map(\.report.reportID) == ["new"])
    }

    /// One check on a virtual clock: heartbeats past the retention go into the history, up to a
    /// bucket boundary (a bucket is never cut in two); history past its own retention goes.
    @Test func oldHeartbeatsAreSummedUpIntoTheHistoryAndOldHistoryForgotten() async throws {
        let store = MemoryFleetStore()
        let now = Date(timeIntervalSince1970: 1_800_000_000 + 8 * 86_400 + 300)  // five minutes into a bucket
        _ = try await store.enroll(DeviceRecord(id: "d1", project: "acme", name: "d1", hardwareID: "h", secretHash: "x", enrolledAt: now))
        func beat(_ id: String, ago: Double, cpu: Double) -> HeartbeatRecord {
            HeartbeatRecord(deviceID: "d1", receivedAt: now.addingTimeInterval(-ago), report: Heartbeat(reportID: id, cpuPercent: cpu))
        }
        _ = try await store.recordHeartbeats([
            beat("eight-days", ago: 8 * 86_400, cpu: 1), beat("two-days-a", ago: 2 * 86_400 + 60, cpu: 10),
            beat("two-days-b", ago: 2 * 86_400, cpu: 30), beat("a-day-less-a-minute", ago: 86_400 - 60, cpu: 50),
            beat("a-day-and-a-minute", ago: 86_400 + 60, cpu: 70), beat("now", ago: 0, cpu: 90),
        ])
        // Alerts: one resolved two days ago goes, one resolved an hour ago and one firing stay.
        for (rule, state, resolved) in [("old", AlertRecord.State.resolved, -2 * 86_400.0), ("recent", .resolved, -3_600), ("firing", .firing, 0)] {
            _ = try await store.saveAlert(AlertRecord(project: "acme", rule: rule, device: "d1", state: state, severity: .info,
                                                      since: now.addingTimeInterval(-3 * 86_400),
                                                      resolvedAt: state == .resolved ? now.addingTimeInterval(resolved) : nil, observed: "x"),
                                          replacing: nil)
        }
        // Console sessions: an expired one goes, a live one stays.
        for (id, expires) in [("ended", -60.0), ("live", 3_600)] {
            try await store.insertToken(AccessTokenRecord(id: id, kind: .session, project: "acme", secretHash: id, createdAt: now,
                                                          expiresAt: now.addingTimeInterval(expires)))
        }
        let retention = HeartbeatRetention(store: store, retention: .seconds(86_400), metricsRetention: .seconds(7 * 86_400), every: .seconds(600))
        try await retention.once(now: now)
        #expect(try await store.alerts(project: "acme").map(\.rule) == ["firing", "recent"])
        #expect(try await store.tokens(project: "acme").filter { $0.kind == .session }.map(\.id) == ["live"])
        // The cut is the bucket boundary at or before a day ago: both day-old heartbeats are after it.
        #expect(Set(try await store.heartbeats(deviceID: "d1", limit: 10).map(\.report.reportID)) == ["now", "a-day-less-a-minute", "a-day-and-a-minute"])
        let history = try await store.metrics(deviceID: "d1", since: .distantPast, until: now)
        #expect(history.map(\.samples) == [2], "the eight-day-old bucket is past the history's retention")
        #expect(history.first?.cpu == .init(count: 2, mean: 20, max: 30))
    }

    /// A rollup that fails keeps the store bounded anyway: heartbeats twice the retention old go
    /// unrolled, the history is still pruned, and the failure is reported to the caller (logged).
    @Test func aFailingRollUpStillKeepsTheStoreBounded() async throws {
        let held = GracefulShutdownTests.HeldStore()
        await held.release()
        let store = HeldFleetStore(held: held, failRollUp: true)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        _ = try await held.inner.enroll(DeviceRecord(id: "d1", project: "acme", name: "d1", hardwareID: "h", secretHash: "x", enrolledAt: now))
        _ = try await held.inner.recordHeartbeats([
            HeartbeatRecord(deviceID: "d1", receivedAt: now.addingTimeInterval(-3 * 86_400), report: Heartbeat(reportID: "three-days")),
            HeartbeatRecord(deviceID: "d1", receivedAt: now.addingTimeInterval(-1.5 * 86_400), report: Heartbeat(reportID: "a-day-and-a-half")),
        ])
        let retention = HeartbeatRetention(store: store, retention: .seconds(86_400), metricsRetention: .seconds(7 * 86_400), every: .seconds(600))
        await #expect(throws: StoreError.self) { try await retention.once(now: now) }
        #expect(try await held.inner.heartbeats(deviceID: "d1", limit: 10).map(\.report.reportID) == ["a-day-and-a-half"])
    }
}


/// A path that exists answers a method it does not take with 405 and the methods it does.
struct MethodNotAllowedTests {
    @Test func aKnownPathWithAnotherMethodIs405WithAllow() async throws {
        try await ServerTests().withServer { client, tokens in
            let auth: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            let tokensList = try await client.execute(uri: "/api/v1/tokens", method: .patch, headers: auth)
            #expect(tokensList.status == .methodNotAllowed)
            #expect(tokensList.headers[.allow] == "GET, POST")
            #expect(try ServerTests.error(tokensList).code == "method_not_allowed")
            let device = try await client.execute(uri: "/api/v1/devices/d-1", method: .post, headers: auth)
            #expect(device.status == .methodNotAllowed)
            #expect(device.headers[.allow] == "DELETE, GET")
            #expect(try await client.execute(uri: "/healthz", method: .put).headers[.allow] == "GET")
            // A path that does not exist is still 404.
            #expect(try await client.execute(uri: "/api/v1/nothing", method: .get, headers: auth).status == .notFound)
            #expect(try await client.execute(uri: "/api/v1/devices/d-1/nothing", method: .get, headers: auth).status == .notFound)
        }
    }
}

/// A controller as the server sees it, reconciling project acme with one app.
actor RecordingController: ControllerHandle {
    func target(app: String, group: String) -> (version: String, digest: String, approval: Bool)? { nil }
    private(set) var polls = 0
    private(set) var suspended: [String: Bool] = [:]

    func requestPoll() { polls += 1 }
    func statusJSON() -> [UInt8]? { Array(#"{"commit":"c1"}"#.utf8) }
    func setSuspended(_ suspended: Bool, app: String) { self.suspended[app] = suspended }
    nonisolated var watchedBranch: String { "main" }
    func metrics() -> ControllerMetrics { ControllerMetrics() }
    func executionEnded() {}
    func scope() -> (project: String, apps: [String])? { ("acme", ["thermostat"]) }
}

/// The controller's routes act for its own project's operators only.
struct ControllerRouteScopeTests {
    @Test func anotherProjectsTokenCannotReadTriggerOrSuspend() async throws {
        let controller = RecordingController()
        try await ServerTests().withServer(controller: controller) { client, tokens in
            let other: HTTPFields = [.authorization: "Bearer \(tokens.otherOperator)"]
            for (uri, method) in [("/api/v1/status", HTTPRequest.Method.get), ("/api/v1/reconcile", .post),
                                  ("/api/v1/apps/thermostat/suspend", .post), ("/api/v1/apps/thermostat/resume", .post)] {
                let response = try await client.execute(uri: uri, method: method, headers: other)
                #expect(response.status == .notFound, "\(method) \(uri)")
                #expect(!String(buffer: response.body).contains("acme"), "another project's name leaked")
            }
            #expect(await controller.polls == 0)
            #expect(await controller.suspended.isEmpty)

            let own: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            #expect(try await client.execute(uri: "/api/v1/status", method: .get, headers: own).status == .ok)
            #expect(try await client.execute(uri: "/api/v1/reconcile", method: .post, headers: own).status == .accepted)
            #expect(try await client.execute(uri: "/api/v1/apps/thermostat/suspend", method: .post, headers: own).status == .ok)
            #expect(await controller.suspended == ["thermostat": true])
            // An app the fleet does not have is not found, and nothing is recorded for it.
            let missing = try await client.execute(uri: "/api/v1/apps/printer/suspend", method: .post, headers: own)
            #expect(missing.status == .notFound)
            #expect(await controller.suspended == ["thermostat": true])
        }
    }
}

/// A controller `serve --config` assigned to a project, with or without a commit read.
actor AssignedController: ControllerHandle {
    func target(app: String, group: String) -> (version: String, digest: String, approval: Bool)? { nil }
    let project: String
    let reconciled: Bool
    private(set) var polls = 0
    private(set) var ended = 0

    init(_ project: String, reconciled: Bool = true) {
        self.project = project
        self.reconciled = reconciled
    }

    func requestPoll() { polls += 1 }
    func statusJSON() -> [UInt8]? { reconciled ? Array(#"{"project":"\#(project)"}"#.utf8) : nil }
    func setSuspended(_ suspended: Bool, app: String) {}
    nonisolated var watchedBranch: String { "main" }
    func metrics() -> ControllerMetrics { ControllerMetrics() }
    func executionEnded() { ended += 1 }
    func scope() -> (project: String, apps: [String])? { reconciled ? (project, ["thermostat"]) : nil }
    nonisolated var assignedProject: String? { project }
}

/// Several projects on one server: each token and each webhook reaches its own project's
/// controller, and nothing says which other projects exist.
struct ControllerSetTests {
    @Test func eachProjectReachesItsOwnControllerOnly() async throws {
        let acme = AssignedController("acme"), other = AssignedController("other", reconciled: false)
        let set = ControllerSet([ControllerSet.Entry(other, hookSecret: "other-secret"), ControllerSet.Entry(acme, hookSecret: "acme-secret")])
        #expect(await set.entry(for: "acme")?.handle.assignedProject == "acme")
        #expect(await set.entry(for: "other")?.handle.assignedProject == "other")
        #expect(await set.entry(for: "nobody") == nil)
        let registry = ServerMetrics()
        registry.recordControllers(await set.passMetrics())
        let metrics = registry.exposition()
        #expect(metrics.contains("flotilla_controller_passes_total{project=\"acme\"} 0\n"))
        #expect(metrics.contains("flotilla_controller_passes_total{project=\"other\"} 0\n"))
        #expect(metrics.components(separatedBy: "# TYPE flotilla_controller_passes_total counter").count == 2, "one TYPE line per metric")
    }

    /// The controllers count their passes; each scrape adds what is new to the registry's
    /// counters, so a total is never counted twice.
    @Test func controllerPassesAreCountersInTheServersRegistry() {
        let registry = ServerMetrics()
        var metrics = ControllerMetrics()
        metrics.passes = 2
        metrics.passSeconds = 0.5
        metrics.lastPassSeconds = 0.25
        registry.recordControllers([("a \"quoted\" project", metrics)])
        registry.recordControllers([("a \"quoted\" project", metrics)])
        metrics.passes = 5
        metrics.lastPassSeconds = 0.125
        metrics.lastExecutionsRead = 30_011
        metrics.lastExecutionsKept = 1_011
        registry.recordControllers([("a \"quoted\" project", metrics)])
        let text = registry.exposition()
        #expect(text.contains("flotilla_controller_passes_total{project=\"a \\\"quoted\\\" project\"} 5\n"), "\(text)")
        #expect(text.contains("flotilla_controller_pass_seconds_total{project=\"a \\\"quoted\\\" project\"} 0.5\n"), "\(text)")
        #expect(text.contains("flotilla_controller_last_pass_seconds{project=\"a \\\"quoted\\\" project\"} 0.125\n"), "\(text)")
        #expect(text.contains("flotilla_controller_executions_read{project=\"a \\\"quoted\\\" project\"} 30011"), "\(text)")
        #expect(text.contains("flotilla_controller_executions_kept{project=\"a \\\"quoted\\\" project\"} 1011"), "\(text)")
    }

    @Test func routesAndWebhooksGoToTheTokensProject() async throws {
        let acme = AssignedController("acme"), other = AssignedController("other", reconciled: false)
        let set = ControllerSet([ControllerSet.Entry(other, hookSecret: "other-secret"), ControllerSet.Entry(acme, hookSecret: "acme-secret")])
        try await ServerTests().withServer(controllers: set) { client, tokens in
            let own: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            let status = try await client.execute(uri: "/api/v1/status", method: .get, headers: own)
            #expect(String(buffer: status.body) == #"{"project":"acme"}"#)
            #expect(try await client.execute(uri: "/api/v1/reconcile", method: .post, headers: own).status == .accepted)
            #expect(await acme.polls == 1)
            #expect(await other.polls == 0)
            // other's operator sees its own controller, which has not read a commit yet.
            let theirs: HTTPFields = [.authorization: "Bearer \(tokens.otherOperator)"]
            #expect(try await client.execute(uri: "/api/v1/status", method: .get, headers: theirs).status == .serviceUnavailable)

            let body = ByteBuffer(string: #"{"ref":"refs/heads/main"}"#)
            func hook(_ path: String, _ secret: String) async throws -> HTTPResponse.Status {
                let mac = HMAC<Crypto.SHA256>.authenticationCode(for: Array(body.readableBytesView), using: SymmetricKey(data: Array(secret.utf8)))
                    .map { String(format: "%02x", $0) }.joined()
                return try await client.execute(uri: path, method: .post, headers: [.init("X-Hub-Signature-256")!: "sha256=" + mac],
                                                body: body).status
            }
            #expect(try await hook("/hooks/git/acme", "other-secret") == .unauthorized)
            // A project that does not exist answers as one whose signature is wrong.
            #expect(try await hook("/hooks/git/nobody", "acme-secret") == .unauthorized)
            #expect(try await hook("/hooks/git", "acme-secret") == .notFound, "several projects: the hook must name one")
            #expect(try await hook("/hooks/git/other", "other-secret") == .accepted)
            #expect(await other.polls == 1)
            #expect(await acme.polls == 1)
        }
    }
}
