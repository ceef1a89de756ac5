import FleetCore
import FleetProtocol
import FleetSimulation
import Foundation
import Testing

/// The rollout decision as a table: a snapshot in, actions and status out. Milliseconds each.
struct RolloutDecisionTests {
    static let t0 = Date(timeIntervalSinceReferenceDate: 800_000_000)

    /// One app on every device (`ring` tag), rolled out by `policy`.
    static func fleet(version: String = "2.0", policy: String = "{batchSize: 2, maxUnavailable: 2, maxFailures: 1, onAbort: rollback, executionTimeout: 60s}",
                      selfHeal: Bool = false) throws -> CompiledFleet {
        var tree = FleetTree()
        let files = [
            "fleet.yaml": "kind: Fleet\nproject: p\n",
            "groups/all.yaml": "kind: Group\nname: all\nselector: ring\n",
            "flows/f.yaml": "kind: UpdateFlow\nname: f\nsteps:\n  - {name: s, run: \"install ${version}\"}\n",
            "apps/app.yaml": "kind: App\nname: app\nflow: f\nselfHeal: \(selfHeal)\ntargets:\n  - {group: all, version: \"\(version)\"}\nrollout: \(policy)\n",
        ]
        for (path, text) in files { tree.addFile(path, bytes: Array(text.utf8)) }
        return try FleetLoader.load(tree)
    }

    /// A table row's world: devices d1…dN at 1.0, heard `heardAgo` seconds before now (nil: never).
    struct World {
        var fleet: CompiledFleet
        var devices: [FleetSnapshot.Device]
        var deployments: [FleetSnapshot.Deployment] = []
        var executions: [FleetSnapshot.Execution] = []
        var suspended: Set<String> = []
        var now = RolloutDecisionTests.t0

        init(fleet: CompiledFleet, count: Int, offline: Set<Int> = []) {
            self.fleet = fleet
            devices = (1...count).map { number in
                FleetSnapshot.Device(id: "d\(number)", tags: [("ring", "main")], apps: [(name: "app", version: "1.0", digest: "old")],
                                     lastHeard: offline.contains(number) ? RolloutDecisionTests.t0.addingTimeInterval(-3_600) : RolloutDecisionTests.t0)
            }
        }

        var digest: String { fleet.apps[0].targets[0].digest }

        mutating func deployment(_ id: String, digest: String? = nil, version: String = "2.0", purpose: DeploymentPurpose = .rollout,
                                 at: Double = -100, aborted: Bool = false, _ executions: [(String, ExecutionState, takenAgo: Double?)]) {
            deployments.append(.init(id: id, app: "app", version: version, digest: digest ?? self.digest, purpose: purpose, group: "all",
                                     createdAt: now.addingTimeInterval(at), aborted: aborted))
            for (device, state, takenAgo) in executions {
                self.executions.append(.init(id: "\(id)-\(device)", deploymentID: id, deviceID: device, state: state,
                                             updatedAt: now.addingTimeInterval(takenAgo.map { -$0 } ?? at),
                                             takenAt: takenAgo.map { now.addingTimeInterval(-$0) }))
            }
        }

        mutating func report(_ device: String, version: String, digest: String?, heardAgo: Double = 0, executing: String? = nil) {
            let index = devices.firstIndex { $0.id == device }!
            devices[index].apps = [(name: "app", version: version, digest: digest)]
            devices[index].lastHeard = now.addingTimeInterval(-heardAgo)
            devices[index].executing = executing
        }

        func decide() throws -> RolloutDecision {
            try RolloutDecision.decide(FleetSnapshot(commit: "c1", fleet: fleet, devices: devices, deployments: deployments, executions: executions,
                                                     suspended: suspended, now: now))
        }
    }

    static func waves(_ decision: RolloutDecision) -> [[String]] {
        decision.actions.compactMap { if case .startWave(_, _, _, let devices) = $0 { devices } else { nil } }
    }

    static func ends(_ decision: RolloutDecision) -> [String: RolloutAction.EndReason] {
        Dictionary(uniqueKeysWithValues: decision.actions.compactMap { if case .end(_, let id, _, _, let reason, _) = $0 { (id, reason) } else { nil } })
    }

