import FleetCore
import FleetProtocol
import FleetStore
import Foundation
import Hummingbird

/// `/api/v1`: what operators and tools call, with a bearer token scoped to one project.
struct OperatorController: Sendable {
    let store: any FleetStore
    let directory: DeviceDirectory
    let configuration: ServerConfiguration
    /// Ends a deleted device's alerts.
    var alerts: AlertEngine? = nil

    func addRoutes(to group: RouterGroup<FleetRequestContext>) {
        group.get("projects") { _, context in
            let token = try context.operatorToken()
            return try JSONBody.response(["projects": try await store.projects().filter { $0.name == token.project }.map(\.name)])
        }
        group.get("devices") { request, context in try await listDevices(request, context) }
        group.get("devices/:id") { request, context in try await showDevice(request, context, id: try PathParameter.require(context, "id")) }
        group.get("devices/:id/metrics") { request, context in try await deviceMetrics(request, context, id: try PathParameter.require(context, "id")) }
        group.delete("devices/:id") { request, context in try await deleteDevice(request, context, id: try PathParameter.require(context, "id")) }
        group.post("devices/:id/reset-identity") { request, context in try await resetIdentity(request, context, id: try PathParameter.require(context, "id")) }
        group.get("tokens") { _, context in
            let token = try context.operatorToken()
            return try JSONBody.response(["tokens": try await store.tokens(project: token.project).map(TokenView.init)])
        }
        group.post("tokens") { request, context in try await createToken(request, context) }
        group.delete("tokens/:id") { request, context in try await revokeToken(request, context, id: try PathParameter.require(context, "id")) }
        group.get("audit") { request, context in try await auditLog(request, context) }
        group.get("alerts") { request, context in try await listAlerts(request, context) }
    }

    /// An alert as the API shows it.
    struct AlertView: Codable, Equatable {
        var rule: String
        var device: String
        var state: AlertRecord.State
        var severity: AlertSeverity
        var since: Date
        var firingAt: Date?
        var resolvedAt: Date?
        var observed: String
        var summary: String?

        init(_ alert: AlertRecord) {
            rule = alert.rule
            device = alert.device
            state = alert.state
            severity = alert.severity
            since = alert.since
            firingAt = alert.firingAt
            resolvedAt = alert.resolvedAt
            observed = alert.observed
            summary = alert.summary
        }
    }

    /// `GET /alerts[?state=firing|pending|resolved][&device=ID]`: the project's alerts, by rule and device.
    private func listAlerts(_ request: Request, _ context: FleetRequestContext) async throws -> Response {
        let token = try context.operatorToken()
        var state: AlertRecord.State?
        if let text = request.uri.queryParameters.get("state") {
            guard let parsed = AlertRecord.State(rawValue: text) else {
                throw APIError.invalid("'state' is firing, pending or resolved", field: "state")
            }
            state = parsed
        }
        let device = request.uri.queryParameters.get("device")
        let alerts = try await store.alerts(project: token.project)
            .filter { state == nil || $0.state == state } .filter { device == nil || $0.device == device }
        return try JSONBody.response(["alerts": alerts.map(AlertView.init)])
    }

    /// A device as the API shows it: never its secret hash.
    typealias DeviceView = OperatorDeviceView
    typealias DeviceDetail = OperatorDeviceDetail

    /// The longest lifetime a token can be given: ten years.
    static let maximumTokenSeconds = 10 * 365 * 86_400

    struct TokenRequest: Codable {
        var kind: AccessTokenRecord.Kind
        var group: String?
        var expiresInSeconds: Int?
        /// An operator token's access; without it, the access of the token making it.
        var access: OperatorAccess?
    }

    struct CreatedToken: Codable {
        var token: String
        var info: TokenView
    }

    private func view(_ device: DeviceRecord, now: Date) -> DeviceView { Self.view(device, now: now, configuration: configuration) }

    /// Whether the device was heard from within the configured window.
    static func isOnline(_ device: DeviceRecord, now: Date, configuration: ServerConfiguration) -> Bool {
        device.lastHeartbeatAt.map { now.timeIntervalSince($0) <= configuration.offlineAfterSeconds } ?? false
    }

