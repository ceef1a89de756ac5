import FleetCore
import FleetProtocol
import Foundation
import Testing

/// What holds a target back before its first wave: notBefore, after (with bake), approval.
/// Tables of snapshots through the real decision; milliseconds each.
struct TargetGateTests {
    static let t0 = Date(timeIntervalSince1970: 1_796_000_000)

    /// canary (c1, c2) then main (m1…m3), both at 2.0; `main` is main's extra target keys.
    static func fleet(main: String, app: String = "", onAbort: String = "pause") throws -> CompiledFleet {
        try FleetFixtures.load([
            "fleet.yaml": "kind: Fleet\nproject: p\n",
            "groups/rings.yaml": "kind: Group\nname: canary\nselector: ring=canary\n---\nkind: Group\nname: main\nselector: ring=main\n",
            "flows/f.yaml": "kind: UpdateFlow\nname: f\nsteps:\n  - {name: s, run: \"install ${version}\"}\n",
            "apps/app.yaml": """
                kind: App
                name: app
                flow: f
                \(app)
                targets:
                  - {group: canary, version: "2.0"}
                  - {group: main, version: "2.0"\(main.isEmpty ? "" : ", " + main)}
                rollout: {batchSize: 5, maxUnavailable: 5, maxFailures: 0, onAbort: \(onAbort), executionTimeout: 1h}
                """,
        ])
    }

    struct World {
        var fleet: CompiledFleet
        var devices: [FleetSnapshot.Device] = []
        var deployments: [FleetSnapshot.Deployment] = []
        var executions: [FleetSnapshot.Execution] = []
        var approvals: Set<String> = []
        var samples: [String: [HealthSample]] = [:]
        var now = TargetGateTests.t0

        init(_ fleet: CompiledFleet) {
            self.fleet = fleet
            for (id, ring) in [("c1", "canary"), ("c2", "canary"), ("m1", "main"), ("m2", "main"), ("m3", "main")] {
                devices.append(FleetSnapshot.Device(id: id, tags: [("ring", ring)], apps: [(name: "app", version: "1.0", digest: "old")], lastHeard: now))
            }
        }

        func target(_ group: String) -> DesiredTarget { fleet.apps[0].targets.first { $0.group == group }! }

        /// The canary finished its rollout `ago` seconds before now: both devices run 2.0.
        mutating func canaryConverged(ago: Double) {
            let canary = target("canary")
            deployments.append(.init(id: "dep-canary", app: "app", version: "2.0", digest: canary.digest, purpose: .rollout, group: "canary",
                                     createdAt: now.addingTimeInterval(-ago - 600)))
            for (index, device) in ["c1", "c2"].enumerated() {
                executions.append(.init(id: "ex-\(device)", deploymentID: "dep-canary", deviceID: device, state: .succeeded,
                                        updatedAt: now.addingTimeInterval(-ago - Double(index) * 60), takenAt: now.addingTimeInterval(-ago - 300)))
                let at = devices.firstIndex { $0.id == device }!
                devices[at].apps = [(name: "app", version: "2.0", digest: canary.digest)]
            }
        }

        /// Moves the clock; every device is heard at the new time.
        mutating func at(_ date: Date) {
            now = date
            for index in devices.indices { devices[index].lastHeard = date }
        }

        mutating func approve(_ group: String, digest: String? = nil) {
            approvals.insert(FleetSnapshot.approvalKey(app: "app", group: group, digest: digest ?? target(group).digest))
        }

        func decide() throws -> RolloutDecision {
            try RolloutDecision.decide(FleetSnapshot(commit: "c1", fleet: fleet, devices: devices, deployments: deployments, executions: executions,
                                                     approvals: approvals, samples: samples, now: now))
        }
    }

    static func started(_ decision: RolloutDecision) -> [String: [String]] {
        var waves: [String: [String]] = [:]
        for case .startWave(_, let group, _, let devices) in decision.actions { waves[group] = devices }
        return waves
    }

    static func main(_ decision: RolloutDecision) -> FleetStatusReport.Target { decision.report.apps[0].targets[1] }

