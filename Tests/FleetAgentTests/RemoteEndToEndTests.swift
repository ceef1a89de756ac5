import FleetGit
import FleetTesting
import Foundation
import Testing

/// Remote commands and file fetch with real processes: a `flotilla serve --repo` on a real git
/// daemon, a real `flotilla-agent`, and the real `flotilla exec` and `flotilla fetch`. Off until
/// a commit allows them; then a command's output and status come back, one that outlives its
/// timeout is killed with its process group, output past the cap is cut and said so, and a file
/// is fetched only from an allowed directory, links followed.
@Suite(.serialized)
struct RemoteEndToEndTests {
    @Test func execAndFetchOverTheAgentsOwnLink() async throws {
        try await failingWithLogs(run)
    }

    private func run(_ watch: (ServerUnderTest, AgentUnderTest) -> Void) async throws {
        let daemon = try GitDaemon()
        defer { daemon.stop() }
        let scratch = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let root = try temporaryDirectory()
        try write("kind: Fleet\nproject: acme\n", to: root + "/fleet.yaml")
        try write("kind: Group\nname: all\nselector: ring\n", to: root + "/groups/all.yaml")
        let work = try daemon.createRepository("fleet", contents: root)
        let server = try ServerUnderTest(flags: ["--repo", daemon.url("fleet"), "--poll-interval", "0.5", "--reconcile-interval", "0.3"])
        let agent = try AgentUnderTest(server: server, settings: "tags: {ring: main}")
        watch(server, agent)
        try agent.start()
        let id = try await agent.deviceID()
        let environment = ProcessInfo.processInfo.environment.merging(
            ["FLOTILLA_SERVER": server.base, "FLOTILLA_TOKEN": server.operatorToken, "HOME": scratch]) { _, new in new }
        func flotilla(_ arguments: [String]) async throws -> ChildProcess.Result {
            try await offThePool { try ChildProcess.run(Binaries.flotilla, arguments, environment: environment) }
        }

        // Off: refused, saying how to turn it on.
        let refused = try await flotilla(["exec", "--device", id, "--", "uptime"])
        #expect(refused.status != 0)
        #expect(refused.errorText.contains("remote: {exec: true}"), "\(refused.errorText)")

        let logDirectory = scratch + "/logs"
        try write("line one\nline two\n", to: logDirectory + "/app.log")
        try write("not for operators\n", to: scratch + "/secret.txt")
        try FileManager.default.createSymbolicLink(atPath: logDirectory + "/escape.log", withDestinationPath: scratch + "/secret.txt")
        try write("kind: Fleet\nproject: acme\nremote:\n  exec: true\n  fetchPaths: [\(logDirectory)]\n", to: work.path + "/fleet.yaml")
        _ = try work.commitAll("allow remote exec and fetching logs")
        _ = try work.git("push", "--quiet", "origin", "HEAD:main")

        // Once the commit holds and a heartbeat told the agent, a command runs.
        _ = try await eventually(seconds: 40, "remote exec allowed and answered") { () -> Bool? in
            let created = try await server.post("/api/v1/exec", ["devices": [id], "command": ["true"], "timeoutSeconds": 5])
            guard created.status == 201, let batch = created.json["id"] as? String else { return nil }
            let done = try await eventually(seconds: 20, "the first command ended") { () -> [String: Any]? in
                let view = try await server.get("/api/v1/remote/\(batch)")
                return view["done"] as? Bool == true ? view : nil
            }
            return ((done["devices"] as? [[String: Any]])?.first?["state"] as? String) == "succeeded" ? true : nil
        }

        // Output and exit status, through the command line.
        let ran = try await flotilla(["exec", "--device", id, "--", "sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(ran.status == 1)
        #expect(ran.outputText.contains("out\n") && ran.outputText.contains("err\n"), "\(ran.outputText)")
        #expect(ran.errorText.contains("exited with status 3"), "\(ran.errorText)")

        // A command that outlives its timeout: its whole process group is killed.
        let pidFile = scratch + "/sleeper.pid"
        let slow = try await flotilla(["exec", "--json", "--device", id, "--timeout", "2s", "--", "sh", "-c", "sleep 300 & echo $! > \(pidFile); wait"])
        #expect(slow.status == 1)
        let slowView = try JSONSerialization.jsonObject(with: Data(slow.output)) as? [String: Any]
        let slowDevice = (slowView?["devices"] as? [[String: Any]])?.first
        #expect(slowDevice?["timedOut"] as? Bool == true, "\(slow.outputText)")
        #expect((slowDevice?["message"] as? String)?.contains("timed out after 2 s") == true)
        let sleeper = try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        _ = try await eventually(seconds: 10, "the command's child killed") { () -> Bool? in
            // Gone, or a zombie waiting for a parent that does not reap: either way not running.
            let stat = try? String(contentsOfFile: "/proc/\(sleeper)/stat", encoding: .utf8)
            return stat == nil || stat!.split(separator: " ")[2] == "Z" ? true : nil
        }

        // Output past 1 MiB is cut, and the answer says how much was dropped.
        let big = try await flotilla(["exec", "--json", "--device", id, "--", "head", "-c", "3000000", "/dev/zero"])
        #expect(big.status == 0, "\(big.errorText)")
        let bigDevice = ((try JSONSerialization.jsonObject(with: Data(big.output)) as? [String: Any])?["devices"] as? [[String: Any]])?.first
        #expect(bigDevice?["truncated"] as? Bool == true)
        #expect(bigDevice?["outputBytes"] as? Int == 1 << 20)
        #expect(bigDevice?["droppedBytes"] as? Int == 3_000_000 - (1 << 20))

        // A file from an allowed directory.
        let copy = scratch + "/copy.log"
        let fetched = try await flotilla(["fetch", "\(id):\(logDirectory)/app.log", "-o", copy])
        #expect(fetched.status == 0, "\(fetched.errorText)")
        #expect(try String(contentsOfFile: copy, encoding: .utf8) == "line one\nline two\n")
        // A link under it that leads out is refused on the device.
        let escape = try await flotilla(["fetch", "\(id):\(logDirectory)/escape.log"])
        #expect(escape.status != 0)
        #expect(escape.errorText.contains("not under a path the project allows"), "\(escape.errorText)")
        #expect(!escape.outputText.contains("not for operators"))
        // Outside the allowed directories, the server refuses before the device hears of it.
        let outside = try await flotilla(["fetch", "\(id):/etc/passwd"])
        #expect(outside.status != 0)
        #expect(outside.errorText.contains("is not under a path fleet.yaml allows"), "\(outside.errorText)")

        let audit = try await server.get("/api/v1/audit")["entries"] as? [[String: Any]] ?? []
        #expect(audit.contains { $0["action"] as? String == "remote.exec" && ($0["detail"] as? String ?? "").contains("head -c 3000000 /dev/zero on \(id)") })
        #expect(audit.filter { $0["action"] as? String == "remote.fetch" }.count == 2)
        // The one file fetched was read once: the CLI waits for the fetch to end, then reads it.
        #expect(audit.filter { $0["action"] as? String == "remote.fetch.read" }.count == 1)
        // The operator's words never reach the agent's log.
        #expect(!agent.logText.contains("echo out"))
    }
}
