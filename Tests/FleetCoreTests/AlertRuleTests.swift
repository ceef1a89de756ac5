import FleetProtocol
@testable import FleetCore
import Foundation
import Testing

/// Alert rules: how `alerts/*.yaml` loads (and what it refuses, where), which conditions can
/// never fire, and the alert state machine — tables through the real parser and evaluator.
struct AlertRuleTests {
    static func files(_ alerts: String, fleet: String? = nil) -> [String: String] {
        var files = FleetFixtures.shop
        files["alerts/rules.yaml"] = alerts
        if let fleet { files["fleet.yaml"] = fleet }
        return files
    }

    static func errors(_ files: [String: String]) -> [String] {
        do {
            _ = try FleetFixtures.load(files)
            return []
        } catch let error as FleetValidationError {
            return error.diagnostics.map(\.description)
        } catch {
            return ["\(error)"]
        }
    }

    @Test func rulesAndReceiversLoad() throws {
        let fleet = try FleetFixtures.load(Self.files("""
            kind: AlertRule
            name: hot
            group: berlin
            condition: cpu > 90%
            for: 5m
            severity: critical
            summary: The CPU is pegged.
            ---
            kind: AlertRule
            name: app-down
            selector: site=berlin
            condition: process.app == down
            ---
            kind: AlertRule
            name: silent
            condition: offline
            for: 10m
            ---
            kind: AlertRule
            name: errors
            condition: custom.errors >= 5
            ---
            kind: AlertRule
            name: eco
            condition: custom.mode == "eco"
            """, fleet: """
            kind: Fleet
            project: shop
            alerts:
              webhook: {url: "https://hooks.example.com/flotilla", secret: hook-key}
              slack: {urlSecret: slack-url}
              alertmanager: {url: "http://127.0.0.1:9093"}
            """))
        #expect(fleet.alertRules.map(\.name) == ["app-down", "eco", "errors", "hot", "silent"])
        let hot = try #require(fleet.alertRules.first { $0.name == "hot" })
        #expect(hot.spec == AlertRuleSpec(name: "hot", group: "berlin", condition: "cpu > 90%", forSeconds: 300, severity: .critical,
                                          summary: "The CPU is pegged."))
        #expect(fleet.alertRules.first { $0.name == "app-down" }?.spec.severity == .warning)
        #expect(fleet.alertRules.first { $0.name == "silent" }?.condition == .offline)
        #expect(fleet.alerting.receivers == AlertReceivers(webhook: .init(url: "https://hooks.example.com/flotilla", secret: "hook-key"),
                                                           slackURLSecret: "slack-url", alertmanager: "http://127.0.0.1:9093"))
        // What the server gets parses again to the same rules.
        #expect(fleet.alerting.rules.compactMap(AlertRule.init(spec:)) == fleet.alertRules)
    }

    @Test(arguments: [
        ("condition: temperature > 80", "alerts/rules.yaml:3:12: error: invalid condition 'temperature > 80': unknown subject 'temperature': use cpu, memory, disk, process.NAME or custom.NAME, or 'offline'"),
        ("condition: cpu > 100%", "alerts/rules.yaml:3:12: error: invalid condition 'cpu > 100%': 'cpu > 100%' can never hold: cpu is a percentage from 0 to 100, so this alert could never fire"),
        ("condition: memory < 0", "alerts/rules.yaml:3:12: error: invalid condition 'memory < 0': 'memory < 0' can never hold: memory is a percentage from 0 to 100, so this alert could never fire"),
        ("condition: disk == 150", "alerts/rules.yaml:3:12: error: invalid condition 'disk == 150': 'disk == 150' can never hold: disk is a percentage from 0 to 100, so this alert could never fire"),
        ("condition: cpu >= 0", "alerts/rules.yaml:3:12: error: invalid condition 'cpu >= 0': 'cpu >= 0' holds for every value of cpu (0 to 100), so this alert would always fire"),
        ("condition: cpu > baseline + 20%", "alerts/rules.yaml:3:12: error: invalid condition 'cpu > baseline + 20%': 'baseline' is a device's mean before an update: it belongs to an app's health checks, not to an alert"),
        ("condition: process.app == crashed", "alerts/rules.yaml:3:12: error: invalid condition 'process.app == crashed': a process is up or down, not 'crashed'"),
        ("condition: custom.mode > eco", "alerts/rules.yaml:3:12: error: invalid condition 'custom.mode > eco': custom.mode is compared with == or != only"),
        ("condition: offline", "alerts/rules.yaml:3:1: error: an 'offline' rule needs 'for' of at least 1m: how long a device must be silent before it fires (shorter than a heartbeat's interval, it would fire between every two)"),
        ("condition: offline\nfor: 30s", "alerts/rules.yaml:4:6: error: an 'offline' rule needs 'for' of at least 1m: how long a device must be silent before it fires (shorter than a heartbeat's interval, it would fire between every two)"),
        ("condition: cpu > 90\nfor: 8d", "alerts/rules.yaml:4:6: error: 'for' must be from 0s to 7d"),
        ("condition: cpu > 90\nseverity: page", "alerts/rules.yaml:4:11: error: invalid value 'page' for 'severity'; expected one of info, warning, critical"),
        ("condition: cpu > 90\ngroup: nobody", "alerts/rules.yaml:4:8: error: unknown group 'nobody'"),
        ("condition: cpu > 90\ngroup: berlin\nselector: site=berlin", "alerts/rules.yaml:5:1: error: give an AlertRule a 'group' or a 'selector', not both"),
        ("condition: cpu > 90\nselector: site in berlin", "alerts/rules.yaml:4:19: error: invalid selector: expected '(' to open the list of values, found 'berlin'"),
        ("condition: cpu > 90\nfor: 1m\nthreshold: 3", "alerts/rules.yaml:5:1: error: unknown key 'threshold' in AlertRule"),
    ])
    func badRulesSayWhereAndWhy(_ row: (String, String)) {
        let errors = Self.errors(Self.files("kind: AlertRule\nname: rule\n" + row.0 + "\n"))
        #expect(errors.first == row.1, "\(errors)")
    }

    @Test func duplicateRulesAndBadReceiversAreErrors() {
        let errors = Self.errors(Self.files("""
            kind: AlertRule
            name: hot
            condition: cpu > 90
            ---
            kind: AlertRule
            name: hot
            condition: cpu > 95
            """, fleet: """
            kind: Fleet
            project: shop
            alerts:
              webhook: {url: "ftp://hooks.example.com/"}
              slack: {urlSecret: "Not A Name"}
              alertmanager: {}
            """))
        #expect(errors == [
            "alerts/rules.yaml:5:1: error: duplicate AlertRule 'hot'; first declared at alerts/rules.yaml:1:1",
            "fleet.yaml:4:18: error: invalid webhook URL: expected an http:// or https:// URL, found scheme 'ftp'",
            "fleet.yaml:5:22: error: invalid secret name 'Not A Name': use lower-case letters, digits and '-', starting and ending with a letter or digit",
            "fleet.yaml:6:17: error: missing required key 'url' in alertmanager",
        ], "\(errors)")
    }

    // MARK: - The state machine

    static let t0 = Date(timeIntervalSince1970: 1_796_000_000)

    static func rule(_ condition: String, for seconds: Double = 0) -> AlertRule {
        AlertRule(spec: AlertRuleSpec(name: "r", condition: condition, forSeconds: seconds, severity: .critical))!
    }

    static func sample(_ at: Double, cpu: Double? = 50, app: Bool? = true) -> HealthSample {
        HealthSample(at: t0.addingTimeInterval(at), cpu: cpu, processes: app.map { ["app": $0] } ?? [:])
    }

    /// Heartbeats in order through `step`; the transitions they made and the state at the end.
    static func run(_ rule: AlertRule, _ samples: [HealthSample]) -> ([AlertTransition?], AlertRecord?) {
        var record: AlertRecord?
        var transitions: [AlertTransition?] = []
        for sample in samples {
            let (next, transition) = AlertEvaluation.step(rule: rule, project: "p", device: "d", current: record, sample: sample)
            record = next
            transitions.append(transition)
        }
        return (transitions, record)
    }

    @Test(arguments: [
        // One spike is no alert with `for`.
        ("cpu > 90", 60.0, [(0.0, 95.0), (25, 40), (50, 40)], [AlertTransition.pending, .cleared, nil], nil as AlertRecord.State?),
        // Held for `for`: fires at the heartbeat that completes it, once.
        ("cpu > 90", 60, [(0, 95), (25, 96), (50, 97), (75, 98), (100, 99)], [.pending, nil, nil, .fired, nil], .firing),
        // Then resolves when it stops holding, and pends again when it comes back.
        ("cpu > 90", 60, [(0, 95), (60, 95), (85, 20), (110, 95)], [.pending, .fired, .resolved, .pending], .pending),
        // With no `for`, the first heartbeat fires it.
        ("cpu >= 90", 0, [(0, 90), (25, 91), (50, 10)], [.fired, nil, .resolved], .resolved),
        // Below the threshold nothing is kept.
        ("cpu > 90", 0, [(0, 10), (25, 90)], [nil, nil], nil),
    ])
    func stateMachine(_ row: (String, Double, [(Double, Double)], [AlertTransition?], AlertRecord.State?)) {
        let (transitions, record) = Self.run(Self.rule(row.0, for: row.1), row.2.map { Self.sample($0.0, cpu: $0.1) })
        #expect(transitions == row.3)
        #expect(record?.state == row.4)
    }

    @Test func aHeartbeatThatDoesNotSayChangesNothing() {
        let rule = Self.rule("process.app == down", for: 30)
        let (transitions, record) = Self.run(rule, [Self.sample(0, app: false), Self.sample(20, app: nil), Self.sample(40, app: false),
                                                    Self.sample(60, app: nil), Self.sample(80, app: true)])
        #expect(transitions == [.pending, nil, .fired, nil, .resolved])
        #expect(record?.observed == "process.app is up")
        #expect(record?.since == Self.t0)
        #expect(record?.firingAt == Self.t0.addingTimeInterval(40))
        #expect(record?.resolvedAt == Self.t0.addingTimeInterval(80))
    }

    @Test func signedAndExponentThresholdsAreNumbers() throws {
        for (text, limit) in [("custom.temp < -10", -10.0), ("custom.delta == +1", 1), ("custom.bytes >= 1e3", 1_000)] {
            guard case .check(let check) = try AlertRule.parseCondition(text).get() else { Issue.record("\(text)"); continue }
            #expect(check.operand == .number(limit), "\(text)")
        }
        #expect(throws: AlertRule.Problem.self) { try AlertRule.parseCondition("cpu > -5").get() }
    }

    /// A device silent longer than the server's offline window starts its pending alerts again:
    /// the condition was not seen to hold meanwhile.
    @Test func aPendingAlertStartsAgainAfterTheDeviceWasSilent() {
        let rule = Self.rule("cpu > 90", for: 600)
        let (pending, _) = AlertEvaluation.step(rule: rule, project: "p", device: "d", current: nil, sample: Self.sample(0, cpu: 95))
        // Silent for two hours, and hot when it is back: pending from now, not firing.
        let (back, transition) = AlertEvaluation.step(rule: rule, project: "p", device: "d", current: pending, sample: Self.sample(7_200, cpu: 95),
                                                      silentSince: Self.t0)
        #expect(transition == .pending)
        #expect(back?.since == Self.t0.addingTimeInterval(7_200) && back?.state == .pending)
        // Without the gap it would have fired.
        #expect(AlertEvaluation.step(rule: rule, project: "p", device: "d", current: pending, sample: Self.sample(7_200, cpu: 95)).transition == .fired)
        // Back and cool: forgotten.
        #expect(AlertEvaluation.step(rule: rule, project: "p", device: "d", current: pending, sample: Self.sample(7_200, cpu: 5),
                                     silentSince: Self.t0).transition == .cleared)
    }

    @Test func whatADeviceReportedIsKeptPrintable() throws {
        let rule = try #require(AlertRule(spec: AlertRuleSpec(name: "m", condition: "custom.mode != eco", forSeconds: 0, severity: .info)))
        let sample = HealthSample(at: Self.t0, custom: ["mode": "\u{1B}]0;pwn\u{7}\n# x" + String(repeating: "y", count: 1_000)])
        let record = try #require(AlertEvaluation.step(rule: rule, project: "p", device: "d", current: nil, sample: sample).record)
        #expect(record.observed.hasPrefix("custom.mode is \\u{1b}]0;pwn\\u{7}\\u{a}# x"), "\(record.observed)")
        #expect(record.observed.count < 260 && record.observed.hasSuffix("…"))
    }

    @Test func anOfflineRuleNeverFiresInsideTheServersOfflineWindow() {
        let rule = Self.rule("offline", for: 120)
        #expect(AlertEvaluation.deadline(rule: rule, lastHeard: Self.t0, minimumSilence: 900) == Self.t0.addingTimeInterval(900))
        #expect(AlertEvaluation.silence(rule: rule, project: "p", device: "d", current: nil, lastHeard: Self.t0,
                                        now: Self.t0.addingTimeInterval(300), minimumSilence: 900).transition == nil)
        #expect(AlertEvaluation.silence(rule: rule, project: "p", device: "d", current: nil, lastHeard: Self.t0,
                                        now: Self.t0.addingTimeInterval(900), minimumSilence: 900).transition == .fired)
    }

    @Test func firingKeepsItsVersionSoTheStoreCanCompareIt() {
        let rule = Self.rule("cpu > 90")
        var current = AlertRecord(project: "p", rule: "r", device: "d", state: .resolved, severity: .critical, since: Self.t0,
                                  firingAt: Self.t0, resolvedAt: Self.t0, observed: "cpu 10", version: 7)
        let (next, transition) = AlertEvaluation.step(rule: rule, project: "p", device: "d", current: current, sample: Self.sample(100, cpu: 99))
        #expect(transition == .fired)
        #expect(next?.version == 7)
        #expect(next?.observed == "cpu 99")
        current.state = .firing
        #expect(AlertEvaluation.step(rule: rule, project: "p", device: "d", current: current, sample: Self.sample(100, cpu: 99)).transition == nil)
    }

    @Test func offlineFiresAtItsDeadlineAndResolvesWhenHeardFrom() throws {
        let rule = Self.rule("offline", for: 600)
        let heard = Self.t0
        #expect(AlertEvaluation.deadline(rule: rule, lastHeard: heard) == heard.addingTimeInterval(600))
        #expect(AlertEvaluation.silence(rule: rule, project: "p", device: "d", current: nil, lastHeard: heard,
                                        now: heard.addingTimeInterval(599)).transition == nil)
        let (firing, fired) = AlertEvaluation.silence(rule: rule, project: "p", device: "d", current: nil, lastHeard: heard,
                                                      now: heard.addingTimeInterval(600))
        #expect(fired == .fired)
        #expect(firing?.since == heard)
        #expect(firing?.observed.hasPrefix("silent since ") == true)
        // Once firing, a later deadline does not fire it again.
        #expect(AlertEvaluation.silence(rule: rule, project: "p", device: "d", current: firing, lastHeard: heard,
                                        now: heard.addingTimeInterval(900)).transition == nil)
        let (back, resolved) = AlertEvaluation.step(rule: rule, project: "p", device: "d", current: firing, sample: Self.sample(1_000))
        #expect(resolved == .resolved)
        #expect(back?.observed == "heard from again")
        // A heartbeat of a device with no alert changes nothing; a check rule ignores deadlines.
        #expect(AlertEvaluation.step(rule: rule, project: "p", device: "d", current: nil, sample: Self.sample(0)).transition == nil)
        #expect(AlertEvaluation.silence(rule: Self.rule("cpu > 5"), project: "p", device: "d", current: nil, lastHeard: heard,
                                        now: heard.addingTimeInterval(1e6)).transition == nil)
    }

    @Test func rulesWatchTheirGroupSelectorOrEverything() throws {
        let everyone = Self.rule("cpu > 90")
        #expect(everyone.watches(device: "a", tags: [:], group: nil))
        let bySelector = try #require(AlertRule(spec: AlertRuleSpec(name: "s", selector: "site=berlin", condition: "cpu > 90", forSeconds: 0, severity: .info)))
        #expect(bySelector.watches(device: "a", tags: ["site": "berlin"], group: nil))
        #expect(!bySelector.watches(device: "a", tags: ["site": "paris"], group: nil))
        let byGroup = try #require(AlertRule(spec: AlertRuleSpec(name: "g", group: "berlin", condition: "cpu > 90", forSeconds: 0, severity: .info)))
        let group = (selector: try LabelSelector(parsing: "site=berlin") as LabelSelector?, devices: Set(["listed"]))
        #expect(byGroup.watches(device: "listed", tags: [:], group: group))
        #expect(byGroup.watches(device: "a", tags: ["site": "berlin"], group: group))
        #expect(!byGroup.watches(device: "a", tags: ["site": "paris"], group: group))
        // A group the commit in force no longer has watches nothing.
        #expect(!byGroup.watches(device: "listed", tags: [:], group: nil))
    }

    @Test func healthGateAndAlertsReadThroughOneEvaluator() throws {
        let check = try HealthCheck.parse("cpu > 90").get()
        #expect(check.evaluate(Self.sample(0, cpu: 95)) == .holds(observed: "cpu 95"))
        #expect(check.evaluate(Self.sample(0, cpu: 5)) == .fails(observed: "cpu 5"))
        #expect(check.evaluate(Self.sample(0, cpu: nil)) == .unreported)
        #expect(check.failure(in: Self.sample(0, cpu: nil), baseline: []) == "cpu not reported")
        #expect(check.failure(in: Self.sample(0, cpu: 5), baseline: []) == "cpu 5")
    }
}
