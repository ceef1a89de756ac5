public import FoundationEssentials
import FoundationInternationalization

/// Which devices of one app are outside their maintenance window now, and when each waiting
/// target's windows open next. Read once per decision: a device's zone is a tag, and whether a
/// zone is open at `now` is looked up once per zone, not per device.
struct WindowState {
    /// Per inventory index: outside its target's window now. Empty when no target of the app
    /// has windows.
    private var closed: [Bool] = []
    /// Per target group: the zones its closed devices are in (nil: a zone the rules do not know).
    private var closedZones: [String: Set<String?>] = [:]
    private let now: Date

    init(app: CompiledApp, plan: AppPlan, snapshot: FleetSnapshot) {
        now = snapshot.now
        guard app.targets.contains(where: { $0.windows != nil }) else { return }
        closed = Array(repeating: false, count: snapshot.inventory.count)
        let inventory = snapshot.inventory
        for targetPlan in plan.targets {
            guard let windows = targetPlan.target.windows else { continue }
            let key = inventory.symbols.lookup(windows.zoneTag)
            // Per tag value (-1: no tag): the zone's name and whether it is open now.
            var byValue: [Int32: (zone: String?, open: Bool)] = [:]
            func zone(of value: Int32) -> (zone: String?, open: Bool) {
                if let known = byValue[value] { return known }
                let name = value < 0 ? windows.timeZone : MaintenanceWindows.zoneName(tagValue: inventory.symbols[value])
                let zone = MaintenanceWindows.zone(named: name)
                // A zone the rules do not know never opens: the device's local time is unknown.
                let entry = (zone == nil ? nil : name, zone.map { windows.isOpen(at: now, in: $0) } ?? false)
                byValue[value] = entry
                return entry
            }
            var zones = Set<String?>()
            let changing = Set(targetPlan.changes.map(\.device))
            for device in targetPlan.changes.map(\.device) + targetPlan.unchanged {
                let value = key < 0 ? -1 : inventory.tagValue(device: Int(device), key: key)
                let state = zone(of: value)
                guard !state.open else { continue }
                closed[Int(device)] = true
                // The reason speaks of the devices that wait for it: changing, online, unlocked.
                if changing.contains(device), inventory.online[Int(device)], snapshot.locked[Int(device)] == nil { zones.insert(state.zone) }
            }
            closedZones[targetPlan.target.group] = zones
        }
    }

    /// Whether `device` may not start an update now.
    func isClosed(_ device: Int32) -> Bool { !closed.isEmpty && device >= 0 && closed[Int(device)] }

    /// "waiting for window (next opens 2026-12-02 01:00 Europe/Berlin)": the soonest opening
    /// among the target's devices outside their window.
    func reason(for target: DesiredTarget) -> String {
        guard let windows = target.windows, let zones = closedZones[target.group] else { return "waiting for window" }
        var soonest: (at: Date, text: String)?
        // In name order: of two zones opening at once, the same one is named after a restart.
        for name in zones.compactMap({ $0 }).sorted() {
            guard let zone = MaintenanceWindows.zone(named: name), let at = windows.nextOpening(after: now, in: zone) else { continue }
            if soonest.map({ at < $0.at }) ?? true { soonest = (at, MaintenanceWindows.localText(at, in: zone)) }
        }
        var text = "waiting for window" + (soonest.map { " (next opens \($0.text))" } ?? "")
        if zones.contains(nil) { text += "; devices whose \(windows.zoneTag) tag names no known zone never start" }
        return text
    }
}
