public import FoundationEssentials
public import FleetProtocol
/// A fleet repository that loaded and validated: the desired state at one commit.
public struct CompiledFleet: Sendable {
    public var fleet: Fleet
    /// Sorted by name.
    public var groups: [Group]
    /// Sorted by id.
    public var devices: [DeviceDeclaration]
    /// Sorted by name.
    public var flows: [UpdateFlow]
    /// Sorted by name, each with its flow and its targets resolved.
    public var apps: [CompiledApp]
    /// Sorted by name.
    public var alertRules: [AlertRule] = []

    /// The rules and receivers the server evaluates and notifies with.
    public var alerting: AlertingSettings {
        AlertingSettings(rules: alertRules.map(\.spec), receivers: fleet.alertReceivers)
    }

    /// The group called `name`.
    public func group(named name: String) -> Group? {
        groups.first { $0.name == name }
    }
}

/// An app with its flow and, per target, the parameters every device of that target gets.
public struct CompiledApp: Sendable {
    public var app: App
    public var flow: UpdateFlow
    /// In the app's order; the first whose group holds a device wins.
    public var targets: [DesiredTarget]

    public var name: String { app.name }
}

/// What the devices of one app target should run.
public struct DesiredTarget: Hashable, Sendable {
    /// The group, by name.
    public var group: String
    public var version: String
    public var flow: String
    /// Every flow parameter with its value: the target's, else the app's, else the default.
    /// Parameters of type `secret` are not here but in `secrets`.
    public var parameters: [String: String]
    /// Each `secret` parameter with the name of the server-kept secret it takes its value from.
    public var secrets: [String: String]
    /// A SHA-256 over app, version, flow, parameters and secret names: equal digests mean the
    /// same deployment. (A secret's value is not in it: the compiler never sees one.)
    public var digest: String
    /// What must hold before the target's first wave starts. Not in the digest: moving a start
    /// time or adding an approval does not make the same release another deployment.
    public var gate = TargetGate()
    /// When its devices may start an update: the target's windows, else the app's, else
    /// fleet.yaml's; nil: any time. Not in the digest either.
    public var windows: MaintenanceWindows?
    /// The app's health checks, with `${…}` filled in for this target; nil: an update counts
    /// as soon as it succeeds.
    public var health: HealthPolicy?

    init(app: String, group: String, version: String, flow: String, parameters: [String: String], secrets: [String: String] = [:]) {
        self.group = group
        self.version = version
        self.flow = flow
        self.parameters = parameters
        self.secrets = secrets
        var canonical: [UInt8] = []
        func field(_ text: String) {
            canonical += Array("\(text.utf8.count):".utf8) + Array(text.utf8)
        }
        for text in ["flotilla.dev/v1", app, version, flow] { field(text) }
        for key in parameters.keys.sorted() {
            field(key)
            field(parameters[key]!)
        }
        // Only when there are any: digests of fleets without secrets stay what they were.
        for key in secrets.keys.sorted() {
            field("secret:" + key)
            field(secrets[key]!)
        }
        digest = SHA256.hex(canonical)
    }
}

/// What holds a target's rollout back before its first wave: a start time, a target it is
/// promoted after (and how long that one must have stayed converged), an operator's approval.
public struct TargetGate: Hashable, Sendable {
    /// The later of the app's and the target's `notBefore`.
    public var notBefore: Date?
    /// The group of an earlier target of the same app that must have converged first.
    public var after: String?
    /// Seconds the `after` target must have stayed converged.
    public var bakeSeconds: Double = 0
    public var approval = false

    public init(notBefore: Date? = nil, after: String? = nil, bakeSeconds: Double = 0, approval: Bool = false) {
        self.notBefore = notBefore
        self.after = after
        self.bakeSeconds = bakeSeconds
        self.approval = approval
    }

    public var isOpen: Bool { notBefore == nil && after == nil && !approval }

    /// When the target may start, in words, for plans: nil when nothing holds it.
    public func summary(app: String, group: String) -> String? {
        var parts: [String] = []
        if let after {
            parts.append("after \(after) has converged" + (bakeSeconds > 0 ? " and stayed so for \(DurationText.format(.milliseconds(Int64(bakeSeconds * 1_000))))" : ""))
        }
        if let notBefore { parts.append("not before \(Timestamp.format(notBefore))") }
        if approval { parts.append("once approved (flotilla approve \(app) \(group))") }
        return parts.isEmpty ? nil : "starts " + parts.joined(separator: ", ")
    }
}
