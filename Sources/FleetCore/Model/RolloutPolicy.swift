/// How a new version reaches the devices of one app target.
public struct RolloutPolicy: Hashable, Sendable {
    /// What happens to devices already changed when a rollout aborts.
    public enum OnAbort: String, Hashable, Sendable, CaseIterable {
        /// Give them the last good version back.
        case rollback
        /// Leave them as they are and hold the rollout for an operator.
        case pause
    }

    /// Devices per wave: a count, or a percentage of the devices the rollout changes.
    public var batchSize: Quantity
    /// Devices updating at once, at most.
    public var maxUnavailable: Quantity
    /// Failures tolerated before the rollout aborts.
    public var maxFailures: Quantity
    public var onAbort: OnAbort
    /// An execution not finished this long after its device took it is ended: timed out (a
    /// failure) when the device is online, cancelled (not a failure) when it is offline.
    public var executionTimeout: Duration

    /// The settings used when neither the app nor fleet.yaml says otherwise.
    public static let builtIn = RolloutPolicy(
        batchSize: .percent(25), maxUnavailable: .percent(25), maxFailures: .percent(5),
        onAbort: .rollback, executionTimeout: .seconds(1_800))

    public init(batchSize: Quantity, maxUnavailable: Quantity, maxFailures: Quantity,
                onAbort: OnAbort, executionTimeout: Duration) {
        self.batchSize = batchSize
        self.maxUnavailable = maxUnavailable
        self.maxFailures = maxFailures
        self.onAbort = onAbort
        self.executionTimeout = executionTimeout
    }

    /// Devices per wave in a rollout of `total` devices: `batchSize`, but never more than
    /// `maxUnavailable` (all of a wave update at once), and at least one. The one rule both
    /// `flotilla plan` and the controller use.
    public func waveSize(total: Int) -> Int {
        max(1, min(batchSize.devices(of: total), maxUnavailable.devices(of: total)))
    }

    /// The waves for `count` devices out of a rollout of `total`: sizes of `waveSize(total:)`
    /// each, in order.
    public func waveSizes(for count: Int, total: Int? = nil) -> [Int] {
        guard count > 0 else { return [] }
        let wave = waveSize(total: total ?? count)
        var sizes: [Int] = []
        sizes.reserveCapacity(count / wave + 1)
        var remaining = count
        while remaining > 0 {
            sizes.append(min(wave, remaining))
            remaining -= wave
        }
        return sizes
    }
}
