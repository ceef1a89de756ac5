import FleetCore
import Foundation
import Testing

/// The forecast a pull request gets: waves with their devices, what each target waits for, how
/// long it should take on this fleet, and the devices at risk.
struct RolloutForecastTests {
    @Test func aForecastSaysWhenWhatAndWhoIsAtRisk() throws {
        let fleet = try TargetGateTests.fleet(
            main: "after: canary, bake: 30m, windows: {timezone: UTC, allow: [\"Mon-Fri 01:00-05:00\"]}",
            app: "health: {observe: 10m, checks: [\"process.app == up\"]}")
        var inventory = DeviceInventory()
        inventory.append(id: "c1", tags: [("ring", "canary")], apps: [(name: "app", version: "1.0", digest: "old")], online: true)
        for (id, zone, online) in [("m1", "Europe.Berlin", true), ("m2", "", true), ("m3", "", true), ("m4", "", false), ("m5", "Mars.Olympus", true)] {
            inventory.append(id: id, tags: [("ring", "main")] + (zone.isEmpty ? [] : [("timezone", zone)]),
                             apps: [(name: "app", version: "1.0", digest: "old")], online: online)
        }
        let plan = try Planner.plan(fleet, inventory: inventory)
        // Wednesday 10:00 UTC: Thursday 01:00 in Berlin comes first.
        let now = try Timestamp.parse("2026-12-02T10:00:00Z").get()
        let forecast = RolloutForecast(plan, facts: .init(now: now, locked: ["m2": "surgery in progress"], lastFailed: ["m3"], executionSeconds: 120))
        #expect(forecast.targets.map(\.group) == ["canary", "main"])
        let main = forecast.targets[1]
        // Waves of five over the online devices; the offline one waits.
        #expect(main.waves == [["m1", "m2", "m3", "m5"]])
        #expect(main.startsWhen == ["starts after canary has converged and stayed so for 30m", "its first devices' window opens 2026-12-03 01:00 Europe/Berlin"])
        // One wave: its execution, its observation, and the bake before it.
        #expect(main.expectedSeconds.map { Int($0) } == 120 + 600 + 1_800)
        #expect(main.atRisk.map { "\($0.device): \($0.reason)" } == [
            "m2: locked: surgery in progress",
            "m3: its last execution failed",
            "m4: offline: updated when it is heard again",
            "m5: outside every window for the next week (zone 'Mars/Olympus')",
        ])
        let text = forecast.rendered(markdown: false)
        #expect(text.contains("  app → main 2.0: 1 waves, about 42m\n"), "\(text)")
        #expect(forecast.rendered(markdown: true).contains("- at risk: `m2` — `locked: surgery in progress`"))
        // A lock's reason is the device's own words, posted in a pull request: quoted, and never
        // a comment, a mention or a terminal's command.
        let hostile = RolloutForecast(plan, facts: .init(now: now, locked: ["m2": "<!-- @admins \u{1B}[2J `x` |"]))
        #expect(hostile.rendered(markdown: true).contains("- at risk: `m2` — `locked: <!-- @admins \\u{1b}[2J 'x' \\|`"))
        #expect(!hostile.rendered(markdown: false).contains("\u{1B}"))
        // Without execution times the duration is not guessed.
        #expect(RolloutForecast(plan, facts: .init(now: now)).targets[1].expectedSeconds == nil)
    }
}
