import FleetProtocol
@testable import FleetCore
import Foundation
import Testing

/// `flow: flotilla-agent`: the agent as an app like any other, with the built-in flow that
/// replaces it, its download checked against the artifact allowlist, rolled out in waves.
struct AgentFlowTests {
    static func files(_ app: String) -> [String: String] {
        var files = FleetFixtures.shop
        files["apps/agent.yaml"] = app
        return files
    }

    static let app = """
        kind: App
        name: flotilla-agent
        flow: flotilla-agent
        parameters:
          url: https://cdn.example.com/agent/0.2.0/flotilla-agent
          sha256: "\(String(repeating: "ab", count: 32))"
        targets:
          - {group: canary, version: 0.2.0}
          - {group: everyone, version: 0.1.0}
        rollout: {batchSize: 1}
        """

    @Test func theBuiltInFlowReplacesTheAgentAndItsStepIsAssigned() throws {
        let fleet = try FleetFixtures.load(Self.files(Self.app))
        let agent = try #require(fleet.apps.first { $0.name == "flotilla-agent" })
        #expect(agent.flow.name == "flotilla-agent")
        #expect(agent.targets.map(\.version) == ["0.2.0", "0.1.0"])
        guard case .agentUpdate(let url, let sha256) = try #require(agent.flow.steps.first).action else {
            Issue.record("not an agentUpdate step")
            return
        }
        #expect(url == "${url}" && sha256 == "${sha256}")
        #expect(agent.targets[0].parameters["url"] == "https://cdn.example.com/agent/0.2.0/flotilla-agent")
        // Only a fleet that names it has it.
        #expect(try FleetFixtures.load(FleetFixtures.shop).flows.map(\.name).contains("flotilla-agent") == false)
    }

    @Test func itsURLMustBeUnderAnAllowedSource() {
        let outside = Self.app.replacingOccurrences(of: "https://cdn.example.com/agent/", with: "https://elsewhere.example.com/agent/")
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(Self.files(outside)) }
        #expect(error?.diagnostics.contains { $0.description.contains("outside the artifact allowlist") || $0.description.contains("not under") } == true,
                "\(error?.diagnostics.map(\.description) ?? [])")
    }

    @Test func aFlowOfTheSameNameTakesItsPlaceAndBadStepsAreRefused() throws {
        var files = Self.files(Self.app)
        files["flows/agent.yaml"] = """
            kind: UpdateFlow
            name: flotilla-agent
            parameters:
              url: {type: url, required: true}
              sha256: {type: sha256, required: true}
            steps:
              - name: stop the app first
                run: systemctl stop thermostat
              - name: replace
                agentUpdate: {url: "${url}", sha256: "${sha256}"}
            """
        let fleet = try FleetFixtures.load(files)
        #expect(fleet.apps.first { $0.name == "flotilla-agent" }?.flow.steps.map(\.name) == ["stop the app first", "replace"])
        files["flows/agent.yaml"] = files["flows/agent.yaml"]!.replacingOccurrences(of: #"agentUpdate: {url: "${url}", sha256: "${sha256}"}"#,
                                                                                   with: #"agentUpdate: {url: "${url}"}"#)
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        #expect(error?.diagnostics.first?.description.contains("missing required key 'sha256'") == true, "\(error?.diagnostics.map(\.description) ?? [])")
    }

    @Test func theAssignedStepCarriesWhatTheAgentChecks() {
        let step = AssignedStep(name: "replace", kind: .agentUpdate, url: "https://x/a", sha256: "zz", timeoutSeconds: 60, retries: 0,
                                onFailure: "rollback", idempotent: false)
        #expect(StepRules.problem(in: step, at: "steps[0]")?.field == "steps[0].sha256")
        var missing = step
        missing.url = nil
        #expect(StepRules.problem(in: missing, at: "steps[0]")?.message == "'steps[0].url' is required for an agentUpdate step")
    }
}
