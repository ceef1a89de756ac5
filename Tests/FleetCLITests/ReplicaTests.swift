import FleetGit
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// Several `flotilla serve` replicas on one PostgreSQL database: one leads the controllers, the
/// devices may talk to any, and when the leader is killed another takes over and finishes the
/// rollout without deploying anything twice.
@Suite(.serialized)
struct ReplicaTests {
    @Test func aRolloutSurvivesItsLeaderBeingKilled() async throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let database = try PostgresServer.shared().createDatabase() + "?sslmode=disable"
        let daemon = try GitDaemon()
        defer { daemon.stop() }
        let work = try daemon.createRepository("fleet", contents: TestPaths.template)
        // Every replica signs device tokens and seals secrets with the same keys.
        let keys = ["--signing-key-file", data + "/keys/device-signing-key.pem", "--secret-key-file", data + "/keys/secret-key"]
        try FileManager.default.createDirectory(atPath: data + "/keys", withIntermediateDirectories: true)
        func replica(_ name: String) throws -> RunningServer {
            try RunningServer(data: data + "/" + name, project: "acme-climate", database: database,
                              flags: ["--replica-name", name, "--heartbeat-interval", "1", "--poll-interval", "0.5", "--reconcile-interval", "0.3",
                                      "--repo", daemon.url("fleet")] + keys,
                              logPath: data + "/\(name).log")
        }
        let a = try replica("a")
        let b = try replica("b")
        let c = try replica("c")
        func logs() -> String {
            ["a", "b", "c"].map { "--- \($0)\n" + (((try? String(contentsOfFile: data + "/\($0).log", encoding: .utf8)) ?? "").suffix(1_500)) }
                .joined(separator: "\n")
        }
        // The devices talk to b only: their work is queued by whichever replica leads.
        let sim = try ChildProcess.start(TestPaths.flotilla, [
            "sim", "--server", b.base, "--token", b.enrollmentToken, "--devices", "24", "--fail-rate", "0", "--offline-rate", "0",
            "--step-seconds", "0.05-0.2", "--seed", "5",
        ], environment: [:], logPath: data + "/sim.log")
        defer { ChildProcess.kill(sim) }

        func leaders() async -> [String] {
            var leading: [String] = []
            for (name, server) in [("a", a), ("b", b), ("c", c)] where server.isRunning {
                if let text = try? await server.text("/metrics"), text.contains("flotilla_controller_leader{replica=\"\(name)\"} 1") {
                    leading.append(name)
                }
            }
            return leading
        }
        let first = try await eventually(seconds: 30, "a condition", every: .milliseconds(200)) { () -> [String]? in
            let leading = await leaders()
            return leading.count == 1 ? leading : nil
        }
        let expected = ControllerTests.thermostat(europe: "2.4.1")
        #expect(try await waitUntil(b, seconds: 90, expected), "\(logs())")

        // A release for Europe; the leader is killed as it starts rolling it out.
        let file = work.path + "/apps/thermostat.yaml"
        try (try String(contentsOfFile: file, encoding: .utf8)).replacingOccurrences(of: "version: 2.4.1", with: "version: 2.6.0")
            .write(toFile: file, atomically: true, encoding: .utf8)
        try work.commitAll("thermostat 2.6.0 in Europe")
        try work.git("push", "--quiet", "origin", "HEAD:main")
        let leader = [("a", a), ("b", b), ("c", c)].first { $0.0 == first[0] }!.1
        _ = try await eventually(seconds: 30, "a condition", every: .milliseconds(200)) { () -> Bool? in
            try await deployments(b).contains { $0["version"] as? String == "2.6.0" } ? true : nil
        }
        let killed = ContinuousClock.now
        leader.kill()
        let next = try await eventually(seconds: 30, "a condition", every: .milliseconds(200)) { () -> [String]? in
            let leading = await leaders()
            return leading.count == 1 ? leading : nil
        }
        let takeover = ContinuousClock.now - killed
        #expect(next != first)
        #expect(takeover < .seconds(15), "another replica led after \(takeover)")

        let survivor = [("a", a), ("b", b), ("c", c)].first { $0.0 == next[0] }!.1
        #expect(try await waitUntil(b, seconds: 90, ControllerTests.thermostat(europe: "2.6.0")), "\(logs())")

