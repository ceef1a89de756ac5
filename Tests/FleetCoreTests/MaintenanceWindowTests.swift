import FleetCore
import FleetProtocol
import Foundation
import Testing

/// Maintenance windows: weekly allow and deny ranges read in each device's own zone. Tables of
/// instants and snapshots through the real decision; milliseconds each.
struct MaintenanceWindowTests {
    /// Wednesday 2 December 2026, 00:30 UTC: 01:30 in Berlin, 19:30 on Tuesday in New York.
    static let wednesday = try! Timestamp.parse("2026-12-02T00:30:00Z").get()
    static let weekdayNights = "windows: {allow: [\"Mon-Fri 01:00-05:00\"]}"

    static func windows(_ allow: [String], deny: [String] = [], zone: String = "UTC") throws -> MaintenanceWindows {
        MaintenanceWindows(timeZone: zone, allow: try allow.map { try WeeklyRange.parse($0).get() }, deny: try deny.map { try WeeklyRange.parse($0).get() })
    }

    static func zone(_ name: String) -> TimeZone { MaintenanceWindows.zone(named: name)! }

    /// main's devices: m1 in Berlin, m2 in New York, m3 without a zone tag (the windows' zone).
    static func world(main: String, at instant: Date = wednesday, onAbort: String = "pause") throws -> TargetGateTests.World {
        var world = TargetGateTests.World(try TargetGateTests.fleet(main: main, onAbort: onAbort))
        world.at(instant)
        for (id, zone) in [("m1", "Europe.Berlin"), ("m2", "America.New_York")] {
            let index = world.devices.firstIndex { $0.id == id }!
            world.devices[index].tags.append(("timezone", zone))
        }
        return world
    }

    @Test(arguments: [
        // (allow, deny, zone, instant, open)
        (["Mon-Fri 01:00-05:00"], [String](), "UTC", "2026-12-02T01:00:00Z", true),
        (["Mon-Fri 01:00-05:00"], [], "UTC", "2026-12-02T05:00:00Z", false),
        (["Mon-Fri 01:00-05:00"], [], "Europe/Berlin", "2026-12-02T00:30:00Z", true),
        (["Mon-Fri 01:00-05:00"], [], "America/New_York", "2026-12-02T00:30:00Z", false),
        (["Mon-Fri 01:00-05:00"], [], "UTC", "2026-12-05T02:00:00Z", false),         // a Saturday
        (["Fri 22:00-02:00"], [], "UTC", "2026-12-05T01:59:00Z", true),              // past midnight into Saturday
        (["Fri 22:00-02:00"], [], "UTC", "2026-12-05T02:00:00Z", false),
        (["Fri-Mon"], [], "UTC", "2026-12-06T12:00:00Z", true),                      // Sunday, in a range over the weekend
        (["Fri-Mon"], [], "UTC", "2026-12-02T12:00:00Z", false),
        (["daily 00:00-24:00"], ["Wed 01:00-02:00"], "UTC", "2026-12-02T01:30:00Z", false), // deny wins
        ([], ["Wed"], "UTC", "2026-12-02T12:00:00Z", false),                         // no allow: all but what is denied
        ([], ["Wed"], "UTC", "2026-12-03T12:00:00Z", true),
        (["sat,SUNDAY"], [], "Asia/Kolkata", "2026-12-05T18:30:00Z", true),          // Sunday 00:00 in Kolkata (+05:30)
        (["sat,SUNDAY"], [], "Asia/Kolkata", "2026-12-06T18:29:00Z", true),          // Sunday 23:59
        (["sat,SUNDAY"], [], "Asia/Kolkata", "2026-12-06T18:30:00Z", false),         // Monday
    ])
    func windowsOpenWhereTheyAreWritten(_ row: ([String], [String], String, String, Bool)) throws {
        let windows = try Self.windows(row.0, deny: row.1)
        let instant = try Timestamp.parse(row.3).get()
        #expect(windows.isOpen(at: instant, in: Self.zone(row.2)) == row.4, "\(row)")
    }

