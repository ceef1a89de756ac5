import FleetCore
import FleetProtocol
@testable import FleetServer
import FleetStore
import FleetTesting
import Foundation
import Hummingbird
import HummingbirdTesting
import Synchronization
import Testing

/// Every response the server gives, in a walk through every operation of the API, is checked
/// against what docs/openapi.json says that operation answers: a status the document does not
/// list, a field it does not declare, a missing required field or a wrong type is a failure.
struct ContractTests {
    /// A client that holds each response to the document and remembers which operations it saw.
    final class CheckingClient: TestClientProtocol, Sendable {
        let inner: any TestClientProtocol
        let validator: SchemaValidator
        let operations: [(method: String, template: [Substring], operation: WireJSON)]
        let record: Record

        final class Record: Sendable {
            let state = Mutex<(seen: Set<String>, faults: [String])>(([], []))
        }

        init(_ inner: any TestClientProtocol, document: WireJSON, record: Record = Record()) {
            self.inner = inner
            self.record = record
            validator = SchemaValidator(document: document)
            var operations: [(String, [Substring], WireJSON)] = []
            for path in document.member("paths")?.members ?? [] {
                for operation in path.value.members ?? [] where operation.key != "parameters" {
                    operations.append((operation.key.uppercased(), path.key.split(separator: "/"), operation.value))
                }
            }
            self.operations = operations
        }

        var port: Int? { inner.port }

        func executeRequest(uri: String, method: HTTPRequest.Method, headers: HTTPFields, body: ByteBuffer?) async throws -> TestResponse {
            var headers = headers
            if body != nil, headers[.contentType] == nil { headers[.contentType] = "application/json" }
            let response = try await inner.executeRequest(uri: uri, method: method, headers: headers, body: body)
            check(response, method: method.rawValue, path: String(uri.split(separator: "?", maxSplits: 1)[0]))
            return response
        }

        private func check(_ response: TestResponse, method: String, path: String) {
            let segments = path.split(separator: "/")
            let candidates = operations.filter { candidate in
                candidate.method == method && candidate.template.count == segments.count
                    && zip(candidate.template, segments).allSatisfy { template, segment in template.hasPrefix("{") || template == segment }
            }
            // A literal segment is a better match than a parameter.
            guard let match = candidates.max(by: { $0.template.filter { !$0.hasPrefix("{") }.count < $1.template.filter { !$0.hasPrefix("{") }.count })
            else { return fault("\(method) \(path): not in the document") }
            let name = "\(method) /\(match.template.joined(separator: "/"))"
            let status = String(response.status.code)
            guard var documented = match.operation.member("responses")?.member(status) ?? match.operation.member("responses")?.member("default") else {
                return fault("\(name) answered \(status), which the document does not list: \(String(buffer: response.body))")
            }
            if case .string(let reference)? = documented.member("$ref"), let target = validator.resolve(reference) { documented = target }
            record.state.withLock { _ = $0.seen.insert("\(name) \(status)") }
            guard let schema = documented.member("content")?.member("application/json")?.member("schema") else {
                if response.body.readableBytes > 0, documented.member("content") == nil {
                    fault("\(name) \(status) has a body the document does not describe")
                }
                return
            }
            if response.headers[.contentType]?.hasPrefix("application/json") != true {
                fault("\(name) \(status) is \(response.headers[.contentType] ?? "untyped"), not application/json")
            }
            guard let value = WireJSON.parse(Array(response.body.readableBytesView)) else {
                return fault("\(name) \(status): the body is not JSON")
            }
            for violation in validator.violations(of: value, against: schema) { fault("\(name) \(status) \(violation)") }
        }

        private func fault(_ text: String) {
            record.state.withLock { $0.faults.append(text) }
        }
    }

