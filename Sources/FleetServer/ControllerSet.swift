public import FleetStore

/// The controllers running beside the server: none, the one `serve --repo` starts, or one per
/// project of `serve --config`. Each works apart; the server finds the one a request is for by
/// the project of the token (or the path of a webhook), never by trying them in turn.
public struct ControllerSet: Sendable {
    public struct Entry: Sendable {
        public let handle: any ControllerHandle
        /// The secret its push webhooks are signed with; nil turns its webhook off.
        public let hookSecret: String?

        public init(_ handle: any ControllerHandle, hookSecret: String? = nil) {
            self.handle = handle
            self.hookSecret = hookSecret
        }
    }

    public let entries: [Entry]

    public init(_ entries: [Entry] = []) {
        self.entries = entries
    }

    public var isEmpty: Bool { entries.isEmpty }

    /// The controller reconciling `project`: the one the server's configuration assigned it, else
    /// one started with `--repo` whose repository's fleet.yaml names it. Nil when none does, or
    /// when a `--repo` controller has not read its first commit yet (so another project's token
    /// is answered the same way either way).
    public func entry(for project: String) async -> Entry? {
        if let assigned = entries.first(where: { $0.handle.assignedProject == project }) { return assigned }
        for entry in entries where entry.handle.assignedProject == nil {
            if await entry.handle.scope()?.project == project { return entry }
        }
        return nil
    }

    /// Every controller's pass numbers, by the project `serve --config` assigned it (nil for the
    /// one of `serve --repo`, whose series stay unlabelled).
    func passMetrics() async -> [(project: String?, metrics: ControllerMetrics)] {
        var samples: [(project: String?, metrics: ControllerMetrics)] = []
        for entry in entries { samples.append((entry.handle.assignedProject, await entry.handle.metrics())) }
        return samples
    }
}
