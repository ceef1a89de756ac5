import FleetCore
import FleetProtocol
import FleetStore
import Foundation
import Hummingbird

/// `/agent/v1`: what devices call. A device sees its own data and nothing else.
struct AgentController: Sendable {
    let store: any FleetStore
    let tokens: DeviceTokens
    let directory: DeviceDirectory
    let ingest: HeartbeatIngest
    let board: AssignmentBoard
    let configuration: ServerConfiguration
    /// Each device's allowance of heartbeats, reports and remote output, taken before a body is read.
    let limiter: DeviceRequestLimiter
    /// The device's project's controller is told when an execution ends, so the next wave of a
    /// rollout need not wait for a pass.
    var controllers = ControllerSet()
    /// Opens the secrets an assignment is filled in with, and hides them in what devices report.
    var secrets: SecretBox? = nil
    /// Whether each project allows remote commands: heartbeats' answers tell the devices.
    var remoteAccess: RemoteAccessCache? = nil
    /// Evaluates the project's alert rules on each new heartbeat, without holding its answer.
    var alerts: AlertEngine? = nil

    /// Enrollment, execution reports and remote commands' output run in a task of their own, as a
    /// heartbeat's checks and storing do: a device's connection stays open between its requests,
    /// and the task serving it keeps the deepest stack any of them reached (its stack slabs are
    /// freed only when it ends). In the converge benchmark's server at 3,000 devices this took
    /// 13–19 MB off the heap (heaptrack), through every phase of the run.
    func addRoutes(to group: RouterGroup<FleetRequestContext>) {
        group.post("enroll") { request, _ in try await Task { try await enroll(request) }.value }
        group.post("heartbeat") { request, _ in try await heartbeat(request) }
        group.get("assignments") { request, _ in try await assignments(request) }
        group.post("executions/:id/report") { request, context in
            let execution = try PathParameter.require(context, "id")
            return try await Task { try await report(request, execution: execution) }.value
        }
        addRemoteRoutes(to: group)
    }

    /// Answers at once when the device's work differs from what its `If-None-Match` names;
    /// otherwise waits for a change, up to the long-poll limit, then answers 304.
    ///
    /// Every device waits here nearly all the time, and the task serving a connection keeps
    /// the deepest stack it ever reached for as long as the connection lives (the concurrency
    /// runtime frees a task's stack slabs only when the task ends). So the work before and after
    /// the wait — the token, the store, the rendering — runs in a task of its own that ends with
    /// it, and the connection's task goes no deeper than this wait. It is inlined into its
    /// route's closure, for one frame fewer.
    @inline(__always)
    private func assignments(_ request: Request) async throws -> Response {
        let authorization = request.headers[.authorization], known = request.headers[.ifNoneMatch]
        let start = try await Task { try await self.assignmentsBeforeWait(authorization: authorization, known: known) }.value
        let (subject, mark): (DeviceTokens.Subject, UInt64)
        switch start {
        case .answer(let response): return response
        case .wait(let waiting, let since): (subject, mark) = (waiting, since)
        }
        let declined: Bool
        switch await board.longPoll(device: subject.device, since: mark, timeout: .milliseconds(Int(configuration.longPollSeconds * 1_000)),
                                    limit: longPollLimit(request)) {
        case .ended: declined = false
        case .declined: declined = true
        case .deviceBusy: throw busy()
        }
        // Read again also when the wait was declined: work committed after the first read, whose
        // wake has not come yet, is handed out rather than left for the device's next poll.
        let answer = try await Task { try await self.assignmentsAfterWait(subject, known: known) }.value
        return declined && answer.status == .notModified ? deferred(answer) : answer
    }

    /// How many waits this poll may join: the server's limit when the device can be deferred
    /// (`LongPollDeferral`), else no limit — an agent that cannot would ask again at once.
    func longPollLimit(_ request: Request) -> Int {
        request.headers[.flotillaPoll] == LongPollDeferral.value ? configuration.longPollLimit : .max
    }

