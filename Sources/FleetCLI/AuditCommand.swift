import FleetProtocol
import ArgumentParser
import FleetCore
import FleetServer
import Foundation

/// `flotilla audit`: who did what, when, in the token's project.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Show the project's audit log, newest first: enrollments, resets, tokens, deployments, suspensions.",
        discussion: "Reads GET /api/v1/audit with the operator token in FLOTILLA_TOKEN."
    )

    @OptionGroup var connection: ServerOptions

    @Option(help: "How many entries, from 1 to 10000.")
    var limit = 50

    func validate() throws {
        guard (1...10_000).contains(limit) else { throw ValidationError("--limit must be from 1 to 10000") }
    }

    func run() async throws {
        let body = try await connection.client().get("/api/v1/audit?limit=\(limit)")
        for entry in try ServerClient.decode([String: [AuditView]].self, from: body)["entries"] ?? [] {
            // Subjects and details carry what devices sent (a hardware id): printed, never obeyed.
            let detail = entry.detail.isEmpty ? "" : "  (\(DisplayText.safe(entry.detail, limit: 500)))"
            print("\(entry.at.ISO8601Format())  \(DisplayText.safe(entry.actor))  \(DisplayText.safe(entry.action))  "
                  + "\(DisplayText.safe(entry.subject))\(detail)")
        }
    }
}
