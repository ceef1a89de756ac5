public import FoundationEssentials

/// `kind: App`: what version of an app each group of devices runs, and how it gets there.
public struct App: Sendable {
    public var name: String
    /// The flow that installs it.
    public var flow: Located<String>
    /// Parameters for every target, overridden by a target's own.
    public var parameters: [String: Located<String>]
    /// Ordered: the first target whose group holds a device decides that device's version.
    public var targets: [Target]
    /// The rollout settings, with fleet.yaml's defaults and the built-in ones filled in.
    public var rollout: RolloutPolicy
    /// Whether devices that drift from the desired version are put back.
    public var selfHeal: Bool
    /// No target starts before this instant.
    public var notBefore: Located<Date>?
    /// When its devices may start an update, for targets that set none (over fleet.yaml's).
    public var windows: MaintenanceWindows?
    /// What its devices must keep showing in their heartbeats after an update.
    public var health: HealthPolicy?
    /// Where each of `health`'s checks is written.
    public var healthLocations: [SourceLocation] = []
    public var location: SourceLocation

    /// One entry of `targets`.
    public struct Target: Sendable {
        public var group: Located<String>
        public var version: Located<String>
        public var parameters: [String: Located<String>]
        /// This target starts no earlier than this instant (nor than the app's).
        public var notBefore: Located<Date>?
        /// The group of a target listed before this one that must have converged first.
        public var after: Located<String>?
        /// How long the `after` target must have stayed converged.
        public var bake: Duration?
        /// Whether an operator must approve each digest of this target before it starts.
        public var approval: Bool
        /// When its devices may start an update (over the app's and fleet.yaml's).
        public var windows: MaintenanceWindows?
        public var location: SourceLocation
    }
}
