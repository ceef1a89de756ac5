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
    public var parameters: [String: String]
    /// A SHA-256 over app, version, flow and parameters: equal digests mean the same deployment.
    public var digest: String

    init(app: String, group: String, version: String, flow: String, parameters: [String: String]) {
        self.group = group
        self.version = version
        self.flow = flow
        self.parameters = parameters
        var canonical: [UInt8] = []
        func field(_ text: String) {
            canonical += Array("\(text.utf8.count):".utf8) + Array(text.utf8)
        }
        for text in ["flotilla.dev/v1", app, version, flow] { field(text) }
        for key in parameters.keys.sorted() {
            field(key)
            field(parameters[key]!)
        }
        digest = SHA256.hex(canonical)
    }
}
