@testable import FleetCLI
import FleetCore
import FleetStatus
import Foundation
import Testing

/// `flotilla status` prints what holds a target back and which devices refuse updates.
struct StatusRenderTests {
    @Test func waitingTargetsAndLockedDevicesAreShownWithWhy() throws {
        let targets = [
            FleetStatusReport.Target(group: "canary", version: "2.5.0", devices: 3, converged: 2, updating: 0, failed: 0, offline: 0,
                                     state: "converged", locked: 1),
            FleetStatusReport.Target(group: "europe", version: "2.5.0", devices: 9, converged: 0, updating: 0, failed: 0, offline: 0,
                                     state: "waiting", reason: "awaiting approval of 0123456789ab (flotilla approve thermostat europe)"),
        ]
        let report = FleetStatusReport(commit: "c1", head: "c1", headErrors: [],
                                       apps: [FleetStatusReport.App(name: "thermostat", targets: targets, drifted: [])],
                                       locked: [.init(device: "thermo-7", reason: "surgery in progress")])
        let text = try StatusCommand.render(JSONEncoder().encode(report))
        #expect(text.contains("converged, 1 locked pending"), "\(text)")
        #expect(text.contains("waiting (awaiting approval of 0123456789ab (flotilla approve thermostat europe))"), "\(text)")
        #expect(text.hasSuffix("locked, refusing updates (skipped, never failed):\n  thermo-7: surgery in progress"), "\(text)")
    }

    /// Which device failed which health check, with what it showed; how many are still observed.
    @Test func unhealthyDevicesAreNamedWithTheCheckThatFailed() throws {
        let why = "health check 'process.thermostat == up' failed at 2026-12-03T22:00:00Z: process.thermostat is down"
        let target = FleetStatusReport.Target(group: "europe", version: "2.5.1", devices: 9, converged: 3, updating: 1, failed: 1, offline: 0,
                                              state: "updating", outsideWindow: 2, observing: 2, unhealthy: [.init(device: "thermo-4", reason: why)])
        let report = FleetStatusReport(commit: "c1", head: "c1", headErrors: [], apps: [FleetStatusReport.App(name: "thermostat", targets: [target], drifted: [])])
        let text = try StatusCommand.render(JSONEncoder().encode(report))
        #expect(text.contains("updating, 2 observed for health, 2 outside their window\n    unhealthy thermo-4: \(why)"), "\(text)")
        #expect(report.markdown.contains("- `thermo-4` (europe): \(why)"))
        #expect(report.note(prefix: "flotilla").contains("    unhealthy thermo-4: \(why)"))
    }
}
