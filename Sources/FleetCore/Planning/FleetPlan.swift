/// What reconciling a fleet at one commit would do, per app and target.
public struct FleetPlan: Sendable {
    /// The inventory the plan was made from; device and version ids index into it.
    public var inventory: DeviceInventory
    /// In app-name order.
    public var apps: [AppPlan]
    /// True when the plan shows only what a change of the repository does (`changes(since:)`).
    public var isChangeOnly = false

    /// Whether any device would change.
    public var hasChanges: Bool { apps.contains { $0.changeCount > 0 } }

    /// How many device × app changes the plan makes.
    public var changeCount: Int { apps.reduce(0) { $0 + $1.changeCount } }

    public func deviceID(_ index: Int32) -> String { inventory.ids[Int(index)] }

    /// The version a change starts from, or nil for an install.
    public func fromVersion(_ change: DeviceChange) -> String? {
        change.from < 0 ? nil : inventory.symbols[change.from]
    }
}

/// The plan for one app.
public struct AppPlan: Sendable {
    public var name: String
    public var targets: [TargetPlan]
    /// Devices, in id order, that report the app but that no target selects: left as they are.
    public var notTargeted: [Int32]
    /// Devices that neither have the app nor are targeted.
    public var untouchedCount: Int

    public var changeCount: Int { targets.reduce(0) { $0 + $1.changes.count } }
}

/// The plan for one target of an app.
public struct TargetPlan: Sendable {
    public var target: DesiredTarget
    public var rollout: RolloutPolicy
    /// Devices, in id order, already at the desired version and digest.
    public var unchanged: [Int32]
    /// Devices that would change: online ones first, each part in id order.
    public var changes: [DeviceChange]
    /// Wave sizes, in order, over the online part of `changes` — the waves the controller
    /// starts (`RolloutPolicy.waveSize`). Offline devices are in no wave: they wait.
    public var waves: [Int]
    /// Changing devices that are offline now and would be updated when they return.
    public var offlineCount: Int

    /// Devices per wave (`RolloutPolicy.waveSize` over the rollout's devices).
    public var waveSize: Int { rollout.waveSize(total: changes.count) }

    /// The devices of each wave, in order: `changes` cut by `waves`.
    public var waveDevices: [ArraySlice<DeviceChange>] {
        var start = 0
        return waves.map { size in
            defer { start += size }
            return changes[start..<start + size]
        }
    }

    /// Changing devices that are offline: in no wave until they are heard again.
    public var waiting: ArraySlice<DeviceChange> { changes[(changes.count - offlineCount)...] }
}

/// One device moving to a target's version.
public struct DeviceChange: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        /// The app is not on the device yet.
        case install
        /// The device runs another version.
        case update
        /// Same version, but its parameters changed (the reported digest differs).
        case reconfigure
    }

    /// Index into the plan's inventory.
    public var device: Int32
    /// Symbol of the reported version, -1 for an install.
    public var from: Int32
    public var kind: Kind
}
