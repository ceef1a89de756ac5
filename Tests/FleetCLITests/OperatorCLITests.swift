@testable import FleetCLI
import FleetGit
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// `flotilla devices` and `flotilla deployments` against a live fleet, as an operator types them.
struct OperatorCLITests {
    @Test func devicesAndDeploymentsAreListedShownDeletedAndAborted() async throws {
        let fleet = try ControllerTests.Fleet(devices: 6)
        // Every device enrolled, and the first wave installed somewhere.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let devices = try await fleet.devices()
            if devices.count == 6, devices.contains(where: { $0.thermostat != nil }) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let folder = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        var environment = ProcessInfo.processInfo.environment
        environment["FLOTILLA_TOKEN"] = fleet.operatorToken
        environment["FLOTILLA_CONFIG"] = folder + "/none.yaml"
        environment["NO_COLOR"] = nil
        func flotilla(_ arguments: [String], _ environment: [String: String]) throws -> ChildProcess.Result {
            try ChildProcess.run(TestPaths.flotilla, arguments, environment: environment)
        }

        // The default table: a header, a row per device, aligned; no colour into a pipe.
        let list = try flotilla(["devices", "--server", fleet.base], environment)
        #expect(list.status == 0, "\(list.errorText)")
        let lines = list.outputText.split(separator: "\n")
        #expect(lines.first?.hasPrefix("ID ") == true && lines.first?.contains("ONLINE") == true, "\(list.outputText)")
        #expect(lines.count == 7, "\(list.outputText)")
        #expect(lines.contains { $0.contains("thermostat@2.") })
        // Every row's apps start where the header's APPS does.
        let header = String(lines.first ?? "")
        let appsColumn = header.count - 4
        let aligned = lines.dropFirst().allSatisfy { (row: Substring) -> Bool in
            let characters = Array(row)
            return characters.count > appsColumn && characters[appsColumn] != " " && characters[appsColumn - 1] == " "
        }
        #expect(aligned, "columns are aligned: \(list.outputText)")
        #expect(!list.outputText.contains("\u{1B}["))

        // JSON and YAML carry the API's fields; wide adds the hardware id and tags.
        let json = try flotilla(["devices", "list", "-o", "json", "--server", fleet.base], environment)
        let devices = try #require((try JSONSerialization.jsonObject(with: Data(json.outputText.utf8)) as? [String: Any])?["devices"] as? [[String: Any]])
        #expect(devices.count == 6)
        let first = try #require(devices.first?["id"] as? String)
        let yaml = try flotilla(["devices", "list", "-o", "yaml", "--server", fleet.base], environment)
        #expect(yaml.outputText.hasPrefix("devices:\n") && yaml.outputText.contains("id: \(first)"), "\(yaml.outputText)")
        let wide = try flotilla(["devices", "list", "-o", "wide", "--server", fleet.base], environment)
        #expect(wide.outputText.contains("HARDWARE ID") && wide.outputText.contains("site="), "\(wide.outputText)")

        // Filters go to the server; a bad selector is refused before any call, naming the column.
        let canary = try flotilla(["devices", "list", "--selector", "ring=canary", "-o", "json", "--server", fleet.base], environment)
        let canaries = (try JSONSerialization.jsonObject(with: Data(canary.outputText.utf8)) as? [String: [[String: Any]]])?["devices"] ?? []
        #expect(canaries.allSatisfy { ($0["tags"] as? [String: String])?["ring"] == "canary" })
        #expect(canaries.count < 6)
        let bad = try flotilla(["devices", "list", "--selector", "site in (berlin", "--server", fleet.base], environment)
        #expect(bad.status == 2 && bad.errorText.contains("--selector, column 16: expected ')' to close the list of values"), "\(bad.errorText)")
        let offline = try flotilla(["devices", "list", "--no-online", "--server", fleet.base], environment)
        #expect(offline.outputText == "No devices.\n", "\(offline.outputText)")

        let show = try flotilla(["devices", "show", first, "--server", fleet.base], environment)
        #expect(show.status == 0 && show.outputText.hasPrefix("ID:             \(first)\n"), "\(show.outputText)")
        #expect(show.outputText.contains("\nApps:\n") && show.outputText.contains("Last heartbeat:"), "\(show.outputText)")
        // Its metrics over the last minutes, from the heartbeats the simulated devices sent.
        let history = try flotilla(["devices", "metrics", first, "--since", "1h", "--points", "6", "--server", fleet.base], environment)
        #expect(history.status == 0 && history.outputText.hasPrefix("\(first), each row 10 min:\nFROM"), "\(history.outputText)\(history.errorText)")
        let badSpan = try flotilla(["devices", "metrics", first, "--since", "yesterday", "--server", fleet.base], environment)
        #expect(badSpan.status != 0 && badSpan.errorText.contains("'since' is a time such as"), "\(badSpan.errorText)")
        let missing = try flotilla(["devices", "show", "d-nope/../../tokens", "--server", fleet.base], environment)
        // The id stays one path segment: it cannot reach another route.
        #expect(missing.status != 0 && missing.errorText.contains("devices/d-nope%2F..%2F..%2Ftokens: 400 path parameter 'id'"), "\(missing.errorText)")

        // Deployments: listed newest first, shown with each device's execution, aborted.
        let deployments = try flotilla(["deployments", "--server", fleet.base], environment)
        #expect(deployments.status == 0 && deployments.outputText.hasPrefix("ID "), "\(deployments.errorText)")
        #expect(deployments.outputText.contains("thermostat"))
        let records = try flotilla(["deployments", "list", "-o", "json", "--server", fleet.base], environment)
        let deployment = try #require(((try JSONSerialization.jsonObject(with: Data(records.outputText.utf8)) as? [String: [[String: Any]]])?["deployments"]?.first?["id"]) as? String)
        let detail = try flotilla(["deployments", "show", deployment, "--server", fleet.base], environment)
        #expect(detail.outputText.contains("ID:        \(deployment)") && detail.outputText.contains("DEVICE ") && detail.outputText.contains("\nState:     active; "),
                "\(detail.outputText)")
        let aborted = try flotilla(["deployments", "abort", deployment, "--server", fleet.base], environment)
        #expect(aborted.status == 0 && aborted.outputText.hasPrefix("deployment \(deployment) aborted; "), "\(aborted.errorText)")
        #expect(try flotilla(["deployments", "list", "--server", fleet.base], environment).outputText.contains("aborted"))