    @Test func theFirstWaveTakesOnlineDevicesAndOfflineOnesWait() throws {
        let world = World(fleet: try Self.fleet(), count: 5, offline: [1, 4])
        let decision = try world.decide()
        #expect(Self.waves(decision) == [["d2", "d3"]])
        let target = decision.report.apps[0].targets[0]
        #expect(target.offline == 2)
        #expect(target.failed == 0)
        #expect(target.state == "updating")
    }

    @Test func theNextWaveWaitsForTheRunningOne() throws {
        var world = World(fleet: try Self.fleet(), count: 5)
        world.deployment("w1", [("d1", .succeeded, takenAgo: 50), ("d2", .running, takenAgo: 10)])
        #expect(Self.waves(try world.decide()).isEmpty)
        world.executions[1].state = .succeeded
        #expect(Self.waves(try world.decide()) == [["d3", "d4"]])
    }

    @Test(arguments: [
        // (state, taken seconds ago, device online, expected end)
        (ExecutionState.queued, nil as Double?, false, RolloutAction.EndReason.offlineBeforeTaking as RolloutAction.EndReason?),
        (.queued, nil, true, nil),
        (.assigned, 30, true, nil),
        (.running, 61, true, .stalled),
        (.running, 61, false, .offlineWhileRunning),
        (.assigned, 3_600, false, .offlineWhileRunning),
    ])
    func executionsTheServerEnds(state: ExecutionState, takenAgo: Double?, online: Bool, expected: RolloutAction.EndReason?) throws {
        var world = World(fleet: try Self.fleet(), count: 2, offline: online ? [] : [1])
        world.deployment("w1", at: -30, [("d1", state, takenAgo: takenAgo)])
        let decision = try world.decide()
        #expect(Self.ends(decision)["w1-d1"] == expected)
        // Only a stall is a failure; an offline device is never counted as failed.
        #expect(decision.report.apps[0].targets[0].failed == (expected == .stalled ? 1 : 0))
        if expected == .offlineWhileRunning || expected == .offlineBeforeTaking {
            #expect(expected?.state == .cancelled)
            #expect(decision.report.apps[0].targets[0].offline == 1)
        }
    }

    @Test func aQueuedExecutionNotTakenInTimeIsOfferedAgainNotFailed() throws {
        var world = World(fleet: try Self.fleet(), count: 1)
        world.deployment("w1", at: -61, [("d1", .queued, takenAgo: nil)])
        let decision = try world.decide()
        #expect(Self.ends(decision)["w1-d1"] == .notTaken)
        #expect(decision.report.apps[0].targets[0].failed == 0)
    }

    @Test func anUnwantedDigestIsSupersededAndItsDevicesMoveOn() throws {
        var world = World(fleet: try Self.fleet(version: "3.0"), count: 2)
        world.deployment("w1", digest: "digest-of-2.0", [("d1", .running, takenAgo: 5), ("d2", .queued, takenAgo: nil)])
        let decision = try world.decide()
        #expect(Self.ends(decision) == ["w1-d1": .superseded, "w1-d2": .superseded])
        #expect(Self.waves(decision) == [["d1", "d2"]])
    }

    @Test func failuresPastTheThresholdAbortAndRollBackTheChangedDevices() throws {
        var world = World(fleet: try Self.fleet(), count: 6)
        world.deployment("v1", digest: "old", version: "1.0", at: -10_000, (1...6).map { ("d\($0)", .succeeded, takenAgo: 9_000) })
        world.deployment("w1", [("d1", .succeeded, takenAgo: 50), ("d2", .failed, takenAgo: 50)])
        world.deployment("w2", at: -40, [("d3", .failed, takenAgo: 30), ("d4", .succeeded, takenAgo: 30)])
        world.report("d1", version: "2.0", digest: world.digest)
        let decision = try world.decide()
        #expect(Self.waves(decision).isEmpty)
        #expect(decision.actions.contains(.abortRollout(app: "app", group: "all", digest: world.digest, deployments: ["w1", "w2"], failed: 2, allowed: 1)))
        #expect(decision.actions.contains(.rollBack(app: "app", abortedDigest: world.digest, restoring: "v1", devices: ["d1", "d4"])))
        #expect(decision.report.apps[0].targets[0].state == "aborted")
        #expect(FleetStatusReport.state(of: decision.report.apps[0]) == "failure")
    }

