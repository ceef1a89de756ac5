public import FleetProtocol
public import Foundation

/// A deployment: one app version with its flow, for a set of devices.
public struct DeploymentRecord: Codable, Sendable, Equatable {
    public var id: String
    public var project: String
    public var app: String
    public var version: String
    public var flow: String
    public var digest: String
    /// Resolved parameters; with `version`, `app` and `device` they fill the step templates.
    public var parameters: [String: String]
    /// Parameters of type `secret`: each with the name of the project's secret whose value fills
    /// it in, only when an assignment is handed to its device. Never a value.
    public var secrets: [String: String]
    /// Steps as templates (`${…}` not yet filled in).
    public var steps: [AssignedStep]
    public var rollback: [AssignedStep]
    public var artifactAllowlist: [String]
    public var createdAt: Date
    /// `operator:<token id>` or `controller`.
    public var createdBy: String
    /// What the deployment is for; the rollout decision reads this, never `createdBy`.
    public var purpose: DeploymentPurpose
    /// The target group a controller deployment is for (two targets can want one digest).
    public var group: String?
    /// Its rollout was aborted (past `maxFailures`, or by an operator): no new wave of this
    /// digest starts. A superseded deployment has its executions cancelled but is not aborted.
    public var aborted: Bool
    /// The flow's probe as a template: how devices check, after this install, which version runs.
    public var probe: AssignedProbe?

    public init(id: String, project: String, app: String, version: String, flow: String, digest: String, parameters: [String: String],
                steps: [AssignedStep], rollback: [AssignedStep], artifactAllowlist: [String], createdAt: Date, createdBy: String,
                purpose: DeploymentPurpose = .manual, group: String? = nil, aborted: Bool = false, secrets: [String: String] = [:],
                probe: AssignedProbe? = nil) {
        self.id = id
        self.probe = probe
        self.secrets = secrets
        self.project = project
        self.app = app
        self.version = version
        self.flow = flow
        self.digest = digest
        self.parameters = parameters
        self.steps = steps
        self.rollback = rollback
        self.artifactAllowlist = artifactAllowlist
        self.createdAt = createdAt
        self.createdBy = createdBy
        self.purpose = purpose
        self.group = group
        self.aborted = aborted
    }

    private enum CodingKeys: String, CodingKey {
        case id, project, app, version, flow, digest, parameters, secrets, steps, rollback, artifactAllowlist, createdAt, createdBy, purpose, group, aborted, probe
    }

    /// Rows stored before `purpose` existed carry it in `createdBy`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        id = try container.decode(String.self, forKey: .id)
        project = try container.decode(String.self, forKey: .project)
        app = try container.decode(String.self, forKey: .app)
        version = try container.decode(String.self, forKey: .version)
        flow = try container.decode(String.self, forKey: .flow)
        digest = try container.decode(String.self, forKey: .digest)
        parameters = try container.decode([String: String].self, forKey: .parameters)
        secrets = try container.decodeIfPresent([String: String].self, forKey: .secrets) ?? [:]
        steps = try container.decode([AssignedStep].self, forKey: .steps)
        rollback = try container.decode([AssignedStep].self, forKey: .rollback)
        artifactAllowlist = try container.decode([String].self, forKey: .artifactAllowlist)
        createdAt = try container.decode(Date.self, forKey: .createdAt)
        createdBy = try container.decode(String.self, forKey: .createdBy)
        purpose = try container.decodeIfPresent(DeploymentPurpose.self, forKey: .purpose) ?? DeploymentPurpose(legacyCreatedBy: createdBy)
        group = try container.decodeIfPresent(String.self, forKey: .group)
        aborted = try container.decode(Bool.self, forKey: .aborted)
        probe = try container.decodeIfPresent(AssignedProbe.self, forKey: .probe)
    }
}

/// One device's part in a deployment.
/// An execution without its step results and message.
public struct ExecutionSummary: Sendable, Equatable {
    public var id: String
    public var deploymentID: String
    public var deviceID: String
    public var state: ExecutionState
    public var updatedAt: Date
    /// When the device took it; nil while queued.
    public var takenAt: Date?
    /// Its device passed the app's health checks after it succeeded: judged, never again.
    public var healthPassed: Bool
    /// Its place in the store's creation order: one made later has a larger number.
    public var order: Int64

    public init(id: String, deploymentID: String, deviceID: String, state: ExecutionState, updatedAt: Date, takenAt: Date? = nil,
                healthPassed: Bool = false, order: Int64 = 0) {
        self.order = order
        self.healthPassed = healthPassed
        self.id = id
        self.deploymentID = deploymentID
        self.deviceID = deviceID
        self.state = state
        self.updatedAt = updatedAt
        self.takenAt = takenAt
    }
}

