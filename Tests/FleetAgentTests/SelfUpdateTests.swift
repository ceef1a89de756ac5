import FleetGit
import FleetProtocol
import FleetTesting
import Foundation
import Synchronization
import Testing

/// The agent updating itself, end to end: a real server, a real agent run as systemd runs it
/// (packaging/flotilla-agent.service: the watchdog before every start, `Restart=always`, and the
/// watchdog's timer), and new builds served over HTTP. A good build reports its version; one
/// that exits at start, and one that never reports in, are put back by the watchdog — a shell
/// script that never runs the new binary — and the step fails with why.
struct SelfUpdateTests {
    static let watchdog = TestPackage.root + "/packaging/flotilla-agent-watchdog"

    /// What systemd does for the agent's unit, in a loop of its own: `ExecStartPre` (the
    /// watchdog's `start`), the agent, and a start again after it exits (but for 2 and 3, which
    /// the unit's `RestartPreventExitStatus` names); and the timer's `check` every second.
    final class Supervisor: @unchecked Sendable {
        let binary: String
        let agent: AgentUnderTest
        private let pid = Mutex<Int32>(0)
        private let stopped = Atomic<Bool>(false)
        private var task: Task<Void, Never>?
        let starts = Atomic<Int>(0)

        init(binary: String, agent: AgentUnderTest) {
            self.binary = binary
            self.agent = agent
        }

        func start() {
            task = Task.detached { [self] in
                var lastCheck = Date.distantPast
                while !stopped.load(ordering: .relaxed) {
                    _ = try? ChildProcess.run("/bin/sh", [SelfUpdateTests.watchdog, "start", agent.data])
                    guard let started = try? ChildProcess.start(binary, ["--config", agent.root + "/agent.yaml"], environment: [:],
                                                                 logPath: agent.log) else { return }
                    pid.withLock { $0 = started }
                    starts.add(1, ordering: .relaxed)
                    var status: Int32?
                    while status == nil, !stopped.load(ordering: .relaxed) {
                        status = ChildProcess.exitStatus(started)
                        if Date().timeIntervalSince(lastCheck) >= 1 {
                            lastCheck = Date()
                            _ = try? ChildProcess.run("/bin/sh", [SelfUpdateTests.watchdog, "check", agent.data],
                                                      environment: ProcessInfo.processInfo.environment.merging(
                                                          ["FLOTILLA_AGENT_RESTART": "kill -TERM \(started)"]) { $1 })
                        }
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                    if status == 2 || status == 3 { return }
                    try? await Task.sleep(for: .milliseconds(200))  // RestartSec, shortened
                }
            }
        }

        func stop() {
            stopped.store(true, ordering: .relaxed)
            let running = pid.withLock { $0 }
            if running > 0 { ChildProcess.kill(running) }
        }

        deinit { stop() }
    }

