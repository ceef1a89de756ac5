import FleetGit
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// `flotilla token create` and `flotilla serve` as an operator runs them: real processes, real
/// HTTP on loopback, a real SQLite file, and SIGTERM to stop.
@Suite(.serialized)
struct ServeCommandTests {
    @Test func serveEnrollsAndStoresHeartbeatsThenStopsCleanlyOnSIGTERM() async throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let server = try RunningServer(data: data)
        let (enrollmentToken, operatorToken, base) = (server.enrollmentToken, server.operatorToken, server.base)
        #expect(enrollmentToken.hasPrefix("fle_"))
        #expect(operatorToken.hasPrefix("flo_"))

        let enrolled = try await post("\(base)/agent/v1/enroll",
                                      ["token": enrollmentToken, "hardwareID": "serial-1", "deviceSecret": "0123456789abcdef0123"])
        #expect(enrolled.status == 201)
        let deviceToken = try #require(enrolled.json["deviceToken"] as? String)
        let beat = try await post("\(base)/agent/v1/heartbeat", ["reportID": "r-1", "agentVersion": "0.1.0"], bearer: deviceToken)
        #expect(beat.status == 200)
        let devices = try await get("\(base)/api/v1/devices?online=true", bearer: operatorToken)
        #expect(devices.status == 200)
        #expect((devices.json["devices"] as? [[String: Any]])?.count == 1)

