import FleetProtocol
@testable import FleetServer
import FleetStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Operator tokens of `read`, `rollout` and `admin` access: the rule for every route, and the
/// real router refusing each route to a token below it.
struct OperatorAccessTests {
    /// Every operation of the operator API and every console form, with the access it needs —
    /// written out here, apart from the rules, so a route added to the document without being
    /// placed here fails this test.
    static let expected: [String: OperatorAccess] = [
        "GET /api/v1/projects": .read, "GET /api/v1/devices": .read, "GET /api/v1/devices/{id}": .read,
        "DELETE /api/v1/devices/{id}": .admin, "GET /api/v1/devices/{id}/metrics": .read,
        "POST /api/v1/devices/{id}/reset-identity": .admin, "GET /api/v1/deployments": .read,
        "POST /api/v1/deployments": .admin, "GET /api/v1/deployments/{id}": .read,
        "POST /api/v1/deployments/{id}/abort": .rollout, "GET /api/v1/tokens": .read, "POST /api/v1/tokens": .admin,
        "DELETE /api/v1/tokens/{id}": .admin, "GET /api/v1/audit": .read, "GET /api/v1/alerts": .read,
        "POST /api/v1/exec": .admin, "POST /api/v1/fetch": .admin, "GET /api/v1/remote/{id}": .admin,
        "GET /api/v1/remote/{id}/devices/{device}/output": .admin, "POST /api/v1/reconcile": .rollout,
        "GET /api/v1/status": .read, "POST /api/v1/apps/{app}/suspend": .rollout, "POST /api/v1/apps/{app}/resume": .rollout,
        "GET /api/v1/secrets": .read, "PUT /api/v1/secrets/{name}": .admin, "DELETE /api/v1/secrets/{name}": .admin,
        "POST /api/v1/apps/{app}/targets/{group}/approve": .rollout,
    ]

    static let consoleForms: [(String, OperatorAccess)] = [
        ("POST /sign-out", .read), ("POST /reconcile", .rollout), ("POST /apps/thermostat/suspend", .rollout),
        ("POST /apps/thermostat/resume", .rollout), ("POST /rollouts/thermostat/canary/abort", .rollout),
        ("POST /rollouts/thermostat/canary/approve", .rollout),
        // Not a route the server has: closed until given a level.
        ("POST /devices/d-1/forget", .admin), ("PUT /api/v1/anything", .admin), ("GET /api/v1/anything", .admin),
        ("GET /api/v1", .admin),
    ]

    static func operations() throws -> [(method: String, template: String)] {
        let document = try #require(WireJSON.parse(Array(OpenAPIDocument.json.utf8)))
        return (document.member("paths")?.members ?? []).filter { $0.key.hasPrefix("/api/v1/") && $0.key != "/api/v1/openapi.json" }
            .flatMap { path in (path.value.members ?? []).filter { $0.key != "parameters" }.map { ($0.key.uppercased(), path.key) } }
    }

