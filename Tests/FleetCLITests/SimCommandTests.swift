import FleetGit
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// `flotilla sim` against a real `flotilla serve`: simulated devices enroll with tags from the
/// template, heartbeat, and run deployments through the agent's state machine.
@Suite(.serialized)
struct SimCommandTests {
    @Test func simulatedDevicesEnrollHeartbeatAndRunDeployments() async throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let server = try RunningServer(data: data + "/server", flags: ["--heartbeat-interval", "1"])
        let (enrollment, operatorToken, base) = (server.enrollmentToken, server.operatorToken, server.base)
        let sim = try ChildProcess.start(TestPaths.flotilla, ["sim", "--server", base, "--token", enrollment, "--devices", "30",
                                                              "--fail-rate", "0", "--offline-rate", "0.1", "--offline-seconds", "3",
                                                              "--step-seconds", "0.05-0.2", "--seed", "7",
                                                              "--tag", "hw=rpi4:1,gateway:1"],
                                         environment: [:], logPath: data + "/sim.log")
        defer { if ChildProcess.isRunning(sim) { ChildProcess.kill(sim) } }

        func devices(_ query: String = "") async throws -> [[String: Any]] {
            var request = URLRequest(url: URL(string: base + "/api/v1/devices" + query)!)
            request.setValue("Bearer \(operatorToken)", forHTTPHeaderField: "Authorization")
            let (body, _) = try await URLSession.shared.data(for: request)
            return ((try JSONSerialization.jsonObject(with: body)) as? [String: Any])?["devices"] as? [[String: Any]] ?? []
        }
        // 27 at once, the 3 offline ones a few seconds later.
        var all: [[String: Any]] = []
        for _ in 0..<300 {
            all = try await devices("?online=true")
            if all.count == 30 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(all.count == 30)
        #expect(Set(all.compactMap { $0["name"] as? String }) == Set((0..<30).map { "sim-7-\($0)" }))
        // Tags come from the template, with --tag replacing the hw values.
        #expect(Set(all.compactMap { ($0["tags"] as? [String: String])?["hw"] }) == ["rpi4", "gateway"])
        #expect(all.allSatisfy { ($0["tags"] as? [String: String])?["site"] != nil && ($0["tags"] as? [String: String])?["ring"] != nil })

        let ids = all.compactMap { $0["id"] as? String }
        var request = URLRequest(url: URL(string: base + "/api/v1/deployments")!)
        request.httpMethod = "POST"
        request.setValue("Bearer \(operatorToken)", forHTTPHeaderField: "Authorization")
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONSerialization.data(withJSONObject: [
            "app": "thermostat", "version": "2.5.0", "flow": "sim", "devices": ids,
            "steps": [["name": "a", "kind": "run", "command": "true", "timeoutSeconds": 10, "retries": 0, "onFailure": "rollback", "idempotent": false],
                      ["name": "b", "kind": "run", "command": "true", "timeoutSeconds": 10, "retries": 0, "onFailure": "rollback", "idempotent": false]],
        ])
        let (created, _) = try await URLSession.shared.data(for: request)
        let deployment = try #require((((try JSONSerialization.jsonObject(with: created)) as? [String: Any])?["deployment"] as? [String: Any])?["id"] as? String)
        var states: [String] = []
        for _ in 0..<300 {
            var detail = URLRequest(url: URL(string: base + "/api/v1/deployments/" + deployment)!)
            detail.setValue("Bearer \(operatorToken)", forHTTPHeaderField: "Authorization")
            let (body, _) = try await URLSession.shared.data(for: detail)
            let executions = ((try JSONSerialization.jsonObject(with: body)) as? [String: Any])?["executions"] as? [[String: Any]] ?? []
            states = executions.compactMap { $0["state"] as? String }
            if states.allSatisfy({ $0 == "succeeded" }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(states == Array(repeating: "succeeded", count: 30))
        // Every device reports the new version with its next heartbeat.
        var versions: [String?] = []
        for _ in 0..<100 {
            versions = try await devices().map { (($0["apps"] as? [String: Any])?["thermostat"] as? [String: Any])?["version"] as? String }
            if versions.allSatisfy({ $0 == "2.5.0" }) { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(versions == Array(repeating: "2.5.0", count: 30))

        // SIGTERM stops it with a last progress line.
        kill(sim, SIGTERM)
        for _ in 0..<200 where ChildProcess.isRunning(sim) { try await Task.sleep(for: .milliseconds(20)) }
        let log = try String(contentsOfFile: data + "/sim.log", encoding: .utf8)
        #expect(log.contains("sim: 30/30 enrolled"))
        #expect(log.contains("30 succeeded, 0 failed"))
    }

    @Test func simRefusesBadFlags() throws {
        let result = try CommandResult.run(["sim", "--token", "t", "--fail-rate", "2"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("--fail-rate must be from 0 to 1"))
        let tags = try CommandResult.run(["sim", "--token", "t", "--tag", "hw"])
        #expect(tags.status == 2)
        #expect(tags.stderr.contains("--tag 'hw': expected KEY=VALUE[:WEIGHT]"))
        for bad in ["2.6.0:1.5", ":0.5", "2.6.0:half", "2.6.0:0.5:1"] {
            let version = try CommandResult.run(["sim", "--token", "t", "--fail-version", bad])
            #expect(version.status == 2)
            #expect(version.stderr.contains("--fail-version '\(bad)': expected VERSION or VERSION:CHANCE"), "\(version.stderr)")
        }
    }
}
