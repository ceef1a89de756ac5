import FleetCore
import FleetGit
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// Merge-to-deploy end to end: a real git daemon serving a repository made from
/// fleet-repo-template, `flotilla serve --repo`, and `flotilla sim` devices.
@Suite(.serialized)
struct ControllerTests {
    /// A git daemon serving a repository made from fleet-repo-template, `flotilla serve --repo`
    /// on it (FleetTesting's `RunningServer`, data in `data/server`), and `flotilla sim` devices.
    final class Fleet: @unchecked Sendable {
        let data: String
        let daemon: GitDaemon
        let work: WorkTree
        let server: RunningServer
        var sim: Int32 = 0
        var port: Int { server.port }
        var base: String { server.base }
        var operatorToken: String { server.operatorToken }
        var enrollmentToken: String { server.enrollmentToken }

        init(devices: Int, failRate: Double = 0, failVersions: [String] = [], unhealthy: [String] = [], stepSeconds: String = "0.02-0.1", pollInterval: String = "0.5",
             webhookSecret: String? = nil, serverFlags: [String] = [], serverEnvironment: [String: String] = [:],
             repositoryFlags: ((GitDaemon, _ data: String) throws -> [String])? = nil) throws {
            data = try TestPaths.temporaryDirectory()
            daemon = try GitDaemon()
            work = try daemon.createRepository("fleet", contents: TestPaths.template)
            var flags = ["--heartbeat-interval", "1", "--poll-interval", pollInterval, "--reconcile-interval", "0.3"]
                + (try repositoryFlags?(daemon, data) ?? ["--repo", daemon.url("fleet")]) + serverFlags
            if let webhookSecret {
                try webhookSecret.write(toFile: data + "/webhook-secret", atomically: true, encoding: .utf8)
                flags += ["--webhook-secret-file", data + "/webhook-secret"]
            }
            server = try RunningServer(data: data + "/server", project: "acme-climate", flags: flags, environment: serverEnvironment,
                                       logPath: data + "/server.log")
            sim = try ChildProcess.start(TestPaths.flotilla, [
                "sim", "--server", server.base, "--token", server.enrollmentToken, "--devices", "\(devices)", "--fail-rate", "\(failRate)",
                "--offline-rate", "0", "--step-seconds", stepSeconds, "--seed", "3",
            ] + failVersions.flatMap { ["--fail-version", $0] } + unhealthy.flatMap { ["--unhealthy", $0] }, environment: [:], logPath: data + "/sim.log")
        }

        func startServer() throws { try server.start() }

        /// SIGKILL, as a crash or a power cut would stop it.
        func killServer() { server.kill() }

        deinit {
            if sim > 0 { ChildProcess.kill(sim) }
            server.kill()
            daemon.stop()
            try? FileManager.default.removeItem(atPath: data)
        }

        func get(_ path: String) async throws -> [String: Any] { try await server.get(path) }

        /// Devices with their tags and installed thermostat version.
        func devices() async throws -> [(tags: [String: String], thermostat: String?)] {
            (try await get("/api/v1/devices")["devices"] as? [[String: Any]] ?? []).map { device in
                (device["tags"] as? [String: String] ?? [:],
                 ((device["apps"] as? [String: Any])?["thermostat"] as? [String: Any])?["version"] as? String)
            }
        }

        func deploymentCount() async throws -> Int { (try await get("/api/v1/deployments")["deployments"] as? [Any])?.count ?? 0 }

