@testable import FleetCLI
import FleetCore
import FleetProtocol
import FleetStatus
import FleetStore
import Foundation
import Testing

/// `flotilla status` prints what holds a target back and which devices refuse updates.
struct StatusRenderTests {
    /// Alerts firing, in the CLI and STATUS.md; what a device reported stays inside its cell.
    @Test func alertsFiringAreListedAndWhatDevicesWroteStaysInItsCell() throws {
        var report = FleetStatusReport(commit: "c1", head: "c1", headErrors: [], apps: [])
        #expect(!(try StatusCommand.render(JSONEncoder().encode(report))).contains("alerts firing"))
        #expect(!report.markdown.contains("Alerts firing"))
        report.alerts = [
            .init(rule: "thermostat-down", device: "thermo-4", severity: "critical", firingAt: "2026-12-05T10:00:00Z",
                  observed: "process.thermostat is down", summary: "Not running."),
            .init(rule: "errors", device: "thermo-5", severity: "warning", firingAt: "2026-12-05T10:01:00Z", observed: "custom.last is a|b <!-- `x`"),
        ]
        let text = try StatusCommand.render(JSONEncoder().encode(report))
        #expect(text.hasSuffix("alerts firing:\n  [critical] thermostat-down on thermo-4 since 2026-12-05T10:00:00Z: process.thermostat is down\n"
                               + "  [warning] errors on thermo-5 since 2026-12-05T10:01:00Z: custom.last is a|b <!-- `x`"), "\(text)")
        #expect(report.markdown.contains("## Alerts firing\n\n| rule | device | severity | since | observed |\n|---|---|---|---|---|\n"
                                         + "| thermostat-down | `thermo-4` | critical | 2026-12-05T10:00:00Z | `process.thermostat is down` |\n"
                                         + "| errors | `thermo-5` | warning | 2026-12-05T10:01:00Z | `custom.last is a\\|b <!-- 'x'` |\n"), "\(report.markdown)")
        // Past the first 50, a count.
        report.alertsFiring = 60
        #expect(try StatusCommand.render(JSONEncoder().encode(report)).hasSuffix("\n  … and 58 more (GET /api/v1/alerts lists them all)"))
        #expect(report.markdown.contains("… and 58 more firing"))
        // A server without alerts sends none: still read.
        let older = try JSONDecoder().decode(FleetStatusReport.self, from: Data(#"{"commit":"c1","head":"c1","headErrors":[],"apps":[],"locked":[]}"#.utf8))
        #expect(older.alerts == nil)
    }

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
        #expect(report.markdown.contains("- `thermo-4` (europe): `\(why)`"))
        #expect(report.note(prefix: "flotilla").contains("    unhealthy thermo-4: \(why)"))
    }

    /// Reasons quote what devices reported (a custom value, a version): on the forge they stay
    /// in a code span, and no terminal that prints the note, STATUS.md or `flotilla status` obeys
    /// their control characters.
    @Test func whatDevicesReportedInReasonsIsQuotedAndPrintable() throws {
        let hostile = "custom.mode is \u{1B}]52;c;cHduZWQ=\u{07}\n\n<!-- `x`"
        let target = FleetStatusReport.Target(group: "europe", version: "2.5.1", devices: 2, converged: 0, updating: 0, failed: 1, offline: 0,
                                              state: "updating", unhealthy: [.init(device: "thermo-4", reason: hostile)])
        var app = FleetStatusReport.App(name: "thermostat", targets: [target], drifted: ["thermo-5"])
        app.drift = [.init(device: "thermo-5", reason: "reports 1.0 <!-- \u{1B}[2J, desired 2.5.1")]
        app.probeFailures = [.init(device: "thermo-6", reason: "probe said \u{1B}[31m")]
        app.probeFailed = 1
        let report = FleetStatusReport(commit: "c1", head: "c1", headErrors: [], apps: [app], locked: [.init(device: "thermo-7", reason: "\u{1B}[2J")])
        let cli = try StatusCommand.render(JSONEncoder().encode(report))
        for text in [cli, report.markdown, report.note(prefix: "flotilla")] {
            #expect(!text.contains("\u{1B}") && !text.contains("\u{07}"), "\(text)")
        }
        let markdown = report.markdown
        #expect(markdown.contains("- `thermo-4` (europe): `custom.mode is "), "\(markdown)")
        #expect(markdown.contains("- `thermo-5`: `reports 1.0 <!-- "), "\(markdown)")
        #expect(!markdown.contains("\n<!--"), "a device's '<!--' never starts a line, nor leaves its code span")
    }

    /// Drift says what says so (the probe, or the agent), and probes that cannot tell are listed
    /// apart, never as drift; a server older than probes is still read.
    @Test func driftSaysWhySoAndProbesThatCannotTellAreListedApart() throws {
        let target = FleetStatusReport.Target(group: "europe", version: "2.5.0", devices: 3, converged: 1, updating: 0, failed: 0, offline: 0,
                                              state: "drifted")
        var app = FleetStatusReport.App(name: "thermostat", targets: [target], drifted: ["thermo-1", "thermo-2"])
        app.drift = [.init(device: "thermo-1", reason: "probe says 2.4.1, desired 2.5.0"), .init(device: "thermo-2", reason: "reports 2.4.0, desired 2.5.0")]
        app.probeFailures = [.init(device: "thermo-3", reason: "probe timed out after 30 s")]
        app.probeFailed = 1
        let report = FleetStatusReport(commit: "c1", head: "c1", headErrors: [], apps: [app])
        let text = try StatusCommand.render(JSONEncoder().encode(report))
        #expect(text.contains("  drifted thermo-1: probe says 2.4.1, desired 2.5.0\n  drifted thermo-2: reports 2.4.0, desired 2.5.0\n"
                              + "  probe of thermo-3 cannot tell: probe timed out after 30 s"), "\(text)")
        #expect(report.markdown.contains("- `thermo-1`: `probe says 2.4.1, desired 2.5.0`\n- `thermo-2`: `reports 2.4.0, desired 2.5.0`\n"), "\(report.markdown)")
        #expect(report.markdown.contains("never as drift):\n\n- `thermo-3`: `probe timed out after 30 s`\n"), "\(report.markdown)")
        // What a device wrote cannot hide the rest of STATUS.md or add a link: it is a code span.
        var hostile = app
        hostile.probeFailures = [.init(device: "thermo-3", reason: "probe exited with status 1: <!-- [x](https://evil) `y`")]
        let markdown = FleetStatusReport(commit: "c1", head: "c1", headErrors: [], apps: [hostile],
                                         locked: [.init(device: "thermo-9", reason: "<!-- hidden")]).markdown
        #expect(markdown.contains("- `thermo-3`: `probe exited with status 1: <!-- [x](https://evil) 'y'`\n"), "\(markdown)")
        #expect(markdown.contains("- `thermo-9`: `<!-- hidden`"), "\(markdown)")
        #expect(report.note(prefix: "flotilla").contains("  drifted thermo-1: probe says 2.4.1, desired 2.5.0\n"))
        // What an older server sends: no drift reasons, no probe fields.
        let old = #"{"commit":"c1","head":"c1","headErrors":[],"locked":[],"apps":[{"name":"a","targets":[],"drifted":["d9"]}]}"#
        let decoded = try JSONDecoder().decode(FleetStatusReport.self, from: Data(old.utf8))
        #expect(decoded.apps[0].drifted == ["d9"] && decoded.apps[0].drift.isEmpty && decoded.apps[0].probeFailed == 0)
        #expect(try StatusCommand.render(Data(old.utf8)).contains("  drifted: d9"))
    }
}

