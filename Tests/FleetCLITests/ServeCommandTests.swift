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
        let token = try CommandResult.run(["token", "create", "--project", "acme", "--data", data])
        #expect(token.status == 0)
        let enrollmentToken = token.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(enrollmentToken.hasPrefix("fle_"))
        let operatorToken = try CommandResult.run(["token", "create", "--project", "acme", "--operator", "--data", data])
            .stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let port = try GitDaemon.freePort()
        let server = try ChildProcess.start(TestPaths.flotilla, ["serve", "--data", data, "--listen", "127.0.0.1:\(port)"])
        defer { if ChildProcess.isRunning(server) { ChildProcess.kill(server) } }
        #expect(GitDaemon.waitUntilListening(port: port))

        let base = "http://127.0.0.1:\(port)"
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
        kill(server, SIGTERM)
        var exited = false
        for _ in 0..<500 {
            if !ChildProcess.isRunning(server) { exited = true; break }
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(exited, "flotilla serve did not stop on SIGTERM")
        let rows = try ChildProcess.run("/usr/bin/sqlite3", [data + "/flotilla.sqlite", "SELECT report_id FROM heartbeat"])
        #expect(rows.outputText == "r-1\n")
        let keyMode = try FileManager.default.attributesOfItem(atPath: data + "/device-signing-key.pem")[.posixPermissions] as? Int
        #expect(keyMode == 0o600)
    }

    @Test(arguments: [
        (["--forge", "bitbucket"], "--forge must be one of none, github, gitlab, gitea, not 'bitbucket'"),
        (["--forge-api-url", "ftp://forge"], "--forge-api-url must be an http(s) URL, not 'ftp://forge'"),
        (["--status-context-prefix", "two words"], "--status-context-prefix must be 1 to 64 letters, digits, '.', '_' or '-'"),
        (["--status-context-prefix", "a/b"], "--status-context-prefix must be 1 to 64 letters, digits, '.', '_' or '-'"),
        (["--status-interval=-1"], "--status-interval must not be negative"),
        (["--idle-timeout", "0"], "--idle-timeout must be from 1 to 3600 seconds"),
        (["--allowed-signers", "/nonexistent/allowed_signers"], "--allowed-signers: cannot read '/nonexistent/allowed_signers'"),
        (["--max-connections", "99999999"], "--max-connections must be from 1 to "),
    ])
    func serveRefusesBadStatusFlags(flags: [String], message: String) throws {
        let result = try CommandResult.run(["serve", "--repo", "git://127.0.0.1:1/fleet.git", "--data", "/tmp/unused"] + flags)
        #expect(result.status == 2)
        #expect(result.stderr.contains(message), "\(result.stderr)")
        let withoutRepository = try CommandResult.run(["serve", "--data", "/tmp/unused", "--status-context-prefix", "staging"])
        #expect(withoutRepository.status == 2)
        #expect(withoutRepository.stderr.contains("go with --repo"))
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
    }

    @Test func tokenCreateRefusesABadDuration() throws {
        let result = try CommandResult.run(["token", "create", "--project", "acme", "--expires", "7 days", "--data", "/tmp/unused"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("--expires: spaces are not allowed"))
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
