/// `kind: UpdateFlow`: the steps that install one version of an app, and how to undo them.
public struct UpdateFlow: Sendable {
    public var name: String
    /// Declared parameters, in file order.
    public var parameters: [ParameterSpec]
    public var steps: [Step]
    /// Steps run when a step fails with `onFailure: rollback`, in order.
    public var rollback: [Step]
    /// How a device tells which version really runs, when the flow says.
    public var probe: Probe?
    public var location: SourceLocation

    /// The declared parameter called `name`.
    public func parameter(named name: String) -> ParameterSpec? {
        parameters.first { $0.name == name }
    }
}

/// `probe:` of a flow: a command whose output's first line is the version that really runs
/// (nothing: the app does not run), run on each device that has the app, every `interval`.
public struct Probe: Sendable {
    /// Run through `/bin/sh -c`; may use the flow's parameters and the built-ins, never a secret.
    public var command: String
    public var timeout: Duration
    public var interval: Duration
    public var location: SourceLocation

    public init(command: String, timeout: Duration, interval: Duration, location: SourceLocation) {
        self.command = command
        self.timeout = timeout
        self.interval = interval
        self.location = location
    }
}

/// A typed parameter of a flow.
public struct ParameterSpec: Hashable, Sendable {
    public enum Kind: Hashable, Sendable {
        case string, int, bool, url, sha256, duration
        case oneOf([String])
        /// Its value in git is the name of a secret the server keeps (`flotilla secret set`);
        /// the device gets the secret's value inside its assignment, and nothing else ever does.
        case secret

        /// The names used in YAML for `type`.
        public static let names = ["string", "int", "bool", "url", "sha256", "duration", "enum", "secret"]

        public var name: String {
            switch self {
            case .string: "string"
            case .int: "int"
            case .bool: "bool"
            case .url: "url"
            case .sha256: "sha256"
            case .duration: "duration"
            case .oneOf: "enum"
            case .secret: "secret"
            }
        }
    }

    public var name: String
    public var kind: Kind
    public var required: Bool
    /// The value used when an app does not give one.
    public var defaultValue: String?
    public var description: String?
    public var location: SourceLocation

    /// Why `value` is not of this parameter's type, or nil when it is.
    public func problem(with value: String) -> String? {
        switch kind {
        case .string:
            return nil
        case .int:
            return Int(value) == nil ? "expected a whole number" : nil
        case .bool:
            return Scalars.parseBool(value) == nil ? "expected true or false" : nil
        case .url:
            switch WebURL.parse(value) {
            case .success: return nil
            case .failure(let problem): return problem.reason
            }
        case .sha256:
            let hex = value.unicodeScalars.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) || ("A"..."F").contains($0) }
            return value.unicodeScalars.count == 64 && hex ? nil : "expected 64 hexadecimal digits (a SHA-256)"
        case .duration:
            switch DurationText.parse(value) {
            case .success: return nil
            case .failure(let problem): return problem.reason
            }
        case .oneOf(let values):
            return values.contains(value) ? nil : "expected one of \(values.joined(separator: ", "))"
        case .secret:
            return FleetNames.problem(value).map {
                "expected the name of a secret the server keeps (flotilla secret set PROJECT NAME), never the secret itself: \($0)"
            }
        }
    }
}

/// One step of a flow.
public struct Step: Sendable {
    public enum Action: Sendable {
        /// A command run through `/bin/sh -c`.
        case run(command: String)
        /// An inline multi-line script.
        case script(String)
        /// An HTTP(S) download, verified by SHA-256, moved atomically into place.
        case download(url: String, sha256: String, destination: String)
        /// `docker compose -p PROJECT -f FILE up -d` or `down`.
        case compose(project: String, file: String, action: ComposeAction)
        /// `dpkg -i` of a package file.
        case install(package: String)
        /// The agent replaces its own binary with the one at `url` (checked against `sha256` and
        /// the artifact allowlist), restarts, and must report its new version within the step's
        /// timeout; if it does not, the previous binary is put back.
        case agentUpdate(url: String, sha256: String)

        /// The YAML key of each action, in the order the docs list them.
        public static let keys = ["run", "script", "download", "compose", "install", "agentUpdate"]

        /// Every text field of the action, which may all use `${…}`.
        public var templates: [String] {
            switch self {
            case .run(let command): [command]
            case .script(let script): [script]
            case .download(let url, let sha256, let destination): [url, sha256, destination]
            case .compose(let project, let file, _): [project, file]
            case .install(let package): [package]
            case .agentUpdate(let url, let sha256): [url, sha256]
            }
        }
    }

    public enum ComposeAction: String, Hashable, Sendable, CaseIterable { case up, down }

    /// What to do when the step fails after its retries.
    public enum OnFailure: String, Hashable, Sendable, CaseIterable {
        /// Run the flow's rollback steps, then report the execution failed.
        case rollback
        /// Go on with the next step.
        case `continue`
        /// Stop here and report the execution failed, without rolling back.
        case abort
    }

    public var name: String
    public var action: Action
    public var timeout: Duration
    public var retries: Int
    public var onFailure: OnFailure
    /// Whether running the step again after an interruption is safe.
    public var idempotent: Bool
    public var location: SourceLocation

    /// Steps run at most this long unless they say otherwise.
    public static let defaultTimeout: Duration = .seconds(600)
}
