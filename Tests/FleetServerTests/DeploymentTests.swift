import FleetProtocol
@testable import FleetServer
import FleetStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Deployments from the operator API to the devices' long-polls and reports.
extension ServerTests {
    static let steps = [
        AssignedStep(name: "fetch", kind: .download, url: "https://cdn.example.com/${app}/${version}.tgz", sha256: "${sum}",
                     destination: "/opt/${app}/${device}.tgz", timeoutSeconds: 60, retries: 2, onFailure: "abort", idempotent: true),
        AssignedStep(name: "start", kind: .run, command: "start ${app} --device ${device}", timeoutSeconds: 30, retries: 0,
                     onFailure: "rollback", idempotent: false),
    ]

    func deploy(_ client: some TestClientProtocol, _ tokens: Tokens, devices: [String], version: String = "2.5.0",
                steps: [AssignedStep] = steps, probe: AssignedProbe? = nil) async throws -> TestResponse {
        let body = DeploymentController.Request(app: "thermostat", version: version, flow: "compose-app", digest: "d1",
                                                parameters: ["sum": String(repeating: "a", count: 64)], steps: steps, rollback: nil,
                                                artifactAllowlist: ["https://cdn.example.com/"], probe: probe, devices: devices)
        return try await client.execute(uri: "/api/v1/deployments", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                        body: Self.json(body))
    }