    /// The controller the walk talks to: reconciling acme's thermostat, with a real status report.
    actor Controller: ControllerHandle {
        func requestPoll() {}
        func statusJSON() -> [UInt8]? {
            let target = FleetStatusReport.Target(group: "canary", version: "2.5.0", devices: 3, converged: 1, updating: 1, failed: 0, offline: 1,
                                                  state: "updating", reason: "wave 1 of 2 running")
            let report = FleetStatusReport(commit: "c1", head: "c2", headErrors: ["fleet.yaml:3:1: unknown key"],
                                           apps: [FleetStatusReport.App(name: "thermostat", targets: [target], drifted: ["d-9"])])
            return Array(try! JSONEncoder().encode(report))
        }
        func setSuspended(_ suspended: Bool, app: String) {}
        nonisolated var watchedBranch: String { "main" }
        func metrics() -> ControllerMetrics { ControllerMetrics() }
        func executionEnded() {}
        func scope() -> (project: String, apps: [String])? { ("acme", ["thermostat"]) }
        func target(app: String, group: String) -> (version: String, digest: String, approval: Bool)? {
            app == "thermostat" && group == "canary" ? ("2.5.0", String(repeating: "d", count: 64), true) : nil
        }
        func remoteAccess() -> RemoteAccess? { RemoteAccess(exec: true, fetchPaths: ["/var/log"]) }
    }

    /// A controller still reading its repository: no project, no apps yet.
    actor Unready: ControllerHandle {
        func target(app: String, group: String) -> (version: String, digest: String, approval: Bool)? { nil }
        func requestPoll() {}
        func statusJSON() -> [UInt8]? { nil }
        func setSuspended(_ suspended: Bool, app: String) {}
        nonisolated var watchedBranch: String { "main" }
        func metrics() -> ControllerMetrics { ControllerMetrics() }
        func executionEnded() {}
        func scope() -> (project: String, apps: [String])? { nil }
        nonisolated var assignedProject: String? { "acme" }
    }

    static func document() throws -> WireJSON {
        try #require(WireJSON.parse(Array(OpenAPIDocument.json.utf8)))
    }

