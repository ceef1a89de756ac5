import FleetCore
import FleetProtocol
import FleetStore
import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Alert rules evaluated as heartbeats arrive: each accepted heartbeat is handed over without
/// waiting (`observe`), and one loop runs the project's rules on it through `AlertEvaluation`.
/// Nothing scans the fleet on a timer: an `offline` rule sets a deadline per device at each
/// heartbeat, and only deadlines that come due are looked at.
///
/// The store keeps every alert and is the truth between replicas: a change is saved only from the
/// row this replica read (its version and start, `saveAlert(_:replacing:)`), so of two replicas
/// deciding the same change one wins and notifies, and the other reads again. What is kept here
/// is a cache of the store, read again every few seconds, so a change another replica made is
/// seen here too (a device's heartbeats may reach either). Every cache is changed in place after
/// each suspension, never written back from a copy taken before one.
actor AlertEngine: Service {
    struct Observation: Sendable {
        var project: String
        var device: String
        var report: Heartbeat
        var at: Date
    }

    private struct Project {
        var settings: AlertingSettings
        var rules: [AlertRule]
        var groups: [String: (selector: LabelSelector?, devices: Set<String>)]
        var inventory: FleetInventory?
        /// By rule and device (`key`).
        var alerts: [String: AlertRecord]
        var checkedAt: ContinuousClock.Instant
        /// The rules of the commit last read; nil before one was.
        var loadedRules: [AlertRuleSpec]?
        /// Each device's last heartbeat evaluated here (bounded by the project's devices).
        var heard: [String: Date] = [:]
    }

    private let store: any FleetStore
    private let controllers: ControllerSet
    private let secrets: SecretBox?
    private let notifier: (any AlertNotifying)?
    /// URL prefixes receivers must be under; empty: any.
    private let allowedReceivers: [WebURL]
    private let logger: Logger
    private let now: @Sendable () -> Date
    /// How often deadlines are looked at and projects' rules read again.
    let tick: Duration
    /// How often firing alerts are sent to Alertmanager again (it forgets an alert not sent for
    /// its hold time, so a server that died leaves nothing firing forever).
    let resendSeconds: Double
    /// How long a project's rules are used before they are read from its controller again.
    let settingsLifetime: Duration
    /// How often each project's alerts are read again from the store.
    let refreshSeconds: Double
    /// The server's offline window: no device is silent for less, whatever a rule's `for` says;
    /// a device heard after a longer gap starts its pending alerts again.
    let minimumSilence: Double

    /// What waits for evaluation, one heartbeat per device (`AlertMailbox`); `wakes` tells the
    /// loop there is some.
    private let mailbox: Mutex<AlertMailbox<Observation>>
    private let wakes: AsyncStream<Void>
    private let wake: AsyncStream<Void>.Continuation
    private let droppedCount = Atomic<Int>(0)
    /// Projects whose commit in force has no alert rule, or that no controller here answers
    /// for: their heartbeats are not handed over at all, so a fleet without alerts pays one
    /// lookup per heartbeat. Kept current by each tick.
    private let quiet = Mutex<Set<String>>([])

    private var projects: [String: Project] = [:]
    private var reportedTags: [String: (tags: [String: String], at: ContinuousClock.Instant)] = [:]
    private var deadlines = AlertDeadlines()
    private var lastResend: Date?
    private var lastRefresh: Date?

    init(store: any FleetStore, controllers: ControllerSet, secrets: SecretBox?, notifier: (any AlertNotifying)?,
         allowedReceivers: [WebURL] = [], logger: Logger = Logger(label: "flotilla.alerts"), tick: Duration = .seconds(1),
         resendSeconds: Double = 60, settingsLifetime: Duration = .seconds(5), refreshSeconds: Double = 5, minimumSilence: Double = 0,
         queue: Int = 10_000, now: @escaping @Sendable () -> Date = { Date() }) {
        self.store = store
        self.controllers = controllers
        self.secrets = secrets
        self.notifier = notifier
        self.allowedReceivers = allowedReceivers
        self.logger = logger
        self.tick = tick
        self.resendSeconds = resendSeconds
        self.settingsLifetime = settingsLifetime
        self.refreshSeconds = refreshSeconds
        self.minimumSilence = minimumSilence
        self.now = now
        mailbox = Mutex(AlertMailbox(capacity: queue))
        (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// Hands a stored heartbeat over for evaluation, without waiting. A device's heartbeat still
    /// waiting is replaced by its newer one; when `queue` devices wait already (a store too slow
    /// for the fleet) the heartbeat is not evaluated, and counted.
    nonisolated func observe(project: String, device: String, report: Heartbeat, at: Date) {
        guard evaluates(project: project) else { return }
        let observation = Observation(project: project, device: device, report: report, at: at)
        switch mailbox.withLock({ $0.push(observation, for: .init(project: project, device: device)) }) {
        case .queued: wake.yield()
        case .replaced: break
        case .dropped: droppedCount.add(1, ordering: .relaxed)
        }
    }

    /// Heartbeats waiting for evaluation.
    nonisolated var waiting: Int { mailbox.withLock { $0.count } }

    /// Whether heartbeats of `project` are evaluated (it has rules, or it is not known yet).
    nonisolated func evaluates(project: String) -> Bool { !quiet.withLock { $0.contains(project) } }

    /// Heartbeats not evaluated because the queue was full.
    nonisolated var dropped: Int { droppedCount.load(ordering: .relaxed) }

    func run() async throws {
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await _ in self.wakes { await self.evaluateWaiting() }
                }
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: self.tick)
                        guard !Task.isCancelled else { break }
                        await self.runTick()
                    }
                }
                await group.next()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            self.wake.finish()
        }
    }

    // MARK: - Heartbeats

    /// Evaluates what waits, the device waiting longest first, until nothing does.
    func evaluateWaiting() async {
        while let next = mailbox.withLock({ $0.pop() }) { await evaluate(next.value) }
    }

    func evaluate(_ observation: Observation) async {
        let name = observation.project, device = observation.device
        guard let project = await project(name), !project.rules.isEmpty else { return }
        let previous = projects[name]?.heard[device]
        projects[name]?.heard[device] = max(previous ?? observation.at, observation.at)
        let silentSince = previous.flatMap { minimumSilence > 0 && observation.at.timeIntervalSince($0) > minimumSilence ? $0 : nil }
        let sample = HealthSample(observation.report, at: observation.at)
        var tags: [String: String]?
        for rule in project.rules {
            guard await watches(rule, device: device, in: project, tags: &tags) else {
                // Watched no more (the rule's group or selector changed, or the device's tags): what it raised ends.
                if let live = projects[name]?.alerts[Self.key(rule.name, device)], live.state != .resolved {
                    await end(project: name, rule: rule.name, device: device, at: observation.at,
                              why: "the rule no longer watches this device")
                }
                continue
            }
            if case .offline = rule.condition,
               let deadline = AlertEvaluation.deadline(rule: rule, lastHeard: observation.at, minimumSilence: minimumSilence) {
                deadlines.schedule(Self.key(name, rule.name, device), at: deadline)
            }
            await apply(project: name, rule: rule.name, device: device) { current in
                AlertEvaluation.step(rule: rule, project: name, device: device, current: current, sample: sample, silentSince: silentSince)
            }
        }
    }

    private func watches(_ rule: AlertRule, device: String, in project: Project, tags: inout [String: String]?) async -> Bool {
        guard rule.spec.group != nil || rule.spec.selector != nil else { return true }
        if tags == nil {
            let reported = await reportedTags(of: device)
            tags = project.inventory?.effectiveTags(of: device, reported: reported) ?? reported
        }
        return rule.watches(device: device, tags: tags ?? [:], group: rule.spec.group.flatMap { project.groups[$0] })
    }

    /// What the device reported at enrollment, read from the store at most once a minute.
    private func reportedTags(of device: String) async -> [String: String] {
        let instant = ContinuousClock.now
        if let cached = reportedTags[device], instant - cached.at < .seconds(60) { return cached.tags }
        let tags = (try? await store.device(id: device))??.reportedTags ?? [:]
        if reportedTags.count > 100_000 { reportedTags.removeAll() }
        reportedTags[device] = (tags, instant)
        return tags
    }

    /// Decides a change with `decide` on what is cached, saves it only if the store still holds
    /// what was decided on, and notifies when it saved a firing or a resolution. When another
    /// replica changed the alert first, reads it again and decides once more. False when the
    /// store could not be reached (or kept changing): the caller may try again later.
    @discardableResult
    private func apply(project name: String, rule: String, device: String,
                       decide: (AlertRecord?) -> (record: AlertRecord?, transition: AlertTransition?)) async -> Bool {
        let key = Self.key(rule, device)
        let metadata: Logger.Metadata = ["project": "\(name)", "rule": "\(rule)", "device": "\(device)"]
        for _ in 0..<3 {
            let current = projects[name]?.alerts[key]
            let (next, transition) = decide(current)
            guard let transition else { return true }
            do {
                if let next {
                    if let saved = try await store.saveAlert(next, replacing: current) {
                        projects[name]?.alerts[key] = saved
                        if transition == .fired || transition == .resolved {
                            logger.notice("alert \(transition == .fired ? "firing" : "resolved")",
                                          metadata: metadata.merging(["observed": "\(saved.observed)"]) { $1 })
                            await notify(saved)
                        }
                        return true
                    }
                } else if let current {
                    if try await store.removeAlert(current) {
                        projects[name]?.alerts[key] = nil
                        return true
                    }
                } else {
                    return true
                }
                // Another replica changed it: read what is stored, and decide again.
                let fresh = try await store.alerts(deviceID: device).first { $0.project == name && $0.rule == rule }
                projects[name]?.alerts[key] = fresh
            } catch {
                logger.warning("alert not saved", metadata: metadata.merging(["error": "\(error)"]) { $1 })
                return false
            }
        }
        logger.warning("alert changed by other replicas three times while deciding; left for the next heartbeat", metadata: metadata)
        return false
    }

    /// Ends what a rule raised on a device, saying why: a firing alert resolves, a pending one is forgotten.
    private func end(project name: String, rule: String, device: String, at date: Date, why: String) async {
        await apply(project: name, rule: rule, device: device) { current in
            guard let current, current.state != .resolved else { return (current, nil) }
            guard current.state == .firing else { return (nil, .cleared) }
            var resolved = current
            resolved.state = .resolved
            resolved.resolvedAt = date
            resolved.observed = why
            return (resolved, .resolved)
        }
    }

    /// An operator deleted the device: its alerts end.
    func deviceDeleted(project name: String, device: String) async {
        guard let project = await project(name) else { return }
        let date = now()
        for alert in project.alerts.values.sorted(by: { $0.rule < $1.rule }) where alert.device == device && alert.state != .resolved {
            await end(project: name, rule: alert.rule, device: device, at: date, why: "the device was deleted")
        }
        projects[name]?.heard[device] = nil
    }

    // MARK: - Deadlines, rules, resends

    /// Projects' rules read again (and projects no controller answers for any more forgotten),
    /// their alerts read again from the store, offline deadlines that came due, and
    /// Alertmanager's resend.
    func runTick() async {
        var active = Set<String>()
        for entry in controllers.entries {
            let assigned = entry.handle.assignedProject
            guard let name = assigned == nil ? await entry.handle.scope()?.project : assigned else { continue }
            active.insert(name)
            _ = await project(name)
        }
        for name in projects.keys where !active.contains(name) { projects[name] = nil }
        quiet.withLock { quiet in
            quiet = quiet.filter { !active.contains($0) }
            for name in active where projects[name].map({ $0.rules.isEmpty }) ?? false { quiet.insert(name) }
        }
        let date = now()
        if lastRefresh.map({ date.timeIntervalSince($0) >= refreshSeconds }) ?? true {
            lastRefresh = date
            for name in projects.keys.sorted() {
                guard let stored = try? await store.alerts(project: name) else { continue }
                projects[name]?.alerts = Self.keyed(stored)
            }
        }
        for key in deadlines.popDue(at: date) where !(await expire(key, at: date)) {
            // The store could not tell: look again shortly, or a silent device would never be told of.
            deadlines.schedule(key, at: date.addingTimeInterval(5))
        }
        if lastResend.map({ date.timeIntervalSince($0) >= resendSeconds }) ?? true {
            lastResend = date
            await resendFiring()
        }
    }

    /// An offline deadline came due; false when the store could not be read.
    private func expire(_ key: String, at date: Date) async -> Bool {
        let parts = key.split(separator: "\u{0}", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 3, let project = projects[parts[0]],
              let rule = project.rules.first(where: { $0.name == parts[1] }), case .offline = rule.condition else { return true }
        let (name, device) = (parts[0], parts[2])
        let record: DeviceRecord?
        do { record = try await store.device(id: device) } catch { return false }
        guard let record, !record.deleted, record.project == name else {
            await end(project: name, rule: rule.name, device: device, at: date, why: "the device was deleted")
            return true
        }
        guard let heard = record.lastHeartbeatAt else { return true }
        var tags: [String: String]? = project.inventory?.effectiveTags(of: device, reported: record.reportedTags) ?? record.reportedTags
        guard await watches(rule, device: device, in: project, tags: &tags) else { return true }
        // Heard from since (by another replica): its deadline moves on.
        if let deadline = AlertEvaluation.deadline(rule: rule, lastHeard: heard, minimumSilence: minimumSilence), deadline > date {
            deadlines.schedule(key, at: deadline)
            return true
        }
        return await apply(project: name, rule: rule.name, device: device) { current in
            AlertEvaluation.silence(rule: rule, project: name, device: device, current: current, lastHeard: heard, now: date,
                                    minimumSilence: minimumSilence)
        }
    }

    /// Every firing alert goes to Alertmanager again, as its clients are to do: one request per
    /// project, from the cache just read again from the store, so alerts another replica fired
    /// are sent too.
    private func resendFiring() async {
        guard let notifier else { return }
        for name in projects.keys.sorted() {
            guard let project = projects[name], project.settings.receivers.alertmanager != nil else { continue }
            let firing = project.alerts.values.filter { $0.state == .firing }.sorted { ($0.rule, $0.device) < ($1.rule, $1.device) }
            guard !firing.isEmpty, let url = allowed(project.settings.receivers.alertmanager, "alertmanager", project: name) else { continue }
            let receivers = ResolvedAlertReceivers(alertmanagerURL: url, alertmanagerHoldSeconds: resendSeconds * 4)
            await notifier.deliver(AlertDelivery(alerts: firing, receivers: receivers, isResend: true))
        }
    }

    /// The project's rules, read from its controller at most every `settingsLifetime`; its alerts
    /// read from the store the first time. A controller with no commit in force (or a standby
    /// that cannot read the leader's word) changes nothing: what is known stays. When a commit's
    /// rules differ, alerts of a rule that is gone resolve, and the devices of a new `offline`
    /// rule get their deadlines.
    private func project(_ name: String) async -> Project? {
        let instant = ContinuousClock.now
        if let cached = projects[name], instant - cached.checkedAt < settingsLifetime { return cached }
        guard let handle = await controllers.entry(for: name)?.handle else {
            // No controller here answers for it: nothing to evaluate until one does (each tick looks).
            quiet.withLock { _ = $0.insert(name) }
            return projects[name]
        }
        guard let settings = await handle.alerting() else { return projects[name] }
        let inventory = settings.rules.isEmpty ? nil : await handle.inventory()
        if projects[name] == nil {
            guard let stored = try? await store.alerts(project: name) else { return nil }
            if projects[name] == nil {
                projects[name] = Project(settings: AlertingSettings(), rules: [], groups: [:], inventory: nil, alerts: Self.keyed(stored),
                                         checkedAt: instant, loadedRules: nil)
            }
        }
        let previous = projects[name]?.loadedRules
        let rules = settings.rules.compactMap(AlertRule.init(spec:))
        projects[name]?.settings = settings
        projects[name]?.rules = rules
        projects[name]?.inventory = inventory
        projects[name]?.groups = Self.groups(inventory)
        projects[name]?.checkedAt = instant
        projects[name]?.loadedRules = settings.rules
        quiet.withLock { quiet in
            if rules.isEmpty { quiet.insert(name) } else { quiet.remove(name) }
        }
        guard previous != settings.rules else { return projects[name] }
        await retire(project: name, keeping: Set(rules.map(\.name)))
        let newOffline = rules.filter { rule in
            guard case .offline = rule.condition else { return false }
            return previous?.contains(rule.spec) != true
        }
        if !newOffline.isEmpty, let devices = try? await store.devices(project: name) {
            for device in devices where !device.deleted {
                for rule in newOffline {
                    // A device never heard from is not offline: it has not started yet.
                    guard let heard = device.lastHeartbeatAt,
                          let deadline = AlertEvaluation.deadline(rule: rule, lastHeard: heard, minimumSilence: minimumSilence) else { continue }
                    deadlines.schedule(Self.key(name, rule.name, device.id), at: deadline)
                }
            }
        }
        return projects[name]
    }

    /// Alerts of rules the commit in force no longer has end, and say why.
    private func retire(project name: String, keeping rules: Set<String>) async {
        guard let alerts = projects[name]?.alerts.values.filter({ !rules.contains($0.rule) && $0.state != .resolved }) else { return }
        for alert in alerts.sorted(by: { ($0.rule, $0.device) < ($1.rule, $1.device) }) {
            await end(project: name, rule: alert.rule, device: alert.device, at: now(), why: "the rule was removed from the fleet repository")
        }
    }

    private static func groups(_ inventory: FleetInventory?) -> [String: (selector: LabelSelector?, devices: Set<String>)] {
        Dictionary((inventory?.groups ?? []).map { group in
            (group.name, (selector: group.selector.flatMap { try? LabelSelector(parsing: $0) }, devices: Set(group.devices)))
        }, uniquingKeysWith: { first, _ in first })
    }

    private static func keyed(_ alerts: [AlertRecord]) -> [String: AlertRecord] {
        Dictionary(alerts.map { (key($0.rule, $0.device), $0) }, uniquingKeysWith: { $1 })
    }

    // MARK: - Notifying

    private func notify(_ alert: AlertRecord) async {
        guard let notifier, let settings = projects[alert.project]?.settings, !settings.receivers.isEmpty else { return }
        let receivers = await resolve(settings.receivers, project: alert.project)
        guard !receivers.isEmpty else { return }
        await notifier.deliver(AlertDelivery(alerts: [alert], receivers: receivers))
    }

    /// The receivers with their secrets opened; one whose secret is not set is left out, and said.
    private func resolve(_ receivers: AlertReceivers, project: String) async -> ResolvedAlertReceivers {
        var resolved = ResolvedAlertReceivers(alertmanagerURL: receivers.alertmanager, alertmanagerHoldSeconds: resendSeconds * 4)
        func open(_ name: String) async -> String? {
            guard let value = try? await secrets?.value(of: name, project: project, in: store) else {
                logger.warning("alert receiver's secret is not set", metadata: ["project": "\(project)", "secret": "\(name)",
                                                                                "hint": "flotilla secret set \(project) \(name)"])
                return nil
            }
            return value
        }
        if let webhook = receivers.webhook {
            if let name = webhook.secret {
                if let key = await open(name) {
                    resolved.webhookURL = webhook.url
                    resolved.webhookKey = Array(key.utf8)
                }
            } else {
                resolved.webhookURL = webhook.url
            }
        }
        if let name = receivers.slackURLSecret, let url = await open(name) {
            if case .success = WebURL.parse(url) { resolved.slackURL = url } else {
                logger.warning("the Slack URL secret is not an http(s) URL", metadata: ["project": "\(project)", "secret": "\(name)"])
            }
        }
        resolved.webhookURL = allowed(resolved.webhookURL, "webhook", project: project)
        resolved.slackURL = allowed(resolved.slackURL, "slack", project: project)
        resolved.alertmanagerURL = allowed(resolved.alertmanagerURL, "alertmanager", project: project)
        return resolved
    }

    /// `url` when the server allows receivers there (`serve --alert-receiver-allow`), else nil,
    /// and said (without the URL: a Slack webhook's URL is its secret).
    private func allowed(_ url: String?, _ receiver: String, project: String) -> String? {
        guard let url, !allowedReceivers.isEmpty else { return url }
        // A base URL without a path (Alertmanager's) is its root.
        for candidate in [url, url + "/"] {
            if case .success(let parsed) = WebURL.parse(candidate), allowedReceivers.contains(where: { $0.contains(parsed) }) { return url }
        }
        logger.warning("alert receiver not under a prefix the server allows; not sent",
                       metadata: ["project": "\(project)", "receiver": "\(receiver)", "hint": "serve --alert-receiver-allow"])
        return nil
    }

    // MARK: - Reading

    /// Firing alerts per project, rule and severity, for `/metrics`.
    func firingCounts() -> [(project: String, rule: String, severity: String, count: Int)] {
        var counts: [String: (project: String, rule: String, severity: String, count: Int)] = [:]
        for (name, project) in projects {
            for rule in project.rules {
                counts[name + "\u{0}" + rule.name] = (name, rule.name, rule.spec.severity.rawValue, 0)
            }
            for alert in project.alerts.values where alert.state == .firing {
                counts[name + "\u{0}" + alert.rule, default: (name, alert.rule, alert.severity.rawValue, 0)].count += 1
            }
        }
        return counts.values.sorted { ($0.project, $0.rule) < ($1.project, $1.rule) }
    }

    /// How many offline deadlines are waiting (for tests and the benchmark).
    var scheduledDeadlines: Int { deadlines.count }

    private static func key(_ rule: String, _ device: String) -> String { rule + "\u{0}" + device }
    private static func key(_ project: String, _ rule: String, _ device: String) -> String { project + "\u{0}" + rule + "\u{0}" + device }
}

/// Deadlines by key, earliest first: a min-heap with lazy removal (a key rescheduled leaves its
/// old entry behind, skipped when it comes up), so scheduling is O(log n) and a tick looks only at
/// what is due.
struct AlertDeadlines {
    private struct Scheduled: Comparable, Sendable {
        var at: Date
        var key: String
        static func < (left: Scheduled, right: Scheduled) -> Bool { left.at < right.at }
    }

    private var heap = MinHeap<Scheduled>()
    private var current: [String: Date] = [:]

    var count: Int { current.count }

    mutating func schedule(_ key: String, at date: Date) {
        if current[key] == date { return }
        current[key] = date
        heap.insert(Scheduled(at: date, key: key))
        // Left-behind entries are dropped once they outnumber the live ones.
        if heap.count > 64, heap.count > 2 * current.count { heap = MinHeap(current.map { Scheduled(at: $0.value, key: $0.key) }) }
    }

    mutating func popDue(at date: Date) -> [String] {
        var due: [String] = []
        while let first = heap.first, first.at <= date {
            heap.removeFirst()
            if current[first.key] == first.at {
                current[first.key] = nil
                due.append(first.key)
            }
        }
        return due
    }
}