    /// A long-poll not held, because the server holds its limit of them: the device asks again
    /// in a half to a whole long-poll's time (spread, so devices turned away together come back
    /// apart), on a new connection — it is asked to close this one (the agent does), as the
    /// point is to keep none for it.
    func deferred(_ answer: Response) -> Response {
        var response = answer
        let longest = max(1, Int(configuration.longPollSeconds.rounded()))
        response.headers[.retryAfter] = String(Int.random(in: max(1, longest / 2)...longest))
        response.headers[.connection] = "close"
        return response
    }

    /// A device already waiting `AssignmentBoard.waitsPerDevice` times: it is refused, and told
    /// when to ask again, so one device's token cannot fill the board for every other device.
    func busy() -> APIError {
        var error = APIError(.tooManyRequests, "too_many_polls",
                             "this device already has \(AssignmentBoard.waitsPerDevice) long-polls of this kind waiting")
        error.retryAfter = max(1, Int(configuration.longPollSeconds.rounded()))
        return error
    }

    private func assignmentsBeforeWait(authorization: String?, known: String?) async throws -> LongPollStart {
        let subject = try await subject(authorization: authorization)
        try limiter.take(subject, .polls)
        let device = try await admit(subject)
        // Marked before the read: work queued between the read and the wait still wakes it.
        let mark = await board.mark()
        let executions = try await store.activeExecutions(deviceID: device)
        if Assignments.entityTag(executions) == known { return .wait(subject, since: mark) }
        return .answer(try await assignmentList(device: device, executions: executions))
    }

    private func assignmentsAfterWait(_ subject: DeviceTokens.Subject, known: String?) async throws -> Response {
        // Admitted again: the device may have been deleted, or its identity reset, while it waited.
        let device = try await admit(subject)
        let executions = try await store.activeExecutions(deviceID: device)
        let tag = Assignments.entityTag(executions)
        if tag == known { return Response(status: .notModified, headers: [.eTag: tag]) }
        return try await assignmentList(device: device, executions: executions)
    }

    /// The device's work as it is sent: queued executions taken, secrets filled in.
    @inline(never)
    private func assignmentList(device: String, executions: [ExecutionRecord]) async throws -> Response {
        var executions = executions
        var tag = Assignments.entityTag(executions)
        // The device takes what it is sent now: its timeout counts from here.
        if executions.contains(where: { $0.state == .queued }) {
            executions = try await store.takeExecutions(deviceID: device, at: Date())
            tag = Assignments.entityTag(executions)
        }
        var list: [Assignment] = []
        for execution in executions {
            guard let deployment = try await store.deployment(id: execution.deploymentID) else { continue }
            let opened = try await DeploymentSecrets.open(for: deployment, store: store, box: secrets)
            guard opened.missing.isEmpty else {
                // Deleted since the deployment was made: the step cannot be filled in, so the
                // execution is cancelled here, saying why, rather than run with a hole in its
                // command. (The controller offers it again once the secret is set.)
                _ = try await store.endExecution(id: execution.id, as: .cancelled,
                                                 message: "secret '\(opened.missing[0])' is no longer set in project \(deployment.project); "
                                                     + "set it with: flotilla secret set \(deployment.project) \(opened.missing[0])",
                                                 unlessUpdatedAfter: nil, at: Date())
                executions.removeAll { $0.id == execution.id }
                tag = Assignments.entityTag(executions)
                if !controllers.isEmpty {
                    let controllers = controllers, project = deployment.project
                    Task { await controllers.entry(for: project)?.handle.executionEnded() }
                }
                continue
            }
            list.append(Assignments.render(execution, of: deployment, secrets: opened.values))
        }
        var response = try JSONBody.response(AssignmentList(assignments: list))
        response.headers[.eTag] = tag
        // It may hold secrets: no cache on the way keeps a copy.
        response.headers[.cacheControl] = "no-store"
        return response
    }