        // No device was sent the same release twice, however the work was split between leaders.
        var sent: [String: Int] = [:]
        for deployment in try await deployments(survivor) {
            let detail = try await survivor.get("/api/v1/deployments/\(deployment["id"] as? String ?? "")")
            for execution in detail["executions"] as? [[String: Any]] ?? [] {
                sent["\(execution["deviceID"] as? String ?? "")/\(deployment["digest"] as? String ?? "")", default: 0] += 1
            }
        }
        #expect(!sent.isEmpty)
        #expect(sent.filter { $0.value > 1 }.isEmpty, "\(sent.filter { $0.value > 1 })")
    }

    /// A replica started with a key of its own would sign device tokens the others refuse: it is
    /// not started, and says which flag to give it.
    @Test func aReplicaWithAnotherSigningKeyIsRefused() async throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let database = try PostgresServer.shared().createDatabase() + "?sslmode=disable"
        let first = try RunningServer(data: data + "/a", database: database, flags: ["--replica-name", "a"], logPath: data + "/a.log")
        #expect(first.isRunning)
        #expect {
            try RunningServer(data: data + "/b", database: database, flags: ["--replica-name", "b"], logPath: data + "/b.log")
        } throws: { error in
            "\(error)".contains("is not the device-signing-key the other servers on this database use")
                && "\(error)".contains("--signing-key-file")
        }
    }

    /// A device deleted through one replica, or its identity reset, is refused by every other at
    /// once, though each had let it in and remembered it a moment before.
    @Test func aRevocationOnOneReplicaHoldsOnEveryOther() async throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let database = try PostgresServer.shared().createDatabase() + "?sslmode=disable"
        let keys = ["--signing-key-file", data + "/device-signing-key.pem", "--secret-key-file", data + "/secret-key"]
        let a = try RunningServer(data: data + "/a", database: database, flags: ["--replica-name", "a"] + keys, logPath: data + "/a.log")
        let b = try RunningServer(data: data + "/b", database: database, flags: ["--replica-name", "b"] + keys, logPath: data + "/b.log")

        func enroll(_ hardware: String) async throws -> (id: String, token: String) {
            var request = URLRequest(url: URL(string: a.base + "/agent/v1/enroll")!)
            request.httpMethod = "POST"
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
            request.httpBody = try JSONSerialization.data(withJSONObject: ["token": a.enrollmentToken, "hardwareID": hardware,
                                                                           "deviceSecret": "0123456789abcdef0123", "tags": ["site": "berlin"]])
            let (body, _) = try await URLSession.shared.data(for: request)
            let answer = try #require((try JSONSerialization.jsonObject(with: body)) as? [String: Any])
            return (try #require(answer["deviceID"] as? String), try #require(answer["deviceToken"] as? String))
        }
        /// The status of a heartbeat sent to `server`.
        func heartbeat(_ server: RunningServer, _ token: String) async throws -> Int {
            try await server.request("POST", "/agent/v1/heartbeat", json: ["reportID": UUID().uuidString], bearer: token).status
        }
        let reset = try await enroll("board-1"), deleted = try await enroll("board-2")
        // b lets both in, and caches them.
        #expect(try await heartbeat(b, reset.token) == 200)
        #expect(try await heartbeat(b, deleted.token) == 200)

        #expect(try await a.post("/api/v1/devices/\(reset.id)/reset-identity", [:]).status == 200)
        #expect(try await a.request("DELETE", "/api/v1/devices/\(deleted.id)").status == 204)
        let refused = try await eventually(seconds: 5, "b refuses both", every: .milliseconds(20)) { () -> [Int]? in
            let statuses = [try await heartbeat(b, reset.token), try await heartbeat(b, deleted.token)]
            return statuses.allSatisfy { $0 != 200 } ? statuses : nil
        }
        #expect(refused == [401, 410])
    }

    func deployments(_ server: RunningServer) async throws -> [[String: Any]] {
        try await server.get("/api/v1/deployments")["deployments"] as? [[String: Any]] ?? []
    }

    /// Waits until every device runs what `expected` says for its tags, as `server` reports it.
    func waitUntil(_ server: RunningServer, seconds: Double, _ expected: ([String: String]) -> String?) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let devices = (try await server.get("/api/v1/devices")["devices"] as? [[String: Any]] ?? []).map { device in
                (device["tags"] as? [String: String] ?? [:],
                 ((device["apps"] as? [String: Any])?["thermostat"] as? [String: Any])?["version"] as? String)
            }
            if devices.count == 24, devices.allSatisfy({ $0.1 == expected($0.0) }) { return true }
            try await Task.sleep(for: .milliseconds(250))
        }
        return false
    }
}
