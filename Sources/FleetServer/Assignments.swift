import FleetCore
import FleetProtocol
import FleetStore

/// Turns stored executions into what a device runs: step templates filled in for that device.
enum Assignments {
    /// `secrets` are the deployment's secret parameters with their values, opened for this hand-out only.
    static func render(_ execution: ExecutionRecord, of deployment: DeploymentRecord, secrets: [String: String] = [:]) -> Assignment {
        var values = deployment.parameters.merging(secrets) { _, secret in secret }
        values["version"] = deployment.version
        values["app"] = deployment.app
        values["device"] = execution.deviceID
        return Assignment(executionID: execution.id, deploymentID: deployment.id, app: deployment.app, version: deployment.version,
                          digest: deployment.digest, steps: deployment.steps.map { fill($0) { values[$0] } },
                          rollback: deployment.rollback.map { fill($0) { values[$0] } }, artifactAllowlist: deployment.artifactAllowlist,
                          secrets: secrets, probe: deployment.probe.map { probe in
                              // Secrets never reach a probe (the compiler refuses them): it runs long after this hand-out.
                              var probe = probe
                              probe.command = Template.render(probe.command) { secrets[$0] == nil ? values[$0] : "" }
                              return probe
                          })
    }

    /// One step with every `${…}` of its fields filled in.
    static func fill(_ step: AssignedStep, _ value: (String) -> String?) -> AssignedStep {
        var step = step
        for field in AssignedStep.templateFields {
            step[keyPath: field.path] = step[keyPath: field.path].map { Template.render($0, value) }
        }
        return step
    }

    /// An entity tag over the executions' ids and revisions: it changes whenever the work does.
    static func entityTag(_ executions: [ExecutionRecord]) -> String {
        let text = executions.map { "\($0.id)@\($0.revision)" }.joined(separator: ",")
        return "\"" + String(SHA256.hex(Array(text.utf8)).prefix(32)) + "\""
    }

    /// Template errors in a deployment's steps: every `${…}` must name a parameter or a built-in.
    static func problems(in deployment: DeploymentRecord) -> (message: String, field: String)? {
        let known = Set(deployment.parameters.keys).union(deployment.secrets.keys).union(Template.builtIns)
        return problems(in: deployment.steps, known: known, list: "steps")
            ?? problems(in: deployment.rollback, known: known, list: "rollback")
    }

    static func problems(in steps: [AssignedStep], known: Set<String>, list: String, offset: Int = 0) -> (message: String, field: String)? {
        for (position, step) in steps.enumerated() {
            let index = offset + position
            for (_, text) in step.templateTexts {
                switch Template.unknownReferences(in: text, known: known) {
                case .failure(let problem):
                    return (problem.reason, "\(list)[\(index)]")
                case .success(let unknown):
                    if let first = unknown.first {
                        return ("'${\(first.name)}' is neither a parameter nor one of \(Template.builtIns.joined(separator: ", "))", "\(list)[\(index)]")
                    }
                }
            }
        }
        return nil
    }
}