    @Test func notBeforeHoldsATargetUntilItsTime() throws {
        var world = World(try Self.fleet(main: "notBefore: \"2026-12-01T10:00:00+01:00\""))
        world.at(try Timestamp.parse("2026-12-01T08:59:59Z").get())
        let early = try world.decide()
        #expect(Self.started(early) == ["canary": ["c1", "c2"]])
        #expect(Self.main(early).state == "waiting")
        #expect(Self.main(early).reason == "waiting until 2026-12-01T09:00:00Z (notBefore)")
        #expect(FleetStatusReport.state(of: early.report.apps[0]) == "pending")
        world.at(try Timestamp.parse("2026-12-01T09:00:00Z").get())
        #expect(Self.started(try world.decide())["main"] == ["m1", "m2", "m3"])
    }

    @Test func theAppsNotBeforeHoldsEveryTarget() throws {
        var world = World(try Self.fleet(main: "", app: "notBefore: 2026-12-01T09:00:00Z"))
        world.at(try Timestamp.parse("2026-12-01T08:00:00Z").get())
        let decision = try world.decide()
        #expect(Self.started(decision).isEmpty)
        #expect(decision.report.apps[0].targets.allSatisfy { $0.state == "waiting" })
    }

    @Test func aPromotedTargetWaitsForItsPredecessorToConvergeAndBake() throws {
        var world = World(try Self.fleet(main: "after: canary, bake: 2h"))
        let first = try world.decide()
        #expect(Self.started(first) == ["canary": ["c1", "c2"]])
        #expect(Self.main(first).reason == "waiting for canary to converge (after)")

        world.canaryConverged(ago: 3_600)
        let baking = try world.decide()
        #expect(Self.started(baking).isEmpty)
        #expect(baking.report.apps[0].targets[0].state == "converged")
        let since = Timestamp.format(world.now.addingTimeInterval(-3_600))
        let until = Timestamp.format(world.now.addingTimeInterval(3_600))
        #expect(Self.main(baking).reason == "baking: canary converged at \(since); starts at \(until)")

        world.at(world.now.addingTimeInterval(3_600))
        #expect(Self.started(try world.decide())["main"] == ["m1", "m2", "m3"])
    }

    @Test func withoutBakeAPromotedTargetStartsOnceItsPredecessorConverged() throws {
        var world = World(try Self.fleet(main: "after: canary"))
        world.canaryConverged(ago: 1)
        #expect(Self.started(try world.decide())["main"] == ["m1", "m2", "m3"])
    }

    @Test func anApprovalBelongsToOneDigest() throws {
        var world = World(try Self.fleet(main: "approval: required"))
        let waiting = try world.decide()
        #expect(Self.main(waiting).state == "waiting")
        #expect(Self.main(waiting).reason?.hasPrefix("awaiting approval of ") == true)
        #expect(Self.main(waiting).reason?.hasSuffix("(flotilla approve app main)") == true)
        // The forge's pending status says what it waits for.
        #expect(waiting.report.apps[0].summary.contains("; main awaiting approval of "))
        // An approval of another release of the target does not count.
        world.approve("main", digest: String(repeating: "0", count: 64))
        #expect(Self.started(try world.decide())["main"] == nil)
        world.approve("main")
        #expect(Self.started(try world.decide())["main"] == ["m1", "m2", "m3"])
    }

    @Test func aTargetThatStartedIsNotHeldAgain() throws {
        // main started before its gate was added (a rollout deployment of its digest exists).
        var world = World(try Self.fleet(main: "approval: required, notBefore: 2030-01-01T00:00:00Z"))
        let main = world.target("main")
        world.deployments.append(.init(id: "dep-main", app: "app", version: "2.0", digest: main.digest, purpose: .rollout, group: "main",
                                       createdAt: world.now.addingTimeInterval(-600)))
        world.executions.append(.init(id: "ex-m1", deploymentID: "dep-main", deviceID: "m1", state: .succeeded, updatedAt: world.now.addingTimeInterval(-60)))
        let index = world.devices.firstIndex { $0.id == "m1" }!
        world.devices[index].apps = [(name: "app", version: "2.0", digest: main.digest)]
        #expect(Self.started(try world.decide())["main"] == ["m2", "m3"])
    }