        // SIGTERM: a graceful stop, status 0, and the data is on disk.
        #expect(try await server.terminate() == 0, "flotilla serve did not stop cleanly on SIGTERM")
        let rows = try ChildProcess.run("/usr/bin/sqlite3", [data + "/flotilla.sqlite", "SELECT report_id FROM heartbeat"])
        #expect(rows.outputText == "r-1\n")
        let keyMode = try FileManager.default.attributesOfItem(atPath: data + "/device-signing-key.pem")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
    }

    /// An open console (its live-update stream) does not hold the server's shutdown.
    @Test func anOpenConsoleDoesNotHoldTheShutdown() async throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let server = try RunningServer(data: data)
        let browser = URLSession(configuration: .ephemeral)
        var signIn = URLRequest(url: URL(string: server.base + "/sign-in")!)
        signIn.httpMethod = "POST"
        signIn.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        signIn.httpBody = Data("token=\(server.operatorToken)".utf8)
        let (page, _) = try await browser.data(for: signIn)
        #expect(String(decoding: page, as: UTF8.self).contains("Overview of"), "signed in")
        let stream = Task { try await browser.data(from: URL(string: server.base + "/events")!) }
        defer { stream.cancel() }
        try await Task.sleep(for: .seconds(1))
        let started = ContinuousClock.now
        #expect(try await server.terminate(seconds: 15) == 0)
        #expect(ContinuousClock.now - started < .seconds(10), "the stream's keep-alive is 20 s and its lifetime 10 min")
    }

    /// A device's long-poll does not hold the server's shutdown either: it is answered "nothing
    /// new" at once, and the device asks again (of this server once it is back, or of another
    /// replica).
    @Test func aLongPollDoesNotHoldTheShutdown() async throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let server = try RunningServer(data: data)
        let enrolled = try await post("\(server.base)/agent/v1/enroll",
                                      ["token": server.enrollmentToken, "hardwareID": "serial-1", "deviceSecret": "0123456789abcdef0123"])
        let deviceToken = try #require(enrolled.json["deviceToken"] as? String)
        var first = URLRequest(url: URL(string: server.base + "/agent/v1/assignments")!)
        first.setValue("Bearer \(deviceToken)", forHTTPHeaderField: "Authorization")
        let (_, answer) = try await URLSession.shared.data(for: first)
        let tag = try #require((answer as? HTTPURLResponse)?.value(forHTTPHeaderField: "ETag"))

        // Nothing new for the device: this request waits the server's long-poll limit, 30 s.
        var poll = first
        poll.setValue(tag, forHTTPHeaderField: "If-None-Match")
        poll.timeoutInterval = 60
        let session = URLSession(configuration: .ephemeral)
        let waiting = Task { () -> (status: Int, at: ContinuousClock.Instant) in
            let (_, response) = try await session.data(for: poll)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, ContinuousClock.now)
        }
        try await Task.sleep(for: .seconds(1))
        let started = ContinuousClock.now
        #expect(try await server.terminate(seconds: 40) == 0)
        #expect(ContinuousClock.now - started < .seconds(10), "the long-poll's limit is 30 s")
        let answered = try await waiting.value
        #expect(answered.status == 304)
        #expect(answered.at - started < .seconds(10))
    }

    @Test(arguments: [
        (["--forge", "bitbucket"], "--forge must be one of none, github, gitlab, gitea, not 'bitbucket'"),
        (["--forge-api-url", "ftp://forge"], "--forge-api-url must be an http(s) URL, not 'ftp://forge'"),
        (["--status-context-prefix", "two words"], "--status-context-prefix must be 1 to 64 letters, digits, '.', '_' or '-'"),
        (["--status-context-prefix", "a/b"], "--status-context-prefix must be 1 to 64 letters, digits, '.', '_' or '-'"),
        (["--status-interval=-1"], "--status-interval must not be negative"),
        (["--idle-timeout", "0"], "--idle-timeout must be from 1 to 3600 seconds"),
        (["--device-request-rate=-1"], "--device-request-rate must be 0 (no limit) or from 0.001 to 1000000 requests a second"),
        (["--device-request-rate", "nan"], "--device-request-rate must be 0 (no limit) or from 0.001 to 1000000 requests a second"),
        (["--device-request-rate", "1e-300"], "--device-request-rate must be 0 (no limit) or from 0.001 to 1000000 requests a second"),
        (["--device-request-burst", "0"], "--device-request-burst must be from 1 to 1000000"),
        (["--enrollment-rate", "0.0001"], "--enrollment-rate must be 0 (no limit) or from 0.001 to 1000000 enrollments a second"),
        (["--enrollment-burst=-5"], "--enrollment-burst must be from 1 to 1000000"),
        (["--allowed-signers", "/nonexistent/allowed_signers"], "--allowed-signers: cannot read '/nonexistent/allowed_signers'"),
        (["--max-connections", "99999999"], "--max-connections must be from 1 to "),
        (["--heartbeat-retention", "30m"], "--heartbeat-retention must be from 1h to 7d"),
        (["--metrics-retention", "2y"], "--metrics-retention '2y' is not a duration (unknown unit 'y'"),
        (["--metrics-retention", "401d"], "--metrics-retention must be from 1d to 400d"),
        (["--heartbeat-retention", "3d", "--metrics-retention", "2d"], "--metrics-retention (2d) must be at least --heartbeat-retention (3d)"),
    ])
    func serveRefusesBadStatusFlags(flags: [String], message: String) throws {
        let result = try CommandResult.run(["serve", "--repo", "git://127.0.0.1:1/fleet.git", "--data", "/tmp/unused"] + flags)
        #expect(result.status == 2)
        #expect(result.stderr.contains(message), "\(result.stderr)")
        let withoutRepository = try CommandResult.run(["serve", "--data", "/tmp/unused", "--status-context-prefix", "staging"])
        #expect(withoutRepository.status == 2)
        #expect(withoutRepository.stderr.contains("go with --repo"))
    }

    /// A database that cannot be used stops the server at once: one sentence, exit 2, no
    /// password; so does a bad URL or an unreadable password file.
    @Test(arguments: [
        (["--database", "postgres://fleet:hunter2@127.0.0.1:1/fleet?sslmode=disable"],
         "error: cannot connect to postgres://fleet:***@127.0.0.1:1/fleet?sslmode=disable"),
        (["--database", "postgres://127.0.0.1/fleet"], "error: --database: the URL names no user"),
        (["--database", "postgres://fleet@127.0.0.1:1/fleet", "--database-password-file", "/nonexistent/password"],
         "error: --database-password-file: cannot read /nonexistent/password"),
    ])
    func serveRefusesADatabaseItCannotUse(flags: [String], message: String) throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let started = Date()
        let result = try CommandResult.run(["serve", "--data", data, "--listen", "127.0.0.1:0"] + flags)
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix(message) && result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(!result.stderr.contains("hunter2"))
        #expect(Date().timeIntervalSince(started) < 30)
    }

    @Test func serveConfigRefusesProjectFlagsAndNamesEveryBadFileAtItsPlace() throws {
        let folder = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try "hook".write(toFile: folder + "/acme-hook", atomically: true, encoding: .utf8)
        try """
            projects:
              - name: acme
                repository: git://127.0.0.1:1/acme.git
                webhookSecretFile: acme-hook
                git: {tokenFile: missing-token}
              - name: beta
                repository: git://127.0.0.1:1/beta.git
                signers: {allowedSigners: /nonexistent/allowed_signers}

            """.write(toFile: folder + "/server.yaml", atomically: true, encoding: .utf8)
        let withRepository = try CommandResult.run(["serve", "--config", folder + "/server.yaml", "--repo", "/r", "--data", folder + "/data"])
        #expect(withRepository.status == 2)
        #expect(withRepository.stderr.contains("--repo is a project's setting: with --config, set it on the project in the file"))
        let started = try CommandResult.run(["serve", "--config", folder + "/server.yaml", "--data", folder + "/data", "--listen", "127.0.0.1:0"])
        #expect(started.status != 0)
        // The relative path is resolved against the file's folder, and found; the others are not.
        #expect(!started.stderr.contains("acme-hook"), "\(started.stderr)")
        #expect(started.stderr.contains("server.yaml:5:22: error: git.tokenFile: cannot read '\(folder)/missing-token'"), "\(started.stderr)")
        #expect(started.stderr.contains("server.yaml:8:31: error: signers.allowedSigners: cannot read '/nonexistent/allowed_signers'"),
                "\(started.stderr)")
        let malformed = try CommandResult.run(["serve", "--config", folder + "/acme-hook", "--data", folder + "/data"])
        #expect(malformed.status != 0 && malformed.stderr.contains("acme-hook:1:1: error:"), "\(malformed.stderr)")

        // Moving from --repo: its variables would be ignored, and its suspensions left behind.
        try "projects:\n  - {name: acme, repository: git://127.0.0.1:1/acme.git}\n".write(toFile: folder + "/one.yaml", atomically: true, encoding: .utf8)
        let withVariable = try ChildProcess.run(TestPaths.flotilla, ["serve", "--config", folder + "/one.yaml", "--data", folder + "/data"],
                                                environment: ["FLOTILLA_GIT_TOKEN": "t0ken"])
        #expect(withVariable.status != 0 && withVariable.errorText.contains("FLOTILLA_GIT_TOKEN configure the repository of --repo"), "\(withVariable.errorText)")
        #expect(!withVariable.errorText.contains("t0ken"))
        try FileManager.default.createDirectory(atPath: folder + "/data/git", withIntermediateDirectories: true)
        try #"["thermostat"]"#.write(toFile: folder + "/data/git/suspended-apps.json", atomically: true, encoding: .utf8)
        let leftBehind = try CommandResult.run(["serve", "--config", folder + "/one.yaml", "--data", folder + "/data"])
        #expect(leftBehind.status != 0 && leftBehind.stderr.contains("holds apps suspended under serve --repo (thermostat)"), "\(leftBehind.stderr)")
        let projectAlone = try CommandResult.run(["serve", "--project", "acme", "--data", folder + "/data"])
        #expect(projectAlone.status == 2 && projectAlone.stderr.contains("--project goes with --repo"))
    }

    /// `flotilla secret set|list|delete` against a running server: the value goes in once, sealed,
    /// and nothing shows it again — not the list, not the database file.
    @Test func secretsAreSetFromStandardInputAndNeverShownAgain() async throws {
        let data = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: data) }
        let server = try RunningServer(data: data)
        let (operatorToken, base) = (server.operatorToken, server.base)
        let value = "pa55-\(UUID().uuidString)"
        func flotilla(_ arguments: [String], input: String = "") throws -> ChildProcess.Result {
            var environment = ProcessInfo.processInfo.environment
            environment["FLOTILLA_TOKEN"] = operatorToken
            return try ChildProcess.run(TestPaths.flotilla, arguments + ["--server", base], environment: environment, input: Array(input.utf8))
        }
        let set = try flotilla(["secret", "set", "acme", "db-password"], input: value + "\n")
        #expect(set.status == 0, "\(set.errorText)")
        #expect(set.outputText == "secret db-password set (version 1)\n")
        let again = try flotilla(["secret", "set", "acme", "db-password"], input: value + "\n")
        #expect(again.outputText == "secret db-password set (version 2)\n")
        let wrongProject = try flotilla(["secret", "set", "beta", "db-password"], input: value)
        #expect(wrongProject.status != 0 && wrongProject.errorText.contains("the token in FLOTILLA_TOKEN is for project acme, not beta"))
        let empty = try flotilla(["secret", "set", "acme", "db-password"], input: "\n")
        #expect(empty.status != 0 && empty.errorText.contains("the secret is empty"))
        let list = try flotilla(["secret", "list", "acme"])
        #expect(list.status == 0 && list.outputText.contains("db-password") && list.outputText.contains(" 2 "), "\(list.outputText)")
        #expect(!list.outputText.contains(value))
        // At rest: sealed in the database, under a key kept in its own private file.
        #expect(try await server.terminate() == 0)
        for file in try FileManager.default.contentsOfDirectory(atPath: data) {
            let bytes = FileManager.default.contents(atPath: data + "/" + file) ?? Data()
            #expect(!bytes.contains(Data(value.utf8)), "\(file) holds the secret in clear")
        }
        #expect((try FileManager.default.attributesOfItem(atPath: data + "/secret-key")[.posixPermissions] as? Int) == 0o600)
        let log = (try? String(contentsOfFile: server.logPath, encoding: .utf8)) ?? ""
        #expect(!log.contains(value))
        // Started again without its key, the server refuses rather than make a new one.
        try FileManager.default.moveItem(atPath: data + "/secret-key", toPath: data + ".secret-key")
        defer { try? FileManager.default.removeItem(atPath: data + ".secret-key") }
        let keyless = try CommandResult.run(["serve", "--data", data, "--listen", "127.0.0.1:0"])
        #expect(keyless.status != 0 && keyless.stderr.contains("project acme has secrets sealed with it; restore the key file"), "\(keyless.stderr)")
    }

    @Test func tokenCreateRefusesABadDuration() throws {
        let result = try CommandResult.run(["token", "create", "--project", "acme", "--expires", "7 days", "--data", "/tmp/unused"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("--expires: spaces are not allowed"))
    }

    /// `--access` goes with operator tokens and names a level; a token made with it keeps it.
    @Test func tokenCreateTakesAnAccessForOperatorTokensOnly() throws {
        let root = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let enrollment = try CommandResult.run(["token", "create", "--project", "acme", "--access", "read", "--data", root + "/data"])
        #expect(enrollment.status == 2 && enrollment.stderr.contains("--access applies to operator tokens (--operator)"), "\(enrollment.stderr)")
        let unknown = try CommandResult.run(["token", "create", "--project", "acme", "--operator", "--access", "owner", "--data", root + "/data"])
        #expect(unknown.status == 2 && unknown.stderr.contains("--access must be read, rollout or admin, not 'owner'"), "\(unknown.stderr)")
        let made = try CommandResult.run(["token", "create", "--project", "acme", "--operator", "--access", "rollout", "--data", root + "/data"])
        #expect(made.status == 0, "\(made.stderr)")
        let id = made.stdout.split(separator: "_").dropFirst().first.map(String.init) ?? ""
        let stored = try ChildProcess.run("/usr/bin/sqlite3", [root + "/data/flotilla.sqlite", "SELECT access FROM access_token WHERE id = '\(id)'"])
        #expect(stored.outputText.trimmingCharacters(in: .whitespacesAndNewlines) == "rollout")
    }

    struct HTTPResult {
        var status: Int
        var json: [String: Any]
    }

    func post(_ url: String, _ body: [String: Any], bearer: String? = nil) async throws -> HTTPResult {
        var request = URLRequest(url: URL(string: url)!)
        request.httpMethod = "POST"
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        if let bearer { request.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization") }
        return try await send(request)
    }

    func get(_ url: String, bearer: String) async throws -> HTTPResult {
        var request = URLRequest(url: URL(string: url)!)
        request.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization")
        return try await send(request)
    }

    func send(_ request: URLRequest) async throws -> HTTPResult {
        let (data, response) = try await URLSession.shared.data(for: request)
        let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:]
        return HTTPResult(status: (response as? HTTPURLResponse)?.statusCode ?? 0, json: json)
    }
}