        // Server and token from a context of the configuration file, with nothing in the environment.
        try fleet.operatorToken.write(toFile: folder + "/lab.token", atomically: true, encoding: .utf8)
        try """
            current-context: lab
            contexts:
              lab:
                server: \(fleet.base)
                token-file: \(folder)/lab.token
              elsewhere:
                server: \(fleet.base)
                token: flo_not-a-token
            """.write(toFile: folder + "/config.yaml", atomically: true, encoding: .utf8)
        var configured = environment
        configured["FLOTILLA_TOKEN"] = nil
        configured["FLOTILLA_CONFIG"] = folder + "/config.yaml"
        let viaContext = try flotilla(["devices", "list", "-o", "json"], configured)
        #expect(viaContext.status == 0, "\(viaContext.errorText)")
        let elsewhere = try flotilla(["devices", "list", "--context", "elsewhere"], configured)
        #expect(elsewhere.status != 0 && elsewhere.errorText.contains(": 401 "), "\(elsewhere.errorText)")

        // /metrics: what it says is what the API says, and the README names every metric it serves.
        let (metricsBody, _) = try await URLSession.shared.data(from: URL(string: fleet.base + "/metrics")!)
        let metrics = String(decoding: metricsBody, as: UTF8.self).split(separator: "\n")
        let online = metrics.first { $0.hasPrefix("flotilla_devices_online ") }.flatMap { Double($0.split(separator: " ")[1]) }
        #expect(online.map(Int.init) == devices.filter { $0["online"] as? Bool == true }.count, "\(metrics)")
        let exposed = Set(metrics.compactMap { line in line.hasPrefix("# TYPE ") ? String(line.split(separator: " ")[2]) : nil })
        let readme = try String(contentsOfFile: TestPaths.template + "/../README.md", encoding: .utf8)
        let documented = Set(readme.split(separator: "\n").compactMap { line in
            line.hasPrefix("| `flotilla_") ? String(line.dropFirst(3).prefix { $0 != "`" && $0 != "{" }) : nil
        })
        #expect(exposed.subtracting(documented).isEmpty, "served but not in the README: \(exposed.subtracting(documented))")
        // The leader's metrics need a shared PostgreSQL database; this server has SQLite.
        #expect(documented.subtracting(exposed) == ["flotilla_controller_leader", "flotilla_controller_leader_terms"])

