import FleetCore
import FleetProtocol
import Foundation
import Testing

/// Health-gated waves: checks on what devices report after their update, against absolute
/// limits or their own pre-update baseline. Tables through the real parser, verdict and decision.
struct HealthGateTests {
    static let custom: [String: HealthCheck.ValueKind] = ["errors": .number, "mode": .text]

    @Test(arguments: [
        ("cpu <= baseline + 20%", HealthCheck.Subject.cpu, HealthCheck.Comparison.lessOrEqual, HealthCheck.Operand.baseline(offset: 20, relative: true)),
        ("cpu<=baseline+20", .cpu, .lessOrEqual, .baseline(offset: 20, relative: false)),
        ("memory < 90%", .memory, .less, .number(90)),
        ("disk <= 95", .disk, .lessOrEqual, .number(95)),
        ("process.thermostat == up", .process("thermostat"), .equal, .text("up")),
        ("custom.errors < 5", .custom("errors"), .less, .number(5)),
        ("custom.errors >= baseline - 1", .custom("errors"), .greaterOrEqual, .baseline(offset: -1, relative: false)),
        ("custom.mode != \"eco\"", .custom("mode"), .notEqual, .text("eco")),
    ])
    func checksParse(_ row: (String, HealthCheck.Subject, HealthCheck.Comparison, HealthCheck.Operand)) throws {
        let check = try HealthCheck.parse(row.0, custom: Self.custom).get()
        #expect(check.subject == row.1)
        #expect(check.comparison == row.2)
        #expect(check.operand == row.3)
    }

    @Test(arguments: [
        ("cpu", "no comparison"),
        ("temperature < 80", "unknown subject 'temperature'"),
        ("custom.eror < 5", "custom value 'eror' is not declared in health.custom; did you mean 'errors'?"),
        ("custom.errors < 5%", "'%' is for cpu, memory and disk"),
        ("custom.mode < 3", "custom.mode is compared with == or != only"),
        ("custom.mode == baseline", "'baseline' compares numbers; custom.mode is not one"),
        ("process.app == running", "a process is up or down, not 'running'"),
        ("memory < lots", "memory is a number; 'lots' is not"),
        ("cpu < baseline * 2", "after 'baseline' write + or - and a number"),
        ("memory < " + String(repeating: "9", count: 400), "memory is a number"),
    ])
    func badChecksSayWhy(_ row: (String, String)) {
        guard case .failure(let problem) = HealthCheck.parse(row.0, custom: Self.custom) else {
            Issue.record("'\(row.0)' parsed")
            return
        }
        #expect(problem.reason.hasPrefix(row.1), "\(problem.reason)")
    }

    static let t0 = Date(timeIntervalSince1970: 1_796_000_000)

    static func sample(_ at: Double, cpu: Double = 30, app: Bool = true, errors: String? = "0") -> HealthSample {
        HealthSample(at: t0.addingTimeInterval(at), cpu: cpu, memory: 50, disk: 40, processes: ["app": app], custom: errors.map { ["errors": $0] } ?? [:])
    }

    static let policy = HealthPolicy(observeSeconds: 600, checks: [
        try! HealthCheck.parse("cpu <= baseline + 50%").get(),
        try! HealthCheck.parse("process.app == up").get(),
        try! HealthCheck.parse("custom.errors < 5", custom: custom).get(),
    ], custom: custom)

    /// Taken at 0 s, succeeded at 100 s, observed until 700 s; heartbeats before 0 s are the baseline.
    @Test(arguments: [
        ([sample(-30, cpu: 40), sample(-15, cpu: 40), sample(150, cpu: 59)], HealthVerdict.observing(until: t0.addingTimeInterval(700))),
        // The first heartbeat at or after the end closes the observation.
        ([sample(-30, cpu: 40), sample(150, cpu: 59), sample(705)], .passed),
        ([sample(-30, cpu: 40), sample(-15, cpu: 40), sample(150, cpu: 61)],
         .failed("health check 'cpu <= baseline + 50%' failed at 2026-11-30T00:55:50Z: cpu 61, baseline 40 (limit 60)")),
        ([sample(-30), sample(400, app: false)], .failed("health check 'process.app == up' failed at 2026-11-30T01:00:00Z: process.app is down")),
        ([sample(-30), sample(400, errors: nil)], .failed("health check 'custom.errors < 5' failed at 2026-11-30T01:00:00Z: custom.errors not reported")),
        ([sample(-30), sample(400, errors: "7")], .failed("health check 'custom.errors < 5' failed at 2026-11-30T01:00:00Z: custom.errors 7")),
        // A device's value must be a finite decimal: "inf" is no number below 5.
        ([sample(-30), sample(400, errors: "inf")], .failed("health check 'custom.errors < 5' failed at 2026-11-30T01:00:00Z: custom.errors inf is not a number")),
        // Offline through its observation: judged by what it says when it is back.
        ([sample(-30), sample(5_000, app: false), sample(5_015)], .failed("health check 'process.app == up' failed at 2026-11-30T02:16:40Z: process.app is down")),
        ([sample(-30), sample(5_000), sample(5_015, app: false)], .passed),
        // A heartbeat while it was updating (before the success) is neither baseline nor judged.
        ([sample(-30, cpu: 40), sample(50, cpu: 99), sample(705)], .passed),
        // No baseline kept: a baseline check has nothing to compare with and passes.
        ([sample(150, cpu: 99), sample(705)], .passed),
    ])
    func verdicts(_ row: ([HealthSample], HealthVerdict)) {
        #expect(Self.policy.verdict(samples: row.0, takenAt: Self.t0, succeededAt: Self.t0.addingTimeInterval(100)) == row.1)
    }