    /// Found by the simulator (seed 1036987): a device got 2.0, then 2.1 failed on it and left it
    /// on 2.0; 2.0 is wanted again and its rollout aborts. The device runs what the aborted
    /// rollout gave it, so it is rolled back too — though its newest execution is 2.1's failure.
    @Test func aRollbackTakesEveryDeviceRunningTheAbortedVersionFromItsRollout() throws {
        var world = World(fleet: try Self.fleet(), count: 4)
        world.deployment("v1", digest: "old", version: "1.0", at: -10_000, (1...4).map { ("d\($0)", .succeeded, takenAgo: 9_000) })
        world.deployment("w0", at: -5_000, [("d1", .succeeded, takenAgo: 4_900)])
        world.deployment("x1", digest: "digest-of-2.1", version: "2.1", at: -3_000, [("d1", .failed, takenAgo: 2_900)])
        world.deployment("w1", aborted: true, [("d2", .failed, takenAgo: 50), ("d3", .failed, takenAgo: 50)])
        world.report("d1", version: "2.0", digest: world.digest)
        let decision = try world.decide()
        #expect(decision.actions.contains(.rollBack(app: "app", abortedDigest: world.digest, restoring: "v1", devices: ["d1"])))
        // Once its rollback has run — even if it failed — it is not tried again.
        world.deployment("r1", purpose: .rollback(abortedDigest: world.digest), at: -10, [("d1", .failed, takenAgo: 9)])
        #expect(!(try world.decide()).actions.contains { if case .rollBack = $0 { true } else { false } })
    }

    @Test func anAbortIsStickyEvenWhenALateReportTurnsAFailureIntoASuccess() throws {
        var world = World(fleet: try Self.fleet(), count: 6)
        world.deployment("w1", aborted: true, [("d1", .succeeded, takenAgo: 50), ("d2", .succeeded, takenAgo: 50)])
        let decision = try world.decide()
        #expect(Self.waves(decision).isEmpty)
        #expect(!decision.actions.contains { if case .abortRollout = $0 { true } else { false } })
        #expect(decision.report.apps[0].targets[0].state == "aborted")
    }

    @Test func aLateSuccessAfterATimeoutCountsAsASuccess() throws {
        var world = World(fleet: try Self.fleet(policy: "{batchSize: 1, maxUnavailable: 1, maxFailures: 0}"), count: 2)
        // The server timed d1 out, then d1's final report said succeeded: the store recorded it.
        world.deployment("w1", [("d1", .succeeded, takenAgo: 120)])
        let decision = try world.decide()
        #expect(decision.report.apps[0].targets[0].failed == 0)
        #expect(Self.waves(decision) == [["d2"]])
    }

    @Test func driftNeedsAHeartbeatPastTheGraceAndIsHealedOncePerInterval() throws {
        var world = World(fleet: try Self.fleet(selfHeal: true), count: 1)
        world.deployment("w1", [("d1", .succeeded, takenAgo: 100)])
        world.executions[0].updatedAt = world.now.addingTimeInterval(-20)
        // A heartbeat from just after the end still shows 1.0: not drift yet.
        world.report("d1", version: "1.0", digest: "old", heardAgo: 15)
        var decision = try world.decide()
        #expect(decision.report.apps[0].drifted == [])
        #expect(decision.report.apps[0].targets[0].state == "updating")
        // Heard again well after it: drift, healed.
        world.report("d1", version: "1.0", digest: "old", heardAgo: 0)
        decision = try world.decide()
        #expect(decision.report.apps[0].drifted == ["d1"])
        #expect(decision.actions.contains(.heal(app: "app", group: "all", digest: world.digest, devices: ["d1"])))
        // Healed a minute ago and drifted again: reported, not healed again within the interval.
        world.deployment("h1", purpose: .heal, at: -60, [("d1", .succeeded, takenAgo: 55)])
        world.executions[world.executions.count - 1].updatedAt = world.now.addingTimeInterval(-50)
        decision = try world.decide()
        #expect(decision.report.apps[0].drifted == ["d1"])
        #expect(!decision.actions.contains { if case .heal = $0 { true } else { false } })
        #expect(decision.report.apps[0].targets[0].state == "drifted")
    }

