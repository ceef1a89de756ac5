@testable import FleetAgent
import FleetGit
import FleetProtocol
import FleetTesting
import Foundation
import Testing

/// The real `flotilla-agent` against a real `flotilla serve` on loopback.
@Suite(.serialized)
struct AgentEndToEndTests {
    @Test func enrollsAndItsHeartbeatsReachTheOperatorAPI() async throws {
        let server = try ServerUnderTest()
        let agent = try AgentUnderTest(server: server, settings: """
            custom: CUSTOM
            processes: [flotilla-agent, no-such-daemon]
            mounts: [/]
            tags: {site: berlin}
            """)
        try write("1.4\n", to: agent.root + "/custom/firmware")
        try String(contentsOfFile: agent.root + "/agent.yaml", encoding: .utf8)
            .replacingOccurrences(of: "CUSTOM", with: agent.root + "/custom").write(toFile: agent.root + "/agent.yaml", atomically: true, encoding: .utf8)
        try agent.start()
        let id = try await agent.deviceID()
        let beat = try await eventually(seconds: 20, "a heartbeat with custom data") { () -> [String: Any]? in
            let detail = try await server.get("/api/v1/devices/\(id)")
            let beats = detail["heartbeats"] as? [[String: Any]] ?? []
            return beats.first { ($0["custom"] as? [String: String])?["firmware"] == "1.4" }
        }
        #expect(beat["agentVersion"] as? String == "0.1.0")
        #expect(((beat["memory"] as? [String: Any])?["totalBytes"] as? Int ?? 0) > 0)
        #expect((beat["disks"] as? [[String: Any]])?.first?["mount"] as? String == "/")
        #expect((beat["load"] as? [Double])?.count == 3)
        let processes = beat["processes"] as? [[String: Any]] ?? []
        #expect(processes.map { $0["name"] as? String } == ["flotilla-agent", "no-such-daemon"])
        #expect(processes.map { $0["running"] as? Bool } == [true, false])
        let device = try #require(try await server.device(hardwareID: agent.hardwareID))
        #expect((device["tags"] as? [String: String])?["site"] == "berlin")
        #expect((device["attributes"] as? [String: String])?["agentVersion"] == "0.1.0")
        #expect(device["online"] as? Bool == true)
        // The identity is kept 0600, and a restart does not enroll again.
        let mode = try FileManager.default.attributesOfItem(atPath: agent.data + "/identity.json")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        agent.kill()
        try agent.start()
        try await Task.sleep(for: .seconds(1.5))
        #expect((try await server.get("/api/v1/devices")["devices"] as? [[String: Any]])?.count == 1)
    }

    /// A board is replaced: the operator resets the identity with the CLI, the old board's token
    /// stops working, a board without the claim code is refused, and the one with it takes the place.
    @Test func aReplacedBoardTakesTheDeviceWithTheClaimCode() async throws {
        let server = try ServerUnderTest()
        let old = try AgentUnderTest(server: server)
        try old.start()
        let id = try await old.deviceID()
        let reset = try ChildProcess.run(Binaries.flotilla, ["devices", "reset-identity", id, "--server", server.base, "--claim-expires", "1h"],
                                         environment: ProcessInfo.processInfo.environment.merging(["FLOTILLA_TOKEN": server.operatorToken]) { $1 })
        #expect(reset.status == 0, "\(reset.errorText)")
        let words = reset.outputText.split(whereSeparator: \.isWhitespace).map(String.init)
        let code: String = try #require(words.first { $0.count == 32 && $0.allSatisfy(\.isHexDigit) })
        // The old board's token is revoked: it is refused from now on.
        try await eventually(seconds: 20, "the old board's token to be refused") {
            old.logText.contains("revoked") ? true : nil
        }
        old.kill()

        let impostor = try AgentUnderTest(server: server, hardwareID: old.hardwareID)
        try impostor.start()
        #expect(try await impostor.waitForExit() != 0)
        #expect(impostor.logText.contains("claim code"), "\(impostor.logText)")

        let replacement = try AgentUnderTest(server: server, settings: "claimCode: \(code)", hardwareID: old.hardwareID)
        try replacement.start()
        do {
            try await eventually(seconds: 20, "the replacement to enroll as \(id)") {
                replacement.logText.contains("enrolled as \(id)") ? true : nil
            }
        } catch {
            Issue.record("\(error); the replacement's log:\n\(replacement.logText)\n\((try? String(contentsOfFile: replacement.root + "/agent.yaml", encoding: .utf8)) ?? "")")
            return
        }
        let audit = try ChildProcess.run(Binaries.flotilla, ["audit", "--server", server.base],
                                         environment: ProcessInfo.processInfo.environment.merging(["FLOTILLA_TOKEN": server.operatorToken]) { $1 })
        #expect(audit.outputText.contains("device.identity.claim"), "\(audit.outputText) \(audit.errorText)")
        #expect((try await server.get("/api/v1/devices")["devices"] as? [[String: Any]])?.count == 1)
    }

