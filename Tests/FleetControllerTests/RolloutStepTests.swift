import FleetController
import FleetCore
import Testing

@Suite struct RolloutStepTests {
    static let policy = RolloutPolicy(batchSize: .percent(25), maxUnavailable: .count(3), maxFailures: .count(1), onAbort: .rollback,
                                      executionTimeout: .seconds(60))
    static let devices = (1...20).map { "d\($0)" }

    @Test func wavesAreBatchSizeButNeverMoreThanMaxUnavailable() {
        // 25% of 20 is 5, but at most 3 at once.
        #expect(RolloutStep.next(pending: Self.devices, progress: .init(), policy: Self.policy) == .deploy(["d1", "d2", "d3"]))
        var wide = Self.policy
        wide.maxUnavailable = .percent(100)
        #expect(RolloutStep.next(pending: Self.devices, progress: .init(), policy: wide) == .deploy(["d1", "d2", "d3", "d4", "d5"]))
    }

    @Test func theNextWaveWaitsForTheRunningOne() {
        let progress = RolloutProgress(succeeded: ["d1"], active: ["d2", "d3"])
        #expect(RolloutStep.next(pending: Array(Self.devices.dropFirst()), progress: progress, policy: Self.policy) == .waiting(active: 2))
    }

    /// A device that finished is not deployed to again while its heartbeat still reports the old
    /// version, and a failed device is not retried within the rollout.
    @Test func finishedAndFailedDevicesAreNotDeployedAgain() {
        let progress = RolloutProgress(succeeded: ["d1", "d2"], failed: ["d3"])
        #expect(RolloutStep.next(pending: ["d1", "d2", "d3", "d4", "d5"], progress: progress, policy: Self.policy) == .deploy(["d4", "d5"]))
        #expect(RolloutStep.next(pending: ["d2", "d3"], progress: progress, policy: Self.policy) == .finishedWithFailures(1))
        #expect(RolloutStep.next(pending: [], progress: RolloutProgress(succeeded: ["d1"]), policy: Self.policy) == .converged)
    }

    @Test func failuresBeyondTheAllowanceAbortWithTheChangedDevices() {
        let progress = RolloutProgress(succeeded: ["d2", "d1"], failed: ["d3", "d4"], active: ["d5"])
        #expect(RolloutStep.next(pending: Self.devices, progress: progress, policy: Self.policy)
            == .aborted(failed: 2, allowed: 1, changed: ["d1", "d2"]))
        // A percentage allowance rounds down: 5% of 20 devices tolerates one failure, not two.
        var percent = Self.policy
        percent.maxFailures = .percent(5)
        #expect(RolloutStep.next(pending: Self.devices, progress: RolloutProgress(failed: ["d1"]), policy: percent) == .deploy(["d2", "d3", "d4"]))
        #expect(RolloutStep.next(pending: Self.devices, progress: RolloutProgress(failed: ["d1", "d2"]), policy: percent)
            == .aborted(failed: 2, allowed: 1, changed: []))
    }
}