    @Test(arguments: [
        // (what the probe says, drifted with this reason, or nil: converged; a probe failure listed)
        (ProbeResult(version: "1.9", atMilliseconds: 0), "probe says 1.9, desired 2.0" as String?, nil as String?),
        (ProbeResult(version: nil, atMilliseconds: 0), "probe says nothing runs, desired 2.0", nil),
        (ProbeResult(version: "2.0", atMilliseconds: 0), nil, nil),
        (ProbeResult(version: nil, error: "probe timed out after 30 s", atMilliseconds: 0), nil, "probe timed out after 30 s"),
        (ProbeResult(version: nil, error: "probe exited with status 2: no such unit", atMilliseconds: 0), nil,
         "probe exited with status 2: no such unit"),
    ])
    func driftIsWhatTheProbeSaysAndAProbeThatCannotTellIsNeverDrift(probe: ProbeResult, drift: String?, failure: String?) throws {
        var world = World(fleet: try Self.fleet(selfHeal: true), count: 2)
        world.deployment("w1", [("d1", .succeeded, takenAgo: 100), ("d2", .succeeded, takenAgo: 100)])
        // The agent recorded the desired version on both; only d1's probe says otherwise.
        world.report("d1", version: "2.0", digest: world.digest)
        world.report("d2", version: "2.0", digest: world.digest)
        world.devices[0].probes = ["app": probe]
        let decision = try world.decide()
        let app = decision.report.apps[0]
        #expect(app.drifted == (drift == nil ? [] : ["d1"]))
        #expect(app.drift == drift.map { [.init(device: "d1", reason: $0)] } ?? [])
        #expect(decision.actions.contains(.heal(app: "app", group: "all", digest: world.digest, devices: ["d1"])) == (drift != nil))
        #expect(app.probeFailures == failure.map { [.init(device: "d1", reason: $0)] } ?? [])
        #expect(app.probeFailed == (failure == nil ? 0 : 1))
        #expect(app.targets[0].converged == (drift == nil ? 2 : 1))
        #expect(app.targets[0].state == (drift == nil ? "converged" : "drifted"))
    }

    @Test func withoutAProbeDriftSaysWhatTheAgentReports() throws {
        var world = World(fleet: try Self.fleet(selfHeal: true), count: 1)
        world.deployment("w1", [("d1", .succeeded, takenAgo: 100)])
        world.report("d1", version: "1.0", digest: "old")
        #expect(try world.decide().report.apps[0].drift == [.init(device: "d1", reason: "reports 1.0, desired 2.0")])
    }

    @Test func aProbeDecidesOnlyForItsOwnAppAndKeepsTheDigestOnlyWhenItAgrees() {
        var device = FleetSnapshot.Device(id: "d1", tags: [], apps: [(name: "a", version: "2.0", digest: "x"), (name: "b", version: "1.0", digest: "y"),
                                                                     (name: "c", version: "3.0", digest: "z")], lastHeard: nil)
        device.probes = ["a": ProbeResult(version: "2.0", atMilliseconds: 0), "b": ProbeResult(version: "0.9", atMilliseconds: 0),
                         "c": ProbeResult(version: nil, atMilliseconds: 0), "gone": ProbeResult(version: "1", atMilliseconds: 0)]
        let observed = device.observedApps.map { "\($0.name) \($0.version) \($0.digest ?? "-")" }
        #expect(observed == ["a 2.0 x", "b 0.9 -"])
    }