    @Test func aDeploymentRunsRealStepsAndReportsEachOne() async throws {
        let server = try ServerUnderTest()
        let agent = try AgentUnderTest(server: server)
        try agent.start()
        let device = try await agent.deviceID()
        let apps = agent.root + "/apps"
        let execution = try await server.deploy(to: device, steps: [
            step("prepare", "mkdir -p \(apps)/web && echo $FLOTILLA_VERSION > \(apps)/web/VERSION"),
            step("check", "echo checking; test -s \(apps)/web/VERSION"),
            step("optional", "echo 'not there'; exit 7", onFailure: "continue"),
        ])
        let result = try await server.finalExecution(execution)
        #expect(result["state"] as? String == "succeeded")
        let steps = result["results"] as? [[String: Any]] ?? []
        #expect(steps.map { $0["name"] as? String } == ["prepare", "check", "optional"])
        #expect(steps.map { $0["status"] as? String } == ["succeeded", "succeeded", "failed"])
        #expect(steps.map { $0["outputTail"] as? String } == ["", "checking\n", "not there\n"])
        #expect(steps[2]["exitCode"] as? Int == 7)
        #expect(try String(contentsOfFile: apps + "/web/VERSION", encoding: .utf8) == "2.0.0\n")
        // The installed version reaches the server with the next heartbeat.
        let installed = try await eventually(seconds: 10, "the new version in the device's apps") { () -> String? in
            let device = try await server.device(hardwareID: agent.hardwareID)
            return ((device?["apps"] as? [String: Any])?["web"] as? [String: Any])?["version"] as? String
        }
        #expect(installed == "2.0.0")
    }

    /// An enrollment token handed to the agent in its environment enrolls it, and is not in the
    /// environment of the steps it runs (nor of what they start): a flow's script, or an app it
    /// launches, cannot read the project's token and enroll devices of its own.
    @Test func theEnrollmentTokenFromTheEnvironmentIsKeptFromSteps() async throws {
        let server = try ServerUnderTest()
        let agent = try AgentUnderTest(server: server, tokenInEnvironment: true)
        try agent.start()
        let device = try await agent.deviceID()
        let execution = try await server.deploy(to: device, steps: [
            step("look", "echo \"[$FLOTILLA_ENROLLMENT_TOKEN]\"; env | grep -c '\(server.enrollmentToken)' || true"),
            // The agent's own environment as it started (the shell's parent is the agent).
            step("parent", "tr '\\0' '\\n' < /proc/$PPID/environ | grep -c '\(server.enrollmentToken)' || true"),
        ])
        let result = try await server.finalExecution(execution)
        #expect(result["state"] as? String == "succeeded")
        #expect((result["results"] as? [[String: Any]])?.map { $0["outputTail"] as? String } == ["[]\n0\n", "0\n"])
    }

