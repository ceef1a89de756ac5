import FleetProtocol
import ArgumentParser
import FleetCore
import NIOHTTP1
import Foundation

/// `flotilla status`: what the controller last saw, per app and target.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the controller's view of the fleet: per app the commit, each target's version and its device counts.",
        discussion: "Reads GET /api/v1/status with the operator token in FLOTILLA_TOKEN."
    )

    @OptionGroup var connection: ServerOptions

    @Flag(help: "Refresh in place until interrupted.")
    var watch = false

    @Option(help: "Seconds between refreshes with --watch.")
    var interval: Double = 2

    @Option(help: "text or json.")
    var format: String = "text"

    func validate() throws {
        guard ["text", "json"].contains(format) else { throw ValidationError("--format must be text or json") }
        guard interval > 0 else { throw ValidationError("--interval must be positive") }
    }

    func run() async throws {
        let client = try connection.client()
        repeat {
            let (body, headers) = try await client.getWithHeaders("/api/v1/status")
            var text = format == "json" ? String(decoding: body, as: UTF8.self) : try Self.render(body)
            if format == "text", let replica = headers.first(name: "Flotilla-Replica") {
                let leader = headers.first(name: "Flotilla-Leader")
                text += "\nserved by replica \(replica)" + (leader.map { $0 == replica ? ", which leads the controllers" : "; replica \($0) leads the controllers" } ?? "")
            }
            // Clear the screen and go home, so --watch refreshes in place.
            if watch { print("\u{1B}[2J\u{1B}[H", terminator: "") }
            print(text)
            if watch { try await Task.sleep(for: .seconds(interval)) }
        } while watch
    }

    /// The status as a table: the report is the controller's own type, read as it was written.
    static func render(_ body: Data) throws -> String {
        let status = try ServerClient.decode(FleetStatusReport.self, from: body)
        var lines = ["commit \(status.commit.prefix(12))"]
        if status.head != status.commit {
            lines.append("head   \(status.head.prefix(12)) does not validate:")
            lines += status.headErrors.map { "  \($0)" }
        }
        for app in status.apps {
            lines.append("")
            lines.append(app.name)
            lines.append("  GROUP                VERSION         CONVERGED  UPDATING  FAILED  OFFLINE  STATE")
            for target in app.targets {
                lines.append("  " + target.group.column(20) + " " + target.version.column(15) + " "
                             + "\(target.converged)/\(target.devices)".column(10) + " " + "\(target.updating)".column(9) + " "
                             + "\(target.failed)".column(7) + " " + "\(target.offline)".column(8) + " " + target.label
                             + (target.observing > 0 ? ", \(target.observing) observed for health" : "")
                             + (target.outsideWindow > 0 ? ", \(target.outsideWindow) outside their window" : ""))
                for device in target.unhealthy { lines.append("    unhealthy \(device.device): \(DisplayText.safe(device.reason, limit: 400))") }
            }
            let drift = app.driftLines(indent: "  ")
            if !drift.isEmpty { lines += drift.split(separator: "\n").map(String.init) }
            if let error = app.error { lines.append("  not reconciled: " + error) }
        }
        if let alerts = status.alerts, !alerts.isEmpty {
            lines.append("")
            lines.append("alerts firing:")
            lines += alerts.map { "  " + DisplayText.safe($0.line, limit: 400) }
            if let total = status.alertsFiring, total > alerts.count { lines.append("  … and \(total - alerts.count) more (GET /api/v1/alerts lists them all)") }
        }
        if !status.locked.isEmpty {
            lines.append("")
            lines.append("locked, refusing updates (skipped, never failed):")
            lines += status.locked.map { "  \($0.device): \(DisplayText.safe($0.reason, limit: 400))" }
        }
        return lines.joined(separator: "\n")
    }
}

/// `flotilla reconcile`: asks the controller to poll the repository now.
struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Ask the controller to poll the fleet repository and reconcile now.",
        discussion: "Calls POST /api/v1/reconcile with the operator token in FLOTILLA_TOKEN."
    )

    @OptionGroup var connection: ServerOptions

    func run() async throws {
        _ = try await connection.client().post("/api/v1/reconcile")
        print("reconcile requested")
    }
}

/// `flotilla suspend APP` and `flotilla resume APP`: hold or release an app's rollouts.
struct SuspendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suspend",
        abstract: "Hold an app's new waves, heals and rollbacks (what runs, runs on) until it is resumed.",
        discussion: "Calls POST /api/v1/apps/APP/suspend with the operator token in FLOTILLA_TOKEN. A suspension survives a restart."
    )

    @Argument(help: "The app, as named in apps/*.yaml.")
    var app: String

    @OptionGroup var connection: ServerOptions

    func run() async throws {
        _ = try await connection.client().post("/api/v1/apps/\(app)/suspend")
        print("\(app) suspended")
    }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Let a suspended app's rollouts go on.",
        discussion: "Calls POST /api/v1/apps/APP/resume with the operator token in FLOTILLA_TOKEN."
    )

    @Argument(help: "The app, as named in apps/*.yaml.")
    var app: String

    @OptionGroup var connection: ServerOptions

    func run() async throws {
        _ = try await connection.client().post("/api/v1/apps/\(app)/resume")
        print("\(app) resumed")
    }
}

struct ApproveCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "approve",
        abstract: "Approve the release in force of a target with `approval: required`, so its rollout may start.",
        discussion: """
            Calls POST /api/v1/apps/APP/targets/GROUP/approve with the operator token in FLOTILLA_TOKEN. The approval is of the \
            digest in force now (version, flow and parameters): a later commit that changes the target needs a new one. \
            Recorded in the audit log with the token that approved.
            """
    )

    @Argument(help: "The app, as named in apps/*.yaml.")
    var app: String

    @Argument(help: "The target, by its group.")
    var group: String

    @OptionGroup var connection: ServerOptions

    struct Approval: Decodable {
        var version: String
        var digest: String
        var required: Bool
        var approvedBy: String
    }

    func run() async throws {
        let body = try await connection.client().post("/api/v1/apps/\(app)/targets/\(group)/approve")
        let approval = try JSONDecoder().decode(Approval.self, from: body)
        print("\(app)/\(group) \(approval.version) (\(approval.digest.prefix(12))) approved by \(approval.approvedBy)"
              + (approval.required ? "" : "; this target does not ask for approval, so nothing was waiting on it"))
    }
}