    @Test func aTargetWhoseOnlyRemainingDevicesAreOfflineHasConverged() throws {
        var world = World(fleet: try Self.fleet(), count: 3, offline: [3])
        for device in ["d1", "d2"] { world.report(device, version: "2.0", digest: world.digest) }
        let decision = try world.decide()
        let target = decision.report.apps[0].targets[0]
        #expect(target.state == "converged")
        #expect(target.label == "converged, 1 offline pending")
        #expect(FleetStatusReport.state(of: decision.report.apps[0]) == "success")
        #expect(decision.report.apps[0].summary.contains("1 offline pending"))
        #expect(decision.actions.isEmpty)
    }

    @Test func aSuspendedAppHoldsItsWavesButStillEndsWhatIsOverdue() throws {
        var world = World(fleet: try Self.fleet(), count: 3)
        world.suspended = ["app"]
        world.deployment("w1", [("d1", .running, takenAgo: 61)])
        let decision = try world.decide()
        #expect(Self.waves(decision).isEmpty)
        #expect(Self.ends(decision)["w1-d1"] == .stalled)
        #expect(decision.actions.contains(.hold(app: "app", group: "all", reason: "suspended by an operator")))
        #expect(decision.report.apps[0].targets[0].state == "suspended")
    }

    @Test func aDeviceResumingAnExecutionTheServerGaveUpOnIsBusy() throws {
        var world = World(fleet: try Self.fleet(policy: "{batchSize: 2, maxUnavailable: 2}"), count: 3)
        world.deployment("w1", [("d1", .cancelled, takenAgo: 3_000)])
        world.report("d1", version: "1.0", digest: "old", executing: "w1-d1")
        let decision = try world.decide()
        // d1 runs it: it counts against maxUnavailable and gets nothing new.
        #expect(Self.waves(decision).isEmpty, "a wave while d1 still runs")
        #expect(decision.report.apps[0].targets[0].updating == 1)
    }

    @Test func theDecisionIsTheSameInAnyOrderAndAfterARestart() throws {
        var world = World(fleet: try Self.fleet(selfHeal: true), count: 8, offline: [7])
        world.deployment("v1", digest: "old", version: "1.0", at: -10_000, (1...8).map { ("d\($0)", .succeeded, takenAgo: 9_000) })
        world.deployment("w1", [("d1", .succeeded, takenAgo: 50), ("d2", .failed, takenAgo: 50)])
        world.deployment("w2", at: -40, [("d3", .running, takenAgo: 90), ("d4", .queued, takenAgo: nil)])
        let first = try world.decide()
        world.deployments.reverse()
        world.devices.reverse()
        let second = try world.decide()
        #expect(first.actions == second.actions)
        #expect(first.report == second.report)
    }
}

