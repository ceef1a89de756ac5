import FleetCore
import FleetGit
import FleetProtocol
import FleetStore
import Foundation
import Logging

/// Carries out the rollout decision's actions against the store, waking the devices concerned,
/// with an audit row for each deployment made or stopped. Decides nothing.
struct ActionApplier {
    let store: any FleetStore
    let deployer: Deployer
    let logger: Logger
    let fleet: CompiledFleet
    let commit: CommitID
    /// The deployments the decision saw, by id.
    let deployments: [String: DeploymentRecord]
    /// The server's operator named the project (`--project`, `serve --config`), so a repository
    /// cannot name another project's secrets by changing its own fleet.yaml.
    var projectPinned = true

    private var project: String { fleet.fleet.project }

    func apply(_ action: RolloutAction, at now: Date) async throws {
        switch action {
        case .startWave(let app, let group, let digest, let devices):
            let record = try deployment(app: app, group: group, digest: digest, purpose: .rollout, at: now)
            try await deployer.create(record, devices: devices, at: now)
            try await audit("deployment.create", record.id, "\(app) \(record.version) to \(devices.count) devices at \(commit)", at: now)
            logger.info("wave", metadata: ["app": "\(app)", "version": "\(record.version)", "devices": "\(devices.count)"])
        case .heal(let app, let group, let digest, let devices):
            let record = try deployment(app: app, group: group, digest: digest, purpose: .heal, at: now)
            try await deployer.create(record, devices: devices, at: now)
            try await audit("deployment.heal", record.id, "\(app) \(record.version) back on drifted \(devices.joined(separator: ", "))", at: now)
            logger.warning("drift corrected", metadata: ["app": "\(app)", "version": "\(record.version)", "devices": "\(devices.count)"])
        case .abortRollout(let app, let group, let digest, let ids, let failed, let allowed):
            for id in ids { try await deployer.abort(id, at: now) }
            try await audit("rollout.abort", digest, "\(app) → \(group): \(failed) failed, \(allowed) allowed", at: now)
            logger.warning("rollout aborted", metadata: ["app": "\(app)", "group": "\(group)", "failed": "\(failed)", "allowed": "\(allowed)"])
        case .rollBack(let app, let abortedDigest, let restoring, let devices):
            guard var record = deployments[restoring] else { throw StoreError(.notFound, "no deployment \(restoring) to roll back to") }
            record.id = Deployer.newDeploymentID()
            record.createdAt = now
            record.createdBy = "controller"
            record.purpose = .rollback(abortedDigest: abortedDigest)
            record.aborted = false
            try await deployer.create(record, devices: devices, at: now)
            try await audit("deployment.rollback", record.id, "\(app) back to \(record.version) on \(devices.count) devices", at: now)
            logger.warning("rolling back", metadata: ["app": "\(app)", "version": "\(record.version)", "devices": "\(devices.count)"])
        case .end(_, let execution, let device, let state, let reason, let unlessUpdatedAfter):
            guard try await store.endExecution(id: execution, as: state, message: reason.message, unlessUpdatedAfter: unlessUpdatedAfter,
                                               at: now) != nil else { return }
            await deployer.board.notify([device])
            let level: Logger.Level = reason == .stalled ? .warning : .info
            logger.log(level: level, "execution ended", metadata: ["execution": "\(execution)", "device": "\(device)", "reason": "\(reason.rawValue)"])
        case .failHealth(let app, _, let execution, let device, let message):
            guard try await store.endExecution(id: execution, as: .failed, message: message, unlessUpdatedAfter: nil, at: now) != nil else { return }
            try await audit("execution.unhealthy", execution, "\(app) on \(device): \(message)", at: now)
            logger.warning("health check failed", metadata: ["app": "\(app)", "device": "\(device)", "execution": "\(execution)", "why": "\(message)"])
        case .passHealth(_, _, let execution, _):
            _ = try await store.endExecution(id: execution, as: .succeeded, message: "", unlessUpdatedAfter: nil, at: now)
        case .hold:
            break
        }
    }

    private func audit(_ action: String, _ subject: String, _ detail: String, at now: Date) async throws {
        try await store.appendAudit(AuditRecord(at: now, project: project, actor: "controller", action: action, subject: subject, detail: detail))
    }

    /// A deployment of the target's version with the app's flow, as the compiled fleet resolves it.
    private func deployment(app name: String, group: String, digest: String, purpose: DeploymentPurpose, at now: Date) throws -> DeploymentRecord {
        guard let app = fleet.apps.first(where: { $0.name == name }),
              let target = app.targets.first(where: { $0.group == group && $0.digest == digest }) else {
            throw StoreError(.notFound, "no target \(group) of \(name) at \(digest.prefix(12))")
        }
        guard target.secrets.isEmpty || projectPinned else { throw UnpinnedSecrets(project: project) }
        return DeploymentRecord(id: Deployer.newDeploymentID(), project: project, app: app.name, version: target.version,
                                flow: app.flow.name, digest: target.digest, parameters: target.parameters, steps: app.flow.steps.map(Self.assigned),
                                rollback: app.flow.rollback.map(Self.assigned), artifactAllowlist: fleet.fleet.artifactSources.map(\.description),
                                createdAt: now, createdBy: "controller", purpose: purpose, group: group, secrets: target.secrets,
                                probe: app.flow.probe.map(Self.assigned))
    }

    static func assigned(_ probe: Probe) -> AssignedProbe {
        AssignedProbe(command: probe.command, timeoutSeconds: Int(probe.timeout.components.seconds),
                      intervalSeconds: Int(probe.interval.components.seconds))
    }

    /// Secret parameters under `serve --repo` without `--project`: the repository's own fleet.yaml
    /// would choose whose secrets it gets.
    struct UnpinnedSecrets: Error, CustomStringConvertible {
        var project: String
        var description: String {
            "secret parameters need the project pinned by the server: start it with --project \(project) beside --repo, or use serve --config"
        }
    }

    static func assigned(_ step: Step) -> AssignedStep {
        var assigned = AssignedStep(name: step.name, kind: .run, timeoutSeconds: Int(step.timeout.components.seconds), retries: step.retries,
                                    onFailure: step.onFailure.rawValue, idempotent: step.idempotent)
        switch step.action {
        case .run(let command): assigned.command = command
        case .script(let script): assigned.kind = .script; assigned.command = script
        case .download(let url, let sha256, let destination):
            assigned.kind = .download; assigned.url = url; assigned.sha256 = sha256; assigned.destination = destination
        case .compose(let project, let file, let action):
            assigned.kind = .compose; assigned.project = project; assigned.file = file; assigned.action = action.rawValue
        case .install(let package): assigned.kind = .install; assigned.command = package
        case .agentUpdate(let url, let sha256): assigned.kind = .agentUpdate; assigned.url = url; assigned.sha256 = sha256
        }
        return assigned
    }
}
