import ArgumentParser
import FleetCore
import FleetServer
import FleetStore
import Foundation

/// `flotilla devices …`: the server's registry, as kubectl shows a cluster's objects.
struct DevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "List, show and delete the devices in the server's registry.",
        subcommands: [List.self, Show.self, Metrics.self, Delete.self, ResetIdentity.self],
        defaultSubcommand: List.self
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List devices: id, name, online, last heartbeat and apps (wide: tags and hardware id too).",
            discussion: "Calls GET /api/v1/devices. Exit status 0, or 2 on an error (a bad selector names its column)."
        )

        @Option(help: "Only devices whose reported tags match this label selector, e.g. 'site in (berlin,paris),ring!=canary'.")
        var selector: String?

        @Option(help: "Only devices with this app installed.")
        var app: String?

        @Option(help: "With --app: only devices at this version of it.")
        var version: String?

        @Flag(inversion: .prefixedNo, help: "Only devices online (--online) or offline (--no-online).")
        var online: Bool?

        @Option(name: [.short, .customLong("output")], help: "table, wide, json or yaml.")
        var output: OutputStyle = .table

        @Flag(help: "Keep listing: print the table again whenever it changes (every 2 s), until interrupted.")
        var watch = false

        @OptionGroup var connection: ServerOptions

        func validate() throws {
            if version != nil, app == nil { throw ValidationError("--version needs --app") }
            if let selector {
                do { _ = try LabelSelector(parsing: selector) } catch {
                    throw ValidationError("--selector, column \(error.offset + 1): \(error.reason)")
                }
            }
        }

        var path: String {
            var query: [URLQueryItem] = []
            if let selector { query.append(URLQueryItem(name: "selector", value: selector)) }
            if let app { query.append(URLQueryItem(name: "app", value: app)) }
            if let version { query.append(URLQueryItem(name: "version", value: version)) }
            if let online { query.append(URLQueryItem(name: "online", value: String(online))) }
            var components = URLComponents()
            components.path = "/api/v1/devices"
            components.queryItems = query.isEmpty ? nil : query
            // '+' is a space in a query to most servers: spell it out.
            return components.string!.replacingOccurrences(of: "+", with: "%2B")
        }

        func run() async throws {
            let client = try connection.client()
            try await Listing.show(watch: watch) {
                let devices = try ServerClient.decode([String: [OperatorDeviceView]].self, from: try await client.get(path))["devices"] ?? []
                return try Self.render(devices, style: output, colours: Terminal.colours())
            }
        }

        static func render(_ devices: [OperatorDeviceView], style: OutputStyle, colours: Bool, now: Date = Date()) throws -> String {
            switch style {
            case .json: return try Rendered.json(["devices": devices])
            case .yaml: return try Rendered.yaml(["devices": devices])
            case .table, .wide:
                var table = TextTable(header: ["ID", "NAME", "ONLINE", "LAST SEEN"] + (style == .wide ? ["HARDWARE ID", "TAGS"] : []) + ["APPS"])
                for device in devices.sorted(by: { $0.id < $1.id }) {
                    let apps = device.apps.sorted { $0.key < $1.key }.map { "\($0.key)@\($0.value.version)" }.joined(separator: ",")
                    let tags = device.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
                    table.rows.append([device.id, device.name, device.online ? "yes" : "no", Rendered.age(device.lastHeartbeatAt, now: now)]
                                      + (style == .wide ? [device.hardwareID, tags.isEmpty ? "-" : tags] : [])
                                      + [apps.isEmpty ? "-" : apps])
                }
                if devices.isEmpty { return "No devices." }
                return table.render { _, column, cell in
                    column == 2 ? Terminal.paint(cell, cell.hasPrefix("yes") ? "32" : "31", when: colours) : cell
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one device: tags, apps, attributes and its last heartbeat.",
            discussion: "Calls GET /api/v1/devices/ID."
        )

        @Argument(help: "The device id (d-…).")
        var device: String

        @Option(name: [.short, .customLong("output")], help: "table, json or yaml (wide is table).")
        var output: OutputStyle = .table

        @OptionGroup var connection: ServerOptions

        func run() async throws {
            let body = try await connection.client().get("/api/v1/devices/\(PathSegment.escaped(device))")
            let detail = try ServerClient.decode(OperatorDeviceDetail.self, from: body)
            print(try Self.render(detail, style: output))
        }

        static func render(_ detail: OperatorDeviceDetail, style: OutputStyle, now: Date = Date()) throws -> String {
            switch style {
            case .json: return try Rendered.json(detail)
            case .yaml: return try Rendered.yaml(detail)
            case .table, .wide:
                let device = detail.device
                var lines = [
                    "ID:             \(device.id)",
                    "Name:           \(device.name)",
                    "Hardware ID:    \(device.hardwareID)",
                    "Online:         \(device.online ? "yes" : "no") (last heartbeat \(Rendered.age(device.lastHeartbeatAt, now: now)) ago)",
                    "Enrolled:       \(device.enrolledAt.ISO8601Format())",
                    "Tags:           " + (device.tags.isEmpty ? "-" : device.tags.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")),
                ]
                if !device.attributes.isEmpty {
                    lines.append("Attributes:     " + device.attributes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", "))
                }
                lines.append("Apps:")
                if device.apps.isEmpty { lines.append("  (none)") }
                // What the app's probe says runs, beside what the agent installed.
                let probed = device.apps.values.contains { $0.probe != nil }
                var apps = TextTable(header: probed ? ["APP", "VERSION", "PROBE"] : ["APP", "VERSION"])
                apps.rows = device.apps.sorted { $0.key < $1.key }.map { [$0.key, $0.value.version] + (probed ? [$0.value.probe?.summary ?? "-"] : []) }
                if !device.apps.isEmpty { lines += apps.render().split(separator: "\n").map { "  " + $0 } }
                if let last = detail.heartbeats.first {
                    lines.append("Last heartbeat:")
                    if let cpu = last.cpuPercent { lines.append("  cpu      \(Int(cpu.rounded()))%") }
                    // In Double: a device reports any 64-bit count, and a percentage of it must not overflow.
                    if let memory = last.memory, memory.totalBytes > 0 {
                        lines.append("  memory   \(Self.percent(memory.usedBytes, of: memory.totalBytes)) of \(memory.totalBytes >> 20) MiB")
                    }
                    for disk in last.disks ?? [] where disk.totalBytes > 0 {
                        lines.append("  disk     \(Self.percent(disk.usedBytes, of: disk.totalBytes)) of \(disk.mount)")
                    }
                    if let agent = last.agentVersion { lines.append("  agent    \(agent)") }
                }
                // What a device reported is shown, never obeyed: no escape sequence reaches the terminal.
                return lines.map(Terminal.printable).joined(separator: "\n")
            }
        }

        static func percent(_ used: Int64, of total: Int64) -> String {
            // A device may report nonsense (used far over total): clamped, never a trap.
            "\(Int(min(max(Double(used) / Double(total) * 100, 0), 1e6).rounded()))%"
        }
    }

    struct Metrics: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "metrics",
            abstract: "Show a device's metrics over time: CPU, memory, disk and load, mean and highest per span.",
            discussion: "Calls GET /api/v1/devices/ID/metrics: heartbeats for the last day, the ten-minute history (kept --metrics-retention) before."
        )

        @Argument(help: "The device id (d-…).")
        var device: String

        @Option(help: "From this long ago (7d, 12h) or this time (2026-12-01T00:00:00Z).")
        var since: String = "24h"

        @Option(help: "Up to this long ago or this time; now when absent.")
        var until: String?

        @Option(help: "At most this many rows (1 to 2000).")
        var points: Int = 24

        @Option(name: [.short, .customLong("output")], help: "table, json or yaml (wide is table).")
        var output: OutputStyle = .table

        @OptionGroup var connection: ServerOptions

        func validate() throws {
            guard (1...2_000).contains(points) else { throw ValidationError("--points must be from 1 to 2000") }
        }

        func run() async throws {
            var components = URLComponents()
            components.path = "/api/v1/devices/\(PathSegment.escaped(device))/metrics"
            components.queryItems = [URLQueryItem(name: "since", value: since), URLQueryItem(name: "points", value: String(points))]
                + (until.map { [URLQueryItem(name: "until", value: $0)] } ?? [])
            let body = try await connection.client().get(components.string ?? components.path)
            print(try Self.render(try ServerClient.decode(DeviceMetrics.self, from: body), style: output))
        }

        static func render(_ metrics: DeviceMetrics, style: OutputStyle) throws -> String {
            switch style {
            case .json: return try Rendered.json(metrics)
            case .yaml: return try Rendered.yaml(metrics)
            case .table, .wide:
                guard !metrics.points.isEmpty else { return "No heartbeats from \(metrics.device) in that span." }
                func show(_ measure: DeviceMetrics.Measure?, _ unit: String) -> String {
                    measure.map { String(format: "%.1f%@ / %.1f%@", $0.mean, unit, $0.max, unit) } ?? "-"
                }
                var table = TextTable(header: ["FROM", "HEARTBEATS", "CPU MEAN / MAX", "MEMORY", "DISK", "LOAD"])
                table.rows = metrics.points.map { point in
                    [point.at.ISO8601Format(), "\(point.samples)", show(point.cpu, "%"), show(point.memory, "%"), show(point.disk, "%"),
                     show(point.load, "")]
                }
                let width = metrics.bucketSeconds % 3_600 == 0 ? "\(metrics.bucketSeconds / 3_600) h"
                    : metrics.bucketSeconds % 60 == 0 ? "\(metrics.bucketSeconds / 60) min" : "\(metrics.bucketSeconds) s"
                return "\(metrics.device), each row \(width):\n" + table.render()
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete",
            abstract: "Delete a device from the registry (audited); its tokens stop working at once.",
            discussion: "Calls DELETE /api/v1/devices/ID. Its history stays in the audit log."
        )

        @Argument(help: "The device ids (d-…).")
        var devices: [String]

        @OptionGroup var connection: ServerOptions

        func validate() throws {
            guard !devices.isEmpty else { throw ValidationError("name the device to delete") }
        }

        func run() async throws {
            let client = try connection.client()
            for device in devices {
                _ = try await client.delete("/api/v1/devices/\(PathSegment.escaped(device))")
                print("device \(device) deleted")
            }
        }
    }

    struct ResetIdentity: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-identity",
            abstract: "Revoke a device's tokens and let a replaced board take its place with a one-time claim code (audited).",
            discussion: """
                A device that enrolls again under a known hardware id must prove the device secret it enrolled with; \
                a board that was replaced cannot. This revokes every token the device holds at once, forgets its secret, \
                and prints a one-time claim code: the new board enrolls with it (flotilla-agent --claim-code CODE, or \
                claimCode in agent.yaml), sets its own secret and keeps the device's place, tags and history. Without the \
                code no board can take the identity. Calls POST /api/v1/devices/ID/reset-identity with the operator \
                token in FLOTILLA_TOKEN.
                """
        )

        @Argument(help: "The device id (d-…), as `GET /api/v1/devices` lists it.")
        var device: String

        @Option(name: .customLong("claim-expires"), help: "How long the claim code is good for: 1m to 30d.")
        var claimExpires = "24h"

        @OptionGroup var connection: ServerOptions

        func validate() throws {
            guard !device.isEmpty, device.utf8.allSatisfy({ $0 < 128 && (UInt8(ascii: "-") == $0 || UInt8(ascii: "_") == $0 || UInt8(ascii: ".") == $0
                                                                || Character(Unicode.Scalar($0)).isLetter || Character(Unicode.Scalar($0)).isNumber) }) else {
                throw ValidationError("'\(device)' is not a device id (letters, digits, '-', '_' and '.')")
            }
            _ = try claimSeconds()
        }

        private func claimSeconds() throws -> Int {
            guard case .success(let duration) = DurationText.parse(claimExpires),
                  (60...30 * 86_400).contains(Int(duration.seconds)) else {
                throw ValidationError("--claim-expires must be a duration from 1m to 30d, such as 24h, not '\(claimExpires)'")
            }
            return Int(duration.seconds)
        }

        func run() async throws {
            let body = try JSONSerialization.data(withJSONObject: ["claimExpiresInSeconds": try claimSeconds()])
            let answer = try await connection.client().post("/api/v1/devices/\(PathSegment.escaped(device))/reset-identity", json: body)
            let reset = try ServerClient.decode(ResetIdentityResponse.self, from: answer)
            print("""
                \(device): identity reset; every token it held is revoked.
                Claim code (shown once, good until \(reset.claimExpiresAt.ISO8601Format())):

                    \(reset.claimCode)

                Enroll the new board with: flotilla-agent --claim-code \(reset.claimCode) …
                """)
        }
    }
}

/// One segment of an API path, escaped: an id with '/' or '?' in it cannot reach another route.
enum PathSegment {
    static func escaped(_ text: String) -> String {
        // "." and ".." would be read as path steps by a proxy that normalises paths.
        if text == "." || text == ".." { return String(repeating: "%2E", count: text.count) }
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "/?#%")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}