/// `flotilla plan`'s waves are the waves the controller starts: the decision is driven over
/// random fleets and policies until it converges, every device finishing (or failing) what it
/// is given, and the waves it started are compared with the plan made before the first.
struct PlanIsTheRolloutTests {
    @Test func theWavesTheDecisionStartsAreThePlansWaves() throws {
        var random = SeededGenerator(seed: 7)
        for round in 0..<200 {
            let count = Int.random(in: 1...40, using: &random)
            let batch = Bool.random(using: &random) ? "\(Int.random(in: 1...8, using: &random))" : "\(Int.random(in: 1...100, using: &random))%"
            let unavailable = Bool.random(using: &random) ? "\(Int.random(in: 1...8, using: &random))" : "\(Int.random(in: 1...100, using: &random))%"
            let failures = "\(Int.random(in: 0...3, using: &random))"
            let policy = "{batchSize: \"\(batch)\", maxUnavailable: \"\(unavailable)\", maxFailures: \"\(failures)\", onAbort: pause}"
            let fleet = try RolloutDecisionTests.fleet(policy: policy)
            let offline = Set((1...count).filter { _ in Int.random(in: 0..<5, using: &random) == 0 })
            var world = RolloutDecisionTests.World(fleet: fleet, count: count, offline: offline)
            let inventory = DeviceInventory(world.devices.map {
                ReportedDevice(id: $0.id, tags: ["ring": "main"], apps: ["app": ReportedApp(version: "1.0", digest: "old")], online: !offline.contains(Int($0.id.dropFirst())!))
            })
            let target = try Planner.plan(fleet, inventory: inventory).apps[0].targets[0]
            let planned = target.waveDevices.map { $0.map { inventory.ids[Int($0.device)] } }

            var started: [[String]] = []
            var aborted = false
            for step in 0..<200 {
                let decision = try world.decide()
                if decision.actions.contains(where: { if case .abortRollout = $0 { true } else { false } }) { aborted = true }
                let waves = RolloutDecisionTests.waves(decision)
                if waves.isEmpty, world.executions.allSatisfy(\.state.isFinal) { break }
                for wave in waves {
                    started.append(wave)
                    world.deployment("w\(round)-\(step)", at: 0, wave.map { ($0, .queued, takenAgo: nil) })
                }
                // Every device takes its execution and finishes it; some fail.
                for index in world.executions.indices where !world.executions[index].state.isFinal {
                    let failed = Int.random(in: 0..<6, using: &random) == 0
                    world.executions[index].state = failed ? .failed : .succeeded
                    if !failed { world.report(world.executions[index].deviceID, version: "2.0", digest: world.digest) }
                }
                world.now = world.now.addingTimeInterval(1)
                for index in world.devices.indices where !offline.contains(index + 1) { world.devices[index].lastHeard = world.now }
            }
            if aborted {
                #expect(Array(planned.prefix(started.count)) == started, "round \(round), \(policy): \(started) is not a prefix of \(planned)")
            } else {
                #expect(started == planned, "round \(round), \(policy), offline \(offline.sorted())")
            }
        }
    }
}

/// A device that refuses updates (an update lock) is skipped, never failed, and listed with why.
struct UpdateLockTests {
    typealias World = RolloutDecisionTests.World

    @Test func aLockedDeviceIsSkippedAndListedWithItsReason() throws {
        var world = World(fleet: try RolloutDecisionTests.fleet(), count: 3)
        world.devices[0].lock = ("surgery in progress", nil)
        world.devices[2].lock = ("expired", RolloutDecisionTests.t0.addingTimeInterval(-1))
        let decision = try world.decide()
        #expect(RolloutDecisionTests.waves(decision) == [["d2", "d3"]])
        let target = decision.report.apps[0].targets[0]
        #expect(target.locked == 1 && target.failed == 0)
        #expect(decision.report.locked == [.init(device: "d1", reason: "surgery in progress")])
        #expect(decision.report.apps[0].summary.contains("1 locked pending"))
    }

    @Test func whenOnlyLockedDevicesAreLeftTheTargetHasConvergedWithThemPending() throws {
        var world = World(fleet: try RolloutDecisionTests.fleet(), count: 2)
        world.deployment("dep1", [("d2", .succeeded, takenAgo: 50)])
        world.report("d2", version: "2.0", digest: world.digest)
        world.devices[0].lock = ("on a call", RolloutDecisionTests.t0.addingTimeInterval(3_600))
        let decision = try world.decide()
        #expect(RolloutDecisionTests.waves(decision).isEmpty)
        #expect(decision.report.apps[0].targets[0].label == "converged, 1 locked pending")
        // Unlocked, it is the next wave.
        world.devices[0].lock = nil
        #expect(RolloutDecisionTests.waves(try world.decide()) == [["d1"]])
    }

    @Test func aQueuedExecutionOfADeviceThatLockedIsCancelledNotFailed() throws {
        var world = World(fleet: try RolloutDecisionTests.fleet(), count: 2)
        world.deployment("dep1", [("d1", .queued, takenAgo: nil), ("d2", .running, takenAgo: 10)])
        world.devices[0].lock = ("busy", nil)
        world.devices[1].lock = ("busy", nil)
        let ends = RolloutDecisionTests.ends(try world.decide())
        // What it took runs on; what it had not taken waits for the lock to go.
        #expect(ends == ["dep1-d1": .lockedBeforeTaking])
        #expect(RolloutAction.EndReason.lockedBeforeTaking.state == .cancelled)
    }
}
