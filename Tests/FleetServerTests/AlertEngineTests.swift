import Crypto
import FleetCore
import FleetProtocol
@testable import FleetServer
import FleetStore
import Foundation
import Synchronization
import Testing

/// The server's alert engine on a virtual clock: heartbeats handed to it in order, deadlines
/// looked at when the test says, a store shared by "replicas", and a notifier that records.
struct AlertEngineTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    actor Controller: ControllerHandle {
        /// nil: no commit in force yet.
        var settings: AlertingSettings?
        let groups: FleetInventory?

        init(_ settings: AlertingSettings, inventory: FleetInventory? = nil) {
            self.settings = settings
            self.groups = inventory
        }

        func set(_ settings: AlertingSettings?) { self.settings = settings }
        func requestPoll() {}
        func statusJSON() -> [UInt8]? { nil }
        func setSuspended(_ suspended: Bool, app: String) {}
        nonisolated var watchedBranch: String { "main" }
        func metrics() -> ControllerMetrics { ControllerMetrics() }
        func executionEnded() {}
        func scope() -> (project: String, apps: [String])? { ("acme", []) }
        func target(app: String, group: String) -> (version: String, digest: String, approval: Bool)? { nil }
        func inventory() -> FleetInventory? { groups }
        func alerting() -> AlertingSettings? { settings }
    }

    final class Recorder: AlertNotifying {
        let deliveries = Mutex<[AlertDelivery]>([])
        func deliver(_ delivery: AlertDelivery) async { deliveries.withLock { $0.append(delivery) } }
        var sent: [String] {
            deliveries.withLock { $0.flatMap { delivery in
                delivery.alerts.map { "\($0.rule)/\($0.device) \($0.state.rawValue)\(delivery.isResend ? " again" : "")" }
            } }
        }
    }

    final class Clock: Sendable {
        let date = Mutex(AlertEngineTests.t0)
        func set(_ offset: Double) { date.withLock { $0 = AlertEngineTests.t0.addingTimeInterval(offset) } }
        var now: Date { date.withLock { $0 } }
    }

    struct Rig {
        let store: MemoryFleetStore
        let controller: Controller
        let recorder = Recorder()
        let clock = Clock()
        let engine: AlertEngine

        init(_ rules: [AlertRuleSpec], receivers: AlertReceivers = AlertReceivers(alertmanager: "http://127.0.0.1:9093"),
             store: MemoryFleetStore = MemoryFleetStore(), inventory: FleetInventory? = nil, secrets: SecretBox? = nil,
             controller: Controller? = nil, allowed: [String] = [], minimumSilence: Double = 90, queue: Int = 10_000) {
            self.store = store
            let controller = controller ?? Controller(AlertingSettings(rules: rules, receivers: receivers), inventory: inventory)
            self.controller = controller
            let clock = self.clock
            engine = AlertEngine(store: store, controllers: ControllerSet([ControllerSet.Entry(controller)]), secrets: secrets,
                                 notifier: recorder, allowedReceivers: allowed.map { try! WebURL.parse($0).get() },
                                 settingsLifetime: .zero, minimumSilence: minimumSilence, queue: queue, now: { clock.now })
        }

        /// A heartbeat from `device` at `offset` seconds, stored first as the server does.
        func beat(_ device: String, at offset: Double, cpu: Double = 10, app: Bool = true) async throws {
            let report = Heartbeat(reportID: "\(device)-\(offset)", cpuPercent: cpu, processes: [.init(name: "app", running: app)])
            let at = AlertEngineTests.t0.addingTimeInterval(offset)
            clock.set(offset)
            _ = try await store.recordHeartbeats([HeartbeatRecord(deviceID: device, receivedAt: at, report: report)])
            await engine.evaluate(.init(project: "acme", device: device, report: report, at: at))
        }

        func tick(at offset: Double) async {
            clock.set(offset)
            await engine.runTick()
        }

        func enroll(_ ids: String..., tags: [String: String] = [:]) async throws {
            for id in ids {
                _ = try await store.enroll(DeviceRecord(id: id, project: "acme", name: id, hardwareID: "hw-\(id)", secretHash: "h",
                                                        reportedTags: tags, enrolledAt: AlertEngineTests.t0))
            }
        }
    }

    static let hot = AlertRuleSpec(name: "hot", condition: "cpu > 90", forSeconds: 60, severity: .critical, summary: "The CPU is pegged.")

    @Test func firesAfterHoldingForItsDurationAndResolvesOnce() async throws {
        let rig = Rig([Self.hot])
        try await rig.enroll("d1")
        try await rig.beat("d1", at: 0, cpu: 95)
        try await rig.beat("d1", at: 30, cpu: 96)
        #expect(rig.recorder.sent.isEmpty, "held 30 s of 60: pending, not sent")
        #expect(try await rig.store.alerts(project: "acme").map(\.state) == [.pending])
        try await rig.beat("d1", at: 60, cpu: 97)
        try await rig.beat("d1", at: 90, cpu: 98)
        #expect(rig.recorder.sent == ["hot/d1 firing"])
        let firing = try #require(try await rig.store.alerts(project: "acme").first)
        #expect(firing.state == .firing && firing.observed == "cpu 97" && firing.summary == "The CPU is pegged.")
        #expect(firing.since == Self.t0 && firing.firingAt == Self.t0.addingTimeInterval(60))
        try await rig.beat("d1", at: 120, cpu: 20)
        try await rig.beat("d1", at: 150, cpu: 20)
        #expect(rig.recorder.sent == ["hot/d1 firing", "hot/d1 resolved"])
        #expect(await rig.engine.firingCounts().map(\.count) == [0])
    }

    /// A device sending without pause holds one place among the heartbeats waiting for
    /// evaluation, its newest: another device's heartbeat behind it is still evaluated, and the
    /// flood's last word is what its rules judge. Only more devices waiting than the queue holds
    /// are dropped.
    @Test func aFloodingDeviceHoldsOnePlaceInTheQueue() async throws {
        let rig = Rig([AlertRuleSpec(name: "hot", condition: "cpu > 90", forSeconds: 0, severity: .critical)], queue: 2)
        try await rig.enroll("d1", "d2", "d3")
        func observe(_ device: String, cpu: Double, at offset: Double) {
            rig.engine.observe(project: "acme", device: device, report: Heartbeat(reportID: "\(device)-\(offset)", cpuPercent: cpu),
                               at: Self.t0.addingTimeInterval(offset))
        }
        for second in 0..<1_000 { observe("d1", cpu: second == 999 ? 99 : 10, at: Double(second) / 100) }
        observe("d2", cpu: 95, at: 10)
        #expect(rig.engine.waiting == 2)
        #expect(rig.engine.dropped == 0)
        // A third device while two wait: past the queue.
        observe("d3", cpu: 97, at: 10)
        #expect(rig.engine.dropped == 1)
        rig.clock.set(11)
        await rig.engine.evaluateWaiting()
        #expect(rig.engine.waiting == 0)
        #expect(Set(rig.recorder.sent) == ["hot/d1 firing", "hot/d2 firing"])
        #expect(try await rig.store.alerts(project: "acme").first { $0.device == "d1" }?.observed == "cpu 99")
    }

    @Test(arguments: [
        // Pushes (device, value) and what each did; then the order they come out in, with values.
        ([("a", 1), ("b", 2), ("a", 3)], [AlertMailbox<Int>.Outcome.queued, .queued, .replaced], 9, ["a=3", "b=2"]),
        ([("a", 1), ("b", 2), ("c", 3), ("b", 4)], [.queued, .queued, .dropped, .replaced], 2, ["a=1", "b=4"]),
        ([("a", 1)], [.queued], 1, ["a=1"]),
    ] as [([(String, Int)], [AlertMailbox<Int>.Outcome], Int, [String])])
    func theMailboxKeepsEachDevicesNewestInItsPlace(pushes: [(String, Int)], outcomes: [AlertMailbox<Int>.Outcome], capacity: Int,
                                                    popped: [String]) {
        var mailbox = AlertMailbox<Int>(capacity: capacity)
        #expect(pushes.map { mailbox.push($0.1, for: .init(project: "p", device: $0.0)) } == outcomes)
        var out: [String] = []
        while let next = mailbox.pop() { out.append("\(next.key.device)=\(next.value)") }
        #expect(out == popped)
        #expect(mailbox.count == 0)
        // Emptied, it takes devices again, in the order they come.
        #expect(mailbox.push(7, for: .init(project: "p", device: "z")) == .queued)
        #expect(mailbox.pop()?.value == 7)
    }

    /// The mailbox against a plain model of it (a list searched from the front), over thirty
    /// thousand seeded pushes and pops among 3,000 devices: the same outcomes, the same
    /// devices out in the same order with the same values, across the compactions of its order.
    @Test func theMailboxMatchesItsModelOverManyRounds() {
        var mailbox = AlertMailbox<Int>(capacity: 2_500)
        var model: [(device: String, value: Int)] = []
        var random = SeededGenerator(seed: 7)
        for step in 0..<30_000 {
            if random.next() % 5 < 3 {
                let device = "d\(random.next() % 3_000)"
                let expected: AlertMailbox<Int>.Outcome
                if let index = model.firstIndex(where: { $0.device == device }) {
                    model[index].value = step
                    expected = .replaced
                } else if model.count < 2_500 {
                    model.append((device, step))
                    expected = .queued
                } else {
                    expected = .dropped
                }
                let outcome = mailbox.push(step, for: .init(project: "p", device: device))
                guard outcome == expected else { Issue.record("step \(step): \(outcome), expected \(expected)"); return }
            } else {
                let next = mailbox.pop()
                let expected = model.isEmpty ? nil : model.removeFirst()
                guard next?.key.device == expected?.device, next?.value == expected?.value else {
                    Issue.record("step \(step): \(String(describing: next)), expected \(String(describing: expected))")
                    return
                }
            }
        }
        #expect(mailbox.count == model.count)
    }

    @Test func oneSpikeIsNoAlert() async throws {
        let rig = Rig([Self.hot])
        try await rig.enroll("d1")
        try await rig.beat("d1", at: 0, cpu: 99)
        try await rig.beat("d1", at: 25, cpu: 10)
        try await rig.beat("d1", at: 100, cpu: 99)
        #expect(rig.recorder.sent.isEmpty)
        #expect(try await rig.store.alerts(project: "acme").map(\.since) == [Self.t0.addingTimeInterval(100)], "pending again, from the new spike")
    }

    @Test func twoReplicasOnOneStoreNotifyOnce() async throws {
        let store = MemoryFleetStore()
        let a = Rig([Self.hot], store: store)
        let b = Rig([Self.hot], store: store, controller: a.controller)
        try await a.enroll("d1")
        // The device's heartbeats land on either replica, alternately.
        try await a.beat("d1", at: 0, cpu: 95)
        try await b.beat("d1", at: 30, cpu: 95)
        try await a.beat("d1", at: 60, cpu: 95)
        try await b.beat("d1", at: 90, cpu: 95)
        try await a.beat("d1", at: 120, cpu: 5)
        try await b.beat("d1", at: 150, cpu: 5)
        #expect(a.recorder.sent + b.recorder.sent == ["hot/d1 firing", "hot/d1 resolved"])
        #expect(try await store.alerts(project: "acme").map(\.state) == [.resolved])
    }

    @Test func firingSurvivesARestartAndResolvesAfterIt() async throws {
        let store = MemoryFleetStore()
        let before = Rig([Self.hot], store: store)
        try await before.enroll("d1")
        try await before.beat("d1", at: 0, cpu: 95)
        try await before.beat("d1", at: 60, cpu: 95)
        #expect(before.recorder.sent == ["hot/d1 firing"])
        // A new server on the same store knows it fires: /metrics says so before any heartbeat.
        let after = Rig([Self.hot], store: store)
        await after.tick(at: 70)
        #expect(await after.engine.firingCounts().map(\.count) == [1])
        #expect(after.recorder.sent == ["hot/d1 firing again"], "Alertmanager hears of it again from the new server")
        try await after.beat("d1", at: 90, cpu: 95)
        try await after.beat("d1", at: 120, cpu: 5)
        #expect(after.recorder.sent == ["hot/d1 firing again", "hot/d1 resolved"])
    }

    @Test func offlineFiresAtItsDeadlineWithoutScanningAndResolvesWhenHeard() async throws {
        let rig = Rig([AlertRuleSpec(name: "silent", condition: "offline", forSeconds: 600, severity: .warning)])
        try await rig.enroll("d1", "d2")
        try await rig.beat("d1", at: 0)
        try await rig.beat("d2", at: 0)
        #expect(await rig.engine.scheduledDeadlines == 2)
        try await rig.beat("d2", at: 300)
        await rig.tick(at: 599)
        #expect(rig.recorder.sent.filter { !$0.hasSuffix("again") }.isEmpty)
        await rig.tick(at: 600)
        #expect(rig.recorder.sent == ["silent/d1 firing"], "d2 spoke at 300 s: its deadline is 900 s")
        let firing = try #require(try await rig.store.alerts(project: "acme").first)
        #expect(firing.since == Self.t0 && firing.observed.hasPrefix("silent since "))
        // Another replica heard d2 at 850 s: its deadline here moves on rather than firing.
        _ = try await rig.store.recordHeartbeats([HeartbeatRecord(deviceID: "d2", receivedAt: Self.t0.addingTimeInterval(850),
                                                                  report: Heartbeat(reportID: "elsewhere"))])
        await rig.tick(at: 900)
        #expect(rig.recorder.sent.filter { !$0.hasSuffix("again") } == ["silent/d1 firing"])
        try await rig.beat("d1", at: 1_000)
        #expect(rig.recorder.sent.filter { !$0.hasSuffix("again") } == ["silent/d1 firing", "silent/d1 resolved"])
        #expect(try await rig.store.alerts(project: "acme").first?.observed == "heard from again")
    }

    @Test func aNewOfflineRuleWatchesDevicesAlreadySilent() async throws {
        let store = MemoryFleetStore()
        let rig = Rig([], store: store)
        try await rig.enroll("d1", "never")
        try await rig.beat("d1", at: 0)
        await rig.controller.set(AlertingSettings(rules: [AlertRuleSpec(name: "silent", condition: "offline", forSeconds: 600, severity: .warning)],
                                                  receivers: AlertReceivers(alertmanager: "http://127.0.0.1:9093")))
        await rig.tick(at: 10)
        await rig.tick(at: 700)
        #expect(rig.recorder.sent.filter { !$0.hasSuffix("again") } == ["silent/d1 firing"],
                "a device never heard from has not started: it is not offline")
    }

    @Test func aRuleWatchesItsGroupOverDeclaredTags() async throws {
        let inventory = FleetInventory(groups: [.init(name: "canary", selector: "ring=canary", devices: ["listed"])],
                                       declaredTags: ["declared": ["ring": "canary"]])
        let rule = AlertRuleSpec(name: "down", group: "canary", condition: "process.app == down", forSeconds: 0, severity: .critical)
        let rig = Rig([rule], inventory: inventory)
        try await rig.enroll("listed", "declared", "other")
        try await rig.enroll("reported", tags: ["ring": "canary"])
        for device in ["listed", "declared", "other", "reported"] { try await rig.beat(device, at: 0, app: false) }
        #expect(rig.recorder.sent.sorted() == ["down/declared firing", "down/listed firing", "down/reported firing"])
    }

    @Test func aRemovedRuleResolvesWhatItFired() async throws {
        let rig = Rig([Self.hot, AlertRuleSpec(name: "warm", condition: "cpu > 50", forSeconds: 60, severity: .info)])
        try await rig.enroll("d1")
        try await rig.beat("d1", at: 0, cpu: 95)
        try await rig.beat("d1", at: 60, cpu: 95)
        await rig.controller.set(AlertingSettings(rules: [], receivers: AlertReceivers(alertmanager: "http://127.0.0.1:9093")))
        await rig.tick(at: 70)
        #expect(rig.recorder.sent.filter { !$0.hasSuffix("again") } == ["hot/d1 firing", "warm/d1 firing", "hot/d1 resolved", "warm/d1 resolved"])
        #expect(try await rig.store.alerts(project: "acme").allSatisfy { $0.observed == "the rule was removed from the fleet repository" })
    }

    @Test func receiversGetTheirSecretsOpenedAndAreLeftOutWithout() async throws {
        let box = SecretBox(key: SymmetricKey(size: .bits256))
        let store = MemoryFleetStore()
        _ = try await store.putSecret(SecretRecord(project: "acme", name: "hook-key", sealed: try box.seal("k3y", project: "acme", name: "hook-key"),
                                                   updatedAt: Self.t0, updatedBy: "operator:o"))
        let receivers = AlertReceivers(webhook: .init(url: "http://127.0.0.1:1/hook", secret: "hook-key"), slackURLSecret: "slack-url")
        let rig = Rig([AlertRuleSpec(name: "hot", condition: "cpu > 90", forSeconds: 0, severity: .critical)], receivers: receivers,
                      store: store, secrets: box)
        try await rig.enroll("d1")
        try await rig.beat("d1", at: 0, cpu: 95)
        let delivery = try #require(rig.recorder.deliveries.withLock { $0.first })
        #expect(delivery.receivers.webhookURL == "http://127.0.0.1:1/hook")
        #expect(delivery.receivers.webhookKey == Array("k3y".utf8))
        #expect(delivery.receivers.slackURL == nil, "its secret is not set: left out")
    }

    /// `serve --alert-receiver-allow`: the repository chooses receivers only under the prefixes
    /// the server's operator allowed.
    @Test func receiversOutsideWhatTheServerAllowsAreLeftOut() async throws {
        let receivers = AlertReceivers(webhook: .init(url: "http://169.254.169.254/latest/meta-data"), alertmanager: "http://alertmanager.internal:9093")
        let rig = Rig([AlertRuleSpec(name: "hot", condition: "cpu > 90", forSeconds: 0, severity: .critical)], receivers: receivers,
                      allowed: ["http://alertmanager.internal:9093/"])
        try await rig.enroll("d1")
        try await rig.beat("d1", at: 0, cpu: 95)
        let delivery = try #require(rig.recorder.deliveries.withLock { $0.first })
        #expect(delivery.receivers.webhookURL == nil)
        #expect(delivery.receivers.alertmanagerURL == "http://alertmanager.internal:9093")
        let none = Rig([AlertRuleSpec(name: "hot", condition: "cpu > 90", forSeconds: 0, severity: .critical)], receivers: receivers,
                       allowed: ["https://hooks.acme.example/"])
        try await none.enroll("d1")
        try await none.beat("d1", at: 0, cpu: 95)
        #expect(none.recorder.deliveries.withLock { $0.isEmpty }, "nothing allowed: nothing sent")
        #expect(try await none.store.alerts(project: "acme").map(\.state) == [.firing], "the alert is kept all the same")
    }

    /// A controller that has no commit in force (a server just started, a standby that cannot
    /// read the leader) says nothing of the rules: the alerts stay as they are.
    @Test func noCommitInForceLeavesTheAlertsAlone() async throws {
        let store = MemoryFleetStore()
        let before = Rig([Self.hot], store: store)
        try await before.enroll("d1")
        try await before.beat("d1", at: 0, cpu: 95)
        try await before.beat("d1", at: 60, cpu: 95)
        let after = Rig([Self.hot], store: store)
        await after.controller.set(nil)
        await after.tick(at: 70)
        #expect(try await store.alerts(project: "acme").map(\.state) == [.firing])
        #expect(after.recorder.sent.isEmpty)
        // The commit arrives with the same rule: still the same alert, not fired again.
        await after.controller.set(AlertingSettings(rules: [Self.hot], receivers: AlertReceivers(alertmanager: "http://127.0.0.1:9093")))
        try await after.beat("d1", at: 90, cpu: 96)
        #expect(after.recorder.sent.filter { !$0.hasSuffix("again") }.isEmpty)
        #expect(try await store.alerts(project: "acme").first?.firingAt == Self.t0.addingTimeInterval(60))
    }

    /// Replica A fires; the device's heartbeats then reach replica B, which had read the store
    /// before: once it reads the store again it resolves what A fired.
    @Test func aReplicaSeesWhatAnotherFiredAndResolvesIt() async throws {
        let store = MemoryFleetStore()
        let a = Rig([Self.hot], store: store)
        let b = Rig([Self.hot], store: store, controller: a.controller)
        try await a.enroll("d1")
        await b.tick(at: 0)
        try await a.beat("d1", at: 0, cpu: 95)
        try await a.beat("d1", at: 60, cpu: 95)
        #expect(a.recorder.sent == ["hot/d1 firing"])
        await b.tick(at: 70)
        try await b.beat("d1", at: 80, cpu: 5)
        #expect(b.recorder.sent.filter { !$0.hasSuffix("again") } == ["hot/d1 resolved"])
    }

    @Test func aDeletedDevicesAlertsResolve() async throws {
        let rig = Rig([Self.hot])
        try await rig.enroll("d1")
        try await rig.beat("d1", at: 0, cpu: 95)
        try await rig.beat("d1", at: 60, cpu: 95)
        try await rig.store.deleteDevice(id: "d1")
        await rig.engine.deviceDeleted(project: "acme", device: "d1")
        #expect(rig.recorder.sent == ["hot/d1 firing", "hot/d1 resolved"])
        #expect(try await rig.store.alerts(project: "acme").first?.observed == "the device was deleted")
    }

    @Test func aDeviceTheRuleNoLongerWatchesHasItsAlertEnd() async throws {
        let berlin = AlertRuleSpec(name: "hot", selector: "site=berlin", condition: "cpu > 90", forSeconds: 0, severity: .critical)
        let rig = Rig([berlin])
        try await rig.enroll("d1", tags: ["site": "berlin"])
        try await rig.beat("d1", at: 0, cpu: 95)
        var paris = berlin
        paris.selector = "site=paris"
        await rig.controller.set(AlertingSettings(rules: [paris], receivers: AlertReceivers(alertmanager: "http://127.0.0.1:9093")))
        try await rig.beat("d1", at: 30, cpu: 95)
        #expect(rig.recorder.sent == ["hot/d1 firing", "hot/d1 resolved"])
        #expect(try await rig.store.alerts(project: "acme").first?.observed == "the rule no longer watches this device")
    }

    @Test func aPendingAlertStartsAgainWhenTheDeviceWasSilentInBetween() async throws {
        let rig = Rig([Self.hot], minimumSilence: 90)
        try await rig.enroll("d1")
        try await rig.beat("d1", at: 0, cpu: 95)
        try await rig.beat("d1", at: 1_000, cpu: 95)
        #expect(rig.recorder.sent.isEmpty, "not seen to hold for 60 s: silent in between")
        #expect(try await rig.store.alerts(project: "acme").first?.since == Self.t0.addingTimeInterval(1_000))
        try await rig.beat("d1", at: 1_060, cpu: 95)
        #expect(rig.recorder.sent == ["hot/d1 firing"])
    }

    @Test func firingAlertsGoToAlertmanagerAgainInOneRequestPerProject() async throws {
        let rig = Rig([AlertRuleSpec(name: "hot", condition: "cpu > 90", forSeconds: 0, severity: .critical)])
        try await rig.enroll("d1", "d2", "d3")
        for device in ["d1", "d2", "d3"] { try await rig.beat(device, at: 0, cpu: 95) }
        await rig.tick(at: 1)
        let resends = rig.recorder.deliveries.withLock { $0.filter(\.isResend) }
        #expect(resends.count == 1)
        #expect(resends.first?.alerts.map(\.device) == ["d1", "d2", "d3"])
    }

    /// A project without rules, or one no controller here answers for, costs a heartbeat one
    /// lookup: it is not handed over. Rules that arrive with a commit are evaluated from the next tick.
    @Test func heartbeatsOfAProjectWithoutRulesAreNotHandedOver() async throws {
        let rig = Rig([])
        try await rig.enroll("d1")
        #expect(rig.engine.evaluates(project: "acme"), "not known yet")
        await rig.tick(at: 0)
        #expect(!rig.engine.evaluates(project: "acme"))
        await rig.controller.set(AlertingSettings(rules: [Self.hot], receivers: AlertReceivers()))
        await rig.tick(at: 1)
        #expect(rig.engine.evaluates(project: "acme"))
        // A project no controller answers for is quiet once asked about.
        await rig.engine.evaluate(.init(project: "elsewhere", device: "d9", report: Heartbeat(reportID: "r"), at: Self.t0))
        #expect(!rig.engine.evaluates(project: "elsewhere"))
    }

    @Test func deadlinesComeDueInOrderAndARescheduleReplacesTheOld() {
        var heap = AlertDeadlines()
        for (index, offset) in [50.0, 10, 40, 30, 20].enumerated() { heap.schedule("k\(index)", at: Self.t0.addingTimeInterval(offset)) }
        heap.schedule("k0", at: Self.t0.addingTimeInterval(5))
        #expect(heap.popDue(at: Self.t0.addingTimeInterval(25)) == ["k0", "k1", "k4"])
        heap.schedule("k2", at: Self.t0.addingTimeInterval(100))
        #expect(heap.popDue(at: Self.t0.addingTimeInterval(60)) == ["k3"])
        #expect(heap.count == 1)
        for index in 0..<1_000 { heap.schedule("k2", at: Self.t0.addingTimeInterval(Double(200 + index))) }
        #expect(heap.popDue(at: Self.t0.addingTimeInterval(1_198)).isEmpty)
        #expect(heap.popDue(at: Self.t0.addingTimeInterval(1_199)) == ["k2"])
    }
}