    @Test func aDeploymentReachesItsDevicesAndTheirReportsComeBack() async throws {
        try await withServer { client, tokens in
            let one = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment, hardware: "serial-1"))
            let two = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment, hardware: "serial-2"))
            let created = try await deploy(client, tokens, devices: [one.deviceID, two.deviceID])
            #expect(created.status == .created)
            let detail = try Self.decode(DeploymentController.Detail.self, created)
            #expect(detail.executions.map(\.state) == [.queued, .queued])

            let auth: HTTPFields = [.authorization: "Bearer \(one.deviceToken)"]
            let polled = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: auth)
            #expect(polled.status == .ok)
            let list = try Self.decode(AssignmentList.self, polled)
            let assignment = try #require(list.assignments.first)
            #expect(list.assignments.count == 1)
            // Templates are filled in for this device.
            #expect(assignment.steps[0].url == "https://cdn.example.com/thermostat/2.5.0.tgz")
            #expect(assignment.steps[0].destination == "/opt/thermostat/\(one.deviceID).tgz")
            #expect(assignment.steps[1].command == "start thermostat --device \(one.deviceID)")
            #expect(assignment.artifactAllowlist == ["https://cdn.example.com/"])
            let tag = try #require(polled.headers[.eTag])

            // Progress, once per report id.
            let execution = assignment.executionID
            let step = StepResult(index: 0, name: "fetch", status: .succeeded, exitCode: 0, outputTail: "200 OK")
            let progress = ExecutionReport(reportID: "p-1", state: .running, step: step)
            let first = try await client.execute(uri: "/agent/v1/executions/\(execution)/report", method: .post, headers: auth, body: Self.json(progress))
            #expect(first.status == .ok)
            let again = try await client.execute(uri: "/agent/v1/executions/\(execution)/report", method: .post, headers: auth, body: Self.json(progress))
            #expect(String(buffer: again.body).contains("\"accepted\":false"))

            // The work changed (a step reported), so the old tag no longer matches: an answer at once.
            let changed = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: auth.merging([.ifNoneMatch: tag]))
            #expect(changed.status == .ok)

            let done = ExecutionReport(reportID: "p-2", state: .succeeded)
            _ = try await client.execute(uri: "/agent/v1/executions/\(execution)/report", method: .post, headers: auth, body: Self.json(done))
            let late = try await client.execute(uri: "/agent/v1/executions/\(execution)/report", method: .post, headers: auth,
                                                body: Self.json(ExecutionReport(reportID: "p-3", state: .failed)))
            #expect(late.status == .conflict)
            #expect(try Self.error(late).code == "execution_finished")
            // Another device cannot report on it.
            let stranger = try await client.execute(uri: "/agent/v1/executions/\(execution)/report", method: .post,
                                                    headers: [.authorization: "Bearer \(two.deviceToken)"],
                                                    body: Self.json(ExecutionReport(reportID: "p-9", state: .running)))
            #expect(stranger.status == .notFound)

            // Abort cancels what has not finished.
            let aborted = try await client.execute(uri: "/api/v1/deployments/\(detail.deployment.id)/abort", method: .post,
                                                   headers: [.authorization: "Bearer \(tokens.operator)"])
            let states = try Self.decode(DeploymentController.Detail.self, aborted).executions.map(\.state)
            #expect(states == [.succeeded, .cancelled])
            let empty = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: [.authorization: "Bearer \(two.deviceToken)"])
            #expect(try Self.decode(AssignmentList.self, empty).assignments.isEmpty)
        }
    }

    /// Reports number steps below `StepResult.maximumCount`: a deployment of more would have
    /// its later steps' reports refused, so it is refused itself.
    @Test func aDeploymentOfMoreStepsThanReportsCanNumberIsRefused() async throws {
        try await withServer(operatorBodyLimit: 8 << 20) { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let step = AssignedStep(name: "s", kind: .run, command: "true", timeoutSeconds: 1, retries: 0, onFailure: "abort", idempotent: true)
            let refused = try await deploy(client, tokens, devices: [device.deviceID], steps: Array(repeating: step, count: StepResult.maximumCount + 1))
            #expect(refused.status == .badRequest)
            #expect(try Self.error(refused).field == "steps")
        }
    }

    @Test func aReportsStepIsCheckedAndItsMessageKeptPrintable() async throws {
        try await withServer { client, tokens in
            let one = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment, hardware: "serial-1"))
            let created = try Self.decode(DeploymentController.Detail.self, try await deploy(client, tokens, devices: [one.deviceID]))
            let auth: HTTPFields = [.authorization: "Bearer \(one.deviceToken)"]
            let execution = try #require(created.executions.first).id
            func send(_ report: ExecutionReport) async throws -> TestResponse {
                try await client.execute(uri: "/agent/v1/executions/\(execution)/report", method: .post, headers: auth, body: Self.json(report))
            }
            // The console numbers a step from one: Int.max once made every view of the device trap.
            let hostile: [(StepResult, String)] = [
                (StepResult(index: .max, name: "x", status: .failed), "step.index"),
                (StepResult(index: -1, name: "x", status: .failed), "step.index"),
                (StepResult(index: StepResult.maximumCount, name: "x", status: .failed), "step.index"),
                // Within the rules, but past the flow's two steps (and its no rollback steps): a
                // result for every index would grow the execution without bound.
                (StepResult(index: 2, name: "x", status: .failed), "step.index"),
                (StepResult(index: 9_999, name: "x", status: .failed), "step.index"),
                (StepResult(index: 0, name: "x", status: .failed, rollback: true), "step.index"),
                (StepResult(index: 0, name: "\u{1B}[2J", status: .failed), "step.name"),
                (StepResult(index: 0, name: "", status: .failed), "step.name"),
                (StepResult(index: 0, name: "x", status: .failed, attempts: -1), "step.attempts"),
            ]
            for (number, (step, field)) in hostile.enumerated() {
                let refused = try await send(ExecutionReport(reportID: "bad-\(number)", state: .running, step: step))
                #expect(refused.status == .badRequest, "\(field)")
                #expect(try Self.error(refused).field == field)
            }
            func stored() async throws -> ExecutionRecord {
                let shown = try await client.execute(uri: "/api/v1/deployments/\(created.deployment.id)", method: .get,
                                                     headers: [.authorization: "Bearer \(tokens.operator)"])
                return try #require(try Self.decode(DeploymentController.Detail.self, shown).executions.first)
            }
            #expect(try await stored().results.isEmpty, "nothing refused was kept")

            // A message is the agent's own words: kept, bounded and without terminal controls.
            let message = "step 'fetch' failed: \u{1B}]52;c;cHduZWQ=\u{07}\r\n" + String(repeating: "é", count: 1_500)
            let final = try await send(ExecutionReport(reportID: "last", state: .failed, step: StepResult(index: 0, name: "fetch", status: .failed),
                                                       message: message))
            #expect(final.status == .ok)
            let kept = try #require(try await stored().message)
            #expect(kept.utf8.count <= 2 * 1_024 && kept.hasSuffix("\u{2026}"))
            #expect(kept.hasPrefix("step 'fetch' failed: \u{FFFD}]52;c;cHduZWQ=\u{FFFD}\n"), "line breaks stay, controls do not")
        }
    }

    /// A device just enrolled, its token as a header, and the entity tag of its empty work: what
    /// its next long-poll sends as `If-None-Match` to wait.
    func idleDevice(_ client: some TestClientProtocol, _ tokens: Tokens, hardware: String = "serial-1") async throws
        -> (device: EnrollmentResponse, auth: HTTPFields, tag: String) {
        let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment, hardware: hardware))
        let auth: HTTPFields = [.authorization: "Bearer \(device.deviceToken)"]
        let idle = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: auth)
        return (device, auth, try #require(idle.headers[.eTag]))
    }

    @Test func aLongPollAnswersWhenWorkArrives() async throws {
        // A long limit: answering well before it shows the poll was woken, not timed out.
        try await withServer(longPollSeconds: 60) { client, tokens in
            let (device, auth, tag) = try await idleDevice(client, tokens)

            let start = ContinuousClock.now
            async let waiting = client.execute(uri: "/agent/v1/assignments", method: .get, headers: auth.merging([.ifNoneMatch: tag]))
            try await Task.sleep(for: .milliseconds(200))
            _ = try await deploy(client, tokens, devices: [device.deviceID])
            let woken = try await waiting
            #expect(woken.status == .ok)
            #expect(try Self.decode(AssignmentList.self, woken).assignments.count == 1)
            #expect(ContinuousClock.now - start < .seconds(30), "the poll should end when work arrives, not at its limit")
        }
    }

    /// A device whose identity an operator reset while it waited is refused when its wait ends:
    /// the work that woke it is not handed to the old token.
    @Test func aLongPollWokenAfterItsIdentityWasResetIsRefused() async throws {
        try await withServer(longPollSeconds: 60) { client, tokens in
            let (device, auth, tag) = try await idleDevice(client, tokens)

            async let waiting = client.execute(uri: "/agent/v1/assignments", method: .get, headers: auth.merging([.ifNoneMatch: tag]))
            try await Task.sleep(for: .milliseconds(200))
            let reset = try await client.execute(uri: "/api/v1/devices/\(device.deviceID)/reset-identity", method: .post,
                                                 headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(reset.status == .ok)
            _ = try await deploy(client, tokens, devices: [device.deviceID])
            let woken = try await waiting
            #expect(woken.status == .unauthorized)
            #expect(try Self.error(woken).code == "token_revoked")
        }
    }

    /// A server holding its limit of long-polls answers a device that can be deferred at once:
    /// nothing new, when to ask again (a half to a whole long-poll), and a connection to close.
    /// Work queued meanwhile is not lost: the device's next poll gets it at once. A device that
    /// did not say it can be deferred (an older agent, which would ask again at once) is held.
    @Test func pastItsLimitOfLongPollsTheServerTellsDevicesToAskAgainLater() async throws {
        try await withServer(longPollSeconds: 60, maximumLongPolls: 1) { client, tokens in
            let deferrable: HTTPFields = [.flotillaPoll: LongPollDeferral.value]
            let (first, firstAuth, firstTag) = try await idleDevice(client, tokens, hardware: "serial-1")
            let (second, secondAuth, secondTag) = try await idleDevice(client, tokens, hardware: "serial-2")
            let (third, thirdAuth, thirdTag) = try await idleDevice(client, tokens, hardware: "serial-3")

            async let held = client.execute(uri: "/agent/v1/assignments", method: .get,
                                            headers: firstAuth.merging([.ifNoneMatch: firstTag]).merging(deferrable))
            try await waitUntilHeld(client, 1)
            let start = ContinuousClock.now
            let turnedAway = try await client.execute(uri: "/agent/v1/assignments", method: .get,
                                                      headers: secondAuth.merging([.ifNoneMatch: secondTag]).merging(deferrable))
            #expect(ContinuousClock.now - start < .seconds(10), "a device past the limit is answered at once")
            #expect(turnedAway.status == .notModified)
            #expect(turnedAway.headers[.eTag] == secondTag)
            #expect(turnedAway.headers[.connection] == "close")
            let askAgainIn = try #require(turnedAway.headers[.retryAfter].flatMap { Int($0) })
            #expect((30...60).contains(askAgainIn))

            _ = try await deploy(client, tokens, devices: [second.deviceID])
            let asksAgain = try await client.execute(uri: "/agent/v1/assignments", method: .get,
                                                     headers: secondAuth.merging([.ifNoneMatch: secondTag]).merging(deferrable))
            #expect(asksAgain.status == .ok)
            #expect(try Self.decode(AssignmentList.self, asksAgain).assignments.count == 1)

            // Without the header, held past the limit: answered when its work arrives, not at once.
            async let older = client.execute(uri: "/agent/v1/assignments", method: .get, headers: thirdAuth.merging([.ifNoneMatch: thirdTag]))
            try await waitUntilHeld(client, 2)
            _ = try await deploy(client, tokens, devices: [third.deviceID, first.deviceID])
            let (olderAnswer, heldAnswer) = try await (older, held)
            #expect(olderAnswer.status == .ok)
            #expect(olderAnswer.headers[.retryAfter] == nil)
            #expect(heldAnswer.status == .ok)
            #expect(try Self.decode(AssignmentList.self, heldAnswer).assignments.count == 1)
        }
    }

    /// A device's token opening poll after poll gets its share of the board (four waits), then
    /// 429 with when to ask again — deferrable or not, so it cannot fill the board for the others.
    @Test func oneDeviceCannotHoldMoreThanItsShareOfLongPolls() async throws {
        try await withServer(longPollSeconds: 60) { client, tokens in
            let (device, auth, tag) = try await idleDevice(client, tokens)
            let (other, otherAuth, otherTag) = try await idleDevice(client, tokens, hardware: "serial-2")
            let waiting = auth.merging([.ifNoneMatch: tag])
            async let first = client.execute(uri: "/agent/v1/assignments", method: .get, headers: waiting)
            async let second = client.execute(uri: "/agent/v1/assignments", method: .get, headers: waiting)
            async let third = client.execute(uri: "/agent/v1/assignments", method: .get, headers: waiting)
            async let fourth = client.execute(uri: "/agent/v1/assignments", method: .get, headers: waiting)
            try await waitUntilHeld(client, 4)
            let fifth = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: waiting)
            #expect(fifth.status == .tooManyRequests)
            #expect(try Self.error(fifth).code == "too_many_polls")
            #expect(fifth.headers[.retryAfter] == "60")
            // Another device still waits, and is woken by its work.
            async let otherWaits = client.execute(uri: "/agent/v1/assignments", method: .get, headers: otherAuth.merging([.ifNoneMatch: otherTag]))
            try await waitUntilHeld(client, 5)
            _ = try await deploy(client, tokens, devices: [device.deviceID, other.deviceID])
            #expect(try await otherWaits.status == .ok)
            for answer in try await [first, second, third, fourth] { #expect(answer.status == .ok) }
        }
    }

    @Test func aLongPollWithNothingNewAnswers304AtItsLimit() async throws {
        try await withServer(longPollSeconds: 0.5) { client, tokens in
            let (_, auth, tag) = try await idleDevice(client, tokens)
            let start = ContinuousClock.now
            let quiet = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: auth.merging([.ifNoneMatch: tag]))
            #expect(quiet.status == .notModified)
            #expect(quiet.headers[.eTag] == tag)
            #expect(ContinuousClock.now - start >= .milliseconds(500))
        }
    }

    @Test func badDeploymentsAreRefusedWithTheField() async throws {
        try await withServer { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            var typo = Self.steps
            typo[1].command = "start ${ap}"
            let template = try await deploy(client, tokens, devices: [device.deviceID], steps: typo)
            #expect(template.status == .badRequest)
            #expect(try Self.error(template).field == "steps[1]")
            let unknown = try await deploy(client, tokens, devices: [device.deviceID, "d-nowhere"])
            #expect(try Self.error(unknown).field == "devices[1]")
            let none = try await deploy(client, tokens, devices: [])
            #expect(try Self.error(none).field == "devices")
            let state = try await client.execute(uri: "/agent/v1/executions/x/report", method: .post,
                                                 headers: [.authorization: "Bearer \(device.deviceToken)"],
                                                 body: ByteBuffer(string: #"{"reportID":"r","state":"cancelled"}"#))
            #expect(try Self.error(state).field == "state")
        }
    }

    /// A deployment's probe reaches its devices filled in; one outside a flow's rules is refused.
    @Test func aProbeGoesWithTheAssignmentAndKeepsAFlowsRules() async throws {
        try await withServer { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let probe = AssignedProbe(command: "cat /opt/${app}/VERSION", timeoutSeconds: 10, intervalSeconds: 60)
            #expect(try await deploy(client, tokens, devices: [device.deviceID], probe: probe).status == .created)
            let polled = try await client.execute(uri: "/agent/v1/assignments", method: .get, headers: [.authorization: "Bearer \(device.deviceToken)"])
            let assignment = try #require(try Self.decode(AssignmentList.self, polled).assignments.first)
            #expect(assignment.probe == AssignedProbe(command: "cat /opt/thermostat/VERSION", timeoutSeconds: 10, intervalSeconds: 60))

            for (bad, field, message) in [
                (AssignedProbe(command: "cat", timeoutSeconds: 0, intervalSeconds: 60), "probe.timeoutSeconds", "must be from 1 to 3600"),
                (AssignedProbe(command: "cat", timeoutSeconds: 5, intervalSeconds: 1), "probe.intervalSeconds", "must be from 10 to 86400"),
                (AssignedProbe(command: "", timeoutSeconds: 5, intervalSeconds: 60), "probe.command", "is required"),
                (AssignedProbe(command: "cat ${versoin}", timeoutSeconds: 5, intervalSeconds: 60), "probe.command", "'${versoin}', which is neither"),
                (AssignedProbe(command: "cat ${sum", timeoutSeconds: 5, intervalSeconds: 60), "probe.command", "not closed"),
            ] {
                let refused = try await deploy(client, tokens, devices: [device.deviceID], probe: bad)
                #expect(refused.status == .badRequest, "\(bad)")
                let error = try Self.error(refused)
                #expect(error.field == field && error.message.contains(message), "\(error)")
            }
        }
    }

    /// What an attacker or a careless script posts: each refused with the field at fault, and
    /// nothing stored.
    static let hostileSteps: [(String, @Sendable (inout AssignedStep) -> Void, String)] = [
        ("huge retries", { $0.retries = Int.max }, "steps[1].retries"),
        ("negative retries", { $0.retries = -1 }, "steps[1].retries"),
        ("negative timeout", { $0.timeoutSeconds = -30 }, "steps[1].timeoutSeconds"),
        ("unknown onFailure", { $0.onFailure = "explode" }, "steps[1].onFailure"),
        ("run without a command", { $0.command = nil }, "steps[1].command"),
        ("name with a newline", { $0.name = "start\nnow" }, "steps[1].name"),
        ("download without a URL", { $0 = AssignedStep(name: "get", kind: .download, sha256: String(repeating: "a", count: 64), destination: "/opt/x", timeoutSeconds: 5,
                                                       retries: 0, onFailure: "abort", idempotent: true) }, "steps[1].url"),
        ("download outside the allowlist", { $0 = AssignedStep(name: "get", kind: .download, url: "https://evil.example/x", sha256: String(repeating: "a", count: 64),
                                                               destination: "/opt/x", timeoutSeconds: 5, retries: 0, onFailure: "abort",
                                                               idempotent: true) }, "steps[1].url"),
        ("destination climbing out", { $0 = AssignedStep(name: "get", kind: .download, url: "https://cdn.example.com/x", sha256: String(repeating: "a", count: 64),
                                                         destination: "/opt/../etc/passwd", timeoutSeconds: 5, retries: 0,
                                                         onFailure: "abort", idempotent: true) }, "steps[1].destination"),
        ("relative destination", { $0 = AssignedStep(name: "get", kind: .download, url: "https://cdn.example.com/x", sha256: String(repeating: "a", count: 64),
                                                     destination: "etc/passwd", timeoutSeconds: 5, retries: 0,
                                                     onFailure: "abort", idempotent: true) }, "steps[1].destination"),
    ]

    @Test(arguments: hostileSteps.indices)
    func hostileStepsAreRefusedWithTheField(_ index: Int) async throws {
        let (_, change, field) = Self.hostileSteps[index]
        try await withServer { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            var steps = Self.steps
            change(&steps[1])
            let refused = try await deploy(client, tokens, devices: [device.deviceID], steps: steps)
            #expect(refused.status == .badRequest)
            let error = try Self.error(refused)
            #expect(error.field == field, "\(error.message)")
            #expect(try await store.deployments(project: "acme", limit: 10).isEmpty)
        }
    }

    @Test(arguments: [
        (#""app": "../etc""#, "app"), (#""app": "web\nx""#, "app"), (#""flow": "a b""#, "flow"), (#""version": "1.0\u001b[2J""#, "version"),
        (#""version": """#, "version"), (#""artifactAllowlist": ["ftp://x"]"#, "artifactAllowlist[0]"),
        (#""parameters": {"version": "x"}"#, "parameters"),
    ])
    func hostileFieldsAreRefusedWithTheField(_ override: String, _ field: String) async throws {
        try await withServer { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let valid = DeploymentController.Request(app: "web", version: "1.0", flow: "f", digest: nil, parameters: nil,
                                                     steps: [Self.steps[1]], rollback: nil, artifactAllowlist: nil, devices: [device.deviceID])
            var body = try #require(try JSONSerialization.jsonObject(with: try JSONEncoder().encode(valid)) as? [String: Any])
            let replacement = try #require(try JSONSerialization.jsonObject(with: Data("{\(override)}".utf8)) as? [String: Any])
            body.merge(replacement) { $1 }
            let refused = try await client.execute(uri: "/api/v1/deployments", method: .post,
                                                   headers: [.authorization: "Bearer \(tokens.operator)"],
                                                   body: ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
            #expect(refused.status == .badRequest)
            let error = try Self.error(refused)
            #expect(error.field == field, "\(error.message)")
        }
    }

    /// Parameters are checked where they land: a value that climbs out of a path or leaves a
    /// URL outside the allowlist, and a small body that would fill in to a huge one on every poll.
    @Test(arguments: [
        (["d": "/opt/../etc"], AssignedStep(name: "get", kind: .download, url: "https://cdn.example.com/x", sha256: String(repeating: "a", count: 64),
                                            destination: "${d}/x", timeoutSeconds: 5, retries: 0, onFailure: "abort", idempotent: true),
         "steps[0].destination"),
        ([:], AssignedStep(name: "get", kind: .download, url: "https://evil.example/$${app}", sha256: String(repeating: "a", count: 64),
                           destination: "/opt/x", timeoutSeconds: 5, retries: 0, onFailure: "abort", idempotent: true), "steps[0].url"),
        (["u": "https://evil.example/x"], AssignedStep(name: "get", kind: .download, url: "${u}", sha256: String(repeating: "a", count: 64),
                                                      destination: "/opt/x", timeoutSeconds: 5, retries: 0, onFailure: "abort", idempotent: true),
         "steps[0].url"),
        ([:], AssignedStep(name: "get", kind: .download, url: "https://cdn.example.com/x", sha256: "not-hex", destination: "/opt/x",
                           timeoutSeconds: 5, retries: 0, onFailure: "abort", idempotent: true), "steps[0].sha256"),
        (["p": String(repeating: "x", count: 40_000)], AssignedStep(name: "boom", kind: .run, command: "${p}${p}", timeoutSeconds: 5,
                                                                   retries: 0, onFailure: "abort", idempotent: false), "steps[0].command"),
        ([:], AssignedStep(name: "bidi\u{202E}txt", kind: .run, command: "true", timeoutSeconds: 5, retries: 0, onFailure: "abort",
                           idempotent: false), "steps[0].name"),
    ] as [([String: String], AssignedStep, String)])
    func parametersAreCheckedWhereTheyLand(_ parameters: [String: String], _ step: AssignedStep, _ field: String) async throws {
        try await withServer(operatorBodyLimit: 1 << 20) { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let body = DeploymentController.Request(app: "web", version: "1.0", flow: "f", digest: nil, parameters: parameters, steps: [step],
                                                    rollback: nil, artifactAllowlist: ["https://cdn.example.com/"], devices: [device.deviceID])
            let refused = try await client.execute(uri: "/api/v1/deployments", method: .post,
                                                   headers: [.authorization: "Bearer \(tokens.operator)"], body: Self.json(body))
            #expect(refused.status == .badRequest)
            let error = try Self.error(refused)
            #expect(error.field == field, "\(error.message)")
        }
    }

    /// Twenty steps under the per-field limit that together fill in to over a mebibyte.
    @Test func anAssignmentIsBoundedOnceFilledIn() async throws {
        try await withServer(operatorBodyLimit: 1 << 20) { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let step = AssignedStep(name: "s", kind: .run, command: "${p}", timeoutSeconds: 5, retries: 0, onFailure: "abort", idempotent: false)
            let body = DeploymentController.Request(app: "web", version: "1.0", flow: "f", digest: nil,
                                                    parameters: ["p": String(repeating: "x", count: 60_000)],
                                                    steps: Array(repeating: step, count: 20), rollback: nil, artifactAllowlist: nil,
                                                    devices: [device.deviceID])
            let refused = try await client.execute(uri: "/api/v1/deployments", method: .post,
                                                   headers: [.authorization: "Bearer \(tokens.operator)"], body: Self.json(body))
            #expect(refused.status == .badRequest)
            #expect(try Self.error(refused).message.contains("more than 1048576 bytes once filled in"))
        }
    }

    /// A deployment names every device it reaches, so operator bodies have a limit of their own,
    /// larger than the agent's.
    @Test func deploymentBodiesHaveTheOperatorLimit() async throws {
        try await withServer { client, tokens in
            let device = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            var long = Self.steps
            long[1].command = "start ${app} # " + String(repeating: "x", count: 6_000)
            let accepted = try await deploy(client, tokens, devices: [device.deviceID], steps: long)
            #expect(accepted.status == .created)
            long[1].command = "start ${app} # " + String(repeating: "x", count: 20_000)
            let refused = try await deploy(client, tokens, devices: [device.deviceID], steps: long)
            #expect(refused.status == .contentTooLarge)
            #expect(try Self.error(refused).code == "body_too_large")
        }
    }
}

extension HTTPFields {
    func merging(_ other: HTTPFields) -> HTTPFields {
        var fields = self
        for field in other { fields.append(field) }
        return fields
    }
}

extension ServerTests {
    @Test func metricsCountHeartbeatsRequestsAndOnlineDevices() async throws {
        try await withServer { client, tokens in
            let enrolled = try Self.decode(EnrollmentResponse.self, try await enroll(client, token: tokens.enrollment))
            let auth: HTTPFields = [.authorization: "Bearer \(enrolled.deviceToken)"]
            for id in ["r1", "r2", "r2"] {
                _ = try await client.execute(uri: "/agent/v1/heartbeat", method: .post, headers: auth, body: Self.json(Heartbeat(reportID: id)))
            }
            _ = try await client.execute(uri: "/api/v1/devices", method: .get)
            let scrape = try await client.execute(uri: "/metrics", method: .get)
            #expect(scrape.status == .ok)
            let text = String(buffer: scrape.body)
            let lines = Set(text.split(separator: "\n").map(String.init))
            #expect(lines.contains("flotilla_heartbeats_total 2"))
            #expect(lines.contains("flotilla_heartbeats_duplicate_total 1"))
            #expect(lines.contains("flotilla_devices_online 1.0"))
            #expect(lines.contains(#"flotilla_http_requests_total{status="4xx"} 1"#))
            #expect(lines.contains(#"flotilla_http_requests_total{status="2xx"} 4"#))
            #expect(text.contains("flotilla_heartbeat_batch_size_count"))
            // Tokens never appear in what is scraped.
            #expect(!text.contains(enrolled.deviceToken))

            // A deleted device is not online, at once (not when its last heartbeat ages out).
            let deleted = try await client.execute(uri: "/api/v1/devices/\(enrolled.deviceID)", method: .delete,
                                                  headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(deleted.status == .noContent)
            let after = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            #expect(after.split(separator: "\n").contains("flotilla_devices_online 0.0"))
        }
    }
}
