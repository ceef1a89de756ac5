/// One step as the agent runs it, with every `${…}` already filled in for this device.
public struct AssignedStep: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case run, script, download, compose, install
        /// The agent replaces its own binary (`url`, `sha256`), restarts, and the step succeeds
        /// only once the new agent reported in; `timeoutSeconds` is how long it has to.
        case agentUpdate
    }

    public var name: String
    public var kind: Kind
    /// `run`: the command; `script`: the script; `install`: the package path.
    public var command: String?
    /// `download`: source URL, expected SHA-256 and destination path.
    public var url: String?
    public var sha256: String?
    public var destination: String?
    /// `compose`: project, file and `up` or `down`.
    public var project: String?
    public var file: String?
    public var action: String?
    public var timeoutSeconds: Int
    public var retries: Int
    /// `rollback`, `continue` or `abort`.
    public var onFailure: String
    public var idempotent: Bool

    public init(name: String, kind: Kind, command: String? = nil, url: String? = nil, sha256: String? = nil, destination: String? = nil,
                project: String? = nil, file: String? = nil, action: String? = nil, timeoutSeconds: Int, retries: Int,
                onFailure: String, idempotent: Bool) {
        self.name = name
        self.kind = kind
        self.command = command
        self.url = url
        self.sha256 = sha256
        self.destination = destination
        self.project = project
        self.file = file
        self.action = action
        self.timeoutSeconds = timeoutSeconds
        self.retries = retries
        self.onFailure = onFailure
        self.idempotent = idempotent
    }
}

extension AssignedStep {
    /// The fields that hold text written in a flow, where `${…}` is filled in: one list for the
    /// step rules, the template checks and the filling in.
    public static var templateFields: [(key: String, path: WritableKeyPath<AssignedStep, String?>)] {
        [("command", \.command), ("url", \.url), ("sha256", \.sha256), ("destination", \.destination), ("project", \.project), ("file", \.file)]
    }

    /// The template fields this step sets, with their keys.
    public var templateTexts: [(key: String, text: String)] {
        Self.templateFields.compactMap { field in self[keyPath: field.path].map { (field.key, $0) } }
    }
}

/// How a device tells which version of an app really runs: a command, run through `/bin/sh -c`
/// on its own interval, whose standard output's first line is the version (nothing: the app
/// does not run). It is how drift made behind the agent's back — a container stopped by hand,
/// a package downgraded — is seen.
public struct AssignedProbe: Codable, Sendable, Equatable {
    public var command: String
    /// A probe still running after this long is killed (with its process group) and reported
    /// as timed out: the version is then unknown, never drift.
    public var timeoutSeconds: Int
    /// How often it runs; also right after each install.
    public var intervalSeconds: Int

    public init(command: String, timeoutSeconds: Int = StepRules.probeDefaultTimeoutSeconds,
                intervalSeconds: Int = StepRules.probeDefaultIntervalSeconds) {
        self.command = command
        self.timeoutSeconds = timeoutSeconds
        self.intervalSeconds = intervalSeconds
    }
}

/// Work for one device: run these steps to install `version` of `app`.
public struct Assignment: Codable, Sendable, Equatable {
    public var executionID: String
    public var deploymentID: String
    public var app: String
    public var version: String
    /// The deployment's digest, reported back with the installed app once it succeeds.
    public var digest: String
    public var steps: [AssignedStep]
    public var rollback: [AssignedStep]
    /// URL prefixes downloads may come from.
    public var artifactAllowlist: [String]
    /// The values of the deployment's secret parameters, by parameter name: already filled into
    /// the commands that use them, and given to those commands as `FLOTILLA_SECRET_<name>` too.
    /// The agent hides every one of them in the output it reports.
    public var secrets: [String: String]
    /// How the device checks, from then on, which version of the app really runs.
    public var probe: AssignedProbe?

    public init(executionID: String, deploymentID: String, app: String, version: String, digest: String,
                steps: [AssignedStep], rollback: [AssignedStep], artifactAllowlist: [String], secrets: [String: String] = [:],
                probe: AssignedProbe? = nil) {
        self.secrets = secrets
        self.probe = probe
        self.executionID = executionID
        self.deploymentID = deploymentID
        self.app = app
        self.version = version
        self.digest = digest
        self.steps = steps
        self.rollback = rollback
        self.artifactAllowlist = artifactAllowlist
    }
}

/// How a device's long-polls (`GET /agent/v1/assignments`, `GET /agent/v1/commands`) may be
/// deferred. Each held poll keeps a connection and its memory on the server; one that already
/// holds its limit of them answers a device that sent `header: value` at once instead — a 304
/// (or no commands), `Retry-After` seconds to wait before asking again, and `Connection: close`.
/// A device that did not send the header is not deferred, as before: it would ask again at once.
public enum LongPollDeferral {
    public static let header = "Flotilla-Poll"
    public static let value = "may-defer"
    /// The most a deferred poll holds a device back before it asks again (the server asks for
    /// 15 to 30 s): a server or proxy answering years does not silence it.
    public static let longestPause = 300

    /// Seconds to wait before asking again, from a deferred poll's `Retry-After`; nil when the
    /// answer carried none (the poll was held, and the device asks again at once).
    public static func pause(retryAfter: Int?) -> Int? {
        retryAfter.map { min(max($0, 1), longestPause) }
    }
}

/// `GET /agent/v1/assignments`: the device's unfinished executions, oldest first.
public struct AssignmentList: Codable, Sendable, Equatable {
    public var assignments: [Assignment]

    public init(assignments: [Assignment]) {
        self.assignments = assignments
    }
}

/// The states an execution moves through.
public enum ExecutionState: String, Codable, Sendable, CaseIterable {
    case queued, assigned, running, succeeded, failed, timedOut, cancelled

    /// Whether nothing more will happen to the execution.
    public var isFinal: Bool {
        switch self {
        case .succeeded, .failed, .timedOut, .cancelled: true
        case .queued, .assigned, .running: false
        }
    }
}

/// What happened to one step.
public struct StepResult: Codable, Sendable, Equatable {
    public enum Status: String, Codable, Sendable {
        case succeeded, failed, skipped
    }

    /// The most steps (or rollback steps) a report may number: `index` is below it.
    public static let maximumCount = 10_000
    /// The most attempts a report may count for one step.
    public static let maximumAttempts = 1_000_000

    /// Position in the steps, or in the rollback steps when `rollback` is true.
    public var index: Int
    public var name: String
    public var status: Status
    public var rollback: Bool
    public var attempts: Int
    public var exitCode: Int?
    /// The last lines of its output.
    public var outputTail: String?

    public init(index: Int, name: String, status: Status, rollback: Bool = false, attempts: Int = 1, exitCode: Int? = nil,
                outputTail: String? = nil) {
        self.index = index
        self.name = name
        self.status = status
        self.rollback = rollback
        self.attempts = attempts
        self.exitCode = exitCode
        self.outputTail = outputTail
    }
}

/// `POST /agent/v1/executions/{id}/report`: progress or the outcome of an execution.
public struct ExecutionReport: Codable, Sendable, Equatable {
    /// Made by the agent, unique per report, so a retried report is applied once.
    public var reportID: String
    /// `running` while steps go on; `succeeded` or `failed` at the end.
    public var state: ExecutionState
    /// The step this report is about, if any.
    public var step: StepResult?
    /// Why it failed, in a sentence.
    public var message: String?

    public init(reportID: String, state: ExecutionState, step: StepResult? = nil, message: String? = nil) {
        self.reportID = reportID
        self.state = state
        self.step = step
        self.message = message
    }
}
