import FleetGit
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

extension ControllerTests {
    /// A flow gains a `secret` parameter: until the secret is set, the controller deploys nothing
    /// and says which secret to set; once set, the rollout runs with deployments that name it —
    /// and neither the API, the note nor the status branch ever holds its value.
    @Test func aSecretParameterRollsOutOnceTheSecretIsSet() async throws {
        let fleet = try Fleet(devices: 6, serverFlags: ["--project", "acme-climate"])
        #expect(try await fleet.waitUntil(seconds: 60, Self.thermostat(europe: "2.4.1")))
        let before = try await fleet.deploymentCount()
        let commit = try fleet.change("flows/compose-app.yaml", [
            ("  healthRetries:\n    type: int\n    default: 10\n",
             "  healthRetries:\n    type: int\n    default: 10\n  registryPassword:\n    type: secret\n    default: registry-password\n"),
            ("  - name: remember as current\n",
             "  - name: registry login\n    run: echo ${registryPassword} | docker login --password-stdin registry.acme.example\n  - name: remember as current\n"),
        ], message: "log in to the registry")

        func thermostatError() async throws -> String? {
            let status = try await fleet.get("/api/v1/status")
            guard status["commit"] as? String == commit else { return nil }
            return ((status["apps"] as? [[String: Any]])?.first { $0["name"] as? String == "thermostat" })?["error"] as? String
        }
        let error = try await eventuallyValue(seconds: 30) { try await thermostatError() }
        #expect(error.contains("secret 'registry-password' is not set in project acme-climate; set it with: flotilla secret set acme-climate registry-password"),
                "\(error)")
        #expect(try await fleet.deploymentCount() == before, "nothing is deployed without the secret")

        let value = "registry-\(UUID().uuidString)"
        var environment = ProcessInfo.processInfo.environment
        environment["FLOTILLA_TOKEN"] = fleet.operatorToken
        let set = try ChildProcess.run(TestPaths.flotilla, ["secret", "set", "acme-climate", "registry-password", "--server", fleet.base],
                                       environment: environment, input: Array(value.utf8))
        #expect(set.status == 0, "\(set.errorText)")
        // Every thermostat gets the new digest: the deployments name the secret, never its value.
        _ = try await eventuallyValue(seconds: 60) { () -> Bool? in
            let status = try await fleet.get("/api/v1/status")
            let apps = status["apps"] as? [[String: Any]] ?? []
            let thermostat = apps.first { $0["name"] as? String == "thermostat" }
            let targets = thermostat?["targets"] as? [[String: Any]] ?? []
            let done = thermostat?["error"] == nil && !targets.isEmpty && targets.allSatisfy { $0["state"] as? String == "converged" }
            let count = try await fleet.deploymentCount()
            return done && count > before ? true : nil
        }
        var request = URLRequest(url: URL(string: fleet.base + "/api/v1/deployments")!)
        request.setValue("Bearer \(fleet.operatorToken)", forHTTPHeaderField: "Authorization")
        let deployments = String(decoding: try await URLSession.shared.data(for: request).0, as: UTF8.self)
        #expect(deployments.contains(#""secrets":{"registryPassword":"registry-password"}"#))
        #expect(!deployments.contains(value))
        let note = try #require(try fleet.note(on: commit))
        _ = try? fleet.work.git("fetch", "--quiet", "origin", "+refs/heads/flotilla/status:refs/remotes/origin/flotilla/status")
        let statusBranch = (try? fleet.work.git("show", "origin/flotilla/status:STATUS.md")) ?? ""
        let log = (try? String(contentsOfFile: fleet.data + "/server.log", encoding: .utf8)) ?? ""
        for (place, text) in [("note", note), ("STATUS.md", statusBranch), ("server log", log)] {
            #expect(!text.contains(value), "the \(place) holds the secret")
        }
        #expect(!statusBranch.isEmpty)
    }
}