    @Test(arguments: [
        ("Mon-Fry 01:00-05:00", "'Fry' is not a day: use Mon, Tue, Wed, Thu, Fri, Sat or Sun"),
        ("Mon 01:00-01:00", "'01:00-01:00' starts and ends at the same time"),
        ("Mon 1:00-05:00", "'1:00-05:00' is not a time range"),
        ("Mon 01:00-24:30", "'01:00-24:30' is not a time range"),
        ("Mon 24:00-01:00", "'24:00-01:00' is not a time range"),
        ("Mon 01:00-05:00 extra", "write it as DAYS [HH:MM-HH:MM]"),
        ("", "write it as DAYS [HH:MM-HH:MM]"),
    ])
    func badRangesSayWhatIsWrong(_ row: (String, String)) {
        guard case .failure(let problem) = WeeklyRange.parse(row.0) else {
            Issue.record("'\(row.0)' parsed")
            return
        }
        #expect(problem.reason.hasPrefix(row.1), "\(problem.reason)")
    }

    /// The next opening is the device's wall-clock time, across a change of daylight saving time.
    @Test func theNextOpeningFollowsTheDevicesWallClock() throws {
        let nights = try Self.windows(["daily 04:00-05:00"])
        // Saturday 24 October 2026, 14:00 in Berlin (summer time); the clocks go back that night.
        let saturday = try Timestamp.parse("2026-10-24T12:00:00Z").get()
        let next = try #require(nights.nextOpening(after: saturday, in: Self.zone("Europe/Berlin")))
        #expect(Timestamp.format(next) == "2026-10-25T03:00:00Z")  // 04:00 winter time
        #expect(MaintenanceWindows.localText(next, in: Self.zone("Europe/Berlin")) == "2026-10-25 04:00 Europe/Berlin")
        // Already open: now.
        let open = try Timestamp.parse("2026-10-25T03:10:00Z").get()
        #expect(nights.nextOpening(after: open, in: Self.zone("Europe/Berlin")) == open)
        // A deny ending opens the window.
        let denied = try Self.windows([], deny: ["Wed"])
        #expect(denied.nextOpening(after: Self.wednesday, in: Self.zone("UTC")).map(Timestamp.format) == "2026-12-03T00:00:00Z")
    }

    @Test func aWaveStartsOnlyOnDevicesInsideTheirWindow() throws {
        let world = try Self.world(main: Self.weekdayNights)
        let decision = try world.decide()
        // 01:30 in Berlin: inside; 19:30 in New York and 00:30 UTC (no tag): outside.
        #expect(TargetGateTests.started(decision)["main"] == ["m1"])
        let main = TargetGateTests.main(decision)
        #expect(main.outsideWindow == 2)
        #expect(main.label == "updating", "\(main)")
        // The canary has no windows: it starts at once.
        #expect(TargetGateTests.started(decision)["canary"] == ["c1", "c2"])
    }

    @Test func aTargetWithEveryDeviceOutsideItsWindowSaysWhenItOpensNext() throws {
        // Wednesday 10:00 UTC: 11:00 in Berlin, 05:00 in New York — all outside.
        let world = try Self.world(main: Self.weekdayNights, at: try Timestamp.parse("2026-12-02T10:00:00Z").get())
        let decision = try world.decide()
        #expect(TargetGateTests.started(decision)["main"] == nil)
        let main = TargetGateTests.main(decision)
        #expect(main.state == "waiting")
        // Berlin's 01:00 on Thursday comes first (00:00 UTC), before UTC's and New York's.
        #expect(main.reason == "waiting for window (next opens 2026-12-03 01:00 Europe/Berlin)")
        #expect(decision.actions.contains(.hold(app: "app", group: "main", reason: main.reason!)))
        #expect(decision.report.apps[0].summary.contains("main waiting for window (next opens 2026-12-03 01:00 Europe/Berlin)"))
    }

    /// An execution already running when the window closes runs on; one the device has not
    /// taken yet is withdrawn and offered again when the window opens.
    @Test func aRunningExecutionIsNeverCutOffButAnUntakenOneIsWithdrawn() throws {
        var world = try Self.world(main: Self.weekdayNights, at: try Timestamp.parse("2026-12-02T10:00:00Z").get())
        let main = world.target("main")
        world.deployments.append(.init(id: "dep-main", app: "app", version: "2.0", digest: main.digest, purpose: .rollout, group: "main",
                                       createdAt: world.now.addingTimeInterval(-600)))
        world.executions.append(.init(id: "ex-m1", deploymentID: "dep-main", deviceID: "m1", state: .running, updatedAt: world.now.addingTimeInterval(-60),
                                      takenAt: world.now.addingTimeInterval(-500)))
        world.executions.append(.init(id: "ex-m2", deploymentID: "dep-main", deviceID: "m2", state: .queued, updatedAt: world.now.addingTimeInterval(-600)))
        let decision = try world.decide()
        let ended = decision.actions.compactMap { action -> String? in
            if case .end(_, let execution, _, let state, let reason, _) = action { return "\(execution) \(state.rawValue) \(reason.rawValue)" }
            return nil
        }
        #expect(ended == ["ex-m2 cancelled outsideWindowBeforeTaking"])
        #expect(TargetGateTests.started(decision)["main"] == nil)
    }

