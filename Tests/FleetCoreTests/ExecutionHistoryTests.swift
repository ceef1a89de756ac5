import FleetCore
import FleetProtocol
import Foundation
import Testing

/// What of the history a decision reads (`ExecutionHistory`): each row is a history where one
/// kept execution changes the decision, so the rule that keeps it is needed; and over what is
/// kept the decision is the same as over the whole history. (The simulator checks the second
/// at every decision of its seeded runs.)
struct ExecutionHistoryTests {
    typealias World = RolloutDecisionTests.World

    static func snapshot(_ world: World, without dropped: String? = nil) -> FleetSnapshot {
        FleetSnapshot(commit: "c1", fleet: world.fleet, devices: world.devices, deployments: world.deployments,
                      executions: world.executions.filter { $0.id != dropped }, suspended: world.suspended, now: world.now)
    }

    /// Checks that the cut keeps `needed`, that the decision over the cut is the whole
    /// history's, and that without `needed` it is not.
    static func expectKeptAndNeeded(_ world: World, _ needed: String, sourceLocation: Testing.SourceLocation = #_sourceLocation) throws {
        let full = snapshot(world)
        var cut = full
        cut.executions = ExecutionHistory.kept(in: full)
        #expect(cut.executions.contains { $0.id == needed }, "\(needed) is not kept", sourceLocation: sourceLocation)
        let whole = try RolloutDecision.decide(full)
        let overCut = try RolloutDecision.decide(cut)
        #expect(overCut.actions == whole.actions, sourceLocation: sourceLocation)
        #expect(overCut.report == whole.report, sourceLocation: sourceLocation)
        let without = try RolloutDecision.decide(snapshot(world, without: needed))
        #expect(without.actions != whole.actions || without.report != whole.report,
                "the decision does not need \(needed): the row tests nothing", sourceLocation: sourceLocation)
    }

    @Test func aRollbackRestoresTheNewestSuccessOfAnOlderRelease() throws {
        var world = World(fleet: try RolloutDecisionTests.fleet(), count: 3)
        world.deployment("b0", digest: "old", version: "1.0", at: -3_000, [("d1", .succeeded, takenAgo: 2_990)])
        // A later release that failed on d1: its newest finished execution, not its last good one.
        world.deployment("m0", digest: "mid", version: "1.5", at: -2_000, [("d1", .failed, takenAgo: 1_990)])
        world.deployment("w1", [("d1", .succeeded, takenAgo: 90), ("d2", .failed, takenAgo: 90), ("d3", .failed, takenAgo: 90)])
        let whole = try RolloutDecision.decide(Self.snapshot(world))
        #expect(whole.actions.contains(.rollBack(app: "app", abortedDigest: world.digest, restoring: "b0", devices: ["d1"])))
        try Self.expectKeptAndNeeded(world, "b0-d1")
    }

    @Test func aNewerExecutionOfAnotherReleaseMasksAnOlderSuccessOfTheTarget() throws {
        var world = World(fleet: try RolloutDecisionTests.fleet(), count: 2)
        world.deployment("w1", at: -3_000, [("d1", .succeeded, takenAgo: 2_990), ("d2", .succeeded, takenAgo: 2_990)])
        // An operator put another version on d1 since: the target's rollout must come again.
        world.deployment("m1", digest: "hand", version: "1.9", purpose: .manual, at: -2_000, [("d1", .succeeded, takenAgo: 1_990)])
        world.report("d1", version: "1.9", digest: "hand")
        world.report("d2", version: "2.0", digest: world.digest)
        #expect(RolloutDecisionTests.waves(try RolloutDecision.decide(Self.snapshot(world))) == [["d1"]])
        try Self.expectKeptAndNeeded(world, "m1-d1")
    }

    @Test func aTieInCreationTimeGoesToTheLaterExecution() throws {
        var world = World(fleet: try RolloutDecisionTests.fleet(), count: 2)
        // Three deployments made in one second: the last made says where d1 stands.
        world.deployment("m1", digest: "hand", version: "1.9", purpose: .manual, at: -2_000, [("d1", .succeeded, takenAgo: 1_990)])
        world.deployment("w1", at: -2_000, [("d1", .succeeded, takenAgo: 1_990), ("d2", .succeeded, takenAgo: 1_990)])
        world.deployment("m2", digest: "hand", version: "1.9", purpose: .manual, at: -2_000, [("d1", .failed, takenAgo: 1_990)])
        world.report("d2", version: "2.0", digest: world.digest)
        try Self.expectKeptAndNeeded(world, "m2-d1")
    }

    @Test func anExecutionADeviceSaysItWorksOnIsKeptThoughTheServerEndedIt() throws {
        var world = World(fleet: try RolloutDecisionTests.fleet(), count: 2)
        world.deployment("m1", digest: "hand", version: "1.9", purpose: .manual, at: -2_000, [("d1", .cancelled, takenAgo: 1_990)])
        world.report("d1", version: "1.0", digest: "old", executing: "m1-d1")
        try Self.expectKeptAndNeeded(world, "m1-d1")
    }

    @Test func anUnfinishedExecutionOfAReleaseNoLongerWantedIsKeptToBeEnded() throws {
        var world = World(fleet: try RolloutDecisionTests.fleet(), count: 2)
        world.deployment("r0", digest: "older", version: "1.5", at: -2_000, [("d1", .running, takenAgo: 20)])
        #expect(RolloutDecisionTests.ends(try RolloutDecision.decide(Self.snapshot(world)))["r0-d1"] == .superseded)
        try Self.expectKeptAndNeeded(world, "r0-d1")
    }

    @Test func aRecentHealOfAnotherReleaseHoldsTheNextHeal() throws {
        var world = World(fleet: try RolloutDecisionTests.fleet(selfHeal: true), count: 1)
        // A heal of the version wanted a minute ago, cancelled when d1 went quiet.
        world.deployment("h0", digest: "before", version: "1.8", purpose: .heal, at: -60, [("d1", .cancelled, takenAgo: nil)])
        world.deployment("w1", at: -30, [("d1", .succeeded, takenAgo: 25)])
        world.executions[world.executions.count - 1].updatedAt = world.now.addingTimeInterval(-20)
        world.report("d1", version: "1.0", digest: "old")
        let whole = try RolloutDecision.decide(Self.snapshot(world))
        #expect(whole.report.apps[0].drifted == ["d1"])
        #expect(!whole.actions.contains { if case .heal = $0 { true } else { false } })
        try Self.expectKeptAndNeeded(world, "h0-d1")
    }

    @Test func aLongHistoryIsCutToAFewExecutionsPerDevice() throws {
        let devices = 50
        var world = World(fleet: try RolloutDecisionTests.fleet(), count: devices)
        // A hundred releases before the one wanted now, each rolled out to every device.
        for release in 0..<100 {
            world.deployment("old\(release)", digest: "digest\(release)", version: "1.\(release)", at: Double(-100_000 + release * 600),
                             (1...devices).map { ("d\($0)", release % 7 == 3 && $0 % 5 == 0 ? .failed : .succeeded, takenAgo: Double(99_000 - release * 600)) })
        }
        world.deployment("w1", at: -100, (1...devices).map { ("d\($0)", $0 % 2 == 0 ? .succeeded : .running, takenAgo: 50) })
        for number in stride(from: 2, through: devices, by: 2) { world.report("d\(number)", version: "2.0", digest: world.digest) }
        let full = Self.snapshot(world)
        let kept = ExecutionHistory.kept(in: full)
        // The wanted release's 50, and of the hundred before, each device's newest (one execution).
        #expect(full.executions.count == 5_050)
        #expect(kept.count == 100)
        var cut = full
        cut.executions = kept
        let whole = try RolloutDecision.decide(full)
        let overCut = try RolloutDecision.decide(cut)
        #expect(overCut.actions == whole.actions)
        #expect(overCut.report == whole.report)
    }

    /// Snapshots no store makes, decided alike anyway: a deployment id listed twice is the first
    /// listed, and an empty id is an id like any other.
    @Test func aRepeatedOrEmptyDeploymentIdIsReadAsTheDecisionReadsIt() throws {
        var world = World(fleet: try RolloutDecisionTests.fleet(), count: 2)
        world.report("d1", version: "1.8", digest: "o2")
        world.deployments = [
            .init(id: "x", app: "app", version: "2.0", digest: world.digest, purpose: .rollout, group: "all", createdAt: world.now.addingTimeInterval(-100)),
            .init(id: "x", app: "app", version: "1.5", digest: "o", purpose: .manual, createdAt: world.now.addingTimeInterval(-500)),
            .init(id: "y", app: "app", version: "1.8", digest: "o2", purpose: .manual, createdAt: world.now.addingTimeInterval(-200)),
        ]
        world.executions = [
            .init(id: "e1", deploymentID: "x", deviceID: "d1", state: .succeeded, updatedAt: world.now.addingTimeInterval(-90)),
            .init(id: "e2", deploymentID: "y", deviceID: "d1", state: .succeeded, updatedAt: world.now.addingTimeInterval(-190)),
        ]
        // e1 is of the first "x", the rollout: d1 finished it, so no wave takes it.
        #expect(RolloutDecisionTests.waves(try RolloutDecision.decide(Self.snapshot(world))) == [["d2"]])
        try Self.expectKeptAndNeeded(world, "e1")

        world.deployments[0].id = ""
        world.deployments.remove(at: 1)
        world.executions = [.init(id: "e1", deploymentID: "", deviceID: "d1", state: .succeeded, updatedAt: world.now.addingTimeInterval(-90))]
        #expect(RolloutDecisionTests.waves(try RolloutDecision.decide(Self.snapshot(world))) == [["d2"]])
        try Self.expectKeptAndNeeded(world, "e1")
    }
}