        let deleted = try flotilla(["devices", "delete", first, "--server", fleet.base], environment)
        #expect(deleted.status == 0 && deleted.outputText == "device \(first) deleted\n", "\(deleted.errorText)")
        let after = try flotilla(["devices", "list", "-o", "json", "--server", fleet.base], environment)
        #expect(!after.outputText.contains("\"\(first)\""))
    }

    /// A server that is not there is said at once, not after the request's minute of retries.
    @Test func anUnreachableServerIsSaidAtOnce() throws {
        let started = Date()
        let result = try ChildProcess.run(TestPaths.flotilla, ["devices", "--server", "http://127.0.0.1:9"],
                                          environment: ["FLOTILLA_TOKEN": "flo_x", "FLOTILLA_CONFIG": "/nonexistent/config.yaml"])
        #expect(result.status != 0 && result.errorText.contains("cannot reach http://127.0.0.1:9"), "\(result.errorText)")
        #expect(Date().timeIntervalSince(started) < 40, "far under the 60 s a retried connection took")
    }

    /// docs/grafana-dashboard.json queries only metrics the README lists (and the live test
    /// above holds the README to what /metrics serves).
    @Test func theDashboardQueriesOnlyMetricsThatExist() throws {
        let root = TestPaths.template + "/.."
        let dashboard = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: root + "/docs/grafana-dashboard.json"))) as? [String: Any]
        let expressions = (dashboard?["panels"] as? [[String: Any]] ?? []).flatMap { panel in
            (panel["targets"] as? [[String: Any]] ?? []).compactMap { $0["expr"] as? String }
        }
        #expect(expressions.count >= 8)
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        let documented = Set(readme.split(separator: "\n").compactMap { line in
            line.hasPrefix("| `flotilla_") ? String(line.dropFirst(3).prefix { $0 != "`" && $0 != "{" }) : nil
        })
        var queried = Set<String>()
        for expression in expressions {
            for match in expression.matches(of: /flotilla_[a-z_]+/) {
                var name = String(match.output)
                for suffix in ["_bucket", "_count", "_sum"] where name.hasSuffix(suffix) && !documented.contains(name) {
                    name = String(name.dropLast(suffix.count))
                }
                queried.insert(name)
            }
        }
        #expect(!queried.isEmpty && queried.isSubset(of: documented), "not served: \(queried.subtracting(documented))")
    }

    @Test func completionScriptsAreGenerated() throws {
        for shell in ["bash", "zsh", "fish"] {
            let script = try CommandResult.run(["--generate-completion-script", shell])
            #expect(script.status == 0)
            #expect(script.stdout.contains("deployments") && script.stdout.contains("devices"), "\(shell)")
        }
    }
}

/// Where a command finds its server and token: flags, then the environment, then the file's
/// current context; `--context` picks one and wins over the environment.
struct ClientSettingsTests {
    static func file(_ text: String) throws -> String {
        let folder = try TestPaths.temporaryDirectory()
        try text.write(toFile: folder + "/config.yaml", atomically: true, encoding: .utf8)
        try "from-file\n".write(toFile: folder + "/token", atomically: true, encoding: .utf8)
        return folder
    }

    static let config = """
        current-context: lab
        contexts:
          lab: {server: "http://lab:8080", token-file: TOKEN}
          prod: {server: "https://prod", token: prod-token}
        """

