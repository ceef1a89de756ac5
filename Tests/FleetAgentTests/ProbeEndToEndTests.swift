import FleetGit
import FleetProtocol
import FleetTesting
import Foundation
import Testing

/// Real drift: a real agent installs a shell-script app that a controller rolls out from a real
/// git repository; the app's "installed version" file is then changed behind the agent's back.
/// The flow's probe sees it and the status says so; once the app says `selfHeal: true`, the
/// drift is healed.
@Suite(.serialized)
struct ProbeEndToEndTests {
    static func repository(appDirectory: String) throws -> String {
        let root = try temporaryDirectory()
        let files = [
            "fleet.yaml": "kind: Fleet\nproject: acme\n",
            "groups/all.yaml": "kind: Group\nname: all\nselector: ring\n",
            "flows/file.yaml": """
                kind: UpdateFlow
                name: file
                parameters:
                  dir: {type: string, required: true}
                steps:
                  - name: install
                    run: mkdir -p ${dir} && echo ${version} > ${dir}/VERSION
                probe:
                  run: cat ${dir}/VERSION 2>/dev/null || true
                  timeout: 5s
                  interval: 10s
                """,
            "apps/web.yaml": """
                kind: App
                name: web
                flow: file
                selfHeal: false
                parameters: {dir: \(appDirectory)}
                targets:
                  - {group: all, version: "1.0"}
                """,
        ]
        for (path, text) in files { try write(text + "\n", to: root + "/" + path) }
        return root
    }

    @Test func aVersionChangedBehindTheAgentsBackIsReportedAsDriftAndHealed() async throws {
        try await failingWithLogs(run)
    }

    private func run(_ watch: (ServerUnderTest, AgentUnderTest) -> Void) async throws {
        let daemon = try GitDaemon()
        defer { daemon.stop() }
        let scratch = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let versionFile = scratch + "/web/VERSION"
        let work = try daemon.createRepository("fleet", contents: try Self.repository(appDirectory: scratch + "/web"))
        let server = try ServerUnderTest(flags: ["--repo", daemon.url("fleet"), "--poll-interval", "0.5", "--reconcile-interval", "0.3"])
        let agent = try AgentUnderTest(server: server, settings: "tags: {ring: main}")
        watch(server, agent)
        try agent.start()
        let id = try await agent.deviceID()

        // Rolled out, and the probe agrees with what was installed.
        let installed = try await eventually(seconds: 60, "web 1.0 installed and probed") { () -> [String: Any]? in
            let web = ((try await server.get("/api/v1/devices/\(id)")["device"] as? [String: Any])?["apps"] as? [String: Any])?["web"] as? [String: Any]
            return (web?["probe"] as? [String: Any])?["version"] as? String == "1.0" ? web : nil
        }
        #expect(installed["version"] as? String == "1.0")
        #expect(try String(contentsOfFile: versionFile, encoding: .utf8) == "1.0\n")

        // Someone on the device puts another version in place.
        try "0.9\n".write(toFile: versionFile, atomically: true, encoding: .utf8)
        let drift = try await eventually(seconds: 40, "drift reported from the probe") { () -> [[String: Any]]? in
            let apps = try await server.get("/api/v1/status")["apps"] as? [[String: Any]] ?? []
            let drift = apps.first { $0["name"] as? String == "web" }?["drift"] as? [[String: Any]] ?? []
            return drift.isEmpty ? nil : drift
        }
        #expect(drift.first?["device"] as? String == id)
        #expect(drift.first?["reason"] as? String == "probe says 0.9, desired 1.0")

        // Without self-healing it stays reported, with what says so.
        try await Task.sleep(for: .seconds(2))
        let still = try await server.get("/api/v1/status")["apps"] as? [[String: Any]] ?? []
        #expect((still.first { $0["name"] as? String == "web" }?["drifted"] as? [String]) == [id])
        #expect(try String(contentsOfFile: versionFile, encoding: .utf8) == "0.9\n")

        // The app heals itself from the next commit on: the flow runs again, the file holds 1.0,
        // and the probe says so.
        let app = work.path + "/apps/web.yaml"
        try String(contentsOfFile: app, encoding: .utf8).replacingOccurrences(of: "selfHeal: false", with: "selfHeal: true")
            .write(toFile: app, atomically: true, encoding: .utf8)
        _ = try work.commitAll("web heals itself")
        _ = try work.git("push", "--quiet", "origin", "HEAD:main")
        _ = try await eventually(seconds: 60, "the drift healed") { () -> Bool? in
            let text = try? String(contentsOfFile: versionFile, encoding: .utf8)
            let apps = try await server.get("/api/v1/status")["apps"] as? [[String: Any]] ?? []
            let drift = apps.first { $0["name"] as? String == "web" }?["drift"] as? [[String: Any]] ?? []
            let web = ((try await server.get("/api/v1/devices/\(id)")["device"] as? [String: Any])?["apps"] as? [String: Any])?["web"] as? [String: Any]
            return text == "1.0\n" && drift.isEmpty && (web?["probe"] as? [String: Any])?["version"] as? String == "1.0" ? true : nil
        }
        let audit = try await server.get("/api/v1/audit")["entries"] as? [[String: Any]] ?? []
        #expect(audit.contains { $0["action"] as? String == "deployment.heal" && ($0["detail"] as? String ?? "").contains(id) }, "\(audit)")
        #expect(agent.logText.contains("web: probe says 0.9"), "\(agent.logText)")

        // The probe is kept on disk: after a restart the agent still probes what it installed.
        // (Drifting again within the self-heal interval, it is reported and not healed again.)
        agent.kill()
        try "0.8\n".write(toFile: versionFile, atomically: true, encoding: .utf8)
        try agent.start()
        _ = try await eventually(seconds: 40, "drift seen again after a restart") { () -> Bool? in
            let apps = try await server.get("/api/v1/status")["apps"] as? [[String: Any]] ?? []
            let drift = apps.first { $0["name"] as? String == "web" }?["drift"] as? [[String: Any]] ?? []
            return drift.first?["reason"] as? String == "probe says 0.8, desired 1.0" ? true : nil
        }
    }
}
