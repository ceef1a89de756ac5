import FleetProtocol
@testable import FleetServer
import FleetStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// A controller whose commit in force allows what a test sets.
actor RemoteProject: ControllerHandle {
    var access: RemoteAccess?
    nonisolated let project: String

    init(_ access: RemoteAccess?, project: String = "acme") {
        self.access = access
        self.project = project
    }

    func remoteAccess() -> RemoteAccess? { access }
    func target(app: String, group: String) -> (version: String, digest: String, approval: Bool)? { nil }
    func requestPoll() {}
    func statusJSON() -> [UInt8]? { nil }
    func setSuspended(_ suspended: Bool, app: String) {}
    nonisolated var watchedBranch: String { "main" }
    func metrics() -> ControllerMetrics { ControllerMetrics() }
    func executionEnded() {}
    func scope() -> (project: String, apps: [String])? { (project, []) }
    nonisolated var assignedProject: String? { project }
}

/// `flotilla exec` and `flotilla fetch` through the real router: off unless the project allows
/// them, only for the project's own operators, and the device's side of the exchange.
struct RemoteTests {
    let server = ServerTests()

    typealias Tokens = ServerTests.Tokens

    /// An enrolled device that has sent a heartbeat (so it is online); its id, token and the ack.
    func onlineDevice(_ client: some TestClientProtocol, _ tokens: Tokens, hardware: String = "serial-1") async throws
        -> (id: String, auth: HTTPFields, ack: HeartbeatAcknowledgement) {
        let enrolled = try ServerTests.decode(EnrollmentResponse.self, try await server.enroll(client, token: tokens.enrollment, hardware: hardware))
        let auth: HTTPFields = [.authorization: "Bearer \(enrolled.deviceToken)"]
        let beat = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: auth,
                                            body: ServerTests.json(Heartbeat(reportID: "r-\(hardware)", agentVersion: "0.1.0")))
        return (enrolled.deviceID, auth, try ServerTests.decode(HeartbeatAcknowledgement.self, beat))
    }

    func exec(_ client: some TestClientProtocol, _ token: String, _ body: [String: Any]) async throws -> TestResponse {
        try await client.execute(uri: "/api/v1/exec", method: .post, headers: [.authorization: "Bearer \(token)"],
                                 body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
    }

    @Test func execAndFetchAreRefusedWithASentenceUntilTheProjectAllowsThem() async throws {
        let project = RemoteProject(nil)
        try await server.withServer(controller: project) { client, tokens in
            let device = try await onlineDevice(client, tokens)
            #expect(device.ack.remote == nil, "devices are told to poll for commands only when the project allows them")
            let refused = try await exec(client, tokens.operator, ["devices": [device.id], "command": ["uptime"]])
            #expect(refused.status == .forbidden)
            #expect(try ServerTests.error(refused).code == "remote_exec_off")
            #expect(try ServerTests.error(refused).message.contains("remote: {exec: true}"))
            let fetch = try await client.execute(uri: "/api/v1/fetch", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                                 body: ServerTests.json(["device": device.id, "path": "/var/log/syslog"]))
            #expect(fetch.status == .forbidden)
            #expect(try ServerTests.error(fetch).message.contains("fetchPaths: [/var/log]"))
            // Fetching allowed does not allow exec.
            await project.set(RemoteAccess(fetchPaths: ["/var/log"]))
            try await Task.sleep(for: RemoteAccessCache.lifetime + .milliseconds(100))
            let stillOff = try await exec(client, tokens.operator, ["devices": [device.id], "command": ["uptime"]])
            #expect(stillOff.status == .forbidden)
            #expect(try await server.store.openCommands(deviceID: device.id, at: Date()) == 0)
            let beat = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: device.auth,
                                                body: ServerTests.json(Heartbeat(reportID: "r-2", agentVersion: "0.1.0")))
            #expect(try ServerTests.decode(HeartbeatAcknowledgement.self, beat).remote == true)
        }
    }

    @Test func aDeviceTakesACommandAndSendsItsOutputInOrderThenItsResult() async throws {
        try await server.withServer(controller: RemoteProject(RemoteAccess(exec: true))) { client, tokens in
            let device = try await onlineDevice(client, tokens)
            #expect(device.ack.remote == true)
            let created = try await exec(client, tokens.operator, ["devices": [device.id], "command": ["sh", "-c", "echo it's me"], "timeoutSeconds": 5])
            #expect(created.status == .created)
            let batch = try ServerTests.decode(RemoteBatchView.self, created)
            #expect(batch.devices.map(\.state) == [.queued])
            #expect(batch.timeoutSeconds == 5 && batch.maximumBytes == RemoteCommand.defaultMaximumBytes)

            let list = try await client.execute(uri: "/agent/v1/commands", method: .get, headers: device.auth)
            let commands = try ServerTests.decode(RemoteCommandList.self, list).commands
            #expect(commands.map(\.command) == [["sh", "-c", "echo it's me"]])
            let id = try #require(commands.first?.id)

            func output(_ text: String, from offset: Int, auth: HTTPFields? = nil) async throws -> TestResponse {
                var headers = auth ?? device.auth
                headers[.contentType] = "application/octet-stream"
                return try await client.execute(uri: "/agent/v1/commands/\(id)/output?offset=\(offset)", method: .post, headers: headers,
                                                body: ByteBuffer(string: text))
            }
            func ack(_ response: TestResponse) throws -> RemoteCommandAcknowledgement {
                try ServerTests.decode(RemoteCommandAcknowledgement.self, response)
            }
            #expect(try ack(try await output("it's ", from: 0)) == RemoteCommandAcknowledgement(outputBytes: 5, ended: false))
            #expect(try ack(try await output("it's ", from: 0)).outputBytes == 5, "a resend adds nothing")
            #expect(try ack(try await output("!!", from: 9)).outputBytes == 5, "a gap is answered with where the output stands")
            #expect(try ack(try await output("me\n", from: 5)).outputBytes == 8)

            // Another device of the same project cannot write into it.
            let other = try await onlineDevice(client, tokens, hardware: "serial-2")
            #expect(try await output("forged", from: 8, auth: other.auth).status == .notFound)

            func result(_ value: RemoteCommandResult) async throws -> TestResponse {
                try await client.execute(uri: "/agent/v1/commands/\(id)/result", method: .post, headers: device.auth, body: ServerTests.json(value))
            }
            #expect(try ack(try await result(RemoteCommandResult(exitCode: 0, outputBytes: 9))) == RemoteCommandAcknowledgement(outputBytes: 8, ended: false))
            #expect(try await result(RemoteCommandResult(exitCode: 0, outputBytes: 8, message: "bell\u{7}")).status == .badRequest)
            #expect(try ack(try await result(RemoteCommandResult(exitCode: 0, outputBytes: 8))) == RemoteCommandAcknowledgement(outputBytes: 8, ended: true))
            #expect(try ack(try await output("late", from: 8)).ended)

            let operatorAuth: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            let shown = try ServerTests.decode(RemoteBatchView.self, try await client.execute(uri: "/api/v1/remote/\(batch.id)", method: .get, headers: operatorAuth))
            #expect(shown.done)
            #expect(shown.devices.first?.state == .succeeded && shown.devices.first?.exitCode == 0 && shown.devices.first?.outputBytes == 8)
            let bytes = try await client.execute(uri: "/api/v1/remote/\(batch.id)/devices/\(device.id)/output?offset=5", method: .get, headers: operatorAuth)
            #expect(String(buffer: bytes.body) == "me\n")
            #expect(bytes.headers[.contentType] == "application/octet-stream")

            // Who ran what where.
            let audit = try await server.store.audit(project: "acme", limit: 10).first { $0.action == "remote.exec" }
            #expect(audit?.actor.hasPrefix("operator:") == true)
            #expect(audit?.detail == "ran sh -c 'echo it'\\''s me' on \(device.id)")
        }
    }

    @Test func aCommandQueuedBeforeACommitTurnedExecOffIsNotHandedOut() async throws {
        let project = RemoteProject(RemoteAccess(exec: true, fetchPaths: ["/var/log"]))
        try await server.withServer(longPollSeconds: 0.2, controller: project) { client, tokens in
            let device = try await onlineDevice(client, tokens)
            #expect(try await exec(client, tokens.operator, ["devices": [device.id], "command": ["reboot"]]).status == .created)
            await project.set(RemoteAccess(fetchPaths: ["/var/log"]))
            try await Task.sleep(for: RemoteAccessCache.lifetime + .milliseconds(100))
            let list = try await client.execute(uri: "/agent/v1/commands", method: .get, headers: device.auth)
            #expect(try ServerTests.decode(RemoteCommandList.self, list).commands.isEmpty)
            // Turned on again within its pickup window, it is.
            await project.set(RemoteAccess(exec: true))
            try await Task.sleep(for: RemoteAccessCache.lifetime + .milliseconds(100))
            let again = try await client.execute(uri: "/agent/v1/commands", method: .get, headers: device.auth)
            #expect(try ServerTests.decode(RemoteCommandList.self, again).commands.map(\.command) == [["reboot"]])
        }
    }

    /// The command long-poll counts against the same limit as the assignments one: past it, a
    /// device that can be deferred gets no commands, when to ask again, and a closed connection.
    @Test func aCommandPollPastTheLimitOfLongPollsIsToldToAskAgainLater() async throws {
        try await server.withServer(longPollSeconds: 60, maximumLongPolls: 1, controller: RemoteProject(RemoteAccess(exec: true))) { client, tokens in
            let device = try await onlineDevice(client, tokens)
            let deferrable: HTTPFields = [.flotillaPoll: LongPollDeferral.value]
            let idle = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: device.auth)
            let tag = try #require(idle.headers[.eTag])
            async let held = client.execute(uri: "/agent/v1/assignments", method: .get,
                                            headers: device.auth.merging([.ifNoneMatch: tag]).merging(deferrable))
            try await server.waitUntilHeld(client, 1)
            let start = ContinuousClock.now
            let turnedAway = try await client.execute(uri: "/agent/v1/commands", method: .get, headers: device.auth.merging(deferrable))
            #expect(ContinuousClock.now - start < .seconds(10))
            #expect(turnedAway.status == .ok)
            #expect(try ServerTests.decode(RemoteCommandList.self, turnedAway).commands.isEmpty)
            #expect(turnedAway.headers[.connection] == "close")
            #expect(turnedAway.headers[.retryAfter].flatMap { Int($0) }.map { (30...60).contains($0) } == true)
            // A command queued meanwhile is handed out when the device asks again.
            #expect(try await exec(client, tokens.operator, ["devices": [device.id], "command": ["uptime"]]).status == .created)
            let again = try await client.execute(uri: "/agent/v1/commands", method: .get, headers: device.auth.merging(deferrable))
            #expect(try ServerTests.decode(RemoteCommandList.self, again).commands.map(\.command) == [["uptime"]])
            _ = try await server.deploy(client, tokens, devices: [device.id])
            #expect(try await held.status == .ok)
        }
    }

    /// A device whose identity an operator reset while it waited for commands is refused when
    /// its wait ends, rather than handed what was queued for the device meanwhile.
    @Test func aCommandPollEndingAfterTheIdentityWasResetIsRefused() async throws {
        try await server.withServer(longPollSeconds: 1, controller: RemoteProject(RemoteAccess(exec: true))) { client, tokens in
            let device = try await onlineDevice(client, tokens)
            async let waiting = client.execute(uri: "/agent/v1/commands", method: .get, headers: device.auth)
            try await Task.sleep(for: .milliseconds(200))
            let reset = try await client.execute(uri: "/api/v1/devices/\(device.id)/reset-identity", method: .post,
                                                 headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(reset.status == .ok)
            let ended = try await waiting
            #expect(ended.status == .unauthorized)
            #expect(try ServerTests.error(ended).code == "token_revoked")
        }
    }

    @Test func anotherProjectsOperatorAndDeviceTokensReachNothing() async throws {
        let everything = RemoteAccess(exec: true, fetchPaths: ["/var/log"])
        let projects = ControllerSet([ControllerSet.Entry(RemoteProject(everything)), ControllerSet.Entry(RemoteProject(everything, project: "other"))])
        try await server.withServer(controllers: projects) { client, tokens in
            let device = try await onlineDevice(client, tokens)
            // The other project allows exec too, but this device is not one of its own: as if it did not exist.
            let foreign = try await exec(client, tokens.otherOperator, ["devices": [device.id], "command": ["uptime"]])
            #expect(foreign.status == .badRequest)
            #expect(try ServerTests.error(foreign).message == "no device '\(device.id)' in project other")
            let fetched = try await client.execute(uri: "/api/v1/fetch", method: .post, headers: [.authorization: "Bearer \(tokens.otherOperator)"],
                                                   body: ServerTests.json(["device": device.id, "path": "/var/log/syslog"]))
            #expect(fetched.status == .badRequest)
            #expect(!String(buffer: foreign.body).contains("acme") && !String(buffer: fetched.body).contains("acme"))
            #expect(try await server.store.openCommands(deviceID: device.id, at: Date()) == 0)

            let created = try ServerTests.decode(RemoteBatchView.self, try await exec(client, tokens.operator, ["devices": [device.id], "command": ["id"]]))
            let other: HTTPFields = [.authorization: "Bearer \(tokens.otherOperator)"]
            #expect(try await client.execute(uri: "/api/v1/remote/\(created.id)", method: .get, headers: other).status == .notFound)
            #expect(try await client.execute(uri: "/api/v1/remote/\(created.id)/devices/\(device.id)/output", method: .get, headers: other).status == .notFound)

            // A device token is no operator token, on any remote route.
            for (uri, method) in [("/api/v1/exec", HTTPRequest.Method.post), ("/api/v1/fetch", .post), ("/api/v1/remote/\(created.id)", .get)] {
                let response = try await client.execute(uri: uri, method: method, headers: device.auth, body: ByteBuffer(string: "{}"))
                #expect(response.status == .unauthorized, "\(method) \(uri)")
            }
            // An operator token is no device token.
            let asOperator = try await client.execute(uri: "/agent/v1/commands", method: .get, headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(asOperator.status == .unauthorized)
        }
    }

    @Test func targetsAreCheckedAndOfflineOrBusyDevicesAreAnsweredAtOnce() async throws {
        try await server.withServer(controller: RemoteProject(RemoteAccess(exec: true))) { client, tokens in
            let online = try await onlineDevice(client, tokens)
            let silent = try ServerTests.decode(EnrollmentResponse.self, try await server.enroll(client, token: tokens.enrollment, hardware: "serial-9"))

            let bad: [([String: Any], String)] = [
                (["command": ["uptime"]], "devices"),
                (["devices": [online.id], "selector": "site=berlin", "command": ["uptime"]], "devices"),
                (["devices": [online.id], "command": [String]()], "command"),
                (["devices": [online.id], "command": [""]], "command"),
                (["devices": [online.id], "command": ["uptime"], "timeoutSeconds": 0], "timeoutSeconds"),
                (["devices": [online.id], "command": ["uptime"], "timeoutSeconds": 3_601], "timeoutSeconds"),
                (["devices": ["d-nobody"], "command": ["uptime"]], "devices[0]"),
                (["selector": "site in (berlin", "command": ["uptime"]], "selector"),
                (["selector": "site=paris", "command": ["uptime"]], "selector"),
                (["selector": "  ", "command": ["uptime"]], "selector"),
            ]
            for (body, field) in bad {
                let response = try await exec(client, tokens.operator, body)
                #expect(response.status == .badRequest, "\(body)")
                #expect(try ServerTests.error(response).field == field, "\(body): \(String(buffer: response.body))")
            }
            // A NUL would cut a word short on the device of what the audit log says: the body is refused.
            let nul = try await client.execute(uri: "/api/v1/exec", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                               body: ByteBuffer(string: #"{"devices":["\#(online.id)"],"command":["echo","a\u0000b"]}"#))
            #expect(nul.status == .badRequest)
            #expect(try await server.store.audit(project: "acme", limit: 10).allSatisfy { $0.action != "remote.exec" })
            // An offset no output reaches is refused, not computed with.
            let far = try await client.execute(uri: "/api/v1/remote/r-x/devices/\(online.id)/output?offset=9223372036854775807", method: .get,
                                               headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(far.status == .badRequest)
            let farDevice = try await client.execute(uri: "/agent/v1/commands/r-x-\(online.id)/output?offset=9223372036854775807", method: .post,
                                                     headers: online.auth.merging([.contentType: "application/octet-stream"]), body: ByteBuffer(string: "x"))
            #expect(farDevice.status == .badRequest)
            #expect(try await server.store.openCommands(deviceID: online.id, at: Date()) == 0, "nothing half-queued")

            // By selector: the device never heard from is answered at once as offline.
            let both = try ServerTests.decode(RemoteBatchView.self, try await exec(client, tokens.operator, ["selector": "site=berlin", "command": ["uptime"]]))
            #expect(Set(both.devices.map(\.device)) == [online.id, silent.deviceID])
            let offline = try #require(both.devices.first { $0.device == silent.deviceID })
            #expect(offline.state == .expired && offline.message?.contains("offline") == true)
            #expect(both.devices.first { $0.device == online.id }?.state == .queued)

            // A device holding as many commands as it may is not given more.
            for _ in 1..<RemoteCommandRecord.openPerDevice {
                _ = try await exec(client, tokens.operator, ["devices": [online.id], "command": ["uptime"]])
            }
            let full = try ServerTests.decode(RemoteBatchView.self, try await exec(client, tokens.operator, ["devices": [online.id], "command": ["uptime"]]))
            #expect(full.devices.first?.state == .failed)
            #expect(full.devices.first?.message?.contains("already has") == true)
        }
    }

    @Test func fetchPathsAreCheckedBeforeAnythingIsQueued() async throws {
        try await server.withServer(controller: RemoteProject(RemoteAccess(fetchPaths: ["/var/log"]))) { client, tokens in
            let device = try await onlineDevice(client, tokens)
            func fetch(_ path: String) async throws -> TestResponse {
                try await client.execute(uri: "/api/v1/fetch", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                         body: ServerTests.json(["device": device.id, "path": path]))
            }
            for path in ["/etc/shadow", "/var/log/../../etc/shadow", "/var/logs/x", "var/log/x", "/var/log//x", "/var/log/./x"] {
                let response = try await fetch(path)
                #expect(response.status == .forbidden, "\(path)")
                #expect(try ServerTests.error(response).field == "path", "\(path)")
            }
            #expect(try await server.store.openCommands(deviceID: device.id, at: Date()) == 0)
            let created = try await fetch("/var/log/app/app.log")
            #expect(created.status == .created)
            let list = try await client.execute(uri: "/agent/v1/commands", method: .get, headers: device.auth)
            let command = try #require(try ServerTests.decode(RemoteCommandList.self, list).commands.first)
            #expect(command.kind == .fetch && command.path == "/var/log/app/app.log" && command.allowedPaths == ["/var/log"])
            #expect(try await server.store.audit(project: "acme", limit: 1).first?.detail == "fetched /var/log/app/app.log on \(device.id)")
            // The fetched file, once there, is read by an operator: that read is audited too.
            var headers = device.auth
            headers[.contentType] = "application/octet-stream"
            _ = try await client.execute(uri: "/agent/v1/commands/\(command.id)/output?offset=0", method: .post, headers: headers, body: ByteBuffer(string: "log\n"))
            let batch = try ServerTests.decode(RemoteBatchView.self, created).id
            // Read while the fetch still runs, and from byte 1: each shows the file, each is audited.
            for (offset, shown, detail) in [(0, "log\n", "read /var/log/app/app.log of \(device.id)"),
                                            (1, "og\n", "read /var/log/app/app.log from byte 1 of \(device.id)")] {
                let early = try await client.execute(uri: "/api/v1/remote/\(batch)/devices/\(device.id)/output?offset=\(offset)", method: .get,
                                                     headers: [.authorization: "Bearer \(tokens.operator)"])
                #expect(String(buffer: early.body) == shown)
                let entry = try await server.store.audit(project: "acme", limit: 1).first
                #expect(entry?.action == "remote.fetch.read" && entry?.detail == detail, "offset \(offset)")
            }
            // A batch and device that only join into the command's id name no command, and read nothing.
            let joined = "\(batch)-\(device.id)"
            let split = joined.index(joined.startIndex, offsetBy: batch.count + 2)
            // `r-…-d` and `…`: joined with '-' by the old lookup, the real command's id.
            #expect(joined[..<split] + "-" + joined[joined.index(after: split)...] == command.id)
            let sideways = try await client.execute(uri: "/api/v1/remote/\(joined[..<split])/devices/\(joined[joined.index(after: split)...])/output", method: .get,
                                                    headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(sideways.status == .notFound)
            _ = try await client.execute(uri: "/agent/v1/commands/\(command.id)/result", method: .post, headers: device.auth,
                                         body: ServerTests.json(RemoteCommandResult(exitCode: 0, outputBytes: 4)))
            let read = try await client.execute(uri: "/api/v1/remote/\(batch)/devices/\(device.id)/output", method: .get,
                                                headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(String(buffer: read.body) == "log\n")
            let audit = try await server.store.audit(project: "acme", limit: 1).first
            #expect(audit?.action == "remote.fetch.read" && audit?.detail == "read /var/log/app/app.log of \(device.id)")
        }
    }
}

extension RemoteProject {
    func set(_ access: RemoteAccess?) { self.access = access }
}