        /// Waits until every device runs what `expected` says for its tags.
        func waitUntil(seconds: Double, _ expected: ([String: String]) -> String?) async throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                let devices = try await devices()
                if !devices.isEmpty, devices.allSatisfy({ $0.thermostat == expected($0.tags) }) { return true }
                try await Task.sleep(for: .milliseconds(200))
            }
            return false
        }

        /// Changes `path` in the fleet repository as an operator would: edit, commit, push.
        /// Returns the commit.
        @discardableResult
        func change(_ path: String, _ replacements: [(String, String)], message: String) throws -> String {
            let file = work.path + "/" + path
            var text = try String(contentsOfFile: file, encoding: .utf8)
            for (old, new) in replacements { text = text.replacingOccurrences(of: old, with: new) }
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            let commit = try work.commitAll(message)
            try work.git("push", "--quiet", "origin", "HEAD:main")
            return commit
        }

        /// The controller's note on `commit`, fetched as a user would.
        func note(on commit: String, ref: String = "flotilla") throws -> String? {
            _ = try? work.git("fetch", "--quiet", "origin", "+refs/notes/\(ref):refs/notes/\(ref)")
            return try? work.git("notes", "--ref=\(ref)", "show", commit)
        }
    }

    /// The template's thermostat targets, in order: canary ring, European sites, every thermostat.
    static func thermostat(europe: String) -> ([String: String]) -> String? {
        { tags in
            guard ["rpi3", "rpi4"].contains(tags["hw"] ?? "") else { return nil }
            if tags["ring"] == "canary" { return "2.5.0" }
            if ["berlin", "paris", "madrid"].contains(tags["site"] ?? "") { return europe }
            return "2.3.9"
        }
    }

    @Test func mergeToDeployConvergesAndAnInvalidCommitChangesNothing() async throws {
        let fleet = try Fleet(devices: 16)
        let converged = try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1"))
        let log = (try? String(contentsOfFile: fleet.data + "/server.log", encoding: .utf8)) ?? ""
        #expect(converged, "\(log.suffix(2_000))")
        let first = try fleet.work.git("rev-parse", "HEAD")
        // The note follows the devices' reports by one pass: wait for it as for the others.
        var firstNote: String?
        for _ in 0..<50 {
            firstNote = try fleet.note(on: first)
            if firstNote?.contains("flotilla/thermostat: success") == true { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(firstNote?.contains("flotilla/thermostat: success") == true)

        // A version bump, committed and pushed as a user would.
        let app = fleet.work.path + "/apps/thermostat.yaml"
        let text = try String(contentsOfFile: app, encoding: .utf8)
        try text.replacingOccurrences(of: "version: 2.4.1", with: "version: 2.4.2")
            .replacingOccurrences(of: "thermostat/2.4.1/", with: "thermostat/2.4.2/").write(toFile: app, atomically: true, encoding: .utf8)
        let bump = try fleet.work.commitAll("thermostat 2.4.2 for Europe")
        try fleet.work.git("push", "--quiet", "origin", "HEAD:main")
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.2")))
        var note: String?
        for _ in 0..<50 {
            note = try fleet.note(on: bump)
            if note?.contains("europe → 2.4.2") == true && note?.contains("flotilla/thermostat: success") == true { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(note?.contains("europe → 2.4.2") == true, "\(note ?? "no note")")
        // The commit before keeps its history and says it is no longer in force.
        #expect(try fleet.note(on: first)?.contains("superseded by \(bump)") == true)

        // An invalid commit: a failure note, nothing deployed, the last good state kept.
        let deployments = try await fleet.deploymentCount()
        try (text + "\nunknownKey: 1\n").write(toFile: app, atomically: true, encoding: .utf8)
        let broken = try fleet.work.commitAll("a typo")
        try fleet.work.git("push", "--quiet", "origin", "HEAD:main")
        var failure: String?
        for _ in 0..<50 {
            failure = try fleet.note(on: broken)
            if failure != nil { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(failure?.hasPrefix("flotilla: failure — this commit does not validate; nothing was deployed.") == true, "\(failure ?? "no note")")
        #expect(failure?.contains("apps/thermostat.yaml:") == true)
        #expect(failure?.contains("The desired state stays at \(bump)") == true)
        try await Task.sleep(for: .seconds(1.5))
        #expect(try await fleet.deploymentCount() == deployments)
        #expect(try await fleet.waitUntil(seconds: 1, Self.thermostat(europe: "2.4.2")))

        // The status branch tells people and tools the same.
        _ = try fleet.work.git("fetch", "--quiet", "origin", "flotilla/status")
        let status = try fleet.work.git("show", "FETCH_HEAD:STATUS.md")
        #expect(status.contains("## thermostat: success"))
        #expect(status.contains("does not validate"))
    }

    /// With --allowed-signers only SSH-signed commits by an allowed key are rolled out; an
    /// unsigned head and one signed by a stranger are refused like invalid commits.
    @Test func onlyCommitsSignedByAnAllowedSignerAreRolledOut() async throws {
        let keys = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: keys) }
        for name in ["operator", "stranger"] {
            _ = try SSHServer.keygen(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", "\(keys)/\(name)"])
        }
        let operatorKey = try String(contentsOfFile: "\(keys)/operator.pub", encoding: .utf8)
        try "ops@acme.example \(operatorKey)".write(toFile: "\(keys)/allowed_signers", atomically: true, encoding: .utf8)
        let fleet = try Fleet(devices: 4, serverFlags: ["--allowed-signers", "\(keys)/allowed_signers"])
        var europe = "2.4.1"
        func push(_ message: String, signedWith key: String?, europe next: String? = nil) throws -> String {
            if let next {
                let path = fleet.work.path + "/apps/thermostat.yaml"
                let text = try String(contentsOfFile: path, encoding: .utf8)
                    .replacingOccurrences(of: "- group: europe\n    version: \(europe)", with: "- group: europe\n    version: \(next)")
                try text.write(toFile: path, atomically: true, encoding: .utf8)
                europe = next
            } else {
                try "\(message)\n".write(toFile: fleet.work.path + "/README.md", atomically: true, encoding: .utf8)
            }
            try fleet.work.git("add", "--all")
            if let key {
                try fleet.work.git("-c", "gpg.format=ssh", "-c", "user.signingkey=\(keys)/\(key).pub", "commit", "--quiet", "-S", "-m", message)
            } else {
                try fleet.work.git("commit", "--quiet", "-m", message)
            }
            try fleet.work.git("push", "--quiet", "origin", "HEAD:main")
            return try fleet.work.git("rev-parse", "HEAD")
        }
        func noteOn(_ commit: String) async throws -> String? {
            for _ in 0..<75 {
                if let note = try fleet.note(on: commit) { return note }
                try await Task.sleep(for: .milliseconds(200))
            }
            return nil
        }
        // The template's own commit is unsigned: nothing is rolled out from it.
        let unsignedStart = try fleet.work.git("rev-parse", "HEAD")
        let first = try await noteOn(unsignedStart)
        #expect(first?.hasPrefix("flotilla: failure — this commit is not signed by an allowed signer; nothing was deployed.") == true, "\(first ?? "no note")")
        #expect(try await fleet.deploymentCount() == 0)

        // Signed by the operator: rolled out.
        let signed = try push("Signed by ops", signedWith: "operator")
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
        let signedNote = try await noteOn(signed)
        #expect(signedNote?.contains("flotilla/thermostat:") == true && signedNote?.contains("failure") == false, "\(signedNote ?? "no note")")

        // Unsigned, and signed by a stranger: refused, the note says why, nothing moves.
        let deployments = try await fleet.deploymentCount()
        let plain = try push("Unsigned bump", signedWith: nil, europe: "2.4.2")
        let plainNote = try await noteOn(plain)
        #expect(plainNote?.contains("the commit is not signed; the server requires a signature by an allowed signer") == true, "\(plainNote ?? "no note")")
        #expect(plainNote?.contains("The desired state stays at \(signed)") == true)
        let foreign = try push("Stranger's bump", signedWith: "stranger", europe: "2.4.3")
        let foreignNote = try await noteOn(foreign)
        #expect(foreignNote?.contains("with a key that is not an allowed signer") == true, "\(foreignNote ?? "no note")")
        try await Task.sleep(for: .seconds(1.5))
        #expect(try await fleet.deploymentCount() == deployments)
        #expect(try await fleet.waitUntil(seconds: 1, Self.thermostat(europe: "2.4.1")))
    }

    /// Push webhooks, verified before anything is fetched; and the operator commands that read
    /// the controller: status, reconcile, plan --server.
    @Test func signedWebhooksTriggerAReconcileAndBadOnesChangeNothing() async throws {
        // Polling every minute: only a webhook (or flotilla reconcile) brings a new commit in soon.
        let fleet = try Fleet(devices: 6, pollInterval: "60", webhookSecret: "s3cret")
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
        func reconciled() async throws -> String? { try await fleet.get("/api/v1/status")["commit"] as? String }
        let first = try await reconciled()

        let app = fleet.work.path + "/apps/thermostat.yaml"
        try String(contentsOfFile: app, encoding: .utf8).replacingOccurrences(of: "version: 2.4.1", with: "version: 2.4.2")
            .write(toFile: app, atomically: true, encoding: .utf8)
        let bump = try fleet.work.commitAll("thermostat 2.4.2")
        try fleet.work.git("push", "--quiet", "origin", "HEAD:main")

        var payload = Data(#"{"ref":"refs/heads/main","after":"\#(bump)"}"#.utf8)
        func hook(_ headers: [String: String]) async throws -> Int {
            var request = URLRequest(url: URL(string: fleet.base + "/hooks/git")!)
            request.httpMethod = "POST"
            request.httpBody = payload
            for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
            let (_, response) = try await URLSession.shared.data(for: request)
            return (response as? HTTPURLResponse)?.statusCode ?? 0
        }
        var signature = SHA256.hmacHex(key: Array("s3cret".utf8), message: Array(payload))
        #expect(try await hook([:]) == 401)
        #expect(try await hook(["X-Hub-Signature-256": "sha256=" + String(repeating: "0", count: 64)]) == 401)
        #expect(try await hook(["X-Gitlab-Token": "guess"]) == 401)
        try await Task.sleep(for: .seconds(1.5))
        #expect(try await reconciled() == first, "a refused webhook must not bring the commit in")

        // Signed, but a push to another branch (the status branch, say): acknowledged, not polled.
        payload = Data(#"{"ref":"refs/heads/flotilla/status","after":"\#(bump)"}"#.utf8)
        let otherBranch = SHA256.hmacHex(key: Array("s3cret".utf8), message: Array(payload))
        #expect(try await hook(["X-Hub-Signature-256": "sha256=" + otherBranch, "X-GitHub-Event": "push"]) == 202)
        #expect(try await hook(["X-Hub-Signature-256": "sha256=" + otherBranch, "X-GitHub-Event": "ping"]) == 200)
        try await Task.sleep(for: .seconds(1.5))
        #expect(try await reconciled() == first, "a push to another branch must not bring the commit in")
        payload = Data(#"{"ref":"refs/heads/main","after":"\#(bump)"}"#.utf8)
        signature = SHA256.hmacHex(key: Array("s3cret".utf8), message: Array(payload))

        #expect(try await hook(["X-Hub-Signature-256": "sha256=" + signature, "X-GitHub-Event": "push"]) == 202)
        _ = try await eventuallyValue(seconds: 20) { try await reconciled() == bump ? true : nil }
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.2")))
        #expect(try await hook(["X-Gitea-Signature": signature]) == 202)
        #expect(try await hook(["X-Gitlab-Token": "s3cret"]) == 202)

        var environment = ProcessInfo.processInfo.environment
        environment["FLOTILLA_TOKEN"] = fleet.operatorToken
        let status = try ChildProcess.run(TestPaths.flotilla, ["status", "--server", fleet.base], environment: environment)
        #expect(status.status == 0, "\(status.errorText)")
        #expect(status.outputText.hasPrefix("commit \(bump.prefix(12))"))
        #expect(status.outputText.contains("thermostat") && status.outputText.contains("europe") && status.outputText.contains("2.4.2"))
        let reconcile = try ChildProcess.run(TestPaths.flotilla, ["reconcile", "--server", fleet.base], environment: environment)
        #expect(reconcile.outputText == "reconcile requested\n")
        // The plan a pull request would show, against the live devices: reverting moves Europe back.
        let plan = try ChildProcess.run(TestPaths.flotilla, ["plan", fleet.work.path, "--server", fleet.base, "--base", "HEAD", "--head", "HEAD~1"],
                                        environment: environment)
        #expect(plan.status == 1, "\(plan.errorText)")
        #expect(plan.outputText.contains("2.4.2 → 2.4.1"), "\(plan.outputText)")
        // With the forecast: the waves with their devices and this fleet's execution times.
        let forecast = try ChildProcess.run(TestPaths.flotilla, ["plan", fleet.work.path, "--server", fleet.base, "--base", "HEAD", "--head", "HEAD~1",
                                                                 "--forecast"], environment: environment)
        #expect(forecast.status == 1, "\(forecast.errorText)")
        #expect(forecast.outputText.contains("forecast:\n  thermostat → europe 2.4.1: "), "\(forecast.outputText)")
        #expect(forecast.outputText.contains("    wave 1: "), "\(forecast.outputText)")
        #expect(forecast.outputText.contains(" waves, about "), "no execution times read: \(forecast.outputText)")
        // The controller's passes are counted and timed for Prometheus.
        let (metricsBody, _) = try await URLSession.shared.data(from: URL(string: fleet.base + "/metrics")!)
        let metrics = String(decoding: metricsBody, as: UTF8.self)
        let passes = metrics.split(separator: "\n").first { $0.hasPrefix("flotilla_controller_passes_total ") }
        #expect((passes?.split(separator: " ").last.flatMap { Int($0) } ?? 0) > 1, "\(metrics)")
        #expect(metrics.contains("flotilla_controller_pass_seconds_total ") && metrics.contains("# TYPE flotilla_controller_last_pass_seconds gauge"))
        // And how much of the history the last pass read, and kept for its decision.
        func gauge(_ name: String) -> Double? {
            metrics.split(separator: "\n").first { $0.hasPrefix(name + " ") }?.split(separator: " ").last.flatMap { Double($0) }
        }
        let read = gauge("flotilla_controller_executions_read"), kept = gauge("flotilla_controller_executions_kept")
        #expect((kept ?? 0) > 0 && (read ?? 0) >= (kept ?? .infinity), "\(metrics)")
        environment["FLOTILLA_TOKEN"] = nil
        let noToken = try ChildProcess.run(TestPaths.flotilla, ["status", "--server", fleet.base], environment: environment)
        #expect(noToken.status == 2 && noToken.errorText.contains("FLOTILLA_TOKEN"))
    }

    /// The next wave follows the end of the last one, not the next reconcile interval: here
    /// passes are 60 s apart, and the four waves of Europe still finish within seconds.
    @Test func theNextWaveStartsWhenTheLastEndsNotAtTheNextPass() async throws {
        let fleet = try Fleet(devices: 16, pollInterval: "60", serverFlags: ["--reconcile-interval", "60"])
        // Every device enrolled before the first pass decides anything.
        _ = try await eventuallyValue(seconds: 30) { () -> Bool? in
            (try await fleet.get("/api/v1/devices")["devices"] as? [Any])?.count == 16 ? true : nil
        }
        var environment = ProcessInfo.processInfo.environment
        environment["FLOTILLA_TOKEN"] = fleet.operatorToken
        #expect(try ChildProcess.run(TestPaths.flotilla, ["reconcile", "--server", fleet.base], environment: environment).status == 0)
        #expect(try await fleet.waitUntil(seconds: 30, Self.thermostat(europe: "2.4.1")))
        #expect(try await fleet.deploymentCount() >= 4, "Europe's rollout should take several waves")
    }

    /// A rollout's counts change on every pass; the status branch and the note take them only
    /// when a state changes or the status interval has passed, not once per pass.
    @Test func statusIsWrittenOnChangesOfStateNotOnEveryPass() async throws {
        let fleet = try Fleet(devices: 16, stepSeconds: "0.2-0.4", serverFlags: ["--status-interval", "3600"])
        #expect(try await fleet.waitUntil(seconds: 90, Self.thermostat(europe: "2.4.1")))
        let head = try fleet.work.git("rev-parse", "HEAD")
        // Telemetry's gateways update one at a time after the thermostats: on a machine busy with
        // the whole suite that can take a while.
        let note = try await eventuallyValue(seconds: 60) { () -> String? in
            let note = try fleet.note(on: head)
            return note?.contains("flotilla/thermostat: success") == true && note?.contains("flotilla/telemetry: success") == true ? note : nil
        }
        // The last write has the final counts: every target converged, none updating.
        let targets = note.split(separator: "\n").filter { $0.contains(" → ") }
        #expect(!targets.isEmpty && targets.allSatisfy { $0.contains(" 0 updating") && $0.hasSuffix("(converged)") }, "\(note)")
        let waves = try await fleet.deploymentCount()
        try fleet.work.git("fetch", "--quiet", "origin", "flotilla/status")
        let writes = Int(try fleet.work.git("rev-list", "--count", "FETCH_HEAD")) ?? 0
        #expect(waves >= 4, "the rollout should take several waves")
        #expect(writes >= 1 && writes <= 8, "\(writes) status commits for one rollout")
    }

    /// Flags choose the forge and the context prefix over fleet.yaml's: a second controller on
    /// the same repository posts under its own prefix. The forge is a local server that records
    /// what it is sent.
    @Test func flagsChooseTheForgeAndTheContextPrefix() async throws {
        let root = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try """
        import http.server, json, sys
        class Forge(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with open(sys.argv[2], "a") as log:
                    log.write(json.dumps({"path": self.path, "authorization": self.headers.get("Authorization"),
                                          "body": json.loads(body)}) + "\\n")
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")
            def log_message(self, *arguments):
                pass
        http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Forge).serve_forever()
        """.write(toFile: root + "/forge.py", atomically: true, encoding: .utf8)
        let forgePort = try GitDaemon.freePort()
        let forge = try ChildProcess.start("/usr/bin/python3", [root + "/forge.py", "\(forgePort)", root + "/posted.jsonl"])
        defer { ChildProcess.kill(forge) }
        #expect(GitDaemon.waitUntilListening(port: forgePort))

        let fleet = try Fleet(devices: 4, serverFlags: [
            "--forge", "gitea", "--forge-repository", "ops/fleet", "--forge-api-url", "http://127.0.0.1:\(forgePort)", "--forge-allow-http",
            "--status-context-prefix", "staging",
        ], serverEnvironment: ["FLOTILLA_FORGE_TOKEN": "forge-secret-token"])
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
        let head = try fleet.work.git("rev-parse", "HEAD")
        let posted = try await eventuallyValue(seconds: 20) { () -> [[String: Any]]? in
            let lines = (try? String(contentsOfFile: root + "/posted.jsonl", encoding: .utf8))?.split(separator: "\n") ?? []
            let posts = lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            let success = posts.contains { (($0["body"] as? [String: Any])?["context"] as? String) == "staging/thermostat"
                && (($0["body"] as? [String: Any])?["state"] as? String) == "success" }
            return success ? posts : nil
        }
        // Gitea's API, not GitHub's that fleet.yaml names; every context under the flag's prefix.
        #expect(posted.allSatisfy { $0["path"] as? String == "/repos/ops/fleet/statuses/\(head)" })
        #expect(posted.allSatisfy { $0["authorization"] as? String == "token forge-secret-token" })
        #expect(posted.allSatisfy { (($0["body"] as? [String: Any])?["context"] as? String)?.hasPrefix("staging/") == true })
        // Its note and status branch are its own, beside any other controller's; the note speaks
        // of the same contexts. The token is in no log.
        let note = try await eventuallyValue(seconds: 10) {
            try fleet.note(on: head, ref: "staging").flatMap { $0.contains("thermostat: success") ? $0 : nil }
        }
        #expect(note.contains("staging/thermostat: success") && !note.contains("flotilla/"), "\(note)")
        #expect(try fleet.note(on: head) == nil, "refs/notes/flotilla is another controller's")
        try fleet.work.git("fetch", "--quiet", "origin", "staging/status")
        #expect(try fleet.work.git("show", "FETCH_HEAD:STATUS.md").contains("## thermostat: success"))
        #expect((try? fleet.work.git("ls-remote", "--exit-code", "origin", "refs/heads/flotilla/status")) == nil)
        #expect(!(try String(contentsOfFile: fleet.data + "/server.log", encoding: .utf8)).contains("forge-secret-token"))
    }

    /// A device driven by hand through the agent API, to make it drift.
    struct HandDevice {
        let base: String
        let token: String
        let id: String

        static func enroll(_ fleet: Fleet, tags: [String: String], hardwareID: String = "by-hand") async throws -> HandDevice {
            let body = try JSONSerialization.data(withJSONObject: ["token": fleet.enrollmentToken, "hardwareID": hardwareID,
                                                                   "deviceSecret": "0123456789abcdef0123", "tags": tags])
            let answer = try await send(fleet.base + "/agent/v1/enroll", method: "POST", token: nil, body: body)
            return HandDevice(base: fleet.base, token: answer["deviceToken"] as! String, id: answer["deviceID"] as! String)
        }

        static func send(_ url: String, method: String, token: String?, body: Data?) async throws -> [String: Any] {
            var request = URLRequest(url: URL(string: url)!)
            request.httpMethod = method
            request.httpBody = body
            if body != nil { request.setValue("application/json", forHTTPHeaderField: "Content-Type") }
            if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
            let (data, _) = try await URLSession.shared.data(for: request)
            return ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any]) ?? [:]
        }

        func heartbeat(thermostat: String?, digest: String?) async throws {
            // What the template's health checks read: the thermostat process and memory.
            var beat: [String: Any] = ["reportID": UUID().uuidString, "processes": [["name": "thermostat", "running": true]],
                                       "memory": ["usedBytes": 300 << 20, "totalBytes": 1 << 30]]
            if let thermostat { beat["apps"] = ["thermostat": digest.map { ["version": thermostat, "digest": $0] } ?? ["version": thermostat]] }
            _ = try await Self.send(base + "/agent/v1/heartbeat", method: "POST", token: token, body: try JSONSerialization.data(withJSONObject: beat))
        }

        /// Unfinished assignments (answered at once when there is work).
        func assignments() async throws -> [[String: Any]] {
            try await Self.send(base + "/agent/v1/assignments", method: "GET", token: token, body: nil)["assignments"] as? [[String: Any]] ?? []
        }

        func succeed(_ execution: String) async throws {
            _ = try await Self.send(base + "/agent/v1/executions/\(execution)/report", method: "POST", token: token,
                                    body: try JSONSerialization.data(withJSONObject: ["reportID": "\(execution)-final", "state": "succeeded"]))
        }
    }

    /// Reproduces what used to abort a rollout: devices that went offline before a version bump,
    /// `maxFailures: 1`, `onAbort: rollback` and a short `executionTimeout`. Offline devices are
    /// put in no wave and never counted as failed; the target converges with them pending; one
    /// that comes back gets the version.
    @Test func offlineDevicesWaitAndAreUpdatedWhenTheyReturnNeverFailed() async throws {
        let fleet = try Fleet(devices: 12)
        try fleet.change("fleet.yaml", [("executionTimeout: 30m", "executionTimeout: 3s")], message: "time executions out after 3 s")
        var away: [HandDevice] = []
        for number in 0..<3 {
            let device = try await HandDevice.enroll(fleet, tags: ["hw": "rpi4", "site": "paris", "ring": "prod", "away": "yes"], hardwareID: "away-\(number)")
            try await device.heartbeat(thermostat: "2.4.1", digest: nil)
            away.append(device)
        }
        let expected = { (europe: String) in { (tags: [String: String]) -> String? in tags["away"] == "yes" ? "2.4.1" : Self.thermostat(europe: europe)(tags) } }
        #expect(try await fleet.waitUntil(seconds: 60, expected("2.4.1")))
        // They go silent; three missed heartbeats later they are offline. Then the bump.
        try await Task.sleep(for: .seconds(4))
        let bump = try fleet.change("apps/thermostat.yaml", [("version: 2.4.1", "version: 2.4.2"), ("thermostat/2.4.1/", "thermostat/2.4.2/")],
                                    message: "thermostat 2.4.2 for Europe")
        #expect(try await fleet.waitUntil(seconds: 60, expected("2.4.2")))
        let note = try await eventuallyValue(seconds: 30) { () -> String? in
            try fleet.note(on: bump).flatMap { $0.contains("europe → 2.4.2") && $0.contains("offline pending") ? $0 : nil }
        }
        #expect(note.contains("flotilla/thermostat: success"), "\(note)")
        #expect(note.contains("3 offline pending"), "\(note)")
        #expect(!note.contains("aborted") && !note.contains("failure"), "\(note)")
        // Nothing was given to them while they were away.
        let ids = Set(away.map(\.id))
        for deployment in try await fleet.get("/api/v1/deployments")["deployments"] as? [[String: Any]] ?? [] {
            let detail = try await fleet.get("/api/v1/deployments/\(deployment["id"] as? String ?? "")")
            let executions = detail["executions"] as? [[String: Any]] ?? []
            #expect(!executions.contains { ids.contains($0["deviceID"] as? String ?? "") }, "an offline device was put in a wave")
        }
        // One comes back: it gets 2.4.2, once, and the target counts one fewer pending.
        try await away[0].heartbeat(thermostat: "2.4.1", digest: nil)
        let assignment = try await eventuallyValue(seconds: 30) { () -> [String: Any]? in
            try await away[0].heartbeat(thermostat: "2.4.1", digest: nil)
            return try await away[0].assignments().first
        }
        #expect(assignment["version"] as? String == "2.4.2")
        try await away[0].succeed(try #require(assignment["executionID"] as? String))
        try await away[0].heartbeat(thermostat: "2.4.2", digest: assignment["digest"] as? String)
        let after = try await eventuallyValue(seconds: 30) { () -> String? in
            try await away[0].heartbeat(thermostat: "2.4.2", digest: assignment["digest"] as? String)
            return try fleet.note(on: bump).flatMap { $0.contains("2 offline pending") ? $0 : nil }
        }
        #expect(after.contains("flotilla/thermostat: success"), "\(after)")
    }

    @Test func driftIsReportedAndSelfHealedOncePerInterval() async throws {
        let fleet = try Fleet(devices: 1)
        let device = try await HandDevice.enroll(fleet, tags: ["hw": "rpi4", "ring": "canary", "site": "berlin"])
        try await device.heartbeat(thermostat: nil, digest: nil)
        // The canary target's rollout reaches it; it succeeds and reports 2.5.0.
        let first = try await eventuallyValue(seconds: 30) { try await device.assignments().first }
        #expect(first["version"] as? String == "2.5.0")
        try await device.succeed(first["executionID"] as! String)
        let digest = first["digest"] as? String
        // A heartbeat built before the execution ended arrives after it: not drift, and not healed.
        try await Task.sleep(for: .milliseconds(50))
        try await device.heartbeat(thermostat: nil, digest: nil)
        try await Task.sleep(for: .seconds(1.5))
        #expect(try await device.assignments().isEmpty, "a late heartbeat was taken for drift")
        try await device.heartbeat(thermostat: "2.5.0", digest: digest)
        try await Task.sleep(for: .seconds(1))
        #expect((try await fleet.get("/api/v1/status")["apps"] as? [[String: Any]])?.first { $0["name"] as? String == "thermostat" }?["drifted"] as? [String] == [])

        // Someone puts 2.4.0 on it by hand: drift, seen in its heartbeats, reported, and healed
        // with a new execution.
        let drifted = try await eventuallyValue(seconds: 20) { () -> [String]? in
            try await device.heartbeat(thermostat: "2.4.0", digest: nil)
            try await Task.sleep(for: .milliseconds(400))
            let apps = try await fleet.get("/api/v1/status")["apps"] as? [[String: Any]] ?? []
            let list = apps.first { $0["name"] as? String == "thermostat" }?["drifted"] as? [String] ?? []
            return list.isEmpty ? nil : list
        }
        #expect(drifted == [device.id])
        let heal = try await eventuallyValue(seconds: 20) { try await device.assignments().first }
        #expect(heal["version"] as? String == "2.5.0")
        #expect(heal["executionID"] as? String != first["executionID"] as? String)
        try await device.succeed(heal["executionID"] as! String)
        try await device.heartbeat(thermostat: "2.5.0", digest: digest)

        // It drifts again: reported in the note once its heartbeats show it past the grace,
        // but not healed again within the self-heal interval.
        let commit = try fleet.work.git("rev-parse", "HEAD")
        let note = try await eventuallyValue(seconds: 30) { () -> String? in
            try await device.heartbeat(thermostat: "2.4.0", digest: nil)
            try await Task.sleep(for: .milliseconds(400))
            return try fleet.note(on: commit).flatMap { $0.contains("drifted \(device.id): reports 2.4.0, desired 2.5.0") ? $0 : nil }
        }
        #expect(note.contains("thermostat"))
        #expect(try await device.assignments().isEmpty, "healed twice within the interval")
    }

    @Test func anExecutionWithNoProgressTimesOut() async throws {
        let fleet = try Fleet(devices: 1)
        try fleet.change("fleet.yaml", [("executionTimeout: 30m", "executionTimeout: 2s")], message: "time executions out after 2 s")
        // A device that takes its work and is never heard of again.
        let device = try await HandDevice.enroll(fleet, tags: ["hw": "rpi4", "ring": "canary", "site": "berlin"])
        try await device.heartbeat(thermostat: nil, digest: nil)
        let assignment = try await eventuallyValue(seconds: 30) { try await device.assignments().first }
        let execution = try #require(assignment["executionID"] as? String)
        let deploymentID = try #require(assignment["deploymentID"] as? String)
        let record = try await eventuallyValue(seconds: 20) { () -> [String: Any]? in
            let detail = try await fleet.get("/api/v1/deployments/\(deploymentID)")
            let record = (detail["executions"] as? [[String: Any]] ?? []).first { $0["id"] as? String == execution }
            return record?["state"] as? String == "timedOut" ? record : nil
        }
        // Timed out because the device was still heard (online) and did not finish: a failure,
        // counted from when it took the assignment.
        #expect(record["message"] as? String == "not finished within the execution timeout of the device taking it")
        #expect(record["takenAt"] != nil)
        let status = try await fleet.get("/api/v1/status")
        let thermostat = (status["apps"] as? [[String: Any]])?.first { $0["name"] as? String == "thermostat" }
        #expect((thermostat?["targets"] as? [[String: Any]])?.contains { ($0["failed"] as? Int ?? 0) >= 1 } == true, "\(status)")
        #expect(try await device.assignments().allSatisfy { $0["executionID"] as? String != execution })
    }

    @Test func suspendHoldsAnAppResumeReleasesItAndARevertConvergesBack() async throws {
        let fleet = try Fleet(devices: 8)
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
        var environment = ProcessInfo.processInfo.environment
        environment["FLOTILLA_TOKEN"] = fleet.operatorToken
        let suspend = try ChildProcess.run(TestPaths.flotilla, ["suspend", "thermostat", "--server", fleet.base], environment: environment)
        #expect(suspend.outputText == "thermostat suspended\n", "\(suspend.errorText)")

        // Without self-healing, so that only the rollout can bring devices back after the revert.
        let app = fleet.work.path + "/apps/thermostat.yaml"
        try String(contentsOfFile: app, encoding: .utf8).replacingOccurrences(of: "selfHeal: true", with: "selfHeal: false")
            .write(toFile: app, atomically: true, encoding: .utf8)
        try fleet.work.commitAll("no self-healing for thermostat")
        try String(contentsOfFile: app, encoding: .utf8).replacingOccurrences(of: "version: 2.4.1", with: "version: 2.4.2")
            .write(toFile: app, atomically: true, encoding: .utf8)
        let bump = try fleet.work.commitAll("thermostat 2.4.2")
        try fleet.work.git("push", "--quiet", "origin", "HEAD:main")
        _ = try await eventuallyValue(seconds: 20) { try await fleet.get("/api/v1/status")["commit"] as? String == bump ? true : nil }
        try await Task.sleep(for: .seconds(1.5))
        // Reconciled, but held: no device moved, and the status says why.
        #expect(try await fleet.waitUntil(seconds: 1, Self.thermostat(europe: "2.4.1")))
        let apps = try await fleet.get("/api/v1/status")["apps"] as? [[String: Any]] ?? []
        let targets = apps.first { $0["name"] as? String == "thermostat" }?["targets"] as? [[String: Any]] ?? []
        #expect(targets.first { $0["group"] as? String == "europe" }?["state"] as? String == "suspended")

        let resume = try ChildProcess.run(TestPaths.flotilla, ["resume", "thermostat", "--server", fleet.base], environment: environment)
        #expect(resume.outputText == "thermostat resumed\n")
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.2")))

        // A revert is a commit like any other: the fleet converges back.
        try fleet.work.git("revert", "--no-edit", "HEAD")
        try fleet.work.git("push", "--quiet", "origin", "HEAD:main")
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
    }

    /// A target with `approval: required` waits until `flotilla approve` approves the release in
    /// force; the approval is audited with the token that gave it.
    @Test func aTargetNeedingApprovalStartsWhenAnOperatorApprovesIt() async throws {
        let fleet = try Fleet(devices: 8)
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
        var environment = ProcessInfo.processInfo.environment
        environment["FLOTILLA_TOKEN"] = fleet.operatorToken
        let app = fleet.work.path + "/apps/thermostat.yaml"
        try String(contentsOfFile: app, encoding: .utf8)
            .replacingOccurrences(of: "  - group: europe\n    version: 2.4.1", with: "  - group: europe\n    approval: required\n    version: 2.4.2")
            .write(toFile: app, atomically: true, encoding: .utf8)
        let bump = try fleet.work.commitAll("thermostat 2.4.2 for Europe, once approved")
        try fleet.work.git("push", "--quiet", "origin", "HEAD:main")
        _ = try await eventuallyValue(seconds: 20) { try await fleet.get("/api/v1/status")["commit"] as? String == bump ? true : nil }
        try await Task.sleep(for: .seconds(1.5))
        #expect(try await fleet.waitUntil(seconds: 1, Self.thermostat(europe: "2.4.1")))
        let apps = try await fleet.get("/api/v1/status")["apps"] as? [[String: Any]] ?? []
        let europe = (apps.first { $0["name"] as? String == "thermostat" }?["targets"] as? [[String: Any]] ?? []).first { $0["group"] as? String == "europe" }
        #expect(europe?["state"] as? String == "waiting")
        #expect((europe?["reason"] as? String)?.contains("flotilla approve thermostat europe") == true, "\(europe ?? [:])")

        let unknown = try ChildProcess.run(TestPaths.flotilla, ["approve", "thermostat", "asia", "--server", fleet.base], environment: environment)
        #expect(unknown.status != 0 && unknown.errorText.contains("no target 'asia' of app 'thermostat'"), "\(unknown.errorText)")
        let approve = try ChildProcess.run(TestPaths.flotilla, ["approve", "thermostat", "europe", "--server", fleet.base], environment: environment)
        #expect(approve.status == 0 && approve.outputText.hasPrefix("thermostat/europe 2.4.2 ("), "\(approve.outputText)\(approve.errorText)")
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.2")))
        let audit = try ChildProcess.run(TestPaths.flotilla, ["audit", "--server", fleet.base], environment: environment)
        #expect(audit.outputText.contains("target.approve") && audit.outputText.contains("thermostat/europe"), "\(audit.outputText)")
    }

    @Test func aDeviceOfflineDuringTheRolloutIsUpdatedWhenItReturns() async throws {
        let fleet = try Fleet(devices: 4)
        let device = try await HandDevice.enroll(fleet, tags: ["hw": "rpi4", "ring": "stable", "site": "paris"])
        try await device.heartbeat(thermostat: nil, digest: nil)
        let first = try await eventuallyValue(seconds: 30) { try await device.assignments().first }
        #expect(first["version"] as? String == "2.4.1")
        try await device.succeed(first["executionID"] as! String)
        try await Task.sleep(for: .milliseconds(50))
        try await device.heartbeat(thermostat: "2.4.1", digest: first["digest"] as? String)
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))

        // It goes quiet (offline after three missed one-second heartbeats), then a bump is merged.
        try await Task.sleep(for: .seconds(4))
        let app = fleet.work.path + "/apps/thermostat.yaml"
        try String(contentsOfFile: app, encoding: .utf8).replacingOccurrences(of: "version: 2.4.1", with: "version: 2.4.2")
            .write(toFile: app, atomically: true, encoding: .utf8)
        try fleet.work.commitAll("thermostat 2.4.2")
        try fleet.work.git("push", "--quiet", "origin", "HEAD:main")
        // The others move on; the quiet one is still at 2.4.1 and counted offline.
        _ = try await eventuallyValue(seconds: 60) { () -> Bool? in
            let devices = try await fleet.devices()
            let others = devices.filter { $0.tags["site"] == "paris" ? false : Self.thermostat(europe: "2.4.2")($0.tags) != nil }
            return others.allSatisfy { $0.thermostat == Self.thermostat(europe: "2.4.2")($0.tags) } ? true : nil
        }
        let apps = try await fleet.get("/api/v1/status")["apps"] as? [[String: Any]] ?? []
        let europe = (apps.first { $0["name"] as? String == "thermostat" }?["targets"] as? [[String: Any]] ?? [])
            .first { $0["group"] as? String == "europe" }
        #expect((europe?["offline"] as? Int ?? 0) >= 1)

        // It comes back: its work is waiting, it runs it, and the fleet converges.
        try await device.heartbeat(thermostat: "2.4.1", digest: first["digest"] as? String)
        let update = try await eventuallyValue(seconds: 30) { try await device.assignments().first { $0["version"] as? String == "2.4.2" } }
        try await device.succeed(update["executionID"] as! String)
        try await Task.sleep(for: .milliseconds(50))
        try await device.heartbeat(thermostat: "2.4.2", digest: update["digest"] as? String)
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.2")))
    }

    func eventuallyValue<T>(seconds: Double, _ check: () async throws -> T?) async throws -> T {
        try await eventually(seconds: seconds, "a condition", every: .milliseconds(100), check)
    }

    @Test func aServerKilledMidRolloutResumesWithoutDeployingTwice() async throws {
        let fleet = try Fleet(devices: 16, stepSeconds: "0.4-0.8")
        // Kill it once the first waves are out and some devices are mid-flow.
        var count = 0
        for _ in 0..<300 {
            count = try await fleet.deploymentCount()
            if count >= 2 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(count >= 2)
        fleet.killServer()
        try await Task.sleep(for: .seconds(1))
        try fleet.startServer()
        #expect(try await fleet.waitUntil(seconds: 90, Self.thermostat(europe: "2.4.1")))
        // Every device got each desired version exactly once.
        let deployments = try await fleet.get("/api/v1/deployments")["deployments"] as? [[String: Any]] ?? []
        var runs: [String: Int] = [:]
        for deployment in deployments {
            let id = try #require(deployment["id"] as? String)
            let digest = deployment["digest"] as? String ?? ""
            for execution in try await fleet.get("/api/v1/deployments/\(id)")["executions"] as? [[String: Any]] ?? []
            where execution["state"] as? String != "cancelled" {
                runs["\(digest) \(execution["deviceID"] as? String ?? "")", default: 0] += 1
            }
        }
        #expect(!runs.isEmpty)
        #expect(runs.filter { $0.value > 1 }.isEmpty, "deployed twice: \(runs.filter { $0.value > 1 })")
    }

    @Test func failuresOverTheThresholdAbortAndRollBack() async throws {
        // A bad release: 2.6.0 fails on half the devices that try it, more than the one failure
        // thermostat tolerates.
        let fleet = try Fleet(devices: 24, failVersions: ["2.6.0:0.5"])
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
        // Waves of half the devices: with waves of a quarter (three devices) all of the first
        // failed about one run in eight, leaving nothing changed to roll back.
        let bump = try fleet.change("apps/thermostat.yaml", [("version: 2.4.1", "version: 2.6.0"), ("batchSize: 25%", "batchSize: 50%")],
                                    message: "thermostat 2.6.0 in Europe")

        var note: String?
        for _ in 0..<300 {
            note = try fleet.note(on: bump)
            if note?.contains("flotilla/thermostat: failure") == true { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(note?.contains("flotilla/thermostat: failure") == true, "\(note ?? "no note")")
        #expect(note?.contains("(aborted)") == true, "\(note ?? "no note")")

        // The devices the aborted rollout changed, and the rollback that gives them 2.4.1 back.
        func deployments() async throws -> [[String: Any]] { try await fleet.get("/api/v1/deployments")["deployments"] as? [[String: Any]] ?? [] }
        func devices(of deployment: [String: Any], _ state: String) async throws -> Set<String> {
            let id = try #require(deployment["id"] as? String)
            return Set((try await fleet.get("/api/v1/deployments/\(id)")["executions"] as? [[String: Any]] ?? [])
                .filter { $0["state"] as? String == state }.compactMap { $0["deviceID"] as? String })
        }
        // A device still running when the rollout aborted finishes anyway: its late report is
        // recorded (what a device did is the truth), so the changed set can grow for a moment.
        var changed = Set<String>()
        var failed = Set<String>()
        _ = try await eventuallyValue(seconds: 20) { () -> Bool? in
            changed = []
            failed = []
            for deployment in try await deployments() where deployment["version"] as? String == "2.6.0" {
                #expect(deployment["createdBy"] as? String == "controller")
                #expect(deployment["purpose"] as? String == "rollout")
                changed.formUnion(try await devices(of: deployment, "succeeded"))
                failed.formUnion(try await devices(of: deployment, "failed"))
                if try await !devices(of: deployment, "running").isEmpty { return nil }
            }
            return changed.isEmpty ? nil : true
        }
        #expect(failed.count > 1, "the abort needs more failures than maxFailures: \(failed)")
        #expect(!changed.isEmpty, "no device took 2.6.0 before the abort, so nothing is rolled back")
        // Every device ends where it was before the bad release: the changed ones rolled back.
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
        // (A device reports its version in a heartbeat that can come before its final report.)
        let rolledBack = try await eventuallyValue(seconds: 20) { () -> Set<String>? in
            var rolledBack = Set<String>()
            for deployment in try await deployments() where (deployment["purpose"] as? String)?.hasPrefix("rollback:") == true {
                #expect(deployment["version"] as? String == "2.4.1")
                rolledBack.formUnion(try await devices(of: deployment, "succeeded"))
            }
            return rolledBack == changed ? rolledBack : nil
        }
        #expect(rolledBack == changed)
        // No more waves once aborted, and the rollback is not undone by self-healing.
        let count = try await fleet.deploymentCount()
        try await Task.sleep(for: .seconds(2))
        #expect(try await fleet.deploymentCount() == count)
        #expect(try await fleet.waitUntil(seconds: 1, Self.thermostat(europe: "2.4.1")))
    }

    /// A release that installs fine and then crashes its process on every device: the health
    /// checks catch it after the first wave, the rollout aborts, and the devices it reached get
    /// 2.4.1 back. Step results alone would have called it a success.
    @Test func aReleaseFailingItsHealthChecksIsCaughtAndRolledBack() async throws {
        let fleet = try Fleet(devices: 16, unhealthy: ["2.6.0:crash"])
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
        let bump = try fleet.change("apps/thermostat.yaml", [("version: 2.4.1", "version: 2.6.0")], message: "thermostat 2.6.0 in Europe")
        let note = try await eventuallyValue(seconds: 60) { () -> String? in
            try fleet.note(on: bump).flatMap { $0.contains("(aborted)") && $0.contains("unhealthy") ? $0 : nil }
        }
        #expect(note.contains("flotilla/thermostat: failure"), "\(note)")
        #expect(note.contains("health check 'process.thermostat == up' failed at"), "\(note)")
        #expect(note.contains("process.thermostat is down"), "\(note)")
        // Successes on the devices, failed on the server for their health, with why: more than
        // the one failure thermostat tolerates. (One that finished after the abort may stay a
        // success: its device is rolled back with the others.)
        var reached = Set<String>()
        var unhealthy = 0
        for deployment in try await fleet.get("/api/v1/deployments")["deployments"] as? [[String: Any]] ?? []
        where deployment["version"] as? String == "2.6.0" {
            let detail = try await fleet.get("/api/v1/deployments/\(deployment["id"] as? String ?? "")")
            for execution in detail["executions"] as? [[String: Any]] ?? [] where execution["state"] as? String != "cancelled" {
                if execution["state"] as? String == "failed", (execution["message"] as? String)?.hasPrefix("health check") == true { unhealthy += 1 }
                reached.insert(execution["deviceID"] as? String ?? "")
            }
        }
        #expect(unhealthy >= 2, "\(unhealthy) executions failed for their health")
        // The first wave only: thermostat tolerates one failure, and the next wave waits for the checks.
        #expect(reached.count <= 4, "\(reached)")
        // Rolled back: every device on the version it had.
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
    }

    /// One merge of a release for canary and Europe: Europe (after: canary, bake: 3s) starts
    /// only once every canary device finished, and three seconds later.
    @Test func oneMergeIsPromotedFromTheCanaryToEurope() async throws {
        let fleet = try Fleet(devices: 40)
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
        _ = try fleet.change("apps/thermostat.yaml", [("version: 2.4.1", "version: 2.6.1"), ("version: 2.5.0", "version: 2.6.1"),
                                                      ("    after: canary", "    bake: 3s\n    after: canary")],
                             message: "thermostat 2.6.1 for canary and Europe")
        let expected = { (tags: [String: String]) -> String? in
            let europe = Self.thermostat(europe: "2.6.1")(tags)
            return europe == "2.5.0" ? "2.6.1" : europe
        }
        #expect(try await fleet.waitUntil(seconds: 90, expected))
        var canaryEnd = Date.distantPast
        var europeStart = Date.distantFuture
        for deployment in try await fleet.get("/api/v1/deployments")["deployments"] as? [[String: Any]] ?? []
        where deployment["version"] as? String == "2.6.1" {
            let detail = try await fleet.get("/api/v1/deployments/\(deployment["id"] as? String ?? "")")
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            func date(_ value: Any?) -> Date? { (value as? String).flatMap { formatter.date(from: $0) ?? ISO8601DateFormatter().date(from: $0) } }
            if deployment["group"] as? String == "canary" {
                for execution in detail["executions"] as? [[String: Any]] ?? [] { canaryEnd = max(canaryEnd, date(execution["updatedAt"]) ?? canaryEnd) }
            } else if deployment["group"] as? String == "europe" {
                europeStart = min(europeStart, date(deployment["createdAt"]) ?? europeStart)
            }
        }
        #expect(canaryEnd > Date.distantPast && europeStart < Date.distantFuture)
        #expect(europeStart >= canaryEnd.addingTimeInterval(3), "Europe started at \(europeStart), the canary finished at \(canaryEnd); bake is 3 s")
    }

}

struct CLIFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
