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

    func addRoutes(to group: RouterGroup<BasicRequestContext>) {
        group.get("projects") { request, _ in
            let token = try await authenticate(request)
            return try JSONBody.response(["projects": try await store.projects().filter { $0.name == token.project }.map(\.name)])
        }
        group.get("devices") { request, _ in try await listDevices(request) }
        group.get("devices/:id") { request, context in try await showDevice(request, id: try context.parameters.require("id")) }
        group.delete("devices/:id") { request, context in try await deleteDevice(request, id: try context.parameters.require("id")) }
        group.post("devices/:id/reset-identity") { request, context in try await resetIdentity(request, id: try context.parameters.require("id")) }
        group.get("tokens") { request, _ in
            let token = try await authenticate(request)
            return try JSONBody.response(["tokens": try await store.tokens(project: token.project).map(TokenView.init)])
        }
        group.post("tokens") { request, _ in try await createToken(request) }
    }

    /// A device as the API shows it: never its secret hash.
    struct DeviceView: Codable {
        var id: String
        var name: String
        var project: String
        var hardwareID: String
        var tags: [String: String]
        var attributes: [String: String]
        var apps: [String: InstalledApp]
        var online: Bool
        var enrolledAt: Date
        var lastHeartbeatAt: Date?
    }

    struct TokenView: Codable {
        var id: String
        var kind: String
        var group: String?
        var createdAt: Date
        var expiresAt: Date?
        var revoked: Bool

        init(_ record: AccessTokenRecord) {
            id = record.id
            kind = record.kind.rawValue
            group = record.group
            createdAt = record.createdAt
            expiresAt = record.expiresAt
            revoked = record.revoked
        }
    }

    struct TokenRequest: Codable {
        var kind: AccessTokenRecord.Kind
        var group: String?
        var expiresInSeconds: Int?
    }

    struct CreatedToken: Codable {
        var token: String
        var info: TokenView
    }

    private func view(_ device: DeviceRecord, now: Date) -> DeviceView {
        let online = device.lastHeartbeatAt.map { now.timeIntervalSince($0) <= configuration.offlineAfterSeconds } ?? false
        return DeviceView(id: device.id, name: device.name, project: device.project, hardwareID: device.hardwareID,
                          tags: device.reportedTags, attributes: device.attributes, apps: device.apps, online: online,
                          enrolledAt: device.enrolledAt, lastHeartbeatAt: device.lastHeartbeatAt)
    }

    private func listDevices(_ request: Request) async throws -> Response {
        let token = try await authenticate(request)
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

    struct DeviceDetail: Codable {
        var device: DeviceView
        var heartbeats: [Heartbeat]
    }

    private func showDevice(_ request: Request, id: String) async throws -> Response {
        let token = try await authenticate(request)
        guard let device = try await store.device(id: id), device.project == token.project, !device.deleted else {
            throw APIError.notFound("no device '\(id)' in project \(token.project)")
        }
        let history = try await store.heartbeats(deviceID: id, limit: 100).map(\.report)
        return try JSONBody.response(DeviceDetail(device: view(device, now: Date()), heartbeats: history))
    }

    /// A replaced board: its next enrollment under the same hardware id sets a new device secret.
    private func resetIdentity(_ request: Request, id: String) async throws -> Response {
        let token = try await authenticate(request)
        guard let device = try await store.device(id: id), device.project == token.project, !device.deleted else {
            throw APIError.notFound("no device '\(id)' in project \(token.project)")
        }
        try await store.resetIdentity(deviceID: id)
        try await store.appendAudit(AuditRecord(at: Date(), project: token.project, actor: "operator:\(token.id)",
                                                action: "device.reset-identity", subject: id, detail: "hardware \(device.hardwareID)"))
        return try JSONBody.response(["device": id, "identity": "reset: the next enrollment of hardware '\(device.hardwareID)' sets its secret"])
    }

    private func deleteDevice(_ request: Request, id: String) async throws -> Response {
        let token = try await authenticate(request)
        guard let device = try await store.device(id: id), device.project == token.project, !device.deleted else {
            throw APIError.notFound("no device '\(id)' in project \(token.project)")
        }
        try await store.deleteDevice(id: id)
        directory.markDeleted(id)
        try await store.appendAudit(AuditRecord(at: Date(), project: token.project, actor: "operator:\(token.id)",
                                                action: "device.delete", subject: id))
        return Response(status: .noContent)
    }

    private func createToken(_ request: Request) async throws -> Response {
        let token = try await authenticate(request)
        let body = try await JSONBody.decode(TokenRequest.self, from: request, limit: configuration.maximumBodyBytes)
        if let seconds = body.expiresInSeconds, seconds <= 0 {
            throw APIError.invalid("'expiresInSeconds' must be positive", field: "expiresInSeconds")
        }
        let now = Date()
        let made = AccessTokens.make(kind: body.kind, project: token.project, group: body.group,
                                     expiresAt: body.expiresInSeconds.map { now.addingTimeInterval(Double($0)) }, now: now)
        try await store.insertToken(made.record)
        try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "operator:\(token.id)",
                                                action: "token.create", subject: made.record.id, detail: body.kind.rawValue))
        return try JSONBody.response(CreatedToken(token: made.text, info: TokenView(made.record)), status: .created)
    }

    private func authenticate(_ request: Request) async throws -> AccessTokenRecord {
        try await OperatorAuth.authenticate(request, store: store)
    }
}