    /// A device as operators see it, online when heard from within the configured window.
    static func view(_ device: DeviceRecord, now: Date, configuration: ServerConfiguration) -> DeviceView {
        let online = isOnline(device, now: now, configuration: configuration)
        return DeviceView(id: device.id, name: device.name, project: device.project, hardwareID: device.hardwareID,
                          tags: device.reportedTags, attributes: device.attributes, apps: device.apps, online: online,
                          enrolledAt: device.enrolledAt, lastHeartbeatAt: device.lastHeartbeatAt)
    }

    private func listDevices(_ request: Request, _ context: FleetRequestContext) async throws -> Response {
        let token = try context.operatorToken()
        let query = request.uri.queryParameters
        var selector: LabelSelector?
        if let text = query["selector"].map(String.init) {
            do {
                selector = try LabelSelector(parsing: text)
            } catch {
                throw APIError.invalid("invalid selector at column \(error.offset + 1): \(error.reason)", field: "selector")
            }
        }
        var online: Bool?
        if let text = query["online"].map(String.init) {
            guard let value = Bool(text) else { throw APIError.invalid("'online' is true or false", field: "online") }
            online = value
        }
        let app = query["app"].map(String.init), version = query["version"].map(String.init)
        if version != nil, app == nil { throw APIError.invalid("'version' needs 'app'", field: "version") }
        let now = Date()
        let devices = try await store.devices(project: token.project).map { view($0, now: now) }.filter { device in
            (selector?.matches(device.tags) ?? true)
                && (online.map { $0 == device.online } ?? true)
                && (app.map { device.apps[$0] != nil } ?? true)
                && (version.map { device.apps[app!]?.version == $0 } ?? true)
        }
        return try JSONBody.response(["devices": devices])
    }

    private func showDevice(_ request: Request, _ context: FleetRequestContext, id: String) async throws -> Response {
        let token = try context.operatorToken()
        guard let device = try await store.device(id: id), device.project == token.project, !device.deleted else {
            throw APIError.notFound("no device '\(id)' in project \(token.project)")
        }
        let history = try await store.heartbeats(deviceID: id, limit: 100).map(\.report)
        return try JSONBody.response(DeviceDetail(device: view(device, now: Date()), heartbeats: history))
    }

    /// The device's metrics from `since` to `until` (each a time such as 2026-12-01T00:00:00Z,
    /// or how long ago such as 7d; by default the last day), in at most `points` buckets (300).
    private func deviceMetrics(_ request: Request, _ context: FleetRequestContext, id: String) async throws -> Response {
        let token = try context.operatorToken()
        guard let device = try await store.device(id: id), device.project == token.project, !device.deleted else {
            throw APIError.notFound("no device '\(id)' in project \(token.project)")
        }
        let query = request.uri.queryParameters
        let now = Date()
        func time(_ field: String, default value: Date) throws -> Date {
            guard let text = query[Substring(field)].map(String.init) else { return value }
            if let date = try? Date(text, strategy: .iso8601) { return date }
            if case .success(let ago) = DurationText.parse(text) { return now.addingTimeInterval(-Double(ago.components.seconds)) }
            throw APIError.invalid("'\(field)' is a time such as 2026-12-01T00:00:00Z or how long ago such as 7d", field: field)
        }
        let since = try time("since", default: now.addingTimeInterval(-86_400))
        let until = try time("until", default: now)
        guard since < until else { throw APIError.invalid("'since' must be before 'until'", field: "since") }
        guard until.timeIntervalSince(since) <= 400 * 86_400 else { throw APIError.invalid("the span is at most 400 days", field: "since") }
        var points = 300
        if let text = query["points"].map(String.init) {
            guard let value = Int(text), (1...2_000).contains(value) else {
                throw APIError.invalid("'points' is a whole number from 1 to 2000", field: "points")
            }
            points = value
        }
        return try JSONBody.response(try await Self.metrics(of: id, since: since, until: until, points: points, store: store,
                                                            configuration: configuration))
    }

