import ArgumentParser
import FleetProtocol
import FleetStore
import Foundation

/// `flotilla deployments …`: what was sent to which devices, and how it went.
struct DeploymentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deployments",
        abstract: "List, show and abort deployments (the controller's waves and operators' own).",
        subcommands: [List.self, Show.self, Abort.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the project's latest deployments, newest first.",
            discussion: "Calls GET /api/v1/deployments (the latest 100)."
        )

        @Option(help: "Only deployments of this app.")
        var app: String?

        @Option(name: [.short, .customLong("output")], help: "table, wide, json or yaml.")
        var output: OutputStyle = .table

        @Flag(help: "Keep listing: print the table again whenever it changes (every 2 s), until interrupted.")
        var watch = false

        @OptionGroup var connection: ServerOptions

        func run() async throws {
            let client = try connection.client()
            try await Listing.show(watch: watch) {
                let all = try ServerClient.decode([String: [DeploymentRecord]].self, from: try await client.get("/api/v1/deployments"))["deployments"] ?? []
                return try Self.render(all.filter { app == nil || $0.app == app }, style: output, colours: Terminal.colours())
            }
        }

        static func render(_ deployments: [DeploymentRecord], style: OutputStyle, colours: Bool, now: Date = Date()) throws -> String {
            switch style {
            case .json: return try Rendered.json(["deployments": deployments])
            case .yaml: return try Rendered.yaml(["deployments": deployments])
            case .table, .wide:
                guard !deployments.isEmpty else { return "No deployments." }
                var table = TextTable(header: ["ID", "APP", "VERSION", "GROUP", "STATE", "AGE"] + (style == .wide ? ["FLOW", "BY", "DIGEST"] : []))
                for deployment in deployments.sorted(by: { $0.createdAt > $1.createdAt }) {
                    var row = [deployment.id, deployment.app, deployment.version, deployment.group ?? "-",
                               deployment.aborted ? "aborted" : "active", Rendered.age(deployment.createdAt, now: now)]
                    if style == .wide { row += [deployment.flow, deployment.createdBy, String(deployment.digest.prefix(12))] }
                    table.rows.append(row)
                }
                return table.render { _, column, cell in
                    column == 4 && cell.hasPrefix("aborted") ? Terminal.paint(cell, "31", when: colours) : cell
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one deployment and each device's execution: state, the step it reached, its message.",
            discussion: "Calls GET /api/v1/deployments/ID."
        )

        @Argument(help: "The deployment id.")
        var deployment: String

        @Option(name: [.short, .customLong("output")], help: "table, json or yaml.")
        var output: OutputStyle = .table

        @Flag(help: "Keep showing it whenever it changes (every 2 s) until every execution is final.")
        var watch = false

        @OptionGroup var connection: ServerOptions

        func run() async throws {
            let client = try connection.client()
            var last: String?
            while true {
                let body = try await client.get("/api/v1/deployments/\(PathSegment.escaped(deployment))")
                let detail = try ServerClient.decode(DeploymentDetail.self, from: body)
                let text = try Self.render(detail, style: output, colours: Terminal.colours())
                if text != last {
                    print(text)
                    last = text
                }
                guard watch, !detail.executions.allSatisfy(\.state.isFinal) else { return }
                try await Task.sleep(for: .seconds(2))
            }
        }

        static func render(_ detail: DeploymentDetail, style: OutputStyle, colours: Bool, now: Date = Date()) throws -> String {
            switch style {
            case .json: return try Rendered.json(detail)
            case .yaml: return try Rendered.yaml(detail)
            case .table, .wide:
                let deployment = detail.deployment
                var counts: [ExecutionState: Int] = [:]
                for execution in detail.executions { counts[execution.state, default: 0] += 1 }
                let summary = ExecutionState.allCases.compactMap { state in counts[state].map { "\($0) \(state.rawValue)" } }
                var lines = [
                    "ID:        \(deployment.id)",
                    "App:       \(deployment.app) \(deployment.version) (flow \(deployment.flow))",
                    "Group:     \(deployment.group ?? "-")",
                    "By:        \(deployment.createdBy), \(Rendered.age(deployment.createdAt, now: now)) ago",
                    "State:     \(deployment.aborted ? "aborted" : "active"); " + (summary.isEmpty ? "no executions" : summary.joined(separator: ", ")),
                    "",
                ]
                var table = TextTable(header: ["DEVICE", "STATE", "STEP", "UPDATED", "MESSAGE"])
                for execution in detail.executions.sorted(by: { $0.deviceID < $1.deviceID }) {
                    let step = execution.results.last.map { "\($0.rollback ? "rollback " : "")\($0.name)" } ?? "-"
                    table.rows.append([execution.deviceID, execution.state.rawValue, step, Rendered.age(execution.updatedAt, now: now),
                                       execution.message ?? ""])
                }
                lines.append(table.render { _, column, cell in
                    guard column == 1 else { return cell }
                    switch cell.trimmingCharacters(in: .whitespaces) {
                    case "succeeded": return Terminal.paint(cell, "32", when: colours)
                    case "failed", "timedOut": return Terminal.paint(cell, "31", when: colours)
                    default: return cell
                    }
                })
                return lines.joined(separator: "\n")
            }
        }
    }

    struct Abort: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "abort",
            abstract: "Abort a deployment (audited): executions not yet final are cancelled and no new wave of it starts.",
            discussion: "Calls POST /api/v1/deployments/ID/abort."
        )

        @Argument(help: "The deployment id.")
        var deployment: String

        @OptionGroup var connection: ServerOptions

        func run() async throws {
            let body = try await connection.client().post("/api/v1/deployments/\(PathSegment.escaped(deployment))/abort")
            let detail = try ServerClient.decode(DeploymentDetail.self, from: body)
            let cancelled = detail.executions.filter { $0.state == .cancelled }.count
            print("deployment \(deployment) aborted; \(cancelled) execution\(cancelled == 1 ? "" : "s") cancelled")
        }
    }
}