public struct ExecutionRecord: Codable, Sendable, Equatable {
    public var id: String
    public var deploymentID: String
    public var deviceID: String
    public var state: ExecutionState
    /// Step results in the order they were reported; a retried step's later result replaces it.
    public var results: [StepResult]
    public var message: String?
    public var updatedAt: Date
    /// When the device took it (the assignment list that carried it was sent); its timeout
    /// counts from here.
    public var takenAt: Date?
    /// Grows with every change, so a device can tell its assignments changed.
    public var revision: Int
    /// When its device passed the app's health checks after it succeeded.
    public var healthPassedAt: Date?

    public init(id: String, deploymentID: String, deviceID: String, state: ExecutionState = .queued, results: [StepResult] = [],
                message: String? = nil, updatedAt: Date, takenAt: Date? = nil, revision: Int = 0) {
        self.id = id
        self.deploymentID = deploymentID
        self.deviceID = deviceID
        self.state = state
        self.results = results
        self.message = message
        self.updatedAt = updatedAt
        self.takenAt = takenAt
        self.revision = revision
    }

    public var summary: ExecutionSummary {
        ExecutionSummary(id: id, deploymentID: deploymentID, deviceID: deviceID, state: state, updatedAt: updatedAt, takenAt: takenAt,
                         healthPassed: healthPassedAt != nil)
    }

    /// The execution after `report`, or nil when the report may not apply (the device already
    /// reported it final).
    ///
    /// What a device did is the truth: an execution the server gave up on (timed out, or
    /// cancelled because it was superseded or its device went offline) still takes the device's
    /// reports. A step result is recorded as it comes; a final report replaces the server's
    /// verdict with the device's, so the server never believes a device runs something else
    /// than it does.
    public func applying(_ report: ExecutionReport, at date: Date) -> ExecutionRecord? {
        var next = self
        switch state {
        case .succeeded, .failed:
            return nil
        case .timedOut, .cancelled:
            // Only what the device took can have run, and only its outcome changes what the
            // server holds: a report for one it never took, or a step report, is refused.
            guard takenAt != nil, report.state.isFinal else { return nil }
            next.state = report.state
            next.message = [report.message, "reported after the server had marked it \(state.rawValue)"]
                .compactMap { $0 }.joined(separator: "; ")
        case .queued, .assigned, .running:
            if next.takenAt == nil { next.takenAt = date }
            next.state = report.state == .queued || report.state == .assigned ? .running : report.state
            if let message = report.message { next.message = message }
        }
        if let step = report.step {
            next.results.removeAll { $0.index == step.index && $0.rollback == step.rollback }
            next.results.append(step)
        }
        next.updatedAt = date
        next.revision += 1
        return next
    }

    /// The execution once its device has taken it: the timeout counts from here, not from
    /// when it was queued. Nil unless it was queued.
    public func taken(at date: Date) -> ExecutionRecord? {
        guard state == .queued else { return nil }
        var next = self
        next.state = .assigned
        next.takenAt = date
        next.updatedAt = date
        next.revision += 1
        return next
    }

    /// The execution ended by the server (`timedOut` or `cancelled`), or nil when it is final
    /// already or has moved after `unlessUpdatedAfter` (progress came in meanwhile).
    ///
    /// `failed` is the one verdict on a finished execution: a success whose device then failed
    /// the app's health checks. It keeps when the execution finished.
    /// `succeeded` records the other verdict: its device passed the health checks (once).
    public func ended(as state: ExecutionState, message: String, unlessUpdatedAfter: Date? = nil, at date: Date) -> ExecutionRecord? {
        if state == .succeeded {
            guard self.state == .succeeded, healthPassedAt == nil else { return nil }
            var next = self
            next.healthPassedAt = date
            return next
        }
        if state == .failed {
            guard self.state == .succeeded, healthPassedAt == nil else { return nil }
            var next = self
            next.state = .failed
            next.message = message
            next.revision += 1
            return next
        }
        precondition(state == .timedOut || state == .cancelled, "the server ends an execution as timedOut, cancelled, or a success as failed")
        guard !self.state.isFinal else { return nil }
        if let unlessUpdatedAfter, updatedAt > unlessUpdatedAfter { return nil }
        var next = self
        next.state = state
        next.message = message
        next.updatedAt = date
        next.revision += 1
        return next
    }
}

/// What applying an execution report did.
public enum ExecutionReportOutcome: Sendable, Equatable {
    /// Applied; the execution is now as given.
    case applied(ExecutionRecord)
    /// The same report id was applied before; nothing changed.
    case duplicate(ExecutionRecord)
    /// The execution is final and takes no more reports.
    case finished(ExecutionRecord)
    /// No such execution for this device.
    case notFound
}
