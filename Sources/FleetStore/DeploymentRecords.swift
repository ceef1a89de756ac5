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
    /// Steps as templates (`${…}` not yet filled in).
    public var steps: [AssignedStep]
    public var rollback: [AssignedStep]
    public var artifactAllowlist: [String]
    public var createdAt: Date
    /// `operator:<token id>` or `controller`.
    public var createdBy: String
    public var aborted: Bool

    public init(id: String, project: String, app: String, version: String, flow: String, digest: String, parameters: [String: String],
                steps: [AssignedStep], rollback: [AssignedStep], artifactAllowlist: [String], createdAt: Date, createdBy: String,
                aborted: Bool = false) {
        self.id = id
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
        self.aborted = aborted
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

    public init(id: String, deploymentID: String, deviceID: String, state: ExecutionState, updatedAt: Date) {
        self.id = id
        self.deploymentID = deploymentID
        self.deviceID = deviceID
        self.state = state
        self.updatedAt = updatedAt
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
    /// Grows with every change, so a device can tell its assignments changed.
    public var revision: Int

    public init(id: String, deploymentID: String, deviceID: String, state: ExecutionState = .queued, results: [StepResult] = [],
                message: String? = nil, updatedAt: Date, revision: Int = 0) {
        self.id = id
        self.deploymentID = deploymentID
        self.deviceID = deviceID
        self.state = state
        self.results = results
        self.message = message
        self.updatedAt = updatedAt
        self.revision = revision
    }

    public var summary: ExecutionSummary {
        ExecutionSummary(id: id, deploymentID: deploymentID, deviceID: deviceID, state: state, updatedAt: updatedAt)
    }

    /// The execution after `report`, or nil when the report may not apply (it is already final).
    public func applying(_ report: ExecutionReport, at date: Date) -> ExecutionRecord? {
        guard !state.isFinal else { return nil }
        var next = self
        next.state = report.state == .queued || report.state == .assigned ? .running : report.state
        if let step = report.step {
            next.results.removeAll { $0.index == step.index && $0.rollback == step.rollback }
            next.results.append(step)
        }
        if let message = report.message { next.message = message }
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