    @Test func everyOperationNeedsTheAccessWrittenForIt() throws {
        let operations = try Self.operations()
        #expect(Set(operations.map { "\($0.method) \($0.template)" }) == Set(Self.expected.keys), "the document and this table differ")
        for (method, template) in operations {
            let path = template.replacingOccurrences(of: #"\{[a-z]+\}"#, with: "x-1", options: .regularExpression)
            #expect(OperatorAccessRules.required(method: method, path: path) == Self.expected["\(method) \(template)"], "\(method) \(template)")
        }
        for (operation, access) in Self.consoleForms {
            let parts = operation.split(separator: " ")
            #expect(OperatorAccessRules.required(method: String(parts[0]), path: String(parts[1])) == access, "\(operation)")
        }
    }

    @Test func accessLevelsAreOrdered() {
        #expect(OperatorAccess.read < .rollout && OperatorAccess.rollout < .admin)
        #expect(OperatorAccess(stored: "owner") == .read, "a level a newer release wrote grants the least")
        #expect(AccessTokenRecord(id: "t", kind: .operator, project: "p", secretHash: "h", createdAt: Date()).grants == .admin)
    }

    /// Through the real router, every operation with a token of each access: refused with 403
    /// `access_denied` exactly where the operation needs more, and never refused for access where
    /// it needs no more (whatever else it answers for a made-up id).
    @Test func everyRouteRefusesATokenBelowItsAccess() async throws {
        let tests = ServerTests()
        let operations = try Self.operations()
        try await tests.withServer { client, _ in
            for access in OperatorAccess.allCases {
                let made = AccessTokens.make(kind: .operator, project: "acme", access: access)
                try await tests.store.insertToken(made.record)
                for (method, template) in operations {
                    let path = template.replacingOccurrences(of: #"\{[a-z]+\}"#, with: "x-1", options: .regularExpression)
                    let response = try await client.execute(uri: path, method: HTTPRequest.Method(method)!,
                                                             headers: [.authorization: "Bearer \(made.text)"], body: ByteBuffer(string: "{}"))
                    let needed = try #require(Self.expected["\(method) \(template)"])
                    let denied = response.status == .forbidden && String(buffer: response.body).contains("access_denied")
                    #expect(denied == (access < needed), "\(access) \(method) \(template): \(response.status) \(String(buffer: response.body))")
                }
            }
        }
    }

    /// An admin makes a read token through the API; the read token reads and is refused the
    /// rest, and cannot make tokens of its own. Access applies to operator tokens only.
    @Test func tokensMadeThroughTheAPICarryTheirAccess() async throws {
        let tests = ServerTests()
        try await tests.withServer { client, tokens in
            let admin: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            let created = try await client.execute(uri: "/api/v1/tokens", method: .post, headers: admin,
                                                   body: ByteBuffer(string: #"{"kind":"operator","access":"read"}"#))
            #expect(created.status == .created)
            let made = try ServerTests.decode(OperatorController.CreatedToken.self, created)
            #expect(made.info.access == "read")
            #expect(try await tests.store.token(id: made.info.id)?.access == .read)
            let reader: HTTPFields = [.authorization: "Bearer \(made.token)"]
            #expect(try await client.execute(uri: "/api/v1/devices", method: .get, headers: reader).status == .ok)
            let approve = try await client.execute(uri: "/api/v1/apps/thermostat/targets/canary/approve", method: .post, headers: reader)
            #expect(approve.status == .forbidden)
            #expect(try ServerTests.error(approve).message
                    == "this token's access is 'read'; POST /api/v1/apps/thermostat/targets/canary/approve needs 'rollout' (an operator token made with --access rollout)")
            let escalate = try await client.execute(uri: "/api/v1/tokens", method: .post, headers: reader,
                                                    body: ByteBuffer(string: #"{"kind":"operator","access":"admin"}"#))
            #expect(escalate.status == .forbidden)
            let enrollment = try await client.execute(uri: "/api/v1/tokens", method: .post, headers: admin,
                                                      body: ByteBuffer(string: #"{"kind":"enrollment","access":"read"}"#))
            #expect(enrollment.status == .badRequest)
            #expect(try ServerTests.error(enrollment).field == "access")
            let listed = try ServerTests.decode([String: [TokenView]].self, try await client.execute(uri: "/api/v1/tokens", method: .get, headers: admin))
            #expect(listed["tokens"]?.first { $0.id == made.info.id }?.access == "read")
            #expect(try await tests.store.audit(project: "acme", limit: 10).contains { $0.action == "token.create" && $0.detail == "operator (access read)" })
        }
    }

    /// A remote command's words may hold a password typed into one: the audit log shows them
    /// to admin tokens (who may run commands) only, in the API and the console alike.
    @Test func remoteCommandsWordsInTheAuditLogAreForAdminsOnly() async throws {
        let console = ConsoleTests()
        try await console.server.withServer(controller: ConsoleProject(ConsoleTests.report())) { client, tokens in
            try await console.server.store.appendAudit(AuditRecord(at: Date(), project: "acme", actor: "operator:x", action: "remote.exec",
                                                                   subject: "cmd-1", detail: "mysql -p hunter2 on d-1"))
            let reader = AccessTokens.make(kind: .operator, project: "acme", access: .read)
            try await console.server.store.insertToken(reader.record)
            func details(_ token: String) async throws -> [String] {
                let body = try await client.execute(uri: "/api/v1/audit", method: .get, headers: [.authorization: "Bearer \(token)"])
                return (try ServerTests.decode([String: [AuditView]].self, body)["entries"] ?? []).filter { $0.action == "remote.exec" }.map(\.detail)
            }
            #expect(try await details(tokens.operator) == ["mysql -p hunter2 on d-1"])
            #expect(try await details(reader.text) == ["(shown to admin tokens only)"])
            let session = try await console.signIn(client, token: reader.text)
            let page = String(buffer: try await console.get(client, "/audit", cookie: session.cookie).body)
            #expect(page.contains("remote.exec") && !page.contains("hunter2"))
        }
    }

    /// A console session may do what the token that signed it in may: a read token's session
    /// sees every page and is refused every action.
    @Test func aConsoleSessionHasItsTokensAccess() async throws {
        let console = ConsoleTests()
        let project = ConsoleProject(ConsoleTests.report())
        try await console.server.withServer(controller: project) { client, tokens in
            let reader = AccessTokens.make(kind: .operator, project: "acme", access: .read)
            try await console.server.store.insertToken(reader.record)
            let session = try await console.signIn(client, token: reader.text)
            #expect(session.response.status == .seeOther)
            let overview = try await console.get(client, "/", cookie: session.cookie)
            #expect(overview.status == .ok)
            // Its pages offer no action it would be refused; an admin's offer them.
            #expect(!String(buffer: overview.body).contains("action=\"/apps/thermostat/suspend\""))
            #expect(!String(buffer: overview.body).contains("action=\"/reconcile\""))
            let admin = try await console.signIn(client, token: tokens.operator)
            #expect(String(buffer: try await console.get(client, "/", cookie: admin.cookie).body).contains("action=\"/apps/thermostat/suspend\""))
            let csrf = try #require(ConsoleTests.csrf(in: String(buffer: overview.body)))
            let suspend = try await console.post(client, "/apps/thermostat/suspend", cookie: session.cookie, form: "csrf=\(csrf)")
            #expect(suspend.status == .forbidden)
            #expect(await project.suspended.isEmpty)
            #expect(try await console.post(client, "/reconcile", cookie: session.cookie, form: "csrf=\(csrf)").status == .forbidden)
            #expect(await project.polls == 0)
            let sessions = try await console.server.store.tokens(project: "acme").filter { $0.kind == .session }
            #expect(Set(sessions.map(\.access)) == [.read, nil], "the read token's session is read, the admin's as its token")
            #expect(try await console.post(client, "/sign-out", cookie: session.cookie, form: "csrf=\(csrf)").status == .seeOther)
        }
    }
}