    private func report(_ request: Request, execution: String) async throws -> Response {
        let subject = try await subject(request)
        try limiter.take(subject, .reports)
        let device = try await admit(subject)
        var report = try await JSONBody.decode(ExecutionReport.self, from: request, limit: configuration.maximumBodyBytes)
        _ = try await admit(subject)  // again: the identity may have been reset while the body arrived
        try Validate.text(report.reportID, field: "reportID", maximum: 128)
        guard [.running, .succeeded, .failed].contains(report.state) else {
            throw APIError.invalid("'state' from a device is running, succeeded or failed", field: "state")
        }
        try Self.check(report)
        // The flow the execution runs: a step's result is for one of its steps (a device could
        // otherwise grow its execution by a result for every index up to the rules' maximum).
        guard let record = try await store.execution(id: execution, deviceID: device) else {
            throw APIError.notFound("no execution '\(execution)' for this device")
        }
        let deployment = try await store.deployment(id: record.deploymentID)
        if let step = report.step, let deployment {
            let count = step.rollback ? deployment.rollback.count : deployment.steps.count
            guard step.index < count else {
                throw APIError.invalid("'step.index' must name one of the \(count) \(step.rollback ? "rollback steps" : "steps") of this execution's flow",
                                       field: "step.index")
            }
        }
        report = try await redacted(report, deployment: deployment)
        // Cut after the secrets are hidden: a cut through one would leave a part no mark replaces.
        report.message = report.message.map(Self.shownMessage)
        switch try await store.applyExecutionReport(executionID: execution, deviceID: device, report: report, at: Date()) {
        case .applied(let record):
            if record.state.isFinal, !controllers.isEmpty {
                let controllers = controllers, project = subject.project
                Task { await controllers.entry(for: project)?.handle.executionEnded() }
            }
            return try JSONBody.response(ExecutionReportAcknowledgement(reportID: report.reportID, accepted: true, state: record.state))
        case .duplicate(let record):
            return try JSONBody.response(ExecutionReportAcknowledgement(reportID: report.reportID, accepted: false, state: record.state))
        case .finished(let record):
            throw APIError(.conflict, "execution_finished", "the execution is already \(record.state.rawValue)")
        case .notFound:
            throw APIError.notFound("no execution '\(execution)' for this device")
        }
    }

    /// A step that echoes a secret sends it back in its output: it is replaced before anything
    /// is stored, so no API answer, log or report ever holds it — also for a late report on an
    /// execution the server already ended. When a secret cannot be opened (deleted, or sealed
    /// under another key), what the device sent cannot be checked, so it is withheld.
    private func redacted(_ report: ExecutionReport, deployment: DeploymentRecord?) async throws -> ExecutionReport {
        guard report.step?.outputTail != nil || report.message != nil, let deployment, !deployment.secrets.isEmpty else { return report }
        let opened = try await DeploymentSecrets.open(for: deployment, store: store, box: secrets)
        var redacted = report
        guard opened.missing.isEmpty else {
            let withheld = "[withheld: secret '\(opened.missing[0])' could not be opened to hide it]"
            if report.step?.outputTail != nil { redacted.step?.outputTail = withheld }
            if report.message != nil { redacted.message = withheld }
            return redacted
        }
        if let tail = report.step?.outputTail {
            // Still the tail: a short value replaced by its longer mark must not grow it past the limit.
            redacted.step?.outputTail = String(decoding: Array(opened.redact(tail).utf8).suffix(16 * 1024), as: UTF8.self)
        }
        redacted.message = report.message.map(opened.redact)
        return redacted
    }