    /// A step, and whatever it leaves running, inherits none of the agent's connections to the
    /// server (its long-poll and heartbeat connections stay open while the step runs): a daemon
    /// a step starts must not hold them open, or write into them, for as long as it lives.
    @Test func stepsInheritNoneOfTheAgentsConnections() async throws {
        let server = try ServerUnderTest()
        let agent = try AgentUnderTest(server: server)
        try agent.start()
        let device = try await agent.deviceID()
        let execution = try await server.deploy(to: device, steps: [
            step("look", "for fd in /proc/$$/fd/*; do readlink \"$fd\"; done | grep -c '^socket:' || true"),
        ])
        let result = try await server.finalExecution(execution)
        #expect(result["state"] as? String == "succeeded")
        #expect((result["results"] as? [[String: Any]])?.first?["outputTail"] as? String == "0\n")
    }

    /// The agent's connections are close-on-exec from the moment libcurl makes them, so a step
    /// started by another thread while one is being made cannot inherit it either.
    @Test func theAgentsConnectionsAreCloseOnExecFromTheStart() async throws {
        // And where the C library can, a started program's descriptors above 2 are closed in it.
        #expect(ProcessRunner.closeFrom != nil, "glibc 2.34 and later have posix_spawn_file_actions_addclosefrom_np")
        let server = try ServerUnderTest()
        HTTPClient.initialize()
        let client = HTTPClient()
        #expect(try client.send("GET", server.base + "/healthz").status == 200)
        // The connection is kept for the next request: find it by the server's port.
        var found = 0
        for name in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            guard let fd = Int32(name) else { continue }
            var address = sockaddr_in(), length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let peer = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getpeername(fd, $0, &length) }
            }
            guard peer == 0, address.sin_family == sa_family_t(AF_INET), Int(UInt16(bigEndian: address.sin_port)) == server.port else { continue }
            found += 1
            #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0, "descriptor \(fd), connected to the server, is inherited by programs the agent starts")
        }
        #expect(found == 1)
    }

    /// An agent that starts with a report still queued (as one that resumes an execution does)
    /// queues its first heartbeat behind it; that heartbeat's acknowledgement still sets the
    /// interval the server wants (here 1 s), rather than the default 25 s holding until the
    /// next heartbeat sent directly.
    @Test func aHeartbeatQueuedBehindAReportStillSetsTheInterval() async throws {
        let server = try ServerUnderTest()
        let agent = try AgentUnderTest(server: server)
        try agent.start()
        _ = try await agent.deviceID()
        agent.kill()
        // Left from before the stop: a report on an execution the server does not know (refused, and dropped).
        try write(#"{"reportID":"gone:final","state":"failed"}"#, to: agent.data + "/outbox/000000000001-report-ex-gone.json")
        // And what a power cut mid-write would leave, by a process long gone.
        try write("{}", to: agent.data + "/outbox/000000000002-heartbeat.json.tmp-999999999")
        try write("{}", to: agent.data + "/journal.json.tmp-999999999")
        try agent.start()
        var seen: Set<String> = []
        do {
            _ = try await eventually(seconds: 15, "heartbeats a second apart after the start") { () -> Bool? in
                if let at = try await server.device(hardwareID: agent.hardwareID)?["lastHeartbeatAt"] as? String { seen.insert(at) }
                return seen.count >= 5 ? true : nil
            }
        } catch {
            Issue.record("\(error): \(seen.sorted())\n\(agent.logText)")
        }
        #expect(!FileManager.default.fileExists(atPath: agent.data + "/outbox/000000000001-report-ex-gone.json"))
        #expect(!FileManager.default.fileExists(atPath: agent.data + "/outbox/000000000002-heartbeat.json.tmp-999999999"))
        #expect(!FileManager.default.fileExists(atPath: agent.data + "/journal.json.tmp-999999999"))
    }

    /// A server that holds its limit of long-polls (here one) tells the other agent to ask again
    /// later: that agent waits as told, rather than asking again at once, and its work still
    /// reaches it when it asks.
    @Test func anAgentTurnedAwayByAFullServerAsksAgainLaterAndGetsItsWork() async throws {
        let server = try ServerUnderTest(flags: ["--max-long-polls", "1"])
        let first = try AgentUnderTest(server: server), second = try AgentUnderTest(server: server)
        try first.start()
        try second.start()
        let devices = [try await first.deviceID(), try await second.deviceID()]
        func deferred() async throws -> Int {
            let metrics = try await server.running.text("/metrics")
            let line = metrics.split(separator: "\n").first { $0.hasPrefix("flotilla_long_polls_deferred_total ") }
            return line.flatMap { Int($0.split(separator: " ").last ?? "") } ?? 0
        }
        let turnedAway = try await eventually(seconds: 20, "a long-poll deferred") { () -> Int? in
            let count = try await deferred()
            return count >= 1 ? count : nil
        }
        try await Task.sleep(for: .seconds(3))
        #expect(try await deferred() <= turnedAway + 1, "an agent told to ask again in 15-30 s asked again sooner")

        var executions: [String] = []
        for (device, agent) in zip(devices, [first, second]) {
            executions.append(try await server.deploy(to: device, steps: [step("install", "mkdir -p \(agent.root)/apps")]))
        }
        for execution in executions {
            #expect(try await server.finalExecution(execution, seconds: 60)["state"] as? String == "succeeded")
        }
    }

    /// `flotilla-agent lock`: the heartbeat carries the lock and its reason, no new work is taken
    /// while it holds, and `unlock` lets the waiting deployment run.
    @Test func aLockedDeviceTakesNoNewWorkUntilUnlocked() async throws {
        let server = try ServerUnderTest()
        let agent = try AgentUnderTest(server: server)
        let lock = try ChildProcess.run(Binaries.agent, ["lock", "--reason", "surgery in progress", "--for", "2h", "--config", agent.root + "/agent.yaml"])
        #expect(lock.status == 0 && lock.outputText == "updates locked: surgery in progress (for 2h)\n", "\(lock.errorText)")
        let refused = try ChildProcess.run(Binaries.agent, ["lock", "--config", agent.root + "/agent.yaml"])
        #expect(refused.status == 2 && refused.errorText.contains("lock needs --reason"))
        try agent.start()
        let device = try await agent.deviceID()
        let beat = try await eventually(seconds: 20, "a heartbeat with the lock") { () -> [String: Any]? in
            let beats = try await server.get("/api/v1/devices/\(device)")["heartbeats"] as? [[String: Any]] ?? []
            return beats.first { $0["lock"] != nil }
        }
        let carried = try #require(beat["lock"] as? [String: Any])
        #expect(carried["reason"] as? String == "surgery in progress")
        #expect((carried["untilMilliseconds"] as? Int ?? 0) > Int(Date().timeIntervalSince1970 * 1_000) + 7_000_000)

        let execution = try await server.deploy(to: device, steps: [step("touch", "touch \(agent.root)/ran")])
        try await Task.sleep(for: .seconds(3))
        #expect(try await server.execution(execution)["state"] as? String == "queued")
        #expect(!FileManager.default.fileExists(atPath: agent.root + "/ran"))

        let unlock = try ChildProcess.run(Binaries.agent, ["unlock", "--config", agent.root + "/agent.yaml"])
        #expect(unlock.status == 0 && unlock.outputText == "updates unlocked\n")
        #expect(try await server.finalExecution(execution)["state"] as? String == "succeeded")
        #expect(FileManager.default.fileExists(atPath: agent.root + "/ran"))
    }

    @Test func aBadDigestOrAnURLOutsideTheAllowlistFailsAndRollsBack() async throws {
        let server = try ServerUnderTest()
        let agent = try AgentUnderTest(server: server)
        let files = agent.root + "/www"
        try write("release 3\n", to: files + "/releases/web-3.tar")
        let port = try GitDaemon.freePort()
        let web = try ChildProcess.start("/usr/bin/python3", ["-m", "http.server", "--bind", "127.0.0.1", "--directory", files, "\(port)"])
        defer { ChildProcess.kill(web) }
        #expect(GitDaemon.waitUntilListening(port: port))
        try agent.start()
        let device = try await agent.deviceID()
        let apps = agent.root + "/apps"
        let undo = [step("undo", "echo rolled-back >> \(apps)/log", onFailure: "continue")]
        func fetch(_ url: String, _ sha: String) -> [String: Any] {
            ["name": "fetch", "kind": "download", "url": url, "sha256": sha, "destination": apps + "/web.tar", "timeoutSeconds": 10,
             "retries": 1, "onFailure": "rollback", "idempotent": true]
        }
        let allowlist = ["http://127.0.0.1:\(port)/releases/"]
        let wrong = try await server.deploy(to: device, version: "3.0.0", steps: [
            step("before", "mkdir -p \(apps) && echo before >> \(apps)/log"),
            fetch("http://127.0.0.1:\(port)/releases/web-3.tar", String(repeating: "a", count: 64)),
            step("after", "echo after >> \(apps)/log"),
        ], rollback: undo, allowlist: allowlist)
        let failed = try await server.finalExecution(wrong)
        #expect(failed["state"] as? String == "failed")
        #expect((failed["message"] as? String)?.contains("sha256 mismatch") == true)
        let results = failed["results"] as? [[String: Any]] ?? []
        #expect(results.map { $0["name"] as? String } == ["before", "fetch", "undo"])
        #expect(results.map { $0["rollback"] as? Bool } == [false, false, true])
        #expect(results[1]["attempts"] as? Int == 2)
        #expect(try String(contentsOfFile: apps + "/log", encoding: .utf8) == "before\nrolled-back\n")
        #expect(!FileManager.default.fileExists(atPath: apps + "/web.tar"))

        // A URL outside the allowlist never reaches the device: the server refuses it, with or
        // without the device's id in it (the agent's own refusal is StepExecutorTests').
        for path in ["/elsewhere/web-3.tar", "/elsewhere/${device}/web-3.tar"] {
            await #expect(throws: (any Error).self) {
                try await server.deploy(to: device, version: "3.0.1", steps: [
                    fetch("http://127.0.0.1:\(port)" + path, SHA256.hex(Array("release 3\n".utf8))),
                ], rollback: undo, allowlist: allowlist)
            }
        }
        // Neither version was installed.
        try await Task.sleep(for: .seconds(1.5))
        let device2 = try await server.device(hardwareID: agent.hardwareID)
        #expect((device2?["apps"] as? [String: Any])?["web"] == nil)
    }

    @Test func reportsQueuedWhileTheServerIsDownArriveOnce() async throws {
        let server = try ServerUnderTest(heartbeatInterval: 1)
        let agent = try AgentUnderTest(server: server)
        try agent.start()
        let device = try await agent.deviceID()
        let marks = agent.root + "/apps"
        let execution = try await server.deploy(to: device, steps: [
            step("long", "mkdir -p \(marks) && touch \(marks)/started && sleep 2 && echo finished"),
            step("next", "echo next"),
        ])
        _ = try await eventually(seconds: 20, "the step to start") { FileManager.default.fileExists(atPath: marks + "/started") ? true : nil }
        server.kill()
        // The steps finish and heartbeats go on while nothing answers: all of it waits on disk.
        let queued = try await eventually(seconds: 20, "reports to queue") { () -> [String]? in
            let names = (try? FileManager.default.contentsOfDirectory(atPath: agent.data + "/outbox")) ?? []
            return names.contains { $0.contains("report") && $0.count > 0 } && names.filter { $0.hasSuffix("heartbeat.json") }.count >= 3
                && agent.logText.contains("execution \(execution) succeeded") ? names : nil
        }
        #expect(queued.filter { $0.contains("-report-") }.count == 3)
        try server.start()
        let result = try await server.finalExecution(execution)
        #expect(result["state"] as? String == "succeeded")
        #expect((result["results"] as? [[String: Any]])?.map { $0["name"] as? String } == ["long", "next"])
        _ = try await eventually(seconds: 20, "the outbox to drain") { () -> Bool? in
            let names = (try? FileManager.default.contentsOfDirectory(atPath: agent.data + "/outbox")) ?? []
            return names.filter { $0.hasSuffix(".json") }.isEmpty ? true : nil
        }
        // Every heartbeat made while the server was away is stored, and none twice.
        let rows = try ChildProcess.run("/usr/bin/sqlite3", [server.root + "/server/flotilla.sqlite",
                                                              "SELECT count(*), count(DISTINCT report_id) FROM heartbeat"]).outputText
        let counts = rows.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").compactMap { Int($0) }
        #expect(counts.count == 2 && counts[0] == counts[1] && counts[0] >= queued.filter { $0.hasSuffix("heartbeat.json") }.count)
    }

    /// A server holding a device to a small allowance of requests (here two at once, then two a
    /// second) refuses some of its reports and heartbeats with 429: the agent keeps them, sends
    /// them again when told, and nothing is lost — the execution ends with every step's result,
    /// nothing is dropped, and no heartbeat is stored twice.
    @Test func anAgentHeldToItsAllowanceOfRequestsLosesNothing() async throws {
        let server = try ServerUnderTest(heartbeatInterval: 1, flags: ["--device-request-burst", "2", "--device-request-rate", "2"])
        let agent = try AgentUnderTest(server: server)
        try agent.start()
        let device = try await agent.deviceID()
        let execution = try await server.deploy(to: device, steps: (1...4).map { step("step-\($0)", "echo \($0)") })
        let result = try await server.finalExecution(execution, seconds: 60)
        #expect(result["state"] as? String == "succeeded")
        #expect((result["results"] as? [[String: Any]])?.map { $0["outputTail"] as? String } == ["1\n", "2\n", "3\n", "4\n"])
        let metrics = try await server.running.text("/metrics")
        let limited = metrics.split(separator: "\n").first { $0.hasPrefix("flotilla_device_requests_limited_total ") }
            .flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        #expect(limited >= 1, "the server never held the agent back, so this tested nothing")
        _ = try await eventually(seconds: 30, "the outbox to drain") { () -> Bool? in
            let names = (try? FileManager.default.contentsOfDirectory(atPath: agent.data + "/outbox")) ?? []
            return names.filter { $0.hasSuffix(".json") }.isEmpty ? true : nil
        }
        #expect(!agent.logText.contains("dropped"), "\(agent.logText)")
        let rows = try ChildProcess.run("/usr/bin/sqlite3", [server.root + "/server/flotilla.sqlite",
                                                              "SELECT count(*), count(DISTINCT report_id) FROM heartbeat"]).outputText
        let counts = rows.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").compactMap { Int($0) }
        #expect(counts.count == 2 && counts[0] == counts[1] && counts[0] >= 2, "\(rows)")
    }


    /// A backlog (what an agent kept through an outage) sent to a server that lets three
    /// through at a time: each refusal says to ask again in a second, and the agent does, for
    /// as long as some get through — it does not wait longer after each refusal as it does for
    /// a server that cannot be reached (there, 20 entries would take minutes).
    @Test func aBacklogHeldToTheAllowanceDrainsAtTheRateTheServerSays() async throws {
        let server = try ServerUnderTest(heartbeatInterval: 1, flags: ["--device-request-burst", "3", "--device-request-rate", "4"])
        let agent = try AgentUnderTest(server: server)
        try agent.start()
        _ = try await agent.deviceID()
        agent.kill()
        for index in 1...20 {
            try write(#"{"reportID":"kept-\#(index)"}"#, to: agent.data + "/outbox/" + String(format: "%012d", index) + "-heartbeat.json")
        }
        try agent.start()
        let started = ContinuousClock.now
        _ = try await eventually(seconds: 40, "the backlog to drain") { () -> Bool? in
            let names = (try? FileManager.default.contentsOfDirectory(atPath: agent.data + "/outbox")) ?? []
            return names.contains { $0.hasPrefix("0000000000") && Int($0.prefix(12)) ?? 99 <= 20 } ? nil : true
        }
        let took = ContinuousClock.now - started
        #expect(took < .seconds(15), "20 kept heartbeats took \(took) to drain at 3 at a time")
        let rows = try ChildProcess.run("/usr/bin/sqlite3", [server.root + "/server/flotilla.sqlite",
                                                              "SELECT count(*), count(DISTINCT report_id) FROM heartbeat WHERE report_id LIKE 'kept-%'"]).outputText
        #expect(rows.trimmingCharacters(in: .whitespacesAndNewlines) == "20|20")
    }

}