    /// The agent binary with another version in its marker: another build, byte for byte but there.
    static func build(version: String) throws -> [UInt8] {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: TestPackage.binary("flotilla-agent"))))
        let marker = Array("@(#)flotilla-agent \(AgentRelease.version)".utf8)
        let replacement = Array("@(#)flotilla-agent \(version)".utf8)
        precondition(marker.count == replacement.count)
        var found = 0
        var index = 0
        while index + marker.count <= bytes.count {
            if bytes[index] == marker[0], Array(bytes[index..<index + marker.count]) == marker {
                bytes.replaceSubrange(index..<index + marker.count, with: replacement)
                found += 1
                index += marker.count
            } else {
                index += 1
            }
        }
        guard found > 0 else { throw TestFailure("no version marker in the agent binary") }
        return bytes
    }

    @Test func aGoodBuildReportsItsVersionAndBrokenOnesAreRolledBack() async throws {
        try await failingWithLogs { watch in
            let server = try ServerUnderTest()
            let agent = try AgentUnderTest(server: server, settings: "selfUpdateWatchdog: \(Self.watchdog)")
            watch(server, agent)
            // The agent runs from a directory of its own, as /usr/bin/flotilla-agent would.
            let installed = agent.root + "/bin/flotilla-agent"
            try FileManager.default.createDirectory(atPath: agent.root + "/bin", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: TestPackage.binary("flotilla-agent"), toPath: installed)
            let www = agent.root + "/www/releases"
            try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
            let good = try Self.build(version: "0.1.1")
            try Data(good).write(to: URL(fileURLWithPath: www + "/flotilla-agent-0.1.1"))
            let crashes = Array("#!/bin/sh\n[ \"$1\" = --version ] && { echo 'flotilla-agent 0.1.2'; exit 0; }\necho 'cannot start' >&2\nexit 1\n".utf8)
            try Data(crashes).write(to: URL(fileURLWithPath: www + "/flotilla-agent-0.1.2"))
            let hangs = Array("#!/bin/sh\n[ \"$1\" = --version ] && { echo 'flotilla-agent 0.1.3'; exit 0; }\nexec sleep 600\n".utf8)
            try Data(hangs).write(to: URL(fileURLWithPath: www + "/flotilla-agent-0.1.3"))
            let port = try GitDaemon.freePort()
            let web = try ChildProcess.start("/usr/bin/python3", ["-m", "http.server", "--bind", "127.0.0.1", "--directory", agent.root + "/www", "\(port)"])
            defer { ChildProcess.kill(web) }
            #expect(GitDaemon.waitUntilListening(port: port))
            let supervisor = Supervisor(binary: installed, agent: agent)
            supervisor.start()
            defer { supervisor.stop() }
            let device = try await agent.deviceID()
            let allowlist = ["http://127.0.0.1:\(port)/releases/"]
            func update(_ version: String, _ bytes: [UInt8], timeout: Int = 60) async throws -> [String: Any] {
                let execution = try await server.deploy(to: device, app: "flotilla-agent", version: version, steps: [[
                    "name": "replace the agent", "kind": "agentUpdate", "url": "http://127.0.0.1:\(port)/releases/flotilla-agent-\(version)",
                    "sha256": SHA256.hex(bytes), "timeoutSeconds": timeout, "retries": 0, "onFailure": "rollback", "idempotent": false,
                ]], allowlist: allowlist)
                return try await server.finalExecution(execution, seconds: 90)
            }
            func reported() async throws -> String? {
                (try await server.device(hardwareID: agent.hardwareID)?["attributes"] as? [String: Any])?["agentVersion"] as? String
            }
            func running() throws -> String { SHA256.hex([UInt8](try Data(contentsOf: URL(fileURLWithPath: installed)))) }

            // A good build: in place, restarted, heard; the step succeeds and the device says 0.1.1.
            let first = try await update("0.1.1", good)
            #expect(first["state"] as? String == "succeeded", "\(first)")
            #expect(((first["results"] as? [[String: Any]])?.first?["outputTail"] as? String) == "flotilla-agent 0.1.1 reported in (was 0.1.0)")
            #expect(try running() == SHA256.hex(good))
            _ = try await eventually(seconds: 20, "the device reporting 0.1.1") { try await reported() == "0.1.1" ? true : nil }
            #expect(!FileManager.default.fileExists(atPath: agent.root + "/bin/.flotilla-agent.previous"))
            let apps = try await server.device(hardwareID: agent.hardwareID)?["apps"] as? [String: Any]
            #expect((apps?["flotilla-agent"] as? [String: Any])?["version"] as? String == "0.1.1")

            // A build that exits at start: put back after two starts; the step fails with why.
            let second = try await update("0.1.2", crashes)
            #expect(second["state"] as? String == "failed", "\(second)")
            let why = (second["results"] as? [[String: Any]])?.first?["message"] as? String ?? second["message"] as? String ?? ""
            #expect(why.contains("flotilla-agent 0.1.2 was rolled back to 0.1.1: the new agent did not start: it stopped 2 times before reporting in"),
                    "\(second)")
            #expect(try running() == SHA256.hex(good))
            let heardAt = try await server.device(hardwareID: agent.hardwareID)?["lastHeartbeatAt"] as? String ?? ""
            _ = try await eventually(seconds: 20, "heartbeats of 0.1.1 after the rollback") { () -> Bool? in
                let device = try await server.device(hardwareID: agent.hardwareID)
                let version = try await reported()
                return (device?["lastHeartbeatAt"] as? String ?? "") > heardAt && version == "0.1.1" ? true : nil
            }

            // A build that starts and never reports in: put back once its deadline passed.
            let third = try await update("0.1.3", hangs, timeout: 10)
            #expect(third["state"] as? String == "failed", "\(third)")
            let late = (third["results"] as? [[String: Any]])?.first?["message"] as? String ?? third["message"] as? String ?? ""
            #expect(late.contains("flotilla-agent 0.1.3 was rolled back to 0.1.1: the new agent did not report in within 30 s of its first start"),
                    "\(third)")
            #expect(try running() == SHA256.hex(good))
            #expect(try await reported() == "0.1.1")
        }
    }

    /// Refused before anything is replaced: where no watchdog could put the agent back, and a
    /// binary that is not the version the deployment says.
    @Test func anUpdateIsRefusedWithoutTheWatchdogOrForAnotherVersion() async throws {
        try await failingWithLogs { watch in
            let server = try ServerUnderTest()
            let bare = try AgentUnderTest(server: server, settings: "selfUpdateWatchdog: /nonexistent/flotilla-agent-watchdog")
            let watched = try AgentUnderTest(server: server, settings: "selfUpdateWatchdog: \(Self.watchdog)")
            watch(server, watched)
            let www = bare.root + "/www/releases"
            try FileManager.default.createDirectory(atPath: www, withIntermediateDirectories: true)
            let good = try Self.build(version: "0.1.1")
            try Data(good).write(to: URL(fileURLWithPath: www + "/flotilla-agent"))
            let port = try GitDaemon.freePort()
            let web = try ChildProcess.start("/usr/bin/python3", ["-m", "http.server", "--bind", "127.0.0.1", "--directory", bare.root + "/www", "\(port)"])
            defer { ChildProcess.kill(web) }
            #expect(GitDaemon.waitUntilListening(port: port))
            try bare.start()
            try watched.start()
            func update(_ agent: AgentUnderTest, version: String) async throws -> String {
                let execution = try await server.deploy(to: try await agent.deviceID(), app: "flotilla-agent", version: version, steps: [[
                    "name": "replace the agent", "kind": "agentUpdate", "url": "http://127.0.0.1:\(port)/releases/flotilla-agent",
                    "sha256": SHA256.hex(good), "timeoutSeconds": 60, "retries": 0, "onFailure": "rollback", "idempotent": false,
                ]], allowlist: ["http://127.0.0.1:\(port)/releases/"])
                let final = try await server.finalExecution(execution, seconds: 60)
                #expect(final["state"] as? String == "failed")
                return final["message"] as? String ?? ""
            }
            #expect(try await update(bare, version: "0.1.1").contains("refused: flotilla-agent-watchdog is not installed on this device"))
            #expect(try await update(watched, version: "0.9.0").contains("the new binary says it is flotilla-agent 0.1.1, but the deployment is of 0.9.0"))
            #expect(!FileManager.default.fileExists(atPath: (TestPackage.binary("flotilla-agent") as NSString).deletingLastPathComponent + "/.flotilla-agent.new"))
        }
    }

    /// The watchdog gave up putting the previous agent back (its kept copy was gone) and said
    /// so: the agent that stays ends the step failed, saying why, instead of restarting for ever
    /// to wait for the previous one.
    @Test func anAgentTheWatchdogCouldNotReplaceEndsTheStepAndKeepsRunning() async throws {
        try await failingWithLogs { watch in
            let server = try ServerUnderTest()
            let agent = try AgentUnderTest(server: server, settings: "selfUpdateWatchdog: \(Self.watchdog)")
            watch(server, agent)
            try agent.start(fault: "begun:step:0")
            let device = try await agent.deviceID()
            let execution = try await server.deploy(to: device, app: "flotilla-agent", version: AgentRelease.version, steps: [[
                "name": "replace the agent", "kind": "agentUpdate", "url": "http://127.0.0.1:9/releases/flotilla-agent",
                "sha256": String(repeating: "0", count: 64), "timeoutSeconds": 60, "retries": 0, "onFailure": "rollback", "idempotent": false,
            ]], allowlist: ["http://127.0.0.1:9/releases/"])
            #expect(try await agent.waitForExit() == 128 + SIGKILL)
            // As the watchdog leaves it when the previous binary is missing.
            try write("""
                execution=\(execution)
                binary=\(agent.root)/bin/flotilla-agent
                previous=\(agent.root)/bin/.flotilla-agent.previous
                from=0.0.9
                to=\(AgentRelease.version)
                window=30

                """, to: agent.data + "/self-update.env.restoring")
            try write("the new agent did not report in within 30 s of its first start; the previous binary is missing, so nothing was put back\n",
                      to: agent.data + "/self-update.rolled-back")
            try agent.start()
            let final = try await server.finalExecution(execution, seconds: 30)
            #expect(final["state"] as? String == "failed")
            let why = (final["results"] as? [[String: Any]])?.first?["message"] as? String ?? final["message"] as? String ?? ""
            #expect(why.contains("was to be rolled back to 0.0.9, which could not be put back"), "\(final)")
            #expect(ChildProcess.exitStatus(agent.pid) == nil, "the agent keeps running: \(agent.logText)")
        }
    }

    @Test func theVersionMarkerIsTheRelease() throws {
        #expect(try Self.build(version: "9.9.9").count > 0)
    }

    /// The watchdog alone, on files: it counts starts, puts the previous binary back on the third
    /// or past the deadline, and leaves alone an update the new agent took first.
    @Test func theWatchdogPutsThePreviousBinaryBackOnlyWhenTheNewOneDidNotTake() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let binary = root + "/flotilla-agent", previous = root + "/.flotilla-agent.previous", data = root + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        func record(window: Int, firstStart: Int? = nil) throws {
            try write("new\n", to: binary)
            try write("old\n", to: previous)
            try write("execution=ex-1\nbinary=\(binary)\nprevious=\(previous)\nfrom=0.1.0\nto=0.1.1\nwindow=\(window)\n",
                      to: data + "/self-update.env")
            for name in ["self-update.starts", "self-update.rolled-back", "self-update.env.restoring", "self-update.env.confirmed",
                         "self-update.why"] {
                try? FileManager.default.removeItem(atPath: data + "/" + name)
            }
            if let firstStart { try write("1 \(firstStart)\n", to: data + "/self-update.starts") }
        }
        func run(_ mode: String, _ target: String? = nil) throws {
            let result = try ChildProcess.run("/bin/sh", [Self.watchdog, mode, target ?? data],
                                              environment: ProcessInfo.processInfo.environment.merging(["FLOTILLA_AGENT_RESTART": "true"]) { $1 })
            #expect(result.status == 0, "\(result.errorText)")
        }
        func running() throws -> String { try String(contentsOfFile: binary, encoding: .utf8) }
        let now = Int(Date().timeIntervalSince1970)

        // Two starts of the new agent are its chance; the third start gets the old one.
        try record(window: 3_600)
        try run("start")
        try run("start")
        #expect(try running() == "new\n")
        try run("check")
        #expect(try running() == "new\n", "within its time the timer leaves it")
        try run("start")
        #expect(try running() == "old\n")
        #expect(try String(contentsOfFile: data + "/self-update.rolled-back", encoding: .utf8)
                == "the new agent did not start: it stopped 2 times before reporting in\n")
        #expect(FileManager.default.fileExists(atPath: data + "/self-update.env.restoring"))
        try run("start")
        #expect(try running() == "old\n", "once put back, nothing more")

        // A device off for a day after the swap: the time counts from the new agent's first start.
        try record(window: 60)
        try run("check")
        #expect(try running() == "new\n", "not started yet: nothing to judge")
        // Started an hour ago and never heard: the timer puts it back.
        try record(window: 60, firstStart: now - 3_600)
        try run("check")
        #expect(try running() == "old\n")
        #expect(try String(contentsOfFile: data + "/self-update.rolled-back", encoding: .utf8)
                == "the new agent did not report in within 60 s of its first start\n")

        // A putting back cut short (here: the binary's directory refused the copy) is finished later.
        try record(window: 60, firstStart: now - 3_600)
        try FileManager.default.createDirectory(atPath: binary + ".watchdog", withIntermediateDirectories: true)
        try run("check")
        #expect(try running() == "new\n")
        #expect(!FileManager.default.fileExists(atPath: data + "/self-update.rolled-back"))
        try FileManager.default.removeItem(atPath: binary + ".watchdog")
        try run("start")
        #expect(try running() == "old\n")
        #expect(try String(contentsOfFile: data + "/self-update.rolled-back", encoding: .utf8)
                == "the new agent did not report in within 60 s of its first start\n")

        // Given the agent's configuration, as the unit gives it, the watchdog finds the data
        // directory as the agent's YAML reads it: quoted, and with a comment after it.
        try write("server: https://fleet.example.com\ndataDirectory: \"\(data)\"   # where the agent keeps its state\n", to: root + "/agent.yaml")
        try record(window: 60, firstStart: now - 3_600)
        try run("check", root + "/agent.yaml")
        #expect(try running() == "old\n")

        // The new agent was heard and took the record first: the timer, even past its time, does nothing.
        try record(window: 1, firstStart: now - 3_600)
        try FileManager.default.moveItem(atPath: data + "/self-update.env", toPath: data + "/self-update.env.confirmed")
        try run("check")
        try run("start")
        #expect(try running() == "new\n")
        #expect(!FileManager.default.fileExists(atPath: data + "/self-update.rolled-back"))
    }

    /// The supervisor above does what the unit says; if the unit changes, so must it.
    @Test func theUnitRunsTheWatchdogAsTheSupervisorDoes() throws {
        let unit = try String(contentsOfFile: TestPackage.root + "/packaging/flotilla-agent.service", encoding: .utf8).split(separator: "\n")
        #expect(unit.contains("ExecStartPre=/usr/local/lib/flotilla/flotilla-agent-watchdog start /etc/flotilla/agent.yaml"))
        #expect(unit.contains("Restart=always"))
        #expect(unit.contains("RestartPreventExitStatus=2 3"))
        let timer = try String(contentsOfFile: TestPackage.root + "/packaging/flotilla-agent-watchdog.service", encoding: .utf8)
        #expect(timer.contains("ExecStart=/usr/local/lib/flotilla/flotilla-agent-watchdog check /etc/flotilla/agent.yaml"))
    }
}
