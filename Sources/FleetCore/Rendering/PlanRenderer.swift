import FleetProtocol
/// Plans as people and tools read them: a terminal listing, a pull-request comment, JSON.
public enum PlanRenderer {
    /// Terminal text: per app and target, the devices that change, up to `limit` per target.
    public static func text(_ plan: FleetPlan, limit: Int = 20) -> String {
        var lines: [String] = []
        for app in plan.apps {
            lines.append("\(app.name)")
            for target in app.targets {
                let header = "  \(target.target.group) → \(target.target.version):"
                if target.changes.isEmpty {
                    lines.append("\(header) up to date (\(count(target.unchanged.count, "device")))")
                    continue
                }
                lines.append("\(header) \(changeSummary(target)), \(target.unchanged.count) unchanged; waves \(waveSummary(target.waves))")
                if let gate = target.target.gate.summary(app: app.name, group: target.target.group) { lines.append("    \(gate)") }
                if let windows = target.target.windows { lines.append("    starts devices only inside their windows: \(windows.summary)") }
                if let health = target.target.health { lines.append("    each wave must pass: \(DisplayText.safe(health.summary, limit: 600))") }
                for change in target.changes.prefix(limit) {
                    let symbol = change.kind == .install ? "+" : "~"
                    let from = plan.fromVersion(change) ?? "(not installed)"
                    let offline = plan.inventory.online[Int(change.device)] ? "" : " (offline)"
                    lines.append("    \(symbol) \(plan.deviceID(change.device))\(offline)  \(from) → \(target.target.version)")
                }
                if target.changes.count > limit {
                    lines.append("    … and \(target.changes.count - limit) more")
                }
                for (number, wave) in target.waveDevices.enumerated().prefix(limit) {
                    let names = wave.prefix(5).map { plan.deviceID($0.device) }.joined(separator: ", ")
                    lines.append("    wave \(number + 1): \(names)\(wave.count > 5 ? " and \(wave.count - 5) more" : "")")
                }
                if target.offlineCount > 0 {
                    lines.append("    waiting, offline: \(count(target.offlineCount, "device"))")
                }
            }
            if !app.notTargeted.isEmpty {
                lines.append("  not targeted, left as they are: \(count(app.notTargeted.count, "device"))")
            }
        }
        lines.append("")
        lines.append(verdict(plan))
        return lines.joined(separator: "\n")
    }

