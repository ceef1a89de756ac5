import FleetCore
import FleetProtocol
import FleetStore
public import Foundation
import Hummingbird

/// `/api/v1/secrets`: the values `secret` flow parameters name. An operator sets, lists and
/// deletes them; no route ever answers with a value — only a device gets one, inside its
/// assignment.
public struct SecretController: Sendable {
    let store: any FleetStore
    let box: SecretBox?
    let configuration: ServerConfiguration

    /// A secret is a password, a token, a key: 64 KiB is plenty, and it is filled into a command.
    static let maximumValueBytes = 64 * 1024

    struct SetRequest: Codable {
        var value: String
    }

    /// What is known of a secret without its value.
    public struct View: Codable, Sendable {
        public var name: String
        public var version: Int
        public var updatedAt: Date
        public var updatedBy: String

        init(_ record: SecretRecord) {
            name = record.name
            version = record.version
            updatedAt = record.updatedAt
            updatedBy = record.updatedBy
        }
    }

    func addRoutes(to group: RouterGroup<FleetRequestContext>) {
        group.get("secrets") { _, context in
            let token = try context.operatorToken()
            return try JSONBody.response(["secrets": try await store.secrets(project: token.project).map(View.init)])
        }
        group.put("secrets/:name") { request, context in
            let token = try context.operatorToken()
            let name = try Self.name(context)
            guard let box else {
                throw APIError(.serviceUnavailable, "secrets_disabled", "this server has no secret key; start it with flotilla serve")
            }
            let body = try await JSONBody.decode(SetRequest.self, from: request, limit: Self.maximumValueBytes * 7 + 1_024)
            try await OperatorAuth.confirm(token, store: store)
            // Measured without repeating it: an error names the field, never the value.
            guard !body.value.isEmpty, body.value.utf8.count <= Self.maximumValueBytes else {
                throw APIError.invalid("'value' must be 1 byte to 64 KiB", field: "value")
            }
            guard !body.value.utf8.contains(0) else { throw APIError.invalid("'value' must not hold a NUL byte", field: "value") }
            let now = Date()
            let stored = try await store.putSecret(SecretRecord(project: token.project, name: name,
                                                                sealed: try box.seal(body.value, project: token.project, name: name),
                                                                updatedAt: now, updatedBy: "operator:\(token.id)"))
            try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "operator:\(token.id)", action: "secret.set",
                                                    subject: name, detail: "version \(stored.version)"))
            return try JSONBody.response(View(stored), status: stored.version == 1 ? .created : .ok)
        }
        group.delete("secrets/:name") { _, context in
            let token = try context.operatorToken()
            let name = try Self.name(context)
            guard try await store.deleteSecret(project: token.project, name: name) else {
                throw APIError.notFound("no secret '\(name)' in project \(token.project)")
            }
            try await store.appendAudit(AuditRecord(at: Date(), project: token.project, actor: "operator:\(token.id)",
                                                    action: "secret.delete", subject: name))
            return try JSONBody.response(["name": name, "state": "deleted"])
        }
    }

    /// A secret's name follows the rule of the other names in a fleet: it is written in git.
    static func name(_ context: FleetRequestContext) throws -> String {
        let name = try PathParameter.require(context, "name")
        if let problem = FleetNames.problem(name) { throw APIError.invalid("secret name: \(problem)", field: "name") }
        return name
    }
}