    @Test func precedenceIsFlagThenContextThenEnvironmentThenCurrentContext() throws {
        let folder = try Self.file(Self.config)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try Self.config.replacingOccurrences(of: "TOKEN", with: folder + "/token").write(toFile: folder + "/config.yaml", atomically: true, encoding: .utf8)
        let base = ["FLOTILLA_CONFIG": folder + "/config.yaml"]
        let environment = base.merging(["FLOTILLA_SERVER": "http://env", "FLOTILLA_TOKEN": "env-token"]) { $1 }
        // (flag, context, environment) → settings.
        let table: [(String?, String?, [String: String], ClientSettings)] = [
            (nil, nil, base, ClientSettings(server: "http://lab:8080", token: "from-file")),
            (nil, nil, environment, ClientSettings(server: "http://env", token: "env-token")),
            ("http://flag", nil, environment, ClientSettings(server: "http://flag", token: "env-token")),
            (nil, "prod", environment, ClientSettings(server: "https://prod", token: "prod-token")),
            (nil, nil, ["FLOTILLA_CONFIG": folder + "/absent.yaml"], ClientSettings(server: "http://127.0.0.1:8080", token: nil)),
            // A token goes only to the server it was given for: the current context's token
            // does not follow --server or FLOTILLA_SERVER elsewhere…
            ("http://flag", nil, base, ClientSettings(server: "http://flag", token: nil)),
            (nil, nil, base.merging(["FLOTILLA_SERVER": "http://elsewhere"]) { $1 }, ClientSettings(server: "http://elsewhere", token: nil)),
            // …but does go with the same server named again.
            ("http://lab:8080", nil, base, ClientSettings(server: "http://lab:8080", token: "from-file")),
            // A pasted token's line ending is not part of it.
            (nil, nil, base.merging(["FLOTILLA_TOKEN": "env-token\r\n"]) { $1 }, ClientSettings(server: "http://lab:8080", token: nil)),
        ]
        for (flag, context, environment, expected) in table.dropLast() {
            #expect(try ClientSettings.resolve(server: flag, context: context, environment: environment) == expected, "\(flag ?? "-") \(context ?? "-")")
        }
        let pasted = try ClientSettings.resolve(server: nil, context: nil, environment: base.merging(["FLOTILLA_TOKEN": "env-token\r\n"]) { $1 })
        #expect(pasted == ClientSettings(server: "http://127.0.0.1:8080", token: "env-token"))
        #expect(throws: (any Error).self) { try ClientSettings.resolve(server: nil, context: "staging", environment: base) }
        // A context's token is not sent to another server named beside it.
        let crossed = #expect(throws: (any Error).self) { try ClientSettings.resolve(server: "http://flag", context: "prod", environment: base) }
        #expect("\(crossed!)".contains("context 'prod' is for https://prod; its token goes only there"))
        // A token a header cannot carry is refused, and not printed.
        let broken = #expect(throws: (any Error).self) {
            try ClientSettings.resolve(server: nil, context: nil, environment: ["FLOTILLA_TOKEN": "flo_s3cr3t\u{1B}x", "FLOTILLA_CONFIG": folder + "/absent.yaml"])
        }
        #expect(!"\(broken!)".contains("s3cr3t") && "\(broken!)".contains("FLOTILLA_TOKEN"))
    }

    /// The file holds tokens: a YAML error names the place and the problem, never the text.
    @Test func aBrokenFileIsReportedWithoutItsTokens() {
        let duplicate = "contexts:\n  lab: {server: \"http://x\", token: flo_s3cr3t}\n  lab: {server: \"http://y\"}\n"
        let syntax = "contexts:\n  lab:\n    token: flo_s3cr3t: x\n"
        for text in [duplicate, syntax] {
            let error = #expect(throws: (any Error).self) { try ClientConfigFile.parse(text, path: "config.yaml") }
            let message = "\(error!)"
            #expect(!message.contains("s3cr3t") && message.hasPrefix("config.yaml:"), "\(message)")
        }
    }

    /// What a device reported is shown, never obeyed: escape sequences and bidi overrides are
    /// printed as text; a percentage of any 64-bit count cannot trap; an id stays one path segment.
    @Test func whatDevicesReportCannotDriveTheTerminalOrTrap() {
        #expect(Terminal.printable("rack-1") == "rack-1")
        #expect(Terminal.printable("a\u{1B}]52;c;eA==\u{07}b") == "a\\u{1b}]52;c;eA==\\u{7}b")
        #expect(Terminal.printable("x\u{202E}y") == "x\\u{202e}y")
        var table = TextTable(header: ["NAME"])
        table.rows = [["evil\u{1B}[2J"], ["abcd🚀", "extra cell"]]
        #expect(!table.render().contains("\u{1B}"))
        #expect(DevicesCommand.Show.percent(100_000_000_000_000_000, of: 1) == "1000000%")
        #expect(DevicesCommand.Show.percent(512, of: 1024) == "50%")
        #expect(PathSegment.escaped("..") == "%2E%2E" && PathSegment.escaped("a/b?c") == "a%2Fb%3Fc")
    }

    /// A wrong file says where: line and column, and what it expected.
    @Test(arguments: [
        ("contexts:\n  lab: {server: ftp://x}\n", "config.yaml:2:17: server of context 'lab' must be an http(s) URL, not 'ftp://x'"),
        ("contexts:\n  lab: {server: \"http://x\", tokenfile: t}\n", "config.yaml:2:29: unknown key 'tokenfile' in context 'lab' (server, token, token-file)"),
        ("current-context: lab\nkontexts: {}\n", "config.yaml:2:1: unknown key 'kontexts' (current-context, contexts)"),
        ("contexts:\n  lab: {token: a, token-file: b}\n", "config.yaml:2:8: context 'lab' has both token and token-file; keep one"),
        ("- a\n", "config.yaml:1:1: expected a mapping (current-context, contexts)"),
    ])
    func aWrongFileSaysWhere(_ row: (String, String)) {
        let error = #expect(throws: (any Error).self) { try ClientConfigFile.parse(row.0, path: "config.yaml") }
        #expect(error.map { "\($0)" }?.contains(row.1) == true, "\(String(describing: error))")
    }

    @Test func aCurrentContextThatIsNotThereIsAnError() throws {
        let folder = try Self.file("current-context: staging\ncontexts: {lab: {server: \"http://lab\"}}\n")
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let error = #expect(throws: (any Error).self) {
            try ClientSettings.resolve(server: nil, context: nil, environment: ["FLOTILLA_CONFIG": folder + "/config.yaml"])
        }
        #expect(error.map { "\($0)" }?.contains("current-context 'staging' is not one of its contexts") == true)
    }

    @Test func colourOnlyOnATerminalAndNeverWithNoColor() {
        #expect(Terminal.colours(environment: [:], isTerminal: true))
        #expect(!Terminal.colours(environment: [:], isTerminal: false))
        #expect(!Terminal.colours(environment: ["NO_COLOR": "1"], isTerminal: true))
        #expect(Terminal.colours(environment: ["NO_COLOR": ""], isTerminal: true))
        #expect(!Terminal.colours(environment: ["TERM": "dumb"], isTerminal: true))
    }

    /// Columns count characters: a name with an emoji is padded, never cut.
    @Test func columnsCountCharacters() {
        #expect("abcd🚀".column(6) == "abcd🚀 ")
        #expect("abcd🚀".column(3) == "abcd🚀")
    }

    @Test func tablesAlignTheirColumnsWithColourOutsideTheWidths() {
        var table = TextTable(header: ["ID", "ONLINE", "APPS"])
        table.rows = [["d-1", "yes", "a@1"], ["d-long-id", "no", "-"]]
        #expect(table.render() == "ID          ONLINE   APPS\nd-1         yes      a@1\nd-long-id   no       -")
        let painted = table.render { _, column, cell in column == 1 ? Terminal.paint(cell, "32", when: true) : cell }
        #expect(painted.split(separator: "\n")[1] == "d-1         \u{1B}[32myes   \u{1B}[0m   a@1")
    }
}