    /// A rollback waits for the window too; the aborted target says so.
    @Test func aRollbackWaitsForTheDevicesWindow() throws {
        // Wednesday 10:00 UTC: m1 (Berlin) is outside its window.
        var world = try Self.world(main: Self.weekdayNights, at: try Timestamp.parse("2026-12-02T10:00:00Z").get(), onAbort: "rollback")
        let main = world.target("main")
        world.deployments.append(.init(id: "dep-old", app: "app", version: "1.0", digest: "old", purpose: .rollout, group: "main",
                                       createdAt: world.now.addingTimeInterval(-86_400)))
        world.executions.append(.init(id: "ex-old", deploymentID: "dep-old", deviceID: "m1", state: .succeeded, updatedAt: world.now.addingTimeInterval(-86_000)))
        world.deployments.append(.init(id: "dep-main", app: "app", version: "2.0", digest: main.digest, purpose: .rollout, group: "main",
                                       createdAt: world.now.addingTimeInterval(-3_600), aborted: true))
        world.executions.append(.init(id: "ex-m1", deploymentID: "dep-main", deviceID: "m1", state: .succeeded, updatedAt: world.now.addingTimeInterval(-3_000),
                                      takenAt: world.now.addingTimeInterval(-3_500)))
        world.devices[world.devices.firstIndex { $0.id == "m1" }!].apps = [(name: "app", version: "2.0", digest: main.digest)]
        let closed = try world.decide()
        #expect(!closed.actions.contains { if case .rollBack = $0 { true } else { false } })
        #expect(TargetGateTests.main(closed).state == "aborted")
        #expect(TargetGateTests.main(closed).reason == "1 devices wait for their window to be rolled back")
        // Thursday 00:30 UTC is 01:30 in Berlin: rolled back.
        world.at(try Timestamp.parse("2026-12-03T00:30:00Z").get())
        #expect(try world.decide().actions.contains(.rollBack(app: "app", abortedDigest: main.digest, restoring: "dep-old", devices: ["m1"])))
    }

    /// The target's windows, else the app's, else fleet.yaml's.
    @Test func theMostSpecificWindowsHold() throws {
        let files = [
            "fleet.yaml": "kind: Fleet\nproject: p\ndefaults:\n  windows: {timezone: Europe/Berlin, allow: [\"Sat,Sun\"]}\n",
            "groups/rings.yaml": "kind: Group\nname: canary\nselector: ring=canary\n---\nkind: Group\nname: main\nselector: ring=main\n",
            "flows/f.yaml": "kind: UpdateFlow\nname: f\nsteps:\n  - {name: s, run: x}\n",
            "apps/a.yaml": "kind: App\nname: a\nflow: f\ntargets:\n  - {group: canary, version: '2'}\n"
                + "  - {group: main, version: '2', windows: {zoneTag: site-zone, deny: [daily 08:00-20:00]}}\n",
            "apps/b.yaml": "kind: App\nname: b\nflow: f\nwindows: {allow: [Mon]}\ntargets:\n  - {group: main, version: '2'}\n",
        ]
        let fleet = try FleetFixtures.load(files)
        let a = fleet.apps.first { $0.name == "a" }!, b = fleet.apps.first { $0.name == "b" }!
        #expect(a.targets[0].windows?.allow.map(\.text) == ["Sat,Sun"])
        #expect(a.targets[0].windows?.timeZone == "Europe/Berlin")
        #expect(a.targets[1].windows?.deny.map(\.text) == ["daily 08:00-20:00"])
        #expect(a.targets[1].windows?.zoneTag == "site-zone")
        #expect(a.targets[1].windows?.timeZone == "UTC")
        #expect(b.targets[0].windows?.allow.map(\.text) == ["Mon"])
        // Windows are not part of what is deployed: the digest does not move with them.
        let plain = try FleetFixtures.load(files.merging(["fleet.yaml": "kind: Fleet\nproject: p\n"]) { $1 })
        #expect(plain.apps.first { $0.name == "a" }!.targets[0].digest == a.targets[0].digest)
    }

