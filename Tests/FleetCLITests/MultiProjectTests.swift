import FleetGit
import FleetProtocol
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// A port that takes connections and never answers: a remote that hangs rather than refuses.
final class SilentListener: @unchecked Sendable {
    let port: Int
    private let socket: Int32

    init() throws {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(socket, 64) == 0 else { throw CLIFailure("cannot listen") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        self.socket = socket
    }

    deinit { close(socket) }
}

extension ControllerTests {
    /// `serve --config` runs three projects apart: one converges and takes its own webhooks while
    /// another's remote hangs and a third's head names another project; each project's operators
    /// reach their own controller only.
    @Test func projectsOfOneServerRunApart() async throws {
        let silent = try SilentListener()
        let secrets = (try TestPaths.temporaryDirectory())
        defer { try? FileManager.default.removeItem(atPath: secrets) }
        try "acme-hook-secret".write(toFile: secrets + "/acme-webhook", atomically: true, encoding: .utf8)
        try "beta-hook-secret".write(toFile: secrets + "/beta-webhook", atomically: true, encoding: .utf8)
        var gamma: WorkTree?
        let fleet = try Fleet(devices: 6, pollInterval: "60") { daemon, data in
            // gamma's repository is a copy of acme's, fleet.yaml and all: it claims acme-climate.
            gamma = try daemon.createRepository("gamma", contents: TestPaths.template)
            let config = """
            projects:
              - name: acme-climate
                repository: \(daemon.url("fleet"))
                webhookSecretFile: \(secrets)/acme-webhook
              - name: beta
                repository: git://127.0.0.1:\(silent.port)/beta.git
                pollInterval: 1s
                webhookSecretFile: \(secrets)/beta-webhook
              - name: gamma
                repository: \(daemon.url("gamma"))
                pollInterval: 1s

            """
            try config.write(toFile: data + "/server.yaml", atomically: true, encoding: .utf8)
            return ["--config", data + "/server.yaml"]
        }
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")), "acme-climate did not converge")

        // gamma's head is refused: its note says why, and nothing of it is in force.
        let gammaHead = try #require(gamma).git("rev-parse", "HEAD")
        let note = try await eventuallyValue(seconds: 20) { () -> String? in
            _ = try? gamma?.git("fetch", "--quiet", "origin", "+refs/notes/flotilla:refs/notes/flotilla")
            return try? gamma?.git("notes", "--ref=flotilla", "show", gammaHead)
        }
        #expect(note.contains("names another project"), "\(note)")
        #expect(note.contains("fleet.yaml says project 'acme-climate', but this server reconciles this repository as project 'gamma'"), "\(note)")

        // While beta's remote hangs, acme-climate's webhook brings a new commit in and it rolls out.
        let bump = try fleet.change("apps/thermostat.yaml", [("version: 2.4.1", "version: 2.4.2")], message: "thermostat 2.4.2")
        let payload = Data(#"{"ref":"refs/heads/main","after":"\#(bump)"}"#.utf8)
        func hook(_ path: String, secret: String) async throws -> Int {
            var request = URLRequest(url: URL(string: fleet.base + path)!)
            request.httpMethod = "POST"
            request.httpBody = payload
            request.setValue("sha256=" + SHA256.hmacHex(key: Array(secret.utf8), message: Array(payload)), forHTTPHeaderField: "X-Hub-Signature-256")
            request.setValue("push", forHTTPHeaderField: "X-GitHub-Event")
            let (_, response) = try await URLSession.shared.data(for: request)
            return (response as? HTTPURLResponse)?.statusCode ?? 0
        }
        // Each project's hook takes its own secret only; with several projects /hooks/git names none.
        #expect(try await hook("/hooks/git/acme-climate", secret: "beta-hook-secret") == 401)
        #expect(try await hook("/hooks/git", secret: "acme-hook-secret") == 404)
        // A project without a webhook secret and one that does not exist answer like a wrong signature.
        #expect(try await hook("/hooks/git/gamma", secret: "acme-hook-secret") == 401, "gamma has no webhook secret")
        #expect(try await hook("/hooks/git/nobody", secret: "acme-hook-secret") == 401)
        #expect(try await hook("/hooks/git/acme-climate", secret: "acme-hook-secret") == 202)
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.2")), "acme-climate was held back by another project")

        // Each project's operator reaches its own controller: beta and gamma never reconciled.
        func status(_ project: String) async throws -> Int {
            let token = try CommandResult.run(["token", "create", "--project", project, "--operator", "--data", fleet.data + "/server"])
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            var request = URLRequest(url: URL(string: fleet.base + "/api/v1/status")!)
            request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization")
            let (_, response) = try await URLSession.shared.data(for: request)
            return (response as? HTTPURLResponse)?.statusCode ?? 0
        }
        #expect(try await fleet.get("/api/v1/status")["commit"] as? String == bump)
        #expect(try await status("beta") == 503)
        #expect(try await status("gamma") == 503)
        #expect(try await status("delta") == 404)
        // Metrics name each project's controller.
        let (metricsBody, _) = try await URLSession.shared.data(from: URL(string: fleet.base + "/metrics")!)
        let metrics = String(decoding: metricsBody, as: UTF8.self)
        for project in ["acme-climate", "beta", "gamma"] {
            #expect(metrics.contains("flotilla_controller_passes_total{project=\"\(project)\"}"), "\(metrics)")
        }
    }
}
