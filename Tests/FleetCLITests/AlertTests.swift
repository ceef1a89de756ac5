import FleetGit
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// Alerts end to end: a rule pushed to the fleet repository, a real server evaluating the
/// heartbeats of simulated devices, and Debian's Alertmanager receiving what fires and resolves,
/// read back through its own API.
struct AlertTests {
    @Test func aRuleInGitFiresInAlertmanagerAndResolvesWhenTheDevicesRecover() async throws {
        let manager = try Alertmanager()
        let fleet = try ControllerTests.Fleet(devices: 16, unhealthy: ["2.6.0:crash"])
        #expect(try await fleet.waitUntil(seconds: 60, ControllerTests.thermostat(europe: "2.4.1")))

        // The rule, where alerts go, and a release that crashes its process; the rollout pauses
        // when its health checks fail, so the devices it reached stay down until fixed.
        let rule = """
            kind: AlertRule
            name: thermostat-down
            group: thermostats
            condition: process.thermostat == down
            severity: critical
            summary: The thermostat controller is not running.
            """
        try FileManager.default.createDirectory(atPath: fleet.work.path + "/alerts", withIntermediateDirectories: true)
        try rule.write(toFile: fleet.work.path + "/alerts/thermostat.yaml", atomically: true, encoding: .utf8)
        try String(contentsOfFile: fleet.work.path + "/fleet.yaml", encoding: .utf8)
            .appending("\nalerts:\n  alertmanager:\n    url: \(manager.url)\n")
            .write(toFile: fleet.work.path + "/fleet.yaml", atomically: true, encoding: .utf8)
        _ = try fleet.change("apps/thermostat.yaml", [("version: 2.4.1", "version: 2.6.0"), ("  maxFailures: 1", "  maxFailures: 1\n  onAbort: pause")],
                             message: "thermostat 2.6.0 in Europe, with an alert on its process")

        // Firing in the API, with what was seen.
        let firing = try await eventually(seconds: 60, "an alert firing in the API") { () -> [[String: Any]]? in
            let alerts = try await fleet.get("/api/v1/alerts?state=firing")["alerts"] as? [[String: Any]] ?? []
            return alerts.isEmpty ? nil : alerts
        }
        #expect(firing.allSatisfy { $0["rule"] as? String == "thermostat-down" && $0["severity"] as? String == "critical" })
        #expect(firing.allSatisfy { $0["observed"] as? String == "process.thermostat is down" })
        let devices = Set(firing.compactMap { $0["device"] as? String })

        // In Alertmanager, labelled by rule, project, device and severity.
        let held = try await eventually(seconds: 30, "the alert in Alertmanager") { () -> [[String: Any]]? in
            let alerts = try await manager.alerts().filter { ($0["labels"] as? [String: String])?["alertname"] == "thermostat-down" }
            return alerts.isEmpty ? nil : alerts
        }
        let labels = try #require(held.first?["labels"] as? [String: String])
        #expect(labels["project"] == "acme-climate" && labels["severity"] == "critical")
        // The wave may have reached another device since the API was first read: the device in
        // Alertmanager is one firing in the API now (nothing resolves before the fix below).
        let firingNow = try await fleet.get("/api/v1/alerts?state=firing")["alerts"] as? [[String: Any]] ?? []
        let devicesNow = devices.union(firingNow.compactMap { $0["device"] as? String })
        #expect(devicesNow.contains(labels["device"] ?? ""), "\(labels) \(devicesNow)")
        #expect((held.first?["status"] as? [String: Any])?["state"] as? String == "active")

        // In /metrics, the status report and `flotilla status`.
        let metrics = try await fleet.server.text("/metrics")
        #expect(metrics.contains(#"flotilla_alerts_firing{project="acme-climate",rule="thermostat-down",severity="critical"}"#), "\(metrics)")
        _ = try await eventually(seconds: 30, "the alert in the status report") { () -> Bool? in
            let alerts = try await fleet.get("/api/v1/status")["alerts"] as? [[String: Any]] ?? []
            return alerts.isEmpty ? nil : true
        }
        var environment = ProcessInfo.processInfo.environment
        environment["FLOTILLA_TOKEN"] = fleet.operatorToken
        let status = try ChildProcess.run(TestPaths.flotilla, ["status", "--server", fleet.base], environment: environment)
        #expect(status.outputText.contains("alerts firing:\n  [critical] thermostat-down on "), "\(status.outputText) \(status.errorText) \(status.status)")

        // The fix is merged: the devices go back to 2.4.1, their process runs, and it resolves.
        _ = try fleet.change("apps/thermostat.yaml", [("version: 2.6.0", "version: 2.4.1")], message: "back to 2.4.1")
        _ = try await eventually(seconds: 90, "every alert resolved") { () -> Bool? in
            let alerts = try await fleet.get("/api/v1/alerts")["alerts"] as? [[String: Any]] ?? []
            return !alerts.isEmpty && alerts.allSatisfy({ $0["state"] as? String == "resolved" }) ? true : nil
        }
        _ = try await eventually(seconds: 30, "no active alert in Alertmanager") { () -> Bool? in
            let active = try await manager.alerts().filter { alert in
                (alert["labels"] as? [String: String])?["alertname"] == "thermostat-down"
                    && (alert["status"] as? [String: Any])?["state"] as? String == "active"
            }
            return active.isEmpty ? true : nil
        }
        let after = try await fleet.server.text("/metrics")
        #expect(after.contains(#"flotilla_alerts_firing{project="acme-climate",rule="thermostat-down",severity="critical"} 0"#), "\(after)")
    }
}