    /// Markdown for a pull-request comment: a summary table, then the devices per target.
    public static func markdown(_ plan: FleetPlan, limit: Int = 50) -> String {
        var lines = ["## Flotilla plan", "", verdict(plan), ""]
        lines.append("| App | Target | Version | Changing | Unchanged | Offline | Waves |")
        lines.append("|---|---|---|---:|---:|---:|---|")
        for app in plan.apps {
            for target in app.targets {
                let changing = target.changes.isEmpty ? "0" : "**\(target.changes.count)** (\(kindSummary(target)))"
                lines.append("| \(app.name) | \(target.target.group) | `\(target.target.version)` | \(changing) | "
                             + "\(target.unchanged.count) | \(target.offlineCount) | \(waveSummary(target.waves)) |")
            }
        }
        for app in plan.apps {
            for target in app.targets where !target.changes.isEmpty {
                lines += ["", "<details><summary>\(app.name) → \(target.target.group) (\(target.target.version)): "
                          + "\(count(target.changes.count, "device"))</summary>", ""]
                lines.append("| Device | From | To | |")
                lines.append("|---|---|---|---|")
                for change in target.changes.prefix(limit) {
                    let from = plan.fromVersion(change).map { "`\($0)`" } ?? "—"
                    let note = plan.inventory.online[Int(change.device)] ? change.kind.rawValue : "\(change.kind.rawValue), offline"
                    lines.append("| `\(plan.deviceID(change.device))` | \(from) | `\(target.target.version)` | \(note) |")
                }
                if target.changes.count > limit {
                    lines += ["", "_and \(target.changes.count - limit) more_"]
                }
                if let gate = target.target.gate.summary(app: app.name, group: target.target.group) { lines += ["", "**Gate:** \(gate)."] }
                if let windows = target.target.windows { lines += ["", "**Windows:** devices start only inside them: \(windows.summary)."] }
                if let health = target.target.health { lines += ["", "**Health:** each wave must pass \(health.markdownSummary)."] }
                lines += [""] + waveLines(plan, target) + ["", "</details>"]
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// The rollout in order, as the controller will run it: each wave with its first devices,
    /// then the offline devices that wait for their next heartbeat.
    static func waveLines(_ plan: FleetPlan, _ target: TargetPlan, shown: Int = 5) -> [String] {
        func devices(_ changes: ArraySlice<DeviceChange>) -> String {
            let names = changes.prefix(shown).map { "`\(plan.deviceID($0.device))`" }.joined(separator: ", ")
            return changes.count > shown ? names + " and \(changes.count - shown) more" : names
        }
        var lines = ["Rollout: `batchSize` \(target.rollout.batchSize), `maxUnavailable` \(target.rollout.maxUnavailable) → "
                     + "\(count(target.waveSize, "device")) per wave; the next wave starts when the last has finished.", ""]
        for (number, wave) in target.waveDevices.enumerated() {
            lines.append("\(number + 1). wave of \(wave.count): \(devices(wave))")
        }
        if target.offlineCount > 0 {
            lines.append("- waiting, offline (updated when heard again, not failed): \(devices(target.waiting))")
        }
        return lines
    }

    /// Every device change, for tools.
    public static func json(_ plan: FleetPlan) -> JSONValue {
        .object([
            ("changes", .int(plan.changeCount)),
            ("devices", .int(plan.inventory.count)),
            ("apps", .array(plan.apps.map { app in
                .object([
                    ("name", .string(app.name)),
                    ("targets", .array(app.targets.map { target in
                        .object([
                            ("group", .string(target.target.group)),
                            ("version", .string(target.target.version)),
                            ("flow", .string(target.target.flow)),
                            ("digest", .string(target.target.digest)),
                            ("unchanged", .int(target.unchanged.count)),
                            ("offline", .int(target.offlineCount)),
                            ("waves", .array(target.waves.map(JSONValue.int))),
                            ("gate", target.target.gate.summary(app: app.name, group: target.target.group).map(JSONValue.string) ?? .null),
                            ("windows", target.target.windows.map { JSONValue.string($0.summary) } ?? .null),
                            ("health", target.target.health.map { JSONValue.string($0.summary) } ?? .null),
                            ("changes", .array(target.changes.map { change in
                                .object([
                                    ("device", .string(plan.deviceID(change.device))),
                                    ("kind", .string(change.kind.rawValue)),
                                    ("from", plan.fromVersion(change).map(JSONValue.string) ?? .null),
                                    ("to", .string(target.target.version)),
                                    ("online", .bool(plan.inventory.online[Int(change.device)])),
                                ])
                            })),
                        ])
                    })),
                    ("notTargeted", .array(app.notTargeted.map { .string(plan.deviceID($0)) })),
                ])
            })),
        ])
    }

    /// One sentence: what the plan does overall.
    public static func verdict(_ plan: FleetPlan) -> String {
        guard plan.hasChanges else {
            return plan.isChangeOnly ? "No changes: this change moves no device."
                : "No changes: every device already runs what the repository says."
        }
        let apps = plan.apps.filter { $0.changeCount > 0 }.count
        return "\(count(plan.changeCount, "change")) across \(count(apps, "app"))\(plan.isChangeOnly ? " from this change" : "") "
            + "(\(count(plan.inventory.count, "device")) in the inventory)."
    }

    /// Wave sizes with runs folded: `4×25, 1×3`.
    public static func waveSummary(_ waves: [Int]) -> String {
        guard !waves.isEmpty else { return "—" }
        var parts: [String] = []
        var index = 0
        while index < waves.count {
            var end = index
            while end + 1 < waves.count, waves[end + 1] == waves[index] { end += 1 }
            parts.append("\(end - index + 1)×\(waves[index])")
            index = end + 1
        }
        return parts.joined(separator: ", ")
    }

    private static func changeSummary(_ target: TargetPlan) -> String {
        "\(target.changes.count) to change (\(kindSummary(target)))"
    }

    private static func kindSummary(_ target: TargetPlan) -> String {
        var counts: [DeviceChange.Kind: Int] = [:]
        for change in target.changes { counts[change.kind, default: 0] += 1 }
        return [DeviceChange.Kind.install, .update, .reconfigure].compactMap { kind in
            counts[kind].map { "\($0) \(kind.rawValue)" }
        }.joined(separator: ", ")
    }

    static func count(_ number: Int, _ noun: String) -> String {
        "\(number) \(noun)\(number == 1 ? "" : "s")"
    }
}
