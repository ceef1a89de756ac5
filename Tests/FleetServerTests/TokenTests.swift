@testable import FleetServer
import FleetProtocol
import FleetStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// Operator tokens as an attacker with a short-lived or leaked one would use them.
extension ServerTests {
    func mint(_ client: some TestClientProtocol, with token: String, _ body: String) async throws -> TestResponse {
        try await client.execute(uri: "/api/v1/tokens", method: .post, headers: [.authorization: "Bearer \(token)"],
                                 body: ByteBuffer(string: body))
    }

    @Test func aTokenNeverMakesOneThatOutlivesIt() async throws {
        try await withServer { client, tokens in
            let now = Date()
            let brief = AccessTokens.make(kind: .operator, project: "acme", expiresAt: now.addingTimeInterval(20), now: now)
            try await store.insertToken(brief.record)
            // Without a lifetime, the new token expires with the one that made it.
            let inherited = try await mint(client, with: brief.text, #"{"kind": "operator"}"#)
            #expect(inherited.status == .created)
            let made = try Self.decode(OperatorController.CreatedToken.self, inherited)
            // ISO 8601 on the wire keeps whole seconds.
            #expect(made.info.expiresAt.map { abs($0.timeIntervalSince(brief.record.expiresAt!)) < 1 } == true)
            #expect(made.info.createdBy == brief.record.id)
            // A longer one is refused, naming the field.
            let longer = try await mint(client, with: brief.text, #"{"kind": "operator", "expiresInSeconds": 3600}"#)
            #expect(longer.status == .badRequest)
            #expect(try Self.error(longer).field == "expiresInSeconds")
            #expect(try Self.error(longer).message.contains("past the expiry of the token making it"))
        }
    }

    @Test(arguments: [
        (#"{"kind": "operator", "expiresInSeconds": 9223372036854775807}"#, "expiresInSeconds"),
        (#"{"kind": "operator", "expiresInSeconds": 315360001}"#, "expiresInSeconds"),
        (#"{"kind": "operator", "expiresInSeconds": 0}"#, "expiresInSeconds"),
        (#"{"kind": "operator", "expiresInSeconds": -5}"#, "expiresInSeconds"),
        (#"{"kind": "operator", "group": "canary"}"#, "group"),
        (#"{"kind": "enrollment", "group": "../x"}"#, "group"),
        (#"{"kind": "root"}"#, "kind"),
    ])
    func badTokenRequestsAreRefusedAndTheListStillReads(_ body: String, _ field: String) async throws {
        try await withServer { client, tokens in
            let refused = try await mint(client, with: tokens.operator, body)
            #expect(refused.status == .badRequest)
            #expect(try Self.error(refused).field == field)
            let list = try await client.execute(uri: "/api/v1/tokens", method: .get, headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(list.status == .ok)
        }
    }

    /// Only the shape `make` writes reaches the store: a NUL (which PostgreSQL refuses, a 500 for
    /// a request no one signed), another byte or uppercase hex is not a token.
    @Test func onlyLowercaseHexIdsAndSecretsAreTokens() {
        let made = AccessTokens.make(kind: .operator, project: "acme")
        #expect(AccessTokens.parse(made.text, kind: .operator)?.id == made.record.id)
        let secret = String(repeating: "0", count: 32)
        for id in ["\0\0\0\0\0\0\0\0\0\0\0\0", "00000000000g", "00000000000A", "0000000000 0", "00000000000é"] {
            #expect(AccessTokens.parse("flo_\(id)_\(secret)", kind: .operator) == nil, "\(id.debugDescription)")
        }
        #expect(AccessTokens.parse("flo_000000000000_" + String(repeating: "0", count: 31) + "\0", kind: .operator) == nil)
    }

    /// A leaked token's heirs go with it: revoking a token revokes what it made, at once.
    @Test func revokingATokenRevokesWhatItMadeAtOnce() async throws {
        try await withServer { client, tokens in
            let child = try Self.decode(OperatorController.CreatedToken.self,
                                        try await mint(client, with: tokens.operator, #"{"kind": "operator"}"#))
            let grandchild = try Self.decode(OperatorController.CreatedToken.self,
                                             try await mint(client, with: child.token, #"{"kind": "enrollment"}"#))
            let sibling = try Self.decode(OperatorController.CreatedToken.self,
                                          try await mint(client, with: tokens.operator, #"{"kind": "operator"}"#))
            // Another project's operator cannot see or revoke it.
            let foreign = try await client.execute(uri: "/api/v1/tokens/\(child.info.id)", method: .delete,
                                                   headers: [.authorization: "Bearer \(tokens.otherOperator)"])
            #expect(foreign.status == .notFound)

            let revoked = try await client.execute(uri: "/api/v1/tokens/\(child.info.id)", method: .delete,
                                                   headers: [.authorization: "Bearer \(sibling.token)"])
            #expect(revoked.status == .ok)
            #expect(Set(try Self.decode([String: [String]].self, revoked)["revoked"] ?? []) == [child.info.id, grandchild.info.id])
            let refused = try await client.execute(uri: "/api/v1/tokens", method: .get, headers: [.authorization: "Bearer \(child.token)"])
            #expect(refused.status == .unauthorized)
            #expect(try Self.error(refused).code == "token_revoked")
            #expect(try await enroll(client, token: grandchild.token).status == .unauthorized)
            #expect(try await client.execute(uri: "/api/v1/tokens", method: .get,
                                             headers: [.authorization: "Bearer \(sibling.token)"]).status == .ok)

            // The audit log is readable, newest first, and only in its own project.
            let audit = try await client.execute(uri: "/api/v1/audit?limit=5", method: .get, headers: [.authorization: "Bearer \(tokens.operator)"])
            let entries = try Self.decode([String: [AuditView]].self, audit)["entries"] ?? []
            #expect(entries.prefix(2).map(\.action) == ["token.revoke", "token.revoke"])
            #expect(Set(entries.prefix(2).map(\.subject)) == [child.info.id, grandchild.info.id])
            let other = try await client.execute(uri: "/api/v1/audit", method: .get, headers: [.authorization: "Bearer \(tokens.otherOperator)"])
            #expect((try Self.decode([String: [AuditView]].self, other)["entries"] ?? []).isEmpty)
            let badLimit = try await client.execute(uri: "/api/v1/audit?limit=0", method: .get, headers: [.authorization: "Bearer \(tokens.operator)"])
            #expect(try Self.error(badLimit).field == "limit")
        }
    }

    /// A token minted in a race with its maker's revocation (the maker revoked, the heir not yet)
    /// dies with its maker.
    @Test func aTokenWhoseMakerWasRevokedIsRefused() async throws {
        try await withServer { client, tokens in
            let maker = try Self.decode(OperatorController.CreatedToken.self,
                                        try await mint(client, with: tokens.operator, #"{"kind": "operator"}"#))
            let heir = try Self.decode(OperatorController.CreatedToken.self, try await mint(client, with: maker.token, #"{"kind": "operator"}"#))
            try await store.revokeToken(id: maker.info.id)
            let refused = try await client.execute(uri: "/api/v1/tokens", method: .get, headers: [.authorization: "Bearer \(heir.token)"])
            #expect(refused.status == .unauthorized)
            #expect(try Self.error(refused).message == "the operator token was made by a token that was revoked")
        }
    }

    /// The operator API reads JSON as strictly as the agent API: one value per key, no byte-order
    /// mark, and only bodies that say they are JSON.
    @Test(arguments: [
        ("/api/v1/tokens", "application/json", "{\"kind\": \"enrollment\", \"kind\": \"operator\"}", 400, "kind"),
        ("/api/v1/tokens", "application/json", "\u{FEFF}{\"kind\": \"operator\"}", 400, nil),
        ("/api/v1/tokens", "text/plain", "{\"kind\": \"operator\"}", 415, nil),
        ("/api/v1/tokens", "application/x-www-form-urlencoded", "kind=operator", 415, nil),
        ("/api/v1/tokens", "application/json", "{\"kind\": \"enrollment\", \"group\": {\"a\": 1, \"a\": 2}}", 400, "group.a"),
        ("/agent/v1/enroll", "application/json", "{\"token\": \"x\", \"token\": \"y\", \"hardwareID\": \"h\", \"deviceSecret\": \"0123456789abcdef\"}", 400, "token"),
        ("/agent/v1/enroll", "text/plain", "{}", 415, nil),
        ("/api/v1/tokens", "application/json", "{\"kind\": \"operator\", \"scope\": \"all\"}", 400, "scope"),
        ("/api/v1/deployments", "application/json", "{\"app\": \"a\", \"version\": \"1\", \"flow\": \"f\", \"devices\": [\"d\"], \"steps\": [{\"name\": \"s\", \"kind\": \"run\", \"command\": \"true\", \"timeoutSeconds\": 5, \"retries\": 0, \"onFailure\": \"abort\", \"idempotent\": false, \"sudo\": true}]}", 400, "steps[0].sudo"),
    ] as [(String, String, String, Int, String?)])
    func bodiesAreReadStrictly(_ path: String, _ type: String, _ body: String, _ status: Int, _ field: String?) async throws {
        try await withServer { client, tokens in
            let refused = try await client.execute(uri: path, method: .post,
                                                   headers: [.authorization: "Bearer \(tokens.operator)", .contentType: type],
                                                   body: ByteBuffer(string: body))
            #expect(refused.status.code == status)
            #expect(try Self.error(refused).field == field)
        }
    }

    @Test func aBodyWithoutAContentTypeIsRefused() async throws {
        try await withServer { client, tokens in
            let raw = try #require(client as? JSONClient).raw
            let refused = try await raw.execute(uri: "/api/v1/tokens", method: .post, headers: [.authorization: "Bearer \(tokens.operator)"],
                                                body: ByteBuffer(string: #"{"kind": "operator"}"#))
            #expect(refused.status == .unsupportedMediaType)
            #expect(try Self.error(refused).code == "unsupported_media_type")
        }
    }
}
