import FleetCore
import Testing

struct PlannerTests {
    let fleet: CompiledFleet

    init() throws {
        fleet = try FleetFixtures.load(FleetFixtures.shop)
    }

    /// The devices below exercise every branch; the expected plan is written out by hand.
    static let inventory = DeviceInventory([
        ReportedDevice(id: "kiosk-9", tags: ["ring": "canary", "site": "berlin"], apps: ["web": ReportedApp(version: "2.1")]),
        ReportedDevice(id: "kiosk-1", tags: ["site": "berlin"], apps: ["web": ReportedApp(version: "2.0")]),
        ReportedDevice(id: "kiosk-2", tags: ["ring": "canary", "site": "berlin"], apps: ["printer": ReportedApp(version: "7")]),
        ReportedDevice(id: "kiosk-3", tags: ["site": "berlin"], apps: ["web": ReportedApp(version: "2.0")], online: false),
        ReportedDevice(id: "kiosk-4", tags: ["site": "paris"], apps: ["web": ReportedApp(version: "1.9")]),
        ReportedDevice(id: "kiosk-5", tags: ["site": "paris", "retired": "yes"], apps: ["web": ReportedApp(version: "1.0")]),
        ReportedDevice(id: "kiosk-6", tags: ["site": "berlin"], apps: ["printer": ReportedApp(version: "6")]),
    ])

    @Test func firstMatchingTargetWinsAndEveryDeviceIsClassified() throws {
        let plan = try Planner.plan(fleet, inventory: Self.inventory)
        func ids(_ indices: [Int32]) -> [String] { indices.map(plan.deviceID) }
        func changes(_ target: TargetPlan) -> [String] {
            target.changes.map { "\(plan.deviceID($0.device)) \($0.kind.rawValue) \(plan.fromVersion($0) ?? "-")→\(target.target.version)" }
        }
        let web = try #require(plan.apps.first { $0.name == "web" })
        // kiosk-9 is canary and berlin, but listed in vip, which comes first.
        #expect(changes(web.targets[0]) == ["kiosk-9 update 2.1→3.0"])
        // kiosk-1 reports no ring, but git declares ring=canary for it: declared tags win.
        // kiosk-2 has canary and berlin; canary comes first.
        #expect(changes(web.targets[1]) == ["kiosk-1 update 2.0→2.1", "kiosk-2 install -→2.1"])
        // kiosk-3 is offline but already at 2.0.
        #expect(ids(web.targets[2].unchanged) == ["kiosk-3"])
        #expect(changes(web.targets[2]) == ["kiosk-6 install -→2.0"])
        #expect(ids(web.targets[3].unchanged) == ["kiosk-4"])
        #expect(ids(web.notTargeted) == ["kiosk-5"])
        #expect(web.untouchedCount == 0)

        let printer = try #require(plan.apps.first { $0.name == "printer" })
        // Online devices in id order, then the offline one.
        #expect(changes(printer.targets[0]) == ["kiosk-1 install -→7", "kiosk-6 update 6→7", "kiosk-9 install -→7", "kiosk-3 install -→7"])
        #expect(printer.targets[0].offlineCount == 1)
        #expect(ids(printer.targets[0].unchanged) == ["kiosk-2"])
        #expect(printer.untouchedCount == 2)
        #expect(plan.changeCount == 4 + 4)
        #expect(plan.hasChanges)
    }

    @Test func aDifferentDigestAtTheSameVersionIsAReconfigure() throws {
        let web = try #require(fleet.apps.first { $0.name == "web" })
        let everyone = web.targets[3]
        let inventory = DeviceInventory([
            ReportedDevice(id: "a", apps: ["web": ReportedApp(version: "1.9", digest: everyone.digest)]),
            ReportedDevice(id: "b", apps: ["web": ReportedApp(version: "1.9", digest: "stale")]),
            ReportedDevice(id: "c", apps: ["web": ReportedApp(version: "1.9")]),
        ])
        let plan = try Planner.plan(fleet, inventory: inventory)
        let target = try #require(plan.apps.first { $0.name == "web" }?.targets[3])
        #expect(target.unchanged.map(plan.deviceID) == ["a", "c"])
        #expect(target.changes.map { "\(plan.deviceID($0.device)) \($0.kind)" } == ["b reconfigure"])
    }

    @Test func wavesFollowTheAppsBatchSize() throws {
        let inventory = DeviceInventory((0..<9).map { ReportedDevice(id: "d\($0)", tags: ["site": "paris"]) })
        let plan = try Planner.plan(fleet, inventory: inventory)
        let everyone = try #require(plan.apps.first { $0.name == "web" }?.targets[3])
        #expect(everyone.changes.count == 9)
        // batchSize 50%, but the fleet's default maxUnavailable (25% of 9, rounded up) caps a wave at 3.
        #expect(everyone.waves == [3, 3, 3])
        #expect(everyone.waveDevices.map { $0.map { plan.deviceID($0.device) } } == [["d0", "d1", "d2"], ["d3", "d4", "d5"], ["d6", "d7", "d8"]])
        #expect(!plan.apps.contains { $0.name == "printer" && $0.changeCount > 0 })
    }

    @Test func anEmptyInventoryPlansNothing() throws {
        let plan = try Planner.plan(fleet, inventory: DeviceInventory())
        #expect(!plan.hasChanges)
        #expect(PlanRenderer.verdict(plan) == "No changes: every device already runs what the repository says.")
    }

    @Test func aDuplicateDeviceIsRefused() {
        let inventory = DeviceInventory([ReportedDevice(id: "x"), ReportedDevice(id: "y"), ReportedDevice(id: "x")])
        #expect(throws: PlanError.duplicateDevice("x")) { try Planner.plan(fleet, inventory: inventory) }
    }

    /// The fast planner and the obvious per-device resolution agree on a random fleet.
    @Test(arguments: [1, 2, 3])
    func agreesWithPerDeviceResolution(seed: UInt64) throws {
        var random = SeededGenerator(seed: seed)
        let sites = ["berlin", "paris", "madrid"], rings = ["canary", "prod", "beta"]
        var devices: [ReportedDevice] = []
        for index in 0..<2_000 {
            var tags: [String: String] = [:]
            if random.next() % 4 != 0 { tags["site"] = sites[Int(random.next() % 3)] }
            if random.next() % 3 != 0 { tags["ring"] = rings[Int(random.next() % 3)] }
            if random.next() % 10 == 0 { tags["retired"] = "yes" }
            let id = index == 7 ? "kiosk-1" : (index == 8 ? "kiosk-9" : "dev-\(random.next() % 1_000_000)-\(index)")
            devices.append(ReportedDevice(id: id, tags: tags, online: random.next() % 5 != 0))
        }
        let plan = try Planner.plan(fleet, inventory: DeviceInventory(devices))
        for app in plan.apps {
            var planned: [String: String] = [:]
            for target in app.targets {
                for change in target.changes { planned[plan.deviceID(change.device)] = target.target.group }
                for index in target.unchanged { planned[plan.deviceID(index)] = target.target.group }
            }
            for device in devices {
                let expected = DesiredState.resolve(fleet, id: device.id, reportedTags: device.tags)[app.name]?.group
                #expect(planned[device.id] == expected, "\(app.name) on \(device.id)")
            }
        }
    }
}

