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
        let database = try await PostgresServer.shared().createDatabase() + "?sslmode=disable"
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
        let replicas = ["a": a, "b": b, "c": c]
        // The devices talk to one standby only (`devices`): their work is queued by whichever
        // replica leads, and reaches them through the database's notifications.
        let (devicesName, devices) = replicas.filter { $0.key != first[0] }.min { $0.key < $1.key }!
        let sim = try ChildProcess.start(TestPaths.flotilla, [
            "sim", "--server", devices.base, "--token", devices.enrollmentToken, "--devices", "24", "--fail-rate", "0", "--offline-rate", "0",
            "--step-seconds", "0.05-0.2", "--seed", "5",
        ], environment: [:], logPath: data + "/sim.log")
        defer { ChildProcess.kill(sim) }
        let expected = ControllerTests.thermostat(europe: "2.4.1")
        #expect(try await waitUntil(devices, seconds: 90, expected), "\(logs())")

        // Any replica answers for the controllers: a standby serves the leader's status, and
        // `flotilla status` says who served it and who leads.
        let standby = (devicesName, devices)
        let status = try await eventually(seconds: 10, "the standby's status", every: .milliseconds(200)) { () -> [String: Any]? in
            let answer = try await standby.1.request("GET", "/api/v1/status")
            return answer.status == 200 && answer.json["apps"] != nil ? answer.json : nil
        }
        #expect((status["apps"] as? [[String: Any]])?.contains { $0["name"] as? String == "thermostat" } == true)
        let printed = try ChildProcess.run(TestPaths.flotilla, ["status", "--server", standby.1.base], environment: ["FLOTILLA_TOKEN": standby.1.operatorToken])
        #expect(printed.outputText.contains("served by replica \(standby.0); replica \(first[0]) leads the controllers"),
                "\(printed.outputText)\(printed.errorText)")

        // A release for Europe; the leader is killed as it starts rolling it out.
        func edit(_ old: String, _ new: String, message: String) throws {
            let file = work.path + "/apps/thermostat.yaml"
            try (try String(contentsOfFile: file, encoding: .utf8)).replacingOccurrences(of: old, with: new)
                .write(toFile: file, atomically: true, encoding: .utf8)
            try work.commitAll(message)
            try work.git("push", "--quiet", "origin", "HEAD:main")
        }
        try edit("version: 2.4.1", "version: 2.6.0", message: "thermostat 2.6.0 in Europe")
        let leader = replicas[first[0]]!
        _ = try await eventually(seconds: 30, "a condition", every: .milliseconds(200)) { () -> Bool? in
            try await deployments(devices).contains { $0["version"] as? String == "2.6.0" } ? true : nil
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

        let survivor = replicas[next[0]]!
        #expect(try await waitUntil(devices, seconds: 90, ControllerTests.thermostat(europe: "2.6.0")), "\(logs())")

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

        // An operator's suspension through a standby holds the leader's next rollout; resumed
        // through it, the rollout goes on.
        let other = replicas.first { $0.key != first[0] && $0.key != next[0] }!.value
        #expect(try await other.post("/api/v1/apps/thermostat/suspend", [:]).status == 200)
        try edit("version: 2.6.0", "version: 2.6.1", message: "thermostat 2.6.1 in Europe")
        _ = try await eventually(seconds: 30, "the leader holds the suspended app", every: .milliseconds(200)) { () -> Bool? in
            let json = try await other.get("/api/v1/status")
            let thermostat = (json["apps"] as? [[String: Any]])?.first { $0["name"] as? String == "thermostat" }
            let europe = (thermostat?["targets"] as? [[String: Any]] ?? []).first { $0["group"] as? String == "europe" }
            return europe?["version"] as? String == "2.6.1" && europe?["state"] as? String == "suspended" ? true : nil
        }
        #expect(try await deployments(survivor).contains { $0["version"] as? String == "2.6.1" } == false)
        #expect(try await other.post("/api/v1/apps/thermostat/resume", [:]).status == 200)
        #expect(try await waitUntil(devices, seconds: 60, ControllerTests.thermostat(europe: "2.6.1")), "\(logs())")
    }

    /// A replica started with a key of its own would sign device tokens the others refuse: it is
    /// not started, and says which flag to give it.
    @Test func aReplicaWithAnotherSigningKeyIsRefused() async throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let database = try await PostgresServer.shared().createDatabase() + "?sslmode=disable"
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
        let database = try await PostgresServer.shared().createDatabase() + "?sslmode=disable"
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

    /// A command asked of the leader reaches a device long-polling a standby at once (the wake
    /// goes through the database), the standby says the project allows it from the leader's
    /// snapshot, and the device may answer through either replica.
    @Test func aCommandAskedOfOneReplicaReachesADeviceWaitingOnAnother() async throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let database = try await PostgresServer.shared().createDatabase() + "?sslmode=disable"
        let daemon = try GitDaemon()
        defer { daemon.stop() }
        let fleet = data + "/fleet"
        try FileManager.default.createDirectory(atPath: fleet + "/groups", withIntermediateDirectories: true)
        try "kind: Fleet\nproject: acme\nremote: {exec: true}\n".write(toFile: fleet + "/fleet.yaml", atomically: true, encoding: .utf8)
        try "kind: Group\nname: all\nselector: site\n".write(toFile: fleet + "/groups/all.yaml", atomically: true, encoding: .utf8)
        _ = try daemon.createRepository("fleet", contents: fleet)
        let keys = ["--signing-key-file", data + "/device-signing-key.pem", "--secret-key-file", data + "/secret-key"]
        func replica(_ name: String) throws -> RunningServer {
            try RunningServer(data: data + "/" + name, database: database,
                              flags: ["--replica-name", name, "--heartbeat-interval", "1", "--poll-interval", "0.5", "--repo", daemon.url("fleet")] + keys,
                              logPath: data + "/\(name).log")
        }
        let a = try replica("a"), b = try replica("b")
        let leader = try await eventually(seconds: 30, "one replica leads", every: .milliseconds(200)) { () -> String? in
            for (name, server) in [("a", a), ("b", b)] {
                if let text = try? await server.text("/metrics"), text.contains("flotilla_controller_leader{replica=\"\(name)\"} 1") { return name }
            }
            return nil
        }
        let (leading, standby) = leader == "a" ? (a, b) : (b, a)

        // A device of the standby's, told by the standby's heartbeat answers that it may poll for commands.
        var enroll = URLRequest(url: URL(string: standby.base + "/agent/v1/enroll")!)
        enroll.httpMethod = "POST"
        enroll.setValue("application/json", forHTTPHeaderField: "Content-Type")
        enroll.httpBody = try JSONSerialization.data(withJSONObject: ["token": standby.enrollmentToken, "hardwareID": "board-1",
                                                                      "deviceSecret": "0123456789abcdef0123", "tags": ["site": "berlin"]])
        let enrolled = try #require(try JSONSerialization.jsonObject(with: try await URLSession.shared.data(for: enroll).0) as? [String: Any])
        let device = try #require(enrolled["deviceID"] as? String), token = try #require(enrolled["deviceToken"] as? String)
        _ = try await eventually(seconds: 30, "the standby says remote commands are allowed", every: .milliseconds(200)) { () -> Bool? in
            let ack = try await standby.request("POST", "/agent/v1/heartbeat", json: ["reportID": UUID().uuidString], bearer: token).json
            return ack["remote"] as? Bool == true ? true : nil
        }

        // The command's id and words, as the device was sent them, and how long it waited.
        let waiting = Task { () -> (Duration, String?, [String]?) in
            let started = ContinuousClock.now
            let list = try await standby.request("GET", "/agent/v1/commands", bearer: token).json
            let first = (list["commands"] as? [[String: Any]])?.first
            return (ContinuousClock.now - started, first?["id"] as? String, first?["command"] as? [String])
        }
        try await Task.sleep(for: .milliseconds(500))
        let created = try await leading.post("/api/v1/exec", ["devices": [device], "command": ["uptime"]])
        #expect(created.status == 201, "\(created.json)")
        let (elapsed, taken, words) = try await waiting.value
        #expect(words == ["uptime"])
        // Far under the 30-second long-poll it would otherwise wait out.
        #expect(elapsed < .seconds(10), "woken after \(elapsed)")

        // Output through the standby, the result through the leader; either replica shows both.
        let id = try #require(taken)
        var output = URLRequest(url: URL(string: standby.base + "/agent/v1/commands/\(id)/output?offset=0")!)
        output.httpMethod = "POST"
        output.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
        output.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        output.httpBody = Data("up 3 days\n".utf8)
        #expect((try await URLSession.shared.data(for: output).1 as? HTTPURLResponse)?.statusCode == 200)
        let result = try await leading.request("POST", "/agent/v1/commands/\(id)/result", json: ["exitCode": 0, "outputBytes": 10], bearer: token)
        #expect(result.json["ended"] as? Bool == true, "\(result.json)")
        let batch = try #require(created.json["id"] as? String)
        let shown = try await standby.get("/api/v1/remote/\(batch)")
        let shownDevice = (shown["devices"] as? [[String: Any]])?.first
        #expect(shownDevice?["state"] as? String == "succeeded" && shownDevice?["outputBytes"] as? Int == 10, "\(shown)")

        // The standby's console knows the groups of the commit in force from the leader's snapshot.
        var signIn = URLRequest(url: URL(string: standby.base + "/sign-in")!)
        signIn.httpMethod = "POST"
        signIn.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        signIn.httpBody = Data("token=\(standby.operatorToken)&next=%2Fdevices%3Fgroup%3Dall".utf8)
        let session = URLSession(configuration: .ephemeral)
        let (page, response) = try await session.data(for: signIn)
        let text = String(decoding: page, as: UTF8.self)
        #expect((response as? HTTPURLResponse)?.statusCode == 200, "\(text.prefix(300))")
        #expect(text.contains(device) && text.contains("<option value=\"all\" selected>all</option>"), "\(text.prefix(2000))")
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
