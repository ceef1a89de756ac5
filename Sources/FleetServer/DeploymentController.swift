import FleetCore
import FleetProtocol
import FleetStore
import Foundation
import Hummingbird

/// `/api/v1/deployments`: an app version with its flow, for a set of devices.
struct DeploymentController: Sendable {
    let store: any FleetStore
    let board: AssignmentBoard
    let configuration: ServerConfiguration
    var secrets: SecretBox? = nil

    func addRoutes(to group: RouterGroup<FleetRequestContext>) {
        group.post("deployments") { request, context in try await create(request, context) }
        group.get("deployments") { _, context in
            let token = try context.operatorToken()
            return try JSONBody.response(["deployments": try await store.deployments(project: token.project, limit: 100)])
        }
        group.get("deployments/:id") { _, context in
            let token = try context.operatorToken()
            let deployment = try await find(try PathParameter.require(context, "id"), project: token.project)
            return try JSONBody.response(Detail(deployment: deployment, executions: try await store.executions(deploymentID: deployment.id)))
        }
        group.post("deployments/:id/abort") { _, context in
            let token = try context.operatorToken()
            let deployment = try await find(try PathParameter.require(context, "id"), project: token.project)
            let cancelled = try await Deployer(store: store, board: board).abort(deployment.id, at: Date())
            try await store.appendAudit(AuditRecord(at: Date(), project: token.project, actor: "operator:\(token.id)",
                                                    action: "deployment.abort", subject: deployment.id, detail: "\(cancelled.count) cancelled"))
            return try JSONBody.response(Detail(deployment: try await find(deployment.id, project: token.project),
                                                executions: try await store.executions(deploymentID: deployment.id)))
        }
    }

    /// What an operator (or the controller) asks for.
    struct Request: Codable {
        var app: String
        var version: String
        var flow: String
        var digest: String?
        var parameters: [String: String]?
        /// Parameter → the name of a secret of the project; filled in only on the device.
        var secrets: [String: String]?
        var steps: [AssignedStep]
        var rollback: [AssignedStep]?
        var artifactAllowlist: [String]?
        /// How the devices check, after the install, which version runs (as a flow's `probe`).
        var probe: AssignedProbe?
        var devices: [String]
    }

    typealias Detail = DeploymentDetail