    @Test func everyOperationAnswersAsTheDocumentSays() async throws {
        let secret = "hook-secret"
        let controllers = ControllerSet([ControllerSet.Entry(Controller(), hookSecret: secret)])
        let document = try Self.document()
        let tests = ServerTests()
        let seen = Mutex<CheckingClient?>(nil)
        try await tests.withServer(longPollSeconds: 0.2, controllers: controllers) { raw, tokens in
            let client = CheckingClient((raw as! ServerTests.JSONClient).raw, document: document)
            seen.withLock { $0 = client }
            let admin: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]

            // Enrollment: new, again, refused four ways.
            let enrolled = try ServerTests.decode(EnrollmentResponse.self, try await tests.enroll(client, token: tokens.enrollment))
            _ = try await tests.enroll(client, token: tokens.enrollment)
            _ = try await tests.enroll(client, token: tokens.enrollment, secret: "a-guessed-secret-0123")
            _ = try await tests.enroll(client, token: tokens.expired, hardware: "serial-2")
            _ = try await client.execute(uri: "/agent/v1/enroll", method: .post, body: ByteBuffer(string: #"{"token":1}"#))
            _ = try await client.execute(uri: "/agent/v1/enroll", method: .post, body: ByteBuffer(string: String(repeating: " ", count: 10_000)))
            let other = try ServerTests.decode(EnrollmentResponse.self, try await tests.enroll(client, token: tokens.enrollment, hardware: "serial-3"))
            let device: HTTPFields = [.authorization: "Bearer \(enrolled.deviceToken)"]

            // Heartbeats.
            let beat = Heartbeat(reportID: "r-1", cpuPercent: 7.5, memory: .init(usedBytes: 100, totalBytes: 1_000),
                                 disks: [.init(mount: "/", usedBytes: 5, totalBytes: 10)], load: [0.1, 0.2, 0.3],
                                 apps: ["thermostat": InstalledApp(version: "2.4.1")], agentVersion: "0.1.0")
            _ = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: device, body: ServerTests.json(beat))
            _ = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: device, body: ByteBuffer(string: #"{"reportID":""}"#))
            _ = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, body: ServerTests.json(beat))
            _ = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: device, body: ByteBuffer(string: String(repeating: " ", count: 10_000)))

            // Devices.
            _ = try await client.execute(uri: "/api/v1/projects", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/devices?selector=site%3Dberlin", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/devices?selector=site%3D%3D%3D", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/devices/\(enrolled.deviceID)", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/devices/d-none", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/devices/\(enrolled.deviceID)/metrics?since=2d&points=50", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/devices/\(enrolled.deviceID)/metrics?points=0", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/devices/d-none/metrics", method: .get, headers: admin)

            // A deployment, its assignment, its reports, its abort.
            let created = try await tests.deploy(client, tokens, devices: [enrolled.deviceID])
            let detail = try ServerTests.decode(DeploymentController.Detail.self, created)
            _ = try await client.execute(uri: "/api/v1/deployments", method: .post, headers: admin, body: ByteBuffer(string: #"{"app":""}"#))
            _ = try await client.execute(uri: "/api/v1/deployments", method: .post, headers: admin, body: ByteBuffer(string: String(repeating: " ", count: 20_000)))
            _ = try await client.execute(uri: "/api/v1/deployments", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/deployments/\(detail.deployment.id)", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/deployments/dep-none", method: .get, headers: admin)
            let polled = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: device)
            let execution = try #require(try ServerTests.decode(AssignmentList.self, polled).assignments.first).executionID
            _ = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: device.merging([.ifNoneMatch: try #require(polled.headers[.eTag])]))
            let report = "/agent/v1/executions/\(execution)/report"
            let step = StepResult(index: 0, name: "fetch", status: .succeeded, exitCode: 0, outputTail: "200 OK")
            _ = try await client.execute(uri: report, method: .post, headers: device, body: ServerTests.json(ExecutionReport(reportID: "p-1", state: .running, step: step)))
            _ = try await client.execute(uri: report, method: .post, headers: device, body: ByteBuffer(string: #"{"reportID":"p-2","state":"sideways"}"#))
            _ = try await client.execute(uri: report, method: .post, headers: [.authorization: "Bearer \(other.deviceToken)"],
                                         body: ServerTests.json(ExecutionReport(reportID: "p-3", state: .running)))
            _ = try await client.execute(uri: report, method: .post, headers: device, body: ServerTests.json(ExecutionReport(reportID: "p-4", state: .succeeded)))
            _ = try await client.execute(uri: report, method: .post, headers: device, body: ServerTests.json(ExecutionReport(reportID: "p-5", state: .failed)))
            _ = try await client.execute(uri: report, method: .post, headers: device, body: ByteBuffer(string: String(repeating: " ", count: 70_000)))
            _ = try await client.execute(uri: "/api/v1/deployments/\(detail.deployment.id)/abort", method: .post, headers: admin)
            _ = try await client.execute(uri: "/api/v1/deployments/dep-none/abort", method: .post, headers: admin)

            // Tokens and the audit log.
            let made = try await client.execute(uri: "/api/v1/tokens", method: .post, headers: admin, body: ByteBuffer(string: #"{"kind":"operator"}"#))
            _ = try await client.execute(uri: "/api/v1/tokens", method: .post, headers: admin, body: ByteBuffer(string: #"{"kind":"root"}"#))
            _ = try await client.execute(uri: "/api/v1/tokens", method: .post, headers: admin, body: ByteBuffer(string: String(repeating: " ", count: 10_000)))
            _ = try await client.execute(uri: "/api/v1/tokens", method: .get, headers: admin)
            let madeID = try #require(WireJSON.parse(Array(made.body.readableBytesView))?.member("info")?.member("id"))
            guard case .string(let tokenID) = madeID else { Issue.record("a token without an id"); return }
            _ = try await client.execute(uri: "/api/v1/tokens/\(tokenID)", method: .delete, headers: admin)
            _ = try await client.execute(uri: "/api/v1/tokens/tok-none", method: .delete, headers: admin)
            _ = try await client.execute(uri: "/api/v1/audit?limit=5", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/audit?limit=many", method: .get, headers: admin)

            // Alerts.
            _ = try await tests.store.saveAlert(AlertRecord(project: "acme", rule: "hot", device: enrolled.deviceID, state: .firing,
                                                            severity: .critical, since: Date(), firingAt: Date(), observed: "cpu 97",
                                                            summary: "The CPU is pegged."), replacing: nil)
            _ = try await tests.store.saveAlert(AlertRecord(project: "acme", rule: "quiet", device: enrolled.deviceID, state: .pending,
                                                            severity: .info, since: Date(), observed: "cpu 3"), replacing: nil)
            _ = try await client.execute(uri: "/api/v1/alerts?state=firing", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/alerts", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/alerts?state=burning", method: .get, headers: admin)

            // Secrets.
            let value = ByteBuffer(string: #"{"value":"hunter2"}"#)
            _ = try await client.execute(uri: "/api/v1/secrets/db-password", method: .put, headers: admin, body: value)
            _ = try await client.execute(uri: "/api/v1/secrets/db-password", method: .put, headers: admin, body: value)
            _ = try await client.execute(uri: "/api/v1/secrets/db%20password", method: .put, headers: admin, body: value)
            _ = try await client.execute(uri: "/api/v1/secrets", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/secrets/db-password", method: .delete, headers: admin)
            _ = try await client.execute(uri: "/api/v1/secrets/db-password", method: .delete, headers: admin)
            _ = try await client.execute(uri: "/api/v1/secrets/DB", method: .delete, headers: admin)

            // The controller's routes and the push webhooks.
            _ = try await client.execute(uri: "/api/v1/status", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/reconcile", method: .post, headers: admin)
            _ = try await client.execute(uri: "/api/v1/apps/thermostat/suspend", method: .post, headers: admin)
            _ = try await client.execute(uri: "/api/v1/apps/thermostat/resume", method: .post, headers: admin)
            _ = try await client.execute(uri: "/api/v1/apps/nothing/suspend", method: .post, headers: admin)
            let stranger: HTTPFields = [.authorization: "Bearer \(tokens.otherOperator)"]
            for verb in ["suspend", "resume"] {
                _ = try await client.execute(uri: "/api/v1/apps/\(String(repeating: "a", count: 64))/\(verb)", method: .post, headers: admin)
                _ = try await client.execute(uri: "/api/v1/apps/thermostat/\(verb)", method: .post, headers: stranger)
            }
            let approve = "/api/v1/apps/thermostat/targets/canary/approve"
            _ = try await client.execute(uri: approve, method: .post, headers: admin)
            _ = try await client.execute(uri: approve, method: .post, headers: admin)
            _ = try await client.execute(uri: "/api/v1/apps/thermostat/targets/\(String(repeating: "g", count: 64))/approve", method: .post, headers: admin)
            _ = try await client.execute(uri: "/api/v1/apps/thermostat/targets/nowhere/approve", method: .post, headers: admin)
            _ = try await client.execute(uri: approve, method: .post, headers: stranger)
            _ = try await client.execute(uri: "/api/v1/status", method: .get, headers: stranger)
            _ = try await client.execute(uri: "/api/v1/reconcile", method: .post, headers: stranger)
            _ = try await client.execute(uri: "/hooks/git/\(String(repeating: "a", count: 64))", method: .post, body: ByteBuffer(string: "{}"))
            for hook in ["/hooks/git", "/hooks/git/acme"] {
                for (event, body) in [("push", #"{"ref":"refs/heads/main"}"#), ("ping", #"{"zen":"ok"}"#), ("push", #"{"ref":"refs/heads/other"}"#)] {
                    let signature = "sha256=" + FleetCore.SHA256.hmacHex(key: Array(secret.utf8), message: Array(body.utf8))
                    _ = try await client.execute(uri: hook, method: .post, headers: [.init("X-Hub-Signature-256")!: signature,
                                                                                     .init("X-GitHub-Event")!: event],
                                                 body: ByteBuffer(string: body))
                }
                _ = try await client.execute(uri: hook, method: .post, body: ByteBuffer(string: "{}"))
                _ = try await client.execute(uri: hook, method: .post, headers: [.init("X-Hub-Signature-256")!: "sha256=00"],
                                             body: ByteBuffer(repeating: 0x20, count: 5 << 20 + 1))
            }

            // Remote commands: asked, taken, answered, refused.
            let exec = try await client.execute(uri: "/api/v1/exec", method: .post, headers: admin,
                                                body: ByteBuffer(string: #"{"devices":["\#(enrolled.deviceID)"],"command":["uptime"]}"#))
            let batch = try ServerTests.decode(RemoteBatchView.self, exec)
            _ = try await client.execute(uri: "/api/v1/exec", method: .post, headers: admin, body: ByteBuffer(string: #"{"command":["uptime"]}"#))
            _ = try await client.execute(uri: "/api/v1/exec", method: .post, headers: admin.merging([.contentType: "text/plain"]), body: ByteBuffer(string: "uptime"))
            _ = try await client.execute(uri: "/api/v1/exec", method: .post, headers: admin, body: ByteBuffer(repeating: 0x20, count: 20_000))
            _ = try await client.execute(uri: "/api/v1/fetch", method: .post, headers: admin,
                                         body: ByteBuffer(string: #"{"device":"\#(other.deviceID)","path":"/var/log/syslog"}"#))
            _ = try await client.execute(uri: "/api/v1/fetch", method: .post, headers: admin, body: ByteBuffer(string: #"{"device":"d-none","path":"/var/log/syslog"}"#))
            _ = try await client.execute(uri: "/api/v1/fetch", method: .post, headers: admin,
                                         body: ByteBuffer(string: #"{"device":"\#(other.deviceID)","path":"/etc/shadow"}"#))
            _ = try await client.execute(uri: "/api/v1/fetch", method: .post, headers: admin.merging([.contentType: "text/plain"]), body: ByteBuffer(string: "x"))
            _ = try await client.execute(uri: "/api/v1/fetch", method: .post, headers: admin, body: ByteBuffer(repeating: 0x20, count: 20_000))
            let commands = try await client.execute(uri: "/agent/v1/commands", method: .get, headers: device)
            let command = try #require(try ServerTests.decode(RemoteCommandList.self, commands).commands.first).id
            let raw: HTTPFields = device.merging([.contentType: "application/octet-stream"])
            _ = try await client.execute(uri: "/agent/v1/commands/\(command)/output?offset=0", method: .post, headers: raw, body: ByteBuffer(string: "up 3 days\n"))
            _ = try await client.execute(uri: "/agent/v1/commands/\(command)/output?offset=-1", method: .post, headers: raw, body: ByteBuffer(string: "x"))
            _ = try await client.execute(uri: "/agent/v1/commands/nothing/output", method: .post, headers: raw, body: ByteBuffer(string: "x"))
            _ = try await client.execute(uri: "/agent/v1/commands/\(command)/output?offset=10", method: .post, headers: raw,
                                         body: ByteBuffer(repeating: 0x41, count: RemoteCommand.defaultMaximumBytes))
            let result = "/agent/v1/commands/\(command)/result"
            _ = try await client.execute(uri: result, method: .post, headers: device, body: ServerTests.json(RemoteCommandResult(exitCode: 0, outputBytes: 10)))
            _ = try await client.execute(uri: result, method: .post, headers: device, body: ByteBuffer(string: #"{"outputBytes":-1}"#))
            _ = try await client.execute(uri: "/agent/v1/commands/nothing/result", method: .post, headers: device,
                                         body: ServerTests.json(RemoteCommandResult(exitCode: 0, outputBytes: 0)))
            _ = try await client.execute(uri: result, method: .post, headers: device.merging([.contentType: "text/plain"]), body: ByteBuffer(string: "done"))
            _ = try await client.execute(uri: result, method: .post, headers: device, body: ByteBuffer(repeating: 0x20, count: 10_000))
            _ = try await client.execute(uri: "/api/v1/remote/\(batch.id)", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/remote/r-none", method: .get, headers: admin)
            let output = "/api/v1/remote/\(batch.id)/devices/\(enrolled.deviceID)/output"
            _ = try await client.execute(uri: output + "?offset=3", method: .get, headers: admin)
            _ = try await client.execute(uri: output + "?offset=-3", method: .get, headers: admin)
            _ = try await client.execute(uri: "/api/v1/remote/\(batch.id)/devices/d-none/output", method: .get, headers: admin)

            // One device polling many times at once: past its share of waits, 429. (The waits
            // last 0.2 s here, so the crowd is sent again until one is refused.)
            func crowd(_ uri: String, _ headers: HTTPFields) async throws {
                for _ in 0..<20 {
                    let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                        for _ in 0..<8 { group.addTask { try await client.execute(uri: uri, method: .get, headers: headers).status } }
                        return try await group.reduce(into: [HTTPResponse.Status]()) { $0.append($1) }
                    }
                    if statuses.contains(.tooManyRequests) { return }
                }
                Issue.record("no poll of \(uri) was refused past the device's share of waits")
            }
            try await crowd("/agent/v1/commands", device)
            let idle = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: device)
            try await crowd("/agent/v1/assignments", device.merging([.ifNoneMatch: try #require(idle.headers[.eTag])]))

            // Reset, delete, and what the deleted device then hears.
            _ = try await client.execute(uri: "/api/v1/devices/\(other.deviceID)/reset-identity", method: .post, headers: admin)
            _ = try await client.execute(uri: "/api/v1/devices/\(other.deviceID)/reset-identity", method: .post, headers: admin,
                                         body: ByteBuffer(string: #"{"claimSeconds":"soon"}"#))
            _ = try await client.execute(uri: "/api/v1/devices/d-none/reset-identity", method: .post, headers: admin)
            _ = try await client.execute(uri: "/api/v1/devices/\(enrolled.deviceID)", method: .delete, headers: admin)
            _ = try await client.execute(uri: "/api/v1/devices/\(enrolled.deviceID)", method: .delete, headers: admin)
            _ = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: device, body: ServerTests.json(beat))
            _ = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: device)
            _ = try await client.execute(uri: report, method: .post, headers: device, body: ServerTests.json(ExecutionReport(reportID: "p-6", state: .running)))
            _ = try await client.execute(uri: "/agent/v1/commands", method: .get, headers: device)
            _ = try await client.execute(uri: "/agent/v1/commands/\(command)/output", method: .post, headers: raw, body: ByteBuffer(string: "x"))
            _ = try await client.execute(uri: result, method: .post, headers: device, body: ServerTests.json(RemoteCommandResult(exitCode: 0, outputBytes: 10)))

            // Without a token, every operation refuses.
            for operation in client.operations {
                let path = "/" + operation.template.map { $0.hasPrefix("{") ? "x" : String($0) }.joined(separator: "/")
                _ = try await client.execute(uri: path, method: HTTPRequest.Method(operation.method)!, body: ByteBuffer(string: "{}"))
            }
        }
        // A controller that has not read its first commit, no secret key, no webhook secret.
        try await tests.withServer(controllers: ControllerSet([ControllerSet.Entry(Unready())]), secrets: nil) { raw, tokens in
            let client = try #require(seen.withLock { $0 })
            let inner = CheckingClient((raw as! ServerTests.JSONClient).raw, document: document, record: client.record)
            let admin: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            _ = try await inner.execute(uri: "/api/v1/status", method: .get, headers: admin)
            _ = try await inner.execute(uri: "/api/v1/reconcile", method: .post, headers: admin)
            _ = try await inner.execute(uri: "/api/v1/apps/thermostat/suspend", method: .post, headers: admin)
            _ = try await inner.execute(uri: "/api/v1/apps/thermostat/resume", method: .post, headers: admin)
            _ = try await inner.execute(uri: "/api/v1/apps/thermostat/targets/canary/approve", method: .post, headers: admin)
            _ = try await inner.execute(uri: "/api/v1/secrets/db-password", method: .put, headers: admin, body: ByteBuffer(string: #"{"value":"x"}"#))
            _ = try await inner.execute(uri: "/api/v1/exec", method: .post, headers: admin, body: ByteBuffer(string: #"{"selector":"a=b","command":["uptime"]}"#))
            _ = try await inner.execute(uri: "/hooks/git", method: .post, headers: [.init("X-Hub-Signature-256")!: "sha256=00"], body: ByteBuffer(string: "{}"))
        }
        // A device past its allowances, on every route that counts against one.
        let allowance = DeviceRequestAllowance(perSecond: 0.01, burst: 1)
        try await tests.withServer(deviceRequests: allowance, enrollments: allowance) { raw, tokens in
            let client = try #require(seen.withLock { $0 })
            let inner = CheckingClient((raw as! ServerTests.JSONClient).raw, document: document, record: client.record)
            let enrolled = try ServerTests.decode(EnrollmentResponse.self, try await tests.enroll(inner, token: tokens.enrollment))
            _ = try await tests.enroll(inner, token: tokens.enrollment, hardware: "serial-2")
            let device: HTTPFields = [.authorization: "Bearer \(enrolled.deviceToken)"]
            let beat = try ServerTests.json(Heartbeat(reportID: "r-1"))
            _ = try await inner.execute(uri: "/agent/v1/heartbeat", method: .post, headers: device, body: beat)
            _ = try await inner.execute(uri: "/agent/v1/heartbeat", method: .post, headers: device, body: beat)
            _ = try await inner.execute(uri: "/agent/v1/executions/exe-1/report", method: .post, headers: device,
                                        body: ServerTests.json(ExecutionReport(reportID: "p-1", state: .running)))
            _ = try await inner.execute(uri: "/agent/v1/commands/cmd-1/output?offset=0", method: .post,
                                        headers: device.merging([.contentType: "application/octet-stream"]), body: ByteBuffer(string: "x"))
            _ = try await inner.execute(uri: "/agent/v1/commands/cmd-1/output?offset=0", method: .post,
                                        headers: device.merging([.contentType: "application/octet-stream"]), body: ByteBuffer(string: "x"))
            _ = try await inner.execute(uri: "/agent/v1/commands/cmd-1/result", method: .post, headers: device,
                                        body: ByteBuffer(string: #"{"exitCode":0,"outputBytes":0}"#))
        }
        // A token that may only read, on every operation that needs more.
        try await tests.withServer { raw, _ in
            let client = try #require(seen.withLock { $0 })
            let inner = CheckingClient((raw as! ServerTests.JSONClient).raw, document: document, record: client.record)
            let reader = AccessTokens.make(kind: .operator, project: "acme", access: .read)
            try await tests.store.insertToken(reader.record)
            for operation in client.operations where operation.template.starts(with: ["api", "v1"]) {
                let path = "/" + operation.template.map { $0.hasPrefix("{") ? "x" : String($0) }.joined(separator: "/")
                guard OperatorAccessRules.required(method: operation.method, path: path) > .read else { continue }
                _ = try await inner.execute(uri: path, method: HTTPRequest.Method(operation.method)!,
                                            headers: [.authorization: "Bearer \(reader.text)"], body: ByteBuffer(string: "{}"))
            }
        }
        let client = try #require(seen.withLock { $0 })
        let (answered, faults) = client.record.state.withLock { ($0.seen, $0.faults) }
        #expect(faults.isEmpty, "\(faults.joined(separator: "\n"))")
        // Every operation was reached and answered at least once with something other than 401.
        let operations = Set(client.operations.map { "\($0.method) /\($0.template.joined(separator: "/"))" })
        let reached = Set(answered.filter { !$0.hasSuffix(" 401") }.map { String($0.dropLast(4)) })
        #expect(operations.subtracting(reached).isEmpty, "never reached: \(operations.subtracting(reached).sorted())")
        // And every answer the document promises was seen, for real.
        let documented = Set(client.operations.flatMap { operation in
            (operation.operation.member("responses")?.members ?? []).map { "\(operation.method) /\(operation.template.joined(separator: "/")) \($0.key)" }
        })
        #expect(documented.subtracting(answered).isEmpty, "documented and never seen: \(documented.subtracting(answered).sorted())")
        #expect(documented.count > 90)
    }

    /// The validator is not a pass-through: what breaks a schema is caught, with its path.
    @Test(arguments: [
        (#"{"reportID":"r","accepted":"yes","heartbeatIntervalSeconds":25}"#, "$.accepted"),
        (#"{"reportID":"r","heartbeatIntervalSeconds":25}"#, "accepted is required"),
        (#"{"reportID":"r","accepted":true,"heartbeatIntervalSeconds":25,"extra":1}"#, "extra is not in the schema"),
        (#"{"reportID":"r","accepted":true,"heartbeatIntervalSeconds":2.5}"#, "is not integer"),
    ])
    func theValidatorCatchesWhatBreaksASchema(_ testCase: (String, String)) throws {
        let validator = SchemaValidator(document: try Self.document())
        let schema = try #require(validator.resolve("#/components/schemas/HeartbeatAcknowledgement"))
        let value = try #require(WireJSON.parse(Array(testCase.0.utf8)))
        let faults = validator.violations(of: value, against: schema)
        #expect(faults.contains { $0.contains(testCase.1) }, "\(faults)")
        let good = try #require(WireJSON.parse(Array(#"{"reportID":"r","accepted":true,"heartbeatIntervalSeconds":25}"#.utf8)))
        #expect(validator.violations(of: good, against: schema).isEmpty)
    }
}

extension WireJSON {
    /// The value of `key` in an object; nil for a missing key or anything but an object.
    func member(_ key: String) -> WireJSON? {
        members?.first { $0.key == key }?.value
    }
}
