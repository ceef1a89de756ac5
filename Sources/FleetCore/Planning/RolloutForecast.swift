import FleetProtocol
public import FoundationEssentials
import FoundationInternationalization

/// What a plan would do on the live fleet, and when: per changing target, its waves with their
/// devices, what it waits for before it starts, how long it should take from this fleet's own
/// execution times, and the devices at risk of not being updated.
public struct RolloutForecast: Sendable {
    /// What the server knows beyond the inventory, gathered by the caller.
    public struct Facts: Sendable {
        public var now: Date
        /// Devices that refuse updates now, with why.
        public var locked: [String: String]
        /// Devices whose last execution failed.
        public var lastFailed: Set<String>
        /// How long one execution takes on this fleet (the median of recent ones); nil: none known.
        public var executionSeconds: Double?

        public init(now: Date, locked: [String: String] = [:], lastFailed: Set<String> = [], executionSeconds: Double? = nil) {
            self.now = now
            self.locked = locked
            self.lastFailed = lastFailed
            self.executionSeconds = executionSeconds
        }
    }

    public struct Target: Sendable, Equatable {
        public var app: String
        public var group: String
        public var version: String
        /// Devices per wave, in order (online devices only: offline ones wait).
        public var waves: [[String]]
        /// What holds its first wave back, in words; empty: nothing.
        public var startsWhen: [String]
        /// From the fleet's execution times, waves one after the other; nil when none are known.
        public var expectedSeconds: Double?
        /// Devices that may not be updated soon, each with why.
        public var atRisk: [FleetStatusReport.DeviceReason]
    }

    public var targets: [Target]

    public init(_ plan: FleetPlan, facts: Facts) {
        targets = []
        for app in plan.apps {
            for targetPlan in app.targets where !targetPlan.changes.isEmpty {
                targets.append(Self.forecast(app: app.name, targetPlan, plan: plan, facts: facts))
            }
        }
    }

    private static func forecast(app: String, _ targetPlan: TargetPlan, plan: FleetPlan, facts: Facts) -> Target {
        let target = targetPlan.target
        let inventory = plan.inventory
        let online = targetPlan.changes.filter { inventory.online[Int($0.device)] }.map { plan.deviceID($0.device) }
        var waves: [[String]] = []
        var rest = online[...]
        for size in targetPlan.waves {
            waves.append(Array(rest.prefix(size)))
            rest = rest.dropFirst(size)
        }
        var startsWhen: [String] = []
        if let gate = target.gate.summary(app: app, group: target.group) { startsWhen.append(gate) }
        var atRisk: [FleetStatusReport.DeviceReason] = []
        // Each device's zone, by its tag, and when its window opens next.
        var opening: [String: Date] = [:]
        if let windows = target.windows {
            let key = inventory.symbols.lookup(windows.zoneTag)
            var soonest: (Date, String)?
            for change in targetPlan.changes {
                let value = key < 0 ? -1 : inventory.tagValue(device: Int(change.device), key: key)
                let name = value < 0 ? windows.timeZone : MaintenanceWindows.zoneName(tagValue: inventory.symbols[value])
                let id = plan.deviceID(change.device)
                guard let zone = MaintenanceWindows.zone(named: name), let next = windows.nextOpening(after: facts.now, in: zone),
                      next.timeIntervalSince(facts.now) <= 7 * 86_400 else {
                    atRisk.append(.init(device: id, reason: "outside every window for the next week (zone '\(name)')"))
                    continue
                }
                opening[id] = next
                if soonest.map({ next < $0.0 }) ?? true { soonest = (next, MaintenanceWindows.localText(next, in: zone)) }
            }
            if let soonest, soonest.0 > facts.now { startsWhen.append("its first devices' window opens \(soonest.1)") }
        }
        for change in targetPlan.changes {
            let id = plan.deviceID(change.device)
            if !inventory.online[Int(change.device)] { atRisk.append(.init(device: id, reason: "offline: updated when it is heard again")) }
            if let reason = facts.locked[id] { atRisk.append(.init(device: id, reason: "locked: \(reason)")) }
            if facts.lastFailed.contains(id) { atRisk.append(.init(device: id, reason: "its last execution failed")) }
        }
        var expected: Double?
        if let execution = facts.executionSeconds {
            let perWave = execution + (target.health?.observeSeconds ?? 0)
            expected = Double(waves.count) * perWave + target.gate.bakeSeconds
        }
        atRisk.sort { ($0.device, $0.reason) < ($1.device, $1.reason) }
        return Target(app: app, group: target.group, version: target.version, waves: waves, startsWhen: startsWhen, expectedSeconds: expected,
                      atRisk: atRisk)
    }

    /// As text (or markdown for a pull-request comment).
    public func rendered(markdown: Bool, limit: Int = 20) -> String {
        guard !targets.isEmpty else { return markdown ? "### Forecast\n\nNothing changes.\n" : "forecast: nothing changes\n" }
        var lines: [String] = [markdown ? "### Forecast\n" : "forecast:"]
        func list(_ devices: [String]) -> String {
            devices.prefix(limit).joined(separator: ", ") + (devices.count > limit ? " … and \(devices.count - limit) more" : "")
        }
        for target in targets {
            let duration = target.expectedSeconds.map { "about " + DurationText.format(.seconds(Int64($0.rounded(.up)))) }
                ?? "no execution times known yet"
            lines.append(markdown ? "**\(target.app) → \(target.group) \(target.version)**: \(target.waves.count) waves, \(duration)\n"
                                  : "  \(target.app) → \(target.group) \(target.version): \(target.waves.count) waves, \(duration)")
            for condition in target.startsWhen { lines.append(markdown ? "- starts: \(condition)" : "    starts: \(condition)") }
            for (number, wave) in target.waves.enumerated() {
                lines.append(markdown ? "- wave \(number + 1): \(list(wave))" : "    wave \(number + 1): \(list(wave))")
            }
            for risk in target.atRisk.prefix(limit) {
                // A reason may quote a device (why it is locked): quoted, never rendered or obeyed.
                let (device, reason) = (risk.device, risk.reason)
                lines.append(markdown ? "- at risk: `\(device)` — \(DisplayText.codeSpan(reason))"
                                      : "    at risk: \(device) — \(DisplayText.safe(reason, limit: 400))")
            }
            if target.atRisk.count > limit { lines.append(markdown ? "- … and \(target.atRisk.count - limit) more at risk" : "    … and \(target.atRisk.count - limit) more at risk") }
            if markdown { lines.append("") }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