    private func create(_ request: Hummingbird.Request, _ context: FleetRequestContext) async throws -> Response {
        let token = try context.operatorToken()
        let body = try await JSONBody.decode(Request.self, from: request, limit: configuration.maximumOperatorBodyBytes)
        try await OperatorAuth.confirm(token, store: store)
        let secretValues = try await openSecrets(body, project: token.project)
        try check(body, secretValues: secretValues)
        guard !body.devices.isEmpty else { throw APIError.invalid("'devices' must not be empty", field: "devices") }
        guard Set(body.devices).count == body.devices.count else { throw APIError.invalid("'devices' lists a device twice", field: "devices") }
        // One read of the project's devices, not one per listed device: a deployment may name thousands.
        let known = Set(try await store.devices(project: token.project).filter { !$0.deleted }.map(\.id))
        for (index, id) in body.devices.enumerated() where !known.contains(id) {
            throw APIError.invalid("no device '\(id)' in project \(token.project)", field: "devices[\(index)]")
        }
        let now = Date()
        let id = Deployer.newDeploymentID()
        let deployment = DeploymentRecord(id: id, project: token.project, app: body.app, version: body.version, flow: body.flow,
                                          digest: body.digest ?? "", parameters: body.parameters ?? [:], steps: body.steps,
                                          rollback: body.rollback ?? [], artifactAllowlist: body.artifactAllowlist ?? [],
                                          createdAt: now, createdBy: "operator:\(token.id)", secrets: body.secrets ?? [:], probe: body.probe)
        if let problem = Assignments.problems(in: deployment) {
            throw APIError.invalid(problem.message, field: problem.field)
        }
        let executions = try await Deployer(store: store, board: board).create(deployment, devices: body.devices, at: now)
        try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "operator:\(token.id)", action: "deployment.create",
                                                subject: id, detail: "\(body.app) \(body.version) to \(body.devices.count) devices"))
        return try JSONBody.response(Detail(deployment: deployment, executions: executions), status: .created)
    }

    /// The same rules a flow in the repository is held to (StepRules, names, the artifact
    /// allowlist), so the API cannot hand a device what `flotilla validate` would refuse.
    /// Each secret the request names, checked and opened (to measure the steps it fills in).
    private func openSecrets(_ body: Request, project: String) async throws -> [String: String] {
        var values: [String: String] = [:]
        for (parameter, name) in (body.secrets ?? [:]).sorted(by: { $0.key < $1.key }) {
            let field = "secrets.\(DisplayText.safe(parameter, limit: 64))"
            guard Template.isName(parameter), !Template.builtIns.contains(parameter), body.parameters?[parameter] == nil else {
                throw APIError.invalid("'\(field)' is not a parameter name, or is also in 'parameters'", field: field)
            }
            if let problem = FleetNames.problem(name) { throw APIError.invalid("'\(field)' names no secret: \(problem)", field: field) }
            guard let value = try await secrets?.value(of: name, project: project, in: store) else {
                throw APIError.invalid("no secret '\(name)' in project \(project); set it with: flotilla secret set \(project) \(name)", field: field)
            }
            values[parameter] = value
        }
        return values
    }

    private func check(_ body: Request, secretValues: [String: String] = [:]) throws {
        for (field, name) in [("app", body.app), ("flow", body.flow)] {
            if let problem = FleetNames.problem(name) { throw APIError.invalid("'\(field)': \(problem)", field: field) }
        }
        for (field, value) in [("version", body.version), ("digest", body.digest)] {
            guard let value else { continue }
            try Validate.text(value, field: field, maximum: 128)
            if value.unicodeScalars.contains(where: StepRules.isControl) {
                throw APIError.invalid("'\(field)' must not contain control characters", field: field)
            }
        }
        guard !body.steps.isEmpty else { throw APIError.invalid("'steps' must not be empty", field: "steps") }
        for (name, value) in body.parameters ?? [:] {
            guard Template.isName(name), !Template.builtIns.contains(name) else {
                throw APIError.invalid("parameter '\(DisplayText.safe(name, limit: 64))' is not a parameter name (letters, digits, '_'; "
                                       + "not \(Template.builtIns.joined(separator: ", ")))", field: "parameters")
            }
            guard value.utf8.count <= StepRules.maximumTextLength, !value.utf8.contains(0) else {
                throw APIError.invalid("parameter '\(name)' is longer than \(StepRules.maximumTextLength) bytes or holds a NUL byte",
                                       field: "parameters.\(name)")
            }
        }
        var sources: [WebURL] = []
        for (index, entry) in (body.artifactAllowlist ?? []).enumerated() {
            guard case .success(let source) = WebURL.parse(entry) else {
                throw APIError.invalid("'artifactAllowlist[\(index)]' is not an http(s) URL prefix", field: "artifactAllowlist[\(index)]")
            }
            sources.append(source)
        }
        var values = (body.parameters ?? [:]).merging(secretValues) { plain, _ in plain }
        values["app"] = body.app
        values["version"] = body.version
        // Devices are checked as one whose id is as long as any the server makes; ids are
        // letters, digits and '-', so they cannot climb out of a path or a URL.
        values["device"] = "d-" + String(repeating: "0", count: 62)
        if let probe = body.probe { try check(probe: probe, values: values, secrets: Set(secretValues.keys)) }
        var total = 0
        for (list, steps) in [("steps", body.steps), ("rollback", body.rollback ?? [])] {
            // A device reports each step by its number, and reports take numbers below this.
            guard steps.count <= StepResult.maximumCount else {
                throw APIError.invalid("'\(list)' holds at most \(StepResult.maximumCount) steps", field: list)
            }
            for (index, step) in steps.enumerated() {
                let path = "\(list)[\(index)]"
                if let problem = StepRules.problem(in: step, at: path) { throw APIError.invalid(problem.message, field: problem.field) }
                // As in a flow: a secret goes only into a command, where no plan or message shows it.
                if step.kind != .run && step.kind != .script {
                    for (key, text) in step.templateTexts {
                        guard case .success(let references) = Template.references(in: text) else { continue }
                        let used = references.map(\.name)
                        if let secret = used.first(where: { secretValues[$0] != nil }) {
                            throw APIError.invalid("'\(path).\(key)' uses secret parameter '\(secret)'; secrets go only into run and script steps",
                                                   field: "\(path).\(key)")
                        }
                    }
                }
                // Measured before anything is filled in: a long value repeated a thousand times
                // must not be built, here or on every poll.
                for (key, text) in step.templateTexts {
                    let length = Template.renderedLength(text) { values[$0]?.utf8.count }
                    guard length <= StepRules.maximumTextLength else {
                        // Without the length when secrets are filled in: it would tell theirs.
                        let size = secretValues.isEmpty ? "\(length) bytes" : "too long"
                        throw APIError.invalid("'\(path).\(key)' is \(size) once its parameters are filled in, over \(StepRules.maximumTextLength)",
                                               field: "\(path).\(key)")
                    }
                    total += length
                }
                guard total <= StepRules.maximumAssignmentBytes else {
                    throw APIError.invalid("the steps come to more than \(StepRules.maximumAssignmentBytes) bytes once filled in", field: path)
                }
                guard Assignments.problems(in: [step], known: Set(values.keys), list: list, offset: index) == nil else { continue }
                // What the device will run: the same rules again, on the filled-in step.
                let rendered = Assignments.fill(step) { values[$0] }
                for (key, text) in [("url", rendered.url), ("destination", rendered.destination)] where text?.contains("${") == true {
                    throw APIError.invalid("'\(path).\(key)' still holds '${' once filled in", field: "\(path).\(key)")
                }
                if let problem = StepRules.problem(in: rendered, at: path) {
                    throw APIError.invalid(problem.message + " (once its parameters are filled in)", field: problem.field)
                }
                guard rendered.kind == .download || rendered.kind == .agentUpdate, let url = rendered.url else { continue }
                let field = "\(path).url"
                guard case .success(let parsed) = WebURL.parse(url) else {
                    throw APIError.invalid("'\(field)' is not an http(s) URL once its parameters are filled in", field: field)
                }
                guard sources.contains(where: { $0.contains(parsed) }) else {
                    throw APIError.invalid("'\(field)' is outside 'artifactAllowlist'"
                                           + (sources.isEmpty ? ", which is empty: downloads need an allowed source" : ""), field: field)
                }
            }
        }
    }

    /// A probe keeps to the rules a flow's does: within its bounds, no secret (the device keeps
    /// its command long after the install), every `${…}` a parameter or a built-in.
    private func check(probe: AssignedProbe, values: [String: String], secrets: Set<String>) throws {
        if let problem = StepRules.problem(in: probe, at: "probe") { throw APIError.invalid(problem.message, field: problem.field) }
        guard case .success(let references) = Template.references(in: probe.command) else {
            throw APIError.invalid("'probe.command' has a '${' that is not closed", field: "probe.command")
        }
        for reference in references {
            if secrets.contains(reference.name) {
                throw APIError.invalid("'probe.command' uses secret parameter '\(reference.name)'; a probe may not hold a secret", field: "probe.command")
            }
            guard values[reference.name] != nil else {
                throw APIError.invalid("'probe.command' uses '${\(reference.name)}', which is neither a parameter nor one of "
                                       + Template.builtIns.joined(separator: ", "), field: "probe.command")
            }
        }
        guard Template.renderedLength(probe.command, { values[$0]?.utf8.count }) <= StepRules.maximumTextLength else {
            throw APIError.invalid("'probe.command' is longer than \(StepRules.maximumTextLength) bytes once filled in", field: "probe.command")
        }
    }

    private func find(_ id: String, project: String) async throws -> DeploymentRecord {
        guard let deployment = try await store.deployment(id: id), deployment.project == project else {
            throw APIError.notFound("no deployment '\(id)' in project \(project)")
        }
        return deployment
    }
}

/// Operator authentication, shared by the operator controllers.
enum OperatorAuth {
    static func authenticate(_ request: Hummingbird.Request, store: any FleetStore) async throws -> AccessTokenRecord {
        guard let header = request.headers[.authorization], header.hasPrefix("Bearer ") else {
            throw APIError.unauthorized("an operator token is required (Authorization: Bearer …)")
        }
        return try await AccessTokens.verify(String(header.dropFirst("Bearer ".count)), kind: .operator, store: store, now: Date())
    }

    /// After a body was read: the token may have been revoked while it arrived.
    static func confirm(_ token: AccessTokenRecord, store: any FleetStore) async throws {
        try await AccessTokens.confirm(token, store: store, now: Date())
    }
}