    @Test(arguments: [
        ("after: main", "apps/app.yaml:7:42: error: a target cannot come after itself"),
        ("after: europe", "apps/app.yaml:7:42: error: 'after: europe' names no target of app 'app' listed before this one"),
        ("bake: 2h", "apps/app.yaml:7:41: error: 'bake' needs 'after'"),
        ("after: canary, bake: 0s", "apps/app.yaml:7:56: error: 'bake' must be longer than 0s"),
        ("approval: always", "apps/app.yaml:7:45: error: 'approval' must be required or none, not 'always'"),
        ("notBefore: \"2026-12-05T02:00:00\"", "apps/app.yaml:7:46: error: invalid time '2026-12-05T02:00:00' for 'notBefore': it has no zone"),
        ("notBefore: \"2026-02-30T02:00:00Z\"", "apps/app.yaml:7:46: error: invalid time '2026-02-30T02:00:00Z' for 'notBefore': there is no day 30 in month 2 of 2026"),
    ])
    func badGatesAreRefusedWhereTheyAreWritten(_ testCase: (String, String)) throws {
        let error = #expect(throws: FleetValidationError.self) { try Self.fleet(main: testCase.0) }
        let messages = error?.diagnostics.map(\.description) ?? []
        #expect(messages.contains { $0.hasPrefix(testCase.1) }, "\(messages)")
    }

    @Test func anAfterNamingALaterTargetSaysToListItFirst() throws {
        let files = [
            "fleet.yaml": "kind: Fleet\nproject: p\n",
            "groups/rings.yaml": "kind: Group\nname: canary\nselector: ring=canary\n---\nkind: Group\nname: main\nselector: ring=main\n",
            "flows/f.yaml": "kind: UpdateFlow\nname: f\nsteps:\n  - {name: s, run: x}\n",
            "apps/app.yaml": "kind: App\nname: app\nflow: f\ntargets:\n  - {group: canary, version: '2', after: main}\n  - {group: main, version: '2', after: canary}\n",
        ]
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        #expect(error?.diagnostics.map(\.description) == [
            "apps/app.yaml:5:42: error: 'after: main' names a target listed after this one; list 'main' first, as targets are promoted in order",
        ])
    }

    /// The pull-request plan says what holds each changing target back.
    @Test func thePlanSaysWhenAGatedTargetStarts() throws {
        let fleet = try Self.fleet(main: "after: canary, bake: 90m, approval: required", app: "notBefore: 2026-12-05T02:00:00+01:00")
        let world = World(fleet)
        let devices = world.devices.map { FleetSnapshot.Device(id: $0.id, tags: $0.tags, apps: $0.apps, lastHeard: $0.lastHeard) }
        var inventory = DeviceInventory()
        for device in devices { inventory.append(id: device.id, tags: device.tags, apps: device.apps, online: true) }
        let plan = try Planner.plan(fleet, inventory: inventory)
        let text = PlanRenderer.text(plan)
        #expect(text.contains("    starts not before 2026-12-05T01:00:00Z\n"), "\(text)")
        #expect(text.contains("    starts after canary has converged and stayed so for 1h30m, not before 2026-12-05T01:00:00Z, "
                              + "once approved (flotilla approve app main)\n"), "\(text)")
        #expect(PlanRenderer.markdown(plan).contains("**Gate:** starts after canary has converged"))
    }

    @Test(arguments: [
        ("1970-01-01T00:00:00Z", 0.0),
        ("2000-03-01T00:00:00Z", 951_868_800.0),
        ("2026-12-05T03:00:00+01:00", 1_796_436_000.0),
        ("2026-12-04T21:30:00-04:30", 1_796_436_000.0),
        ("2028-02-29T12:00:00.5z", 1_835_438_400.5),
    ])
    func timestampsAreRFC3339WithAZone(_ testCase: (String, Double)) throws {
        let date = try Timestamp.parse(testCase.0).get()
        #expect(date.timeIntervalSince1970 == testCase.1)
        #expect(try Timestamp.parse(Timestamp.format(date)).get().timeIntervalSince1970 == testCase.1.rounded(.down))
    }
}