    private func enroll(_ request: Request) async throws -> Response {
        let body = try await JSONBody.decode(EnrollmentRequest.self, from: request, limit: configuration.maximumBodyBytes)
        let now = Date()
        let token = try await AccessTokens.verify(body.token, kind: .enrollment, store: store, now: now)
        try limiter.take(enrollmentToken: token.id)
        try Validate.text(body.hardwareID, field: "hardwareID", maximum: 256)
        let attributes = try Self.checkDescription(body)
        guard body.deviceSecret.utf8.count >= 16, body.deviceSecret.utf8.count <= 256 else {
            throw APIError.invalid("'deviceSecret' must be 16 to 256 characters", field: "deviceSecret")
        }
        var tags = body.tags ?? [:]
        if let group = token.group { tags["group"] = group }
        let candidate = DeviceRecord(id: "d-" + AccessTokens.randomHex(bytes: 8), project: token.project,
                                     name: body.name ?? body.hardwareID, hardwareID: body.hardwareID,
                                     secretHash: AccessTokens.hash(body.deviceSecret), reportedTags: tags,
                                     attributes: attributes, enrolledAt: now)
        if let code = body.claimCode { try Validate.text(code, field: "claimCode", maximum: 128) }
        let mark = directory.mark
        var device = try await store.enroll(candidate)
        let again = device.id != candidate.id
        var action = again ? "device.reenroll" : "device.enroll"
        if again, device.secretHash.isEmpty {
            // An operator reset this identity: only the one-time claim code lets a board take it,
            // or whoever enrolled first after the reset would become the device.
            device = try await claim(device, body: body, token: token, now: now)
            action = "device.identity.claim"
        } else if again, !AccessTokens.matches(body.deviceSecret, hash: device.secretHash) {
            // The enrollment token is on every device: enrolling again as a known hardware id must
            // prove that device's secret, or anyone holding one device could become any other.
            try await refuse(device, token: token, now: now, why: "the device secret does not match")
            throw APIError(.forbidden, "device_secret_mismatch",
                           "hardware '\(body.hardwareID)' is enrolled as \(device.id) with another device secret; if the board was "
                           + "replaced, an operator resets its identity (flotilla devices reset-identity \(device.id)) and gives "
                           + "the new board the claim code")
        }
        directory.remember(device, readSince: mark)
        try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "token:\(token.id)",
                                                action: action, subject: device.id, detail: "hardware \(body.hardwareID)"))
        let deviceToken = try await tokens.issue(device: device.id, project: device.project, generation: device.tokenGeneration, now: now)
        let response = EnrollmentResponse(deviceID: device.id, project: device.project, deviceToken: deviceToken,
                                          heartbeatIntervalSeconds: configuration.heartbeatIntervalSeconds)
        return try JSONBody.response(response, status: again ? .ok : .created)
    }

    /// A reset device taken by the board that presents its claim code, once; refused and audited otherwise.
    private func claim(_ device: DeviceRecord, body: EnrollmentRequest, token: AccessTokenRecord, now: Date) async throws -> DeviceRecord {
        guard let code = body.claimCode else {
            try await refuse(device, token: token, now: now, why: "its identity was reset and no claim code was given")
            throw APIError(.forbidden, "claim_code_required",
                           "hardware '\(body.hardwareID)' had its identity reset: enroll with the claim code the reset printed "
                           + "(flotilla-agent --claim-code, or claimCode in agent.yaml)")
        }
        guard let expiry = device.claimExpiresAt, expiry > now else {
            try await refuse(device, token: token, now: now, why: "its claim code expired")
            throw APIError(.forbidden, "claim_code_expired",
                           "the claim code for hardware '\(body.hardwareID)' expired; an operator resets its identity again")
        }
        guard let stored = device.claimHash, AccessTokens.matches(code, hash: stored),
              let claimed = try await store.claimIdentity(deviceID: device.id, claimHash: stored,
                                                          secretHash: AccessTokens.hash(body.deviceSecret), at: now) else {
            try await refuse(device, token: token, now: now, why: "a wrong claim code was given")
            throw APIError(.forbidden, "claim_code_mismatch", "that is not the claim code for hardware '\(body.hardwareID)'")
        }
        return claimed
    }

    private func refuse(_ device: DeviceRecord, token: AccessTokenRecord, now: Date, why: String) async throws {
        try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "token:\(token.id)",
                                                action: "device.reenroll.refused", subject: device.id,
                                                detail: "hardware \(device.hardwareID): \(why)"))
    }

    /// A device's heartbeat connection stays open between its heartbeats, and its task keeps
    /// the deepest stack it reached, as a long-poll's does (see `assignments`): only reading the
    /// body happens in that task; checking and storing run in a task that ends with them.
    @inline(__always)
    private func heartbeat(_ request: Request) async throws -> Response {
        // The token is checked before the body is read: from the tokens already verified, or
        // (the first time this process sees it) in a task of its own, whose stack goes with it.
        let token = try Self.bearer(request.headers[.authorization])
        let subject: DeviceTokens.Subject
        if let known = tokens.remembered(token) {
            subject = known
        } else {
            subject = try await Task { try await self.tokens.verify(token) }.value
        }
        try limiter.take(subject, .reports)
        let body = try await JSONBody.collect(request, limit: configuration.maximumBodyBytes)
        return try await Task { try await self.heartbeat(body, subject: subject) }.value
    }

    private func heartbeat(_ body: ByteBuffer, subject: DeviceTokens.Subject) async throws -> Response {
        // Admitted once the body is in: the identity may have been reset while it arrived.
        let device = try await admit(subject)
        let report = try JSONBody.decode(Heartbeat.self, from: body)
        try Validate.text(report.reportID, field: "reportID", maximum: 128)
        if let cpu = report.cpuPercent, !(0...100).contains(cpu) || cpu.isNaN {
            throw APIError.invalid("'cpuPercent' must be between 0 and 100", field: "cpuPercent")
        }
        try Self.check(report)
        let received = Date()
        let accepted = try await ingest.submit(HeartbeatRecord(deviceID: device, receivedAt: received, report: report))
        directory.heard(device)
        if accepted { alerts?.observe(project: subject.project, device: device, report: report, at: received) }
        let remote = await remoteAccess?.access(project: subject.project)?.isEnabled ?? false
        return try JSONBody.response(HeartbeatAcknowledgement(reportID: report.reportID, accepted: accepted,
                                                              heartbeatIntervalSeconds: configuration.heartbeatIntervalSeconds,
                                                              remote: remote ? true : nil))
    }

    /// What a device says of itself at enrollment, shown in the console, the API and terminals:
    /// its name is a name; its tags are tags a selector can match (the fleet repository's rules);
    /// its attributes' names are names. Its attributes' values are facts it read (an os-release
    /// line, a kernel version): kept, cut to 1 KiB with control characters replaced, as
    /// returned — an odd byte in a file the device reads must not keep it from enrolling.
    static func checkDescription(_ body: EnrollmentRequest) throws -> [String: String] {
        if let name = body.name { try Validate.shown(name, field: "name", maximum: 256) }
        let tags = body.tags ?? [:], attributes = body.attributes ?? [:]
        guard tags.count <= 64 else { throw APIError.invalid("'tags' holds at most 64 tags", field: "tags") }
        for (key, value) in tags.sorted(by: { $0.key < $1.key }) {
            if let problem = TagSyntax.keyProblem(key) ?? TagSyntax.valueProblem(value) {
                throw APIError.invalid(DisplayText.safe(problem, limit: 300), field: "tags")
            }
        }
        guard attributes.count <= 64 else { throw APIError.invalid("'attributes' holds at most 64 values", field: "attributes") }
        for key in attributes.keys.sorted() { try Validate.shown(key, field: "attributes", maximum: 128) }
        return attributes.mapValues { DisplayText.printable($0, maximumBytes: 1_024) }
    }

    /// What an execution report may say. Its step is stored and shown (the console numbers it
    /// from one, tables print its name), so its numbers are bounded and its name is a step's name.
    static func check(_ report: ExecutionReport) throws {
        guard let step = report.step else { return }
        guard (0..<StepResult.maximumCount).contains(step.index) else {
            throw APIError.invalid("'step.index' must be from 0 to \(StepResult.maximumCount - 1)", field: "step.index")
        }
        if let problem = StepRules.nameProblem(step.name) { throw APIError.invalid("'step.name' \(problem)", field: "step.name") }
        guard (0...StepResult.maximumAttempts).contains(step.attempts) else {
            throw APIError.invalid("'step.attempts' must be from 0 to \(StepResult.maximumAttempts)", field: "step.attempts")
        }
        if let output = step.outputTail, output.utf8.count > 16 * 1024 {
            throw APIError.invalid("'step.outputTail' is limited to 16 KiB; send the tail", field: "step.outputTail")
        }
    }

    /// A report's message as it is kept: at most 2 KiB, with control characters other than line
    /// breaks and tabs replaced. It is the agent's own words about a failure, so it is kept rather
    /// than refused — refusing it would leave the execution waiting on a report that never lands.
    static func shownMessage(_ message: String) -> String {
        DisplayText.printable(message.replacingOccurrences(of: "\r\n", with: "\n"), maximumBytes: 2 * 1_024, keeping: ["\n", "\t"])
    }

    /// What a heartbeat may say: sizes are not negative, names are names, texts are bounded and
    /// free of control characters — it ends up in the console, the API and operators' terminals.
    static func check(_ report: Heartbeat) throws {
        func text(_ value: String, _ field: String, maximum: Int = 256) throws { try Validate.shown(value, field: field, maximum: maximum) }
        func size(_ value: Int64, _ field: String) throws {
            guard value >= 0 else { throw APIError.invalid("'\(field)' must not be negative", field: field) }
        }
        if let memory = report.memory {
            try size(memory.usedBytes, "memory.usedBytes")
            try size(memory.totalBytes, "memory.totalBytes")
        }
        for (index, disk) in (report.disks ?? []).enumerated() {
            try text(disk.mount, "disks[\(index)].mount", maximum: 4_096)
            try size(disk.usedBytes, "disks[\(index)].usedBytes")
            try size(disk.totalBytes, "disks[\(index)].totalBytes")
        }
        if let uptime = report.uptimeSeconds { try size(uptime, "uptimeSeconds") }
        if let load = report.load, load.contains(where: { $0.isNaN || $0 < 0 }) {
            throw APIError.invalid("'load' values must not be negative", field: "load")
        }
        for (index, process) in (report.processes ?? []).enumerated() { try text(process.name, "processes[\(index)].name") }
        // Custom values reach alerts, STATUS.md and terminals: names are names, values bounded as
        // the agent bounds them (a value may hold a newline; it is escaped where it is shown).
        if let custom = report.custom {
            guard custom.count <= 64 else { throw APIError.invalid("'custom' holds at most 64 values", field: "custom") }
            for (name, value) in custom {
                try text(name, "custom", maximum: 128)
                guard value.utf8.count <= 1_024 else {
                    throw APIError.invalid("'custom.\(DisplayText.safe(name, limit: 64))' must be at most 1024 bytes", field: "custom")
                }
            }
        }
        for (name, app) in report.apps ?? [:] {
            if let problem = FleetNames.problem(name) {
                throw APIError.invalid("app '\(DisplayText.safe(name, limit: 64))' is not an app name: \(problem)", field: "apps")
            }
            try text(app.version, "apps.\(name).version", maximum: 128)
            if let probe = app.probe {
                // What a probe says becomes the version the controller decides on, and text in STATUS.md.
                if let version = probe.version, let problem = StepRules.versionProblem(version) {
                    throw APIError.invalid("'apps.\(name).probe.version' is not a version: \(problem)", field: "apps.\(name).probe.version")
                }
                if let error = probe.error { try text(error, "apps.\(name).probe.error", maximum: 512) }
                try size(probe.atMilliseconds, "apps.\(name).probe.atMilliseconds")
            }
        }
        if let executing = report.executing { try text(executing, "executing", maximum: 128) }
        if let version = report.agentVersion { try text(version, "agentVersion", maximum: 64) }
        if let lock = report.lock {
            try text(lock.reason, "lock.reason", maximum: 200)
            if let until = lock.untilMilliseconds { try size(until, "lock.untilMilliseconds") }
        }
    }

    /// What the request's device token says, its signature checked.
    func subject(_ request: Request) async throws -> DeviceTokens.Subject {
        try await subject(authorization: request.headers[.authorization])
    }

    /// What the device token in an `Authorization` header says, its signature checked.
    func subject(authorization header: String?) async throws -> DeviceTokens.Subject {
        try await tokens.verify(try Self.bearer(header))
    }

    /// The token of an `Authorization: Bearer` header; 401 without one.
    static func bearer(_ header: String?) throws -> String {
        guard let header, header.hasPrefix("Bearer ") else {
            throw APIError.unauthorized("a device token is required (Authorization: Bearer …)")
        }
        return String(header.dropFirst("Bearer ".count))
    }

    /// The device, when the registry still lets the token's subject in: known, in its project,
    /// not deleted, and of the device's current token generation.
    func admit(_ subject: DeviceTokens.Subject) async throws -> String {
        guard let entry = try await directory.entry(for: subject.device), entry.project == subject.project else {
            throw APIError.unauthorized("unknown device")
        }
        guard !entry.deleted else {
            throw APIError(.gone, "device_deleted", "this device was deleted by an operator; stop and enroll again if it should return")
        }
        guard entry.tokenGeneration == subject.generation else {
            throw APIError(.unauthorized, "token_revoked", "this device token was revoked when an operator reset the device's identity")
        }
        return subject.device
    }
}