    /// The device's metrics from `since` to `until` in at most `points` buckets: its raw
    /// heartbeats where the buckets are finer than the history's, the history's otherwise.
    static func metrics(of id: String, since: Date, until: Date, points: Int, store: any FleetStore,
                        configuration: ServerConfiguration) async throws -> DeviceMetrics {
        let history = MetricHistory.bucketSeconds
        var width = MetricHistory.width(span: until.timeIntervalSince(since), points: points)
        let rolled = try await store.metrics(deviceID: id, since: MetricHistory.bucketStart(since, seconds: history), until: until)
        // A device sends one every interval: a day of them is a few thousand, of a few kilobytes
        // each. One that sent far more, or far larger ones, is refused, not read whole into memory.
        let span = try await store.heartbeats(deviceID: id, since: since, until: until, limit: Self.maximumHeartbeatsRead,
                                              maximumBytes: configuration.maximumMetricsReadBytes)
        guard span.complete else {
            let what = span.records.count == Self.maximumHeartbeatsRead
                ? "more than \(Self.maximumHeartbeatsRead) heartbeats" : "more than \(configuration.maximumMetricsReadBytes >> 10) KiB of heartbeats"
            throw APIError.invalid("device \(id) sent \(what) in that span, far more than its interval asks; "
                                   + "ask for a shorter span, or one more than \(configuration.heartbeatRetention.components.seconds / 3_600) h ago", field: "since")
        }
        let raw = span.records
        let buckets: [MetricBucket]
        if width < history, rolled.isEmpty {
            buckets = MetricHistory.buckets(raw, seconds: width)
        } else {
            // The history's buckets are ten minutes wide: nothing finer where they are shown.
            width = max(width, history)
            let all = (rolled + MetricHistory.buckets(raw, seconds: history)).sorted { $0.start < $1.start }
            buckets = MetricHistory.downsample(all, seconds: width)
        }
        return DeviceMetrics(device: id, since: since, until: until, bucketSeconds: width, points: buckets.map(DeviceMetrics.Point.init))
    }

    /// The most whole heartbeats one metrics request reads: a day at one a second.
    static let maximumHeartbeatsRead = 86_400

    struct ResetIdentityRequest: Codable {
        /// How long the claim code is good for; a day when absent.
        var claimExpiresInSeconds: Int?
    }

