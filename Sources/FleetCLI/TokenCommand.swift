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
        subcommands: [Create.self]
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

        func validate() throws {
            if let problem = FleetNames.problem(project) { throw ValidationError("--project: \(problem)") }
            if let expires, case .failure(let problem) = DurationText.parse(expires) {
                throw ValidationError("--expires: \(problem.reason)")
            }
            if `operator`, group != nil { throw ValidationError("--group applies to enrollment tokens") }
        }

        func run() async throws {
            let store = try data.openStore()
            let now = Date()
            let lifetime = try expires.map { try DurationText.parse($0).get() }
            let expiry = lifetime.map { now.addingTimeInterval(Double($0.components.seconds)) }
            let made = AccessTokens.make(kind: `operator` ? .operator : .enrollment, project: project, group: group,
                                         expiresAt: expiry, now: now)
            try await store.ensureProject(project, at: now)
            try await store.insertToken(made.record)
            try await store.appendAudit(AuditRecord(at: now, project: project, actor: "cli", action: "token.create",
                                                    subject: made.record.id, detail: made.record.kind.rawValue))
            print(made.text)
        }
    }
}