    @Test(arguments: [
        ("windows: {timezone: Europe/Berln, allow: [Mon]}", "apps/app.yaml:7:55: error: unknown time zone 'Europe/Berln': use an IANA name such as Europe/Berlin or UTC; did you mean 'Europe/Berlin'?"),
        ("windows: {allow: [\"Mon-Fry 01:00-05:00\"]}", "apps/app.yaml:7:53: error: invalid window 'Mon-Fry 01:00-05:00' in 'allow': 'Fry' is not a day"),
        ("windows: {allow: [Mon 01:00-02:00], deny: [Mon]}", "apps/app.yaml:7:44: error: these windows never open: every allowed time is denied"),
        ("windows: {}", "apps/app.yaml:7:44: error: 'windows' needs 'allow' or 'deny' entries"),
        ("windows: {zoneTag: \"-x\", allow: [Mon]}", "apps/app.yaml:7:54: error: invalid tag name '-x'"),
        ("windows: {allow: [Mon], timezones: UTC}", "apps/app.yaml:7:59: error: unknown key 'timezones' in windows; did you mean 'timezone'?"),
    ])
    func badWindowsAreRefusedWhereTheyAreWritten(_ row: (String, String)) throws {
        let error = #expect(throws: FleetValidationError.self) { try TargetGateTests.fleet(main: row.0) }
        let messages = error?.diagnostics.map(\.description) ?? []
        #expect(messages.contains { $0.hasPrefix(row.1) }, "\(messages)")
    }

    @Test func aDeclaredDevicesZoneTagMustNameAZone() throws {
        let files = [
            "fleet.yaml": "kind: Fleet\nproject: p\ndefaults:\n  windows: {allow: [Sun]}\n",
            "groups/all.yaml": "kind: Group\nname: all\nselector: site\n",
            "devices/d.yaml": "kind: Devices\ndevices:\n  d1: {tags: {site: a, timezone: Europe.Berlin}}\n  d2: {tags: {site: b, timezone: Mars.Olympus}}\n",
            "flows/f.yaml": "kind: UpdateFlow\nname: f\nsteps:\n  - {name: s, run: x}\n",
            "apps/a.yaml": "kind: App\nname: a\nflow: f\ntargets:\n  - {group: all, version: '2'}\n",
        ]
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        let messages = error?.diagnostics.map(\.description) ?? []
        #expect(messages.count == 1, "\(messages)")
        #expect(messages.first?.contains("device 'd2': tag 'timezone: Mars.Olympus' names no known time zone ('Mars/Olympus')") == true, "\(messages)")
    }

    /// A device reporting a zone the rules do not know never starts: its local time is unknown.
    @Test func aDeviceWithAnUnknownZoneNeverStartsAndTheStatusSaysWhy() throws {
        var world = try Self.world(main: "windows: {allow: [daily]}")
        let index = world.devices.firstIndex { $0.id == "m3" }!
        world.devices[index].tags.append(("timezone", "Mars.Olympus"))
        let decision = try world.decide()
        #expect(TargetGateTests.started(decision)["main"] == ["m1", "m2"])
        #expect(TargetGateTests.main(decision).outsideWindow == 1)
        // Once the others run the version, the target waits on it alone, and says why.
        let digest = world.target("main").digest
        for id in ["m1", "m2"] {
            world.devices[world.devices.firstIndex { $0.id == id }!].apps = [(name: "app", version: "2.0", digest: digest)]
        }
        let after = TargetGateTests.main(try world.decide())
        #expect(after.state == "waiting")
        #expect(after.reason == "waiting for window; devices whose timezone tag names no known zone never start")
    }

    @Test func thePlanShowsEachTargetsWindows() throws {
        let fleet = try TargetGateTests.fleet(main: "windows: {timezone: Europe/Berlin, allow: [\"Mon-Fri 01:00-05:00\"], deny: [\"Fri 03:00-04:00\"]}")
        var inventory = DeviceInventory()
        inventory.append(id: "m1", tags: [("ring", "main")], apps: [(name: "app", version: "1.0", digest: "old")], online: true)
        let plan = try Planner.plan(fleet, inventory: inventory)
        #expect(PlanRenderer.text(plan).contains(
            "    starts devices only inside their windows: allow Mon-Fri 01:00-05:00; deny Fri 03:00-04:00 (Europe/Berlin, or the device's timezone tag)\n"),
                "\(PlanRenderer.text(plan))")
        #expect(PlanRenderer.markdown(plan).contains("**Windows:** devices start only inside them: allow Mon-Fri 01:00-05:00"))
    }
}