    /// A replaced board: every token of the device is revoked at once, and the board that
    /// enrolls under its hardware id with the one-time claim code, before it expires, becomes the device.
    private func resetIdentity(_ request: Request, _ context: FleetRequestContext, id: String) async throws -> Response {
        let token = try context.operatorToken()
        let body = try await JSONBody.decodeIfPresent(ResetIdentityRequest.self, from: request, limit: configuration.maximumBodyBytes)
        try await OperatorAuth.confirm(token, store: store)
        let seconds = body?.claimExpiresInSeconds ?? 86_400
        guard (60...30 * 86_400).contains(seconds) else {
            throw APIError.invalid("'claimExpiresInSeconds' must be from 60 to 2592000 (30 days)", field: "claimExpiresInSeconds")
        }
        guard let device = try await store.device(id: id), device.project == token.project, !device.deleted else {
            throw APIError.notFound("no device '\(id)' in project \(token.project)")
        }
        let now = Date(), code = AccessTokens.randomHex(bytes: 16), expiry = now.addingTimeInterval(Double(seconds))
        let reset = try await store.resetIdentity(deviceID: id, claimHash: AccessTokens.hash(code), claimExpiresAt: expiry)
        directory.revoked(reset)
        try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "operator:\(token.id)",
                                                action: "device.reset-identity", subject: id,
                                                detail: "hardware \(device.hardwareID); tokens revoked; claim code until \(expiry.ISO8601Format())"))
        return try JSONBody.response(ResetIdentityResponse(device: id, hardwareID: device.hardwareID, claimCode: code, claimExpiresAt: expiry))
    }

    private func deleteDevice(_ request: Request, _ context: FleetRequestContext, id: String) async throws -> Response {
        let token = try context.operatorToken()
        guard let device = try await store.device(id: id), device.project == token.project, !device.deleted else {
            throw APIError.notFound("no device '\(id)' in project \(token.project)")
        }
        try await store.deleteDevice(id: id)
        var deleted = device
        deleted.deleted = true
        directory.revoked(deleted)
        try await store.appendAudit(AuditRecord(at: Date(), project: token.project, actor: "operator:\(token.id)",
                                                action: "device.delete", subject: id))
        await alerts?.deviceDeleted(project: token.project, device: id)
        return Response(status: .noContent)
    }

    private func createToken(_ request: Request, _ context: FleetRequestContext) async throws -> Response {
        let token = try context.operatorToken()
        let body = try await JSONBody.decode(TokenRequest.self, from: request, limit: configuration.maximumBodyBytes)
        try await OperatorAuth.confirm(token, store: store)
        guard body.kind != .session else {
            throw APIError.invalid("'kind' is enrollment or operator; a console session is made by signing in to the console", field: "kind")
        }
        if let seconds = body.expiresInSeconds, !(1...Self.maximumTokenSeconds).contains(seconds) {
            throw APIError.invalid("'expiresInSeconds' must be from 1 to \(Self.maximumTokenSeconds) (ten years)", field: "expiresInSeconds")
        }
        if let group = body.group {
            guard body.kind == .enrollment else { throw APIError.invalid("'group' applies to enrollment tokens", field: "group") }
            if let problem = FleetNames.problem(group) { throw APIError.invalid("'group': \(problem)", field: "group") }
        }
        if let access = body.access {
            guard body.kind == .operator else { throw APIError.invalid("'access' applies to operator tokens", field: "access") }
            // Never more than the token making it (which, to make tokens at all, is an admin's).
            guard access <= token.grants else {
                throw APIError.invalid("'access' cannot exceed that of the token making it ('\(token.grants.rawValue)')", field: "access")
            }
        }
        let now = Date()
        // A token never makes one that outlives it: without a lifetime the new token expires with
        // the one that made it, and a longer one is refused.
        var expiry = body.expiresInSeconds.map { now.addingTimeInterval(Double($0)) }
        if let limit = token.expiresAt {
            if let wanted = expiry, wanted > limit {
                throw APIError.invalid("'expiresInSeconds' reaches past the expiry of the token making it (\(limit.ISO8601Format())); "
                                       + "at most \(max(1, Int(limit.timeIntervalSince(now)))) seconds", field: "expiresInSeconds")
            }
            expiry = expiry ?? limit
        }
        let access = body.kind == .operator ? body.access ?? token.access : nil
        var made = AccessTokens.make(kind: body.kind, project: token.project, group: body.group, expiresAt: expiry, access: access, now: now)
        made.record.createdBy = token.id
        try await store.insertToken(made.record)
        try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "operator:\(token.id)",
                                                action: "token.create", subject: made.record.id,
                                                detail: body.kind.rawValue + (access.map { " (access \($0.rawValue))" } ?? "")))
        return try JSONBody.response(CreatedToken(token: made.text, info: TokenView(made.record)), status: .created)
    }

    /// Revokes the token and every token it made, directly or through others: a leaked operator
    /// token's heirs go with it.
    private func revokeToken(_ request: Request, _ context: FleetRequestContext, id: String) async throws -> Response {
        let token = try context.operatorToken()
        let tokens = try await store.tokens(project: token.project)
        guard tokens.contains(where: { $0.id == id }) else { throw APIError.notFound("no token '\(id)' in project \(token.project)") }
        var revoked: [String] = [], frontier = [id]
        while let next = frontier.popLast() {
            guard !revoked.contains(next) else { continue }
            revoked.append(next)
            frontier += tokens.filter { $0.createdBy == next }.map(\.id)
        }
        let now = Date()
        for revoke in revoked where tokens.first(where: { $0.id == revoke })?.revoked == false {
            try await store.revokeToken(id: revoke)
            try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "operator:\(token.id)", action: "token.revoke",
                                                    subject: revoke, detail: revoke == id ? "" : "made by a revoked token (\(id))"))
        }
        return try JSONBody.response(["revoked": revoked])
    }

    private func auditLog(_ request: Request, _ context: FleetRequestContext) async throws -> Response {
        let token = try context.operatorToken()
        var limit = 100
        if let text = request.uri.queryParameters["limit"].map(String.init) {
            guard let value = Int(text), (1...10_000).contains(value) else {
                throw APIError.invalid("'limit' is a whole number from 1 to 10000", field: "limit")
            }
            limit = value
        }
        let entries = try await store.audit(project: token.project, limit: limit)
            .map { AuditView(OperatorAccessRules.shown($0, to: token.grants)) }
        return try JSONBody.response(["entries": entries])
    }
}