/// What the work before a long-poll's wait decides.
enum LongPollStart: Sendable {
    /// Answer now with this.
    case answer(Response)
    /// Nothing new for the device the token names (admitted) as of the board's `mark`: wait for
    /// its work to change.
    case wait(DeviceTokens.Subject, since: UInt64)
}

/// Checks shared by the controllers.
enum Validate {
    /// A remote command's `offset` query parameter: where its output is read or written from.
    static func offset(_ request: Request) throws -> Int {
        guard let text = request.uri.queryParameters["offset"].map(String.init) else { return 0 }
        guard let value = Int(text), (0...RemoteCommand.maximumOffset).contains(value) else {
            throw APIError.invalid("'offset' is a whole number from 0 to \(RemoteCommand.maximumOffset)", field: "offset")
        }
        return value
    }

    /// Text shown to people (the console, the API, terminals): 1 to `maximum` bytes, without any
    /// control character `StepRules.isControl` names — C1, line separators and bidirectional
    /// overrides too, not only what `text` refuses.
    static func shown(_ value: String, field: String, maximum: Int) throws {
        guard !value.isEmpty, value.utf8.count <= maximum, !value.unicodeScalars.contains(where: StepRules.isControl) else {
            throw APIError.invalid("'\(field)' must be 1 to \(maximum) bytes without control characters", field: field)
        }
    }

    static func text(_ value: String, field: String, maximum: Int) throws {
        guard !value.isEmpty, value.utf8.count <= maximum else {
            throw APIError.invalid("'\(field)' must be 1 to \(maximum) characters", field: field)
        }
        // Ids and names are printed in logs, notes and tables, and no store keeps a NUL.
        guard !value.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            throw APIError.invalid("'\(field)' must not hold control characters", field: field)
        }
    }
}
