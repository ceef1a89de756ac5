/// Desired state against reported state: for every device and app, the target that applies
/// and whether the device must change. A pure function; a million devices take well under a second.
public enum Planner {
    /// Plans `fleet` against `inventory`.
    ///
    /// - Throws: `PlanError` when the inventory lists a device twice.
    public static func plan(_ fleet: CompiledFleet, inventory: DeviceInventory) throws(PlanError) -> FleetPlan {
        let order = try inventory.orderByID().get()
        var symbols = inventory.symbols
        let groups = MembershipIndex(fleet: fleet, symbols: &symbols)
        let apps = fleet.apps.map { app in
            AppColumns(name: symbols.intern(app.name),
                       targets: app.targets.map { target in
                           (group: groups.index(of: target.group),
                            version: symbols.intern(target.version),
                            digest: symbols.intern(target.digest))
                       })
        }
        var builders = fleet.apps.map { app in AppPlanBuilder(targetCount: app.targets.count) }
        var membership = groups.cache()

        for deviceIndex in order {
            let device = Int(deviceIndex)
            membership.reset()
            for (appNumber, app) in apps.enumerated() {
                let slot = inventory.appSlot(device: device, name: app.name)
                guard let targetNumber = app.targets.firstIndex(where: { groups.contains(device, group: $0.group, cache: &membership, inventory: inventory) }) else {
                    if slot >= 0 { builders[appNumber].notTargeted.append(deviceIndex) } else { builders[appNumber].untouched += 1 }
                    continue
                }
                let target = app.targets[targetNumber]
                let change: DeviceChange.Kind?
                if slot < 0 {
                    change = .install
                } else if inventory.appVersions[slot] != target.version {
                    change = .update
                } else if inventory.appDigests[slot] >= 0, inventory.appDigests[slot] != target.digest {
                    change = .reconfigure
                } else {
                    change = nil
                }
                if let change {
                    let entry = DeviceChange(device: deviceIndex, from: slot < 0 ? -1 : inventory.appVersions[slot], kind: change)
                    builders[appNumber].add(entry, target: targetNumber, online: inventory.online[device])
                } else {
                    builders[appNumber].unchanged[targetNumber].append(deviceIndex)
                }
            }
        }

        let plans = zip(fleet.apps, builders).map { app, builder in
            builder.build(app: app)
        }
        return FleetPlan(inventory: inventory, apps: plans)
    }
}

private struct AppColumns {
    var name: Int32
    var targets: [(group: Int, version: Int32, digest: Int32)]
}

private struct AppPlanBuilder {
    var unchanged: [[Int32]]
    var online: [[DeviceChange]]
    var offline: [[DeviceChange]]
    var notTargeted: [Int32] = []
    var untouched = 0

    init(targetCount: Int) {
        unchanged = Array(repeating: [], count: targetCount)
        online = Array(repeating: [], count: targetCount)
        offline = Array(repeating: [], count: targetCount)
    }

    mutating func add(_ change: DeviceChange, target: Int, online isOnline: Bool) {
        if isOnline { online[target].append(change) } else { offline[target].append(change) }
    }

    func build(app: CompiledApp) -> AppPlan {
        let targets = app.targets.indices.map { number in
            let changes = online[number] + offline[number]
            return TargetPlan(target: app.targets[number], rollout: app.app.rollout, unchanged: unchanged[number],
                              changes: changes, waves: app.app.rollout.waveSizes(for: online[number].count, total: changes.count),
                              offlineCount: offline[number].count)
        }
        return AppPlan(name: app.name, targets: targets, notTargeted: notTargeted, untouchedCount: untouched)
    }
}