    @Test func withoutObserveTheFirstHeartbeatAfterTheUpdateDecides() {
        let policy = HealthPolicy(observeSeconds: 0, checks: [try! HealthCheck.parse("process.app == up").get()])
        let judge = { (samples: [HealthSample]) in
            policy.verdict(samples: samples, takenAt: Self.t0, succeededAt: Self.t0.addingTimeInterval(100))
        }
        #expect(judge([Self.sample(50)]) == .observing(until: Self.t0.addingTimeInterval(100)))
        #expect(judge([Self.sample(120), Self.sample(135, app: false)]) == .passed)
        #expect(judge([Self.sample(120, app: false)]) == .failed("health check 'process.app == up' failed at 2026-11-30T00:55:20Z: process.app is down"))
    }

    /// A heartbeat made before the update ended can arrive after its success (the final report
    /// overtook it): it shows the app at the version before, or not yet installed, and is not
    /// judged. Seen at 10,000 devices, where such heartbeats failed 9 good updates.
    @Test func aHeartbeatStillShowingTheVersionBeforeIsNotJudged() {
        let policy = HealthPolicy(observeSeconds: 0, checks: [try! HealthCheck.parse("process.app == up").get()])
        func beat(_ at: Double, up: Bool, version: String?) -> HealthSample {
            HealthSample(at: Self.t0.addingTimeInterval(at), processes: version == nil ? [:] : ["app": up],
                         versions: version.map { ["app": $0] } ?? [:])
        }
        let judge = { (samples: [HealthSample]) in
            policy.verdict(samples: samples, takenAt: Self.t0, succeededAt: Self.t0.addingTimeInterval(100), installed: (app: "app", version: "2.0"))
        }
        let waiting = HealthVerdict.observing(until: Self.t0.addingTimeInterval(100))
        #expect(judge([beat(120, up: false, version: nil)]) == waiting)
        #expect(judge([beat(120, up: false, version: "1.0")]) == waiting)
        #expect(judge([beat(120, up: false, version: "1.0"), beat(135, up: true, version: "2.0")]) == .passed)
        #expect(judge([beat(120, up: false, version: "2.0")])
                == .failed("health check 'process.app == up' failed at 2026-11-30T00:55:20Z: process.app is down"))
        // A heartbeat that does not list its apps is judged, as it always was.
        #expect(judge([HealthSample(at: Self.t0.addingTimeInterval(120), processes: ["app": false])])
                == .failed("health check 'process.app == up' failed at 2026-11-30T00:55:20Z: process.app is down"))
    }

    // MARK: Through the decision

    static let health = "health: {observe: 10m, custom: {errors: number}, checks: [\"cpu <= baseline + 50%\", \"process.app == up\", \"custom.version == ${version}\"]}"

    /// One target, m1…m3, waves of one; m1 took 2.0 at t0 - 300 and succeeded at t0 - 120.
    static func world(onAbort: String = "rollback", samples m1: [HealthSample]) throws -> TargetGateTests.World {
        let fleet = try FleetFixtures.load([
            "fleet.yaml": "kind: Fleet\nproject: p\n",
            "groups/rings.yaml": "kind: Group\nname: main\nselector: ring=main\n",
            "flows/f.yaml": "kind: UpdateFlow\nname: f\nsteps:\n  - {name: s, run: \"install ${version}\"}\n",
            "apps/app.yaml": """
                kind: App
                name: app
                flow: f
                \(health.replacingOccurrences(of: "custom: {errors: number}", with: "custom: {errors: number, version: text}"))
                targets:
                  - {group: main, version: "2.0"}
                rollout: {batchSize: 1, maxUnavailable: 1, maxFailures: 0, onAbort: \(onAbort), executionTimeout: 1h}
                """,
        ])
        var world = TargetGateTests.World(fleet)
        world.devices.removeAll { $0.id.hasPrefix("c") }
        world.at(t0)
        let target = world.fleet.apps[0].targets[0]
        // The fleet ran 1.0 through a rollout: what a rollback goes back to.
        world.deployments.append(.init(id: "dep-old", app: "app", version: "1.0", digest: "old", purpose: .rollout, group: "main",
                                       createdAt: t0.addingTimeInterval(-86_400)))
        for id in ["m1", "m2", "m3"] {
            world.executions.append(.init(id: "ex-old-\(id)", deploymentID: "dep-old", deviceID: id, state: .succeeded, updatedAt: t0.addingTimeInterval(-86_000)))
        }
        world.deployments.append(.init(id: "dep-1", app: "app", version: "2.0", digest: target.digest, purpose: .rollout, group: "main",
                                       createdAt: t0.addingTimeInterval(-310)))
        world.executions.append(.init(id: "ex-m1", deploymentID: "dep-1", deviceID: "m1", state: .succeeded, updatedAt: t0.addingTimeInterval(-120),
                                      takenAt: t0.addingTimeInterval(-300)))
        world.devices[0].apps = [(name: "app", version: "2.0", digest: target.digest)]
        world.samples = ["m1": m1]
        return world
    }

    static func healthy(_ at: Double, cpu: Double = 30, up: Bool = true, version: String = "2.0") -> HealthSample {
        HealthSample(at: t0.addingTimeInterval(at), cpu: cpu, processes: ["app": up], custom: ["version": version])
    }

    @Test func theNextWaveWaitsUntilTheLastOnePassedItsChecks() throws {
        var world = try Self.world(samples: [Self.healthy(-330), Self.healthy(-60), Self.healthy(-10)])
        let decision = try world.decide()
        let status = decision.report.apps[0].targets[0]
        #expect(TargetGateTests.started(decision).isEmpty)
        #expect(status.state == "updating")
        #expect(status.observing == 1)
        // Observed is not converged: m1 runs 2.0 but has not passed yet.
        #expect(status.converged == 0)
        #expect(try world.decide().recheckAt == Self.t0.addingTimeInterval(480))
        // Ten minutes after its success, heard since: passed, and the next wave starts.
        world.at(Self.t0.addingTimeInterval(490))
        world.samples["m1"]! += [Self.healthy(300), Self.healthy(485)]
        let later = try world.decide()
        #expect(TargetGateTests.started(later)["main"] == ["m2"])
        #expect(later.report.apps[0].targets[0].converged == 1)
        #expect(later.actions.contains(.passHealth(app: "app", group: "main", execution: "ex-m1", device: "m1")))
        // Recorded as passed, it is never judged again, whatever its heartbeats say since.
        world.executions[world.executions.firstIndex { $0.id == "ex-m1" }!].healthPassed = true
        world.samples["m1"]! += [Self.healthy(600, up: false)]
        let recorded = try world.decide()
        #expect(!recorded.actions.contains { if case .failHealth = $0 { true } else { if case .passHealth = $0 { true } else { false } } })
        #expect(recorded.report.apps[0].targets[0].converged == 1)
    }

    @Test func aDeviceFailingItsChecksCountsAsFailedAndIsRolledBack() throws {
        var world = try Self.world(samples: [Self.healthy(-330, cpu: 20), Self.healthy(-60, cpu: 45)])
        let decision = try world.decide()
        let message = "health check 'cpu <= baseline + 50%' failed at 2026-11-30T00:52:20Z: cpu 45, baseline 20 (limit 30)"
        #expect(decision.actions.contains(.failHealth(app: "app", group: "main", execution: "ex-m1", device: "m1", message: message)))
        let status = decision.report.apps[0].targets[0]
        #expect(status.failed == 1)
        #expect(status.converged == 0)
        #expect(status.unhealthy == [.init(device: "m1", reason: message)])
        // maxFailures 0: the rollout aborts, and m1 gets 1.0 back.
        #expect(status.state == "aborted")
        #expect(decision.actions.contains { if case .abortRollout = $0 { true } else { false } })
        #expect(decision.actions.contains(.rollBack(app: "app", abortedDigest: world.target("main").digest, restoring: "dep-old", devices: ["m1"])))

        // Once the store holds the verdict, it is not given again, and the device stays failed.
        world.executions[world.executions.firstIndex { $0.id == "ex-m1" }!].state = .failed
        world.deployments[world.deployments.firstIndex { $0.id == "dep-1" }!].aborted = true
        let after = try world.decide()
        #expect(!after.actions.contains { if case .failHealth = $0 { true } else { false } })
        #expect(after.report.apps[0].targets[0].unhealthy.map(\.device) == ["m1"])
        #expect(after.report.apps[0].targets[0].converged == 0)
    }

    /// A device that went quiet after its update holds the next wave, without failing, until it
    /// is heard again or a day has passed.
    @Test func aDeviceQuietAfterItsUpdateHoldsTheNextWave() throws {
        var world = try Self.world(samples: [Self.healthy(-330), Self.healthy(-130)])
        world.at(Self.t0.addingTimeInterval(600))
        world.devices[0].lastHeard = Self.t0.addingTimeInterval(-130)
        let held = try world.decide()
        #expect(TargetGateTests.started(held).isEmpty)
        #expect(held.report.apps[0].targets[0].observing == 1)
        #expect(held.report.apps[0].targets[0].failed == 0)
        #expect(held.report.apps[0].targets[0].converged == 0)
        // A day on, unheard: taken as passed and recorded; the rollout goes on.
        world.at(Self.t0.addingTimeInterval(90_000))
        world.devices[0].lastHeard = Self.t0.addingTimeInterval(-130)
        let later = try world.decide()
        #expect(later.actions.contains(.passHealth(app: "app", group: "main", execution: "ex-m1", device: "m1")))
        #expect(TargetGateTests.started(later)["main"] == ["m2"])
    }

    /// Checks added to an app long converged do not judge its old updates.
    @Test func oldSuccessesAreNotJudgedByNewChecks() throws {
        var world = try Self.world(samples: [Self.healthy(-330, up: false), Self.healthy(-60, up: false)])
        let index = world.executions.firstIndex { $0.id == "ex-m1" }!
        world.executions[index].updatedAt = Self.t0.addingTimeInterval(-3 * 86_400)
        world.executions[index].takenAt = Self.t0.addingTimeInterval(-3 * 86_400 - 300)
        let decision = try world.decide()
        #expect(!decision.actions.contains { if case .failHealth = $0 { true } else { false } })
        #expect(decision.actions.contains(.passHealth(app: "app", group: "main", execution: "ex-m1", device: "m1")))
    }

    /// `${version}` in a check is the target's version.
    @Test func aCheckCanNameTheTargetsVersion() throws {
        let world = try Self.world(samples: [Self.healthy(-330), Self.healthy(-60, version: "1.0")])
        let status = try world.decide().report.apps[0].targets[0]
        #expect(status.unhealthy.first?.reason.hasSuffix("custom.version is 1.0") == true, "\(status.unhealthy)")
        #expect(status.unhealthy.first?.reason.hasPrefix("health check 'custom.version == 2.0' failed") == true, "\(status.unhealthy)")
    }

    @Test(arguments: [
        ("health: {checks: [\"cpu <= baseline + 20%\"]}", "apps/a.yaml:4:19: error: 'cpu <= baseline + 20%' compares with the baseline, which needs 'observe'"),
        ("health: {observe: 5m, checks: [\"custom.errors < 5\"]}", "apps/a.yaml:4:32: error: invalid health check 'custom.errors < 5': custom value 'errors' is not declared in health.custom"),
        ("health: {observe: 5m, custom: {errors: numeric}, checks: [\"custom.errors < 5\"]}", "apps/a.yaml:4:40: error: custom value 'errors' is a number or text, not"),
        ("health: {observe: 5m, custom: {v: text}, checks: [\"custom.v == ${verison}\"]}", "apps/a.yaml:4:51: error: health check 'custom.v == ${verison}' uses '${verison}', which is not version, app, device or a parameter of flow 'f'; did you mean 'version'?"),
        ("health: {observe: 5m, checks: []}", "apps/a.yaml:4:31: error: 'checks' is empty"),
        ("health: {observe: 5m}", "apps/a.yaml:4:9: error: missing required key 'checks'"),
        ("health: {observe: 2d, checks: [\"cpu < 90\"]}", "apps/a.yaml:4:19: error: 'observe' must be from 0s to 24h"),
    ])
    func badHealthIsRefusedWhereItIsWritten(_ row: (String, String)) throws {
        let files = [
            "fleet.yaml": "kind: Fleet\nproject: p\n",
            "groups/g.yaml": "kind: Group\nname: main\nselector: ring=main\n",
            "flows/f.yaml": "kind: UpdateFlow\nname: f\nsteps:\n  - {name: s, run: x}\n",
            "apps/a.yaml": "kind: App\nname: a\nflow: f\n\(row.0)\ntargets:\n  - {group: main, version: '2'}\n",
        ]
        let error = #expect(throws: FleetValidationError.self) { try FleetFixtures.load(files) }
        let messages = error?.diagnostics.map(\.description) ?? []
        #expect(messages.contains { $0.hasPrefix(row.1) }, "\(messages)")
    }
}
