import ArgumentParser
import FleetCore
import FleetServer
import FleetStore
import FleetStoreSQLite
import Foundation

/// `flotilla token`: enrollment and operator tokens.
struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Make tokens that enroll devices or let operators use the API.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create",
            abstract: "Make a token and print it; it is shown this once and stored only as a hash."
        )

        @OptionGroup var data: DataOptions

        @Option(help: "The project the token belongs to.")
        var project: String

        @Option(help: "For enrollment tokens: devices enrolled with it get the tag group=<group>.")
        var group: String?

        @Option(help: "How long the token is valid, e.g. 7d or 12h; without it, until revoked.")
        var expires: String?

        @Flag(help: "An operator API token instead of an enrollment token.")
        var `operator` = false

        @Option(help: ArgumentHelp("With --operator: read, rollout or admin (the default).",
                                   discussion: "read: everything but remote commands' output; rollout: also approve, abort, suspend, resume and reconcile the repository's rollouts; admin: also deployments made through the API and remote commands (both run code on devices), tokens, secrets, deleting devices and resetting their identity. A console session signed in with the token may do the same."))
        var access: String?

        func validate() throws {
            if let access {
                guard `operator` else { throw ValidationError("--access applies to operator tokens (--operator)") }
                guard OperatorAccess(rawValue: access) != nil else {
                    throw ValidationError("--access must be read, rollout or admin, not '\(access)'")
                }
            }
            if let problem = FleetNames.problem(project) { throw ValidationError("--project: \(problem)") }
            if let expires, case .failure(let problem) = DurationText.parse(expires) {
                throw ValidationError("--expires: \(problem.reason)")
            }
            if `operator`, group != nil { throw ValidationError("--group applies to enrollment tokens") }
        }

        func run() async throws {
            let store = try await data.openStore()
            let now = Date()
            let lifetime = try expires.map { try DurationText.parse($0).get() }
            let expiry = lifetime.map { now.addingTimeInterval(Double($0.components.seconds)) }
            let made = AccessTokens.make(kind: `operator` ? .operator : .enrollment, project: project, group: group,
                                         expiresAt: expiry, access: access.flatMap(OperatorAccess.init(rawValue:)), now: now)
            try await store.ensureProject(project, at: now)
            try await store.insertToken(made.record)
            try await store.appendAudit(AuditRecord(at: now, project: project, actor: "cli", action: "token.create",
                                                    subject: made.record.id,
                                                    detail: made.record.kind.rawValue + (made.record.access.map { " (access \($0.rawValue))" } ?? "")))
            print(made.text)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the project's tokens: id, kind, expiry, whether revoked and which token made it.",
            discussion: "Reads GET /api/v1/tokens with the operator token in FLOTILLA_TOKEN. Secrets are never shown again."
        )

        @OptionGroup var connection: ServerOptions

        func run() async throws {
            let body = try await connection.client().get("/api/v1/tokens")
            let tokens = try ServerClient.decode([String: [TokenView]].self, from: body)["tokens"] ?? []
            print("ID".column(14) + "KIND".column(17) + "CREATED".column(22) + "EXPIRES".column(22) + "STATE".column(9) + "MADE BY")
            for token in tokens {
                let state = token.revoked ? "revoked" : (token.expiresAt.map { $0 <= Date() } ?? false) ? "expired" : "valid"
                print(token.id.column(14) + (token.kind + ((token.group ?? token.access).map { ":\($0)" } ?? "")).column(17) + token.createdAt.ISO8601Format().column(22)
                      + (token.expiresAt?.ISO8601Format() ?? "never").column(22) + state.column(9) + (token.createdBy ?? "-"))
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "revoke",
            abstract: "Revoke a token, and every token it made, at once (audited).",
            discussion: "Calls DELETE /api/v1/tokens/ID with the operator token in FLOTILLA_TOKEN."
        )

        @Argument(help: "The token's id: the part between the first and second '_' of the token, as `flotilla token list` shows it.")
        var id: String

        @OptionGroup var connection: ServerOptions

        func validate() throws {
            guard id.utf8.count == 12, id.allSatisfy(\.isHexDigit) else { throw ValidationError("'\(id)' is not a token id (12 hexadecimal digits)") }
        }

        func run() async throws {
            let body = try await connection.client().delete("/api/v1/tokens/\(id)")
            let revoked = try ServerClient.decode([String: [String]].self, from: body)["revoked"] ?? []
            print("revoked: " + revoked.joined(separator: ", "))
        }
    }
}