/// `flotilla devices show` and `devices metrics` as an operator reads them.
struct DeviceRenderTests {
    @Test func showPutsWhatTheProbeSaysBesideWhatWasInstalled() throws {
        let at = Date(timeIntervalSince1970: 1_800_000_000)
        let device = OperatorDeviceView(id: "d1", name: "d1", project: "acme", hardwareID: "h", tags: [:], attributes: [:],
                                apps: ["web": InstalledApp(version: "1.0", probe: ProbeResult(version: "0.9", atMilliseconds: 1)),
                                       "db": InstalledApp(version: "2.0")],
                                online: true, enrolledAt: at, lastHeartbeatAt: at)
        let text = try DevicesCommand.Show.render(OperatorDeviceDetail(device: device, heartbeats: []), style: .table, now: at)
        #expect(text.contains("APP   VERSION   PROBE"), "\(text)")
        #expect(text.contains("db    2.0       -"), "\(text)")
        #expect(text.contains("web   1.0       probe says 0.9"), "\(text)")
    }

    @Test func metricsAreATableOfSpansWithMeanAndHighest() throws {
        let bucket = MetricBucket(deviceID: "d1", start: Date(timeIntervalSince1970: 1_800_000_000), seconds: 3_600, samples: 144,
                                  cpu: .init(count: 144, mean: 12.345, max: 80), memory: .init(count: 144, mean: 50, max: 51))
        let metrics = DeviceMetrics(device: "d1", since: bucket.start, until: bucket.start.addingTimeInterval(3_600), bucketSeconds: 3_600,
                                    points: [.init(bucket)])
        let text = try DevicesCommand.Metrics.render(metrics, style: .table)
        #expect(text.hasPrefix("d1, each row 1 h:\nFROM"), "\(text)")
        #expect(text.contains("2027-01-15T08:00:00Z   144          12.3% / 80.0%    50.0% / 51.0%   -      -"), "\(text)")
        var empty = metrics
        empty.points = []
        #expect(try DevicesCommand.Metrics.render(empty, style: .table) == "No heartbeats from d1 in that span.")
    }
}
