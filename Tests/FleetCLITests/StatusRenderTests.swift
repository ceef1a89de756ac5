@testable import FleetCLI
import FleetCore
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
}
