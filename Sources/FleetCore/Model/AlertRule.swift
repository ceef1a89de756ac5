public import FleetProtocol
public import FoundationEssentials

/// `kind: AlertRule` in `alerts/`: a condition on what heartbeats carry, over a group, a selector
/// or the whole project, that must hold for `for` before the alert fires.
///
/// The condition is written in the language of a rollout's health checks (`HealthCheck`), and is
/// read by the same evaluator: `cpu > 90%`, `memory >= 95%`, `disk > 80`, `process.app == down`,
/// `custom.errors >= 5`, `custom.mode == "eco"`; or `offline`, for a device silent for `for`.
public struct AlertRule: Hashable, Sendable {
    public enum Condition: Hashable, Sendable {
        case check(HealthCheck)
        case offline
    }

    public var spec: AlertRuleSpec
    public var condition: Condition
    /// Parsed from `spec.selector`.
    public var selector: LabelSelector?

    public var name: String { spec.name }

    public struct Problem: Error, Sendable, Equatable { public var reason: String }

    /// The rule a validated spec describes; nil only for a spec that did not come from validation.
    public init?(spec: AlertRuleSpec) {
        guard case .success(let condition) = Self.parseCondition(spec.condition) else { return nil }
        var selector: LabelSelector?
        if let text = spec.selector {
            guard let parsed = try? LabelSelector(parsing: text) else { return nil }
            selector = parsed
        }
        self.spec = spec
        self.condition = condition
        self.selector = selector
    }

    /// Parses a condition, refusing one that can never fire (or that always would): an alert rule
    /// that cannot fire is a mistake, not a quiet rule.
    public static func parseCondition(_ text: String) -> Result<Condition, Problem> {
        let trimmed = text.trimmedSpaces
        if trimmed == "offline" { return .success(.offline) }
        // Custom values are not declared for alerts: the operand says which kind the value is.
        var custom: [String: HealthCheck.ValueKind] = [:]
        if trimmed.hasPrefix("custom."),
           let operatorIndex = trimmed.firstIndex(where: { "<>=!".contains($0) }) {
            let name = String(trimmed[trimmed.index(trimmed.startIndex, offsetBy: 7)..<operatorIndex]).trimmedSpaces
            let operand = trimmed[operatorIndex...].drop(while: { "<>=!".contains($0) }).trimmedSpaces
            custom[name] = HealthCheck.finite(operand) != nil ? .number : .text
        }
        let check: HealthCheck
        switch HealthCheck.parse(trimmed, custom: custom) {
        case .success(let parsed): check = parsed
        case .failure(let problem):
            return .failure(Problem(reason: problem.reason + (problem.reason.hasPrefix("unknown subject")
                ? ", or 'offline'" : "")))
        }
        switch check.operand {
        case .baseline:
            return .failure(Problem(reason: "'baseline' is a device's mean before an update: it belongs to an app's health checks, not to an alert"))
        case .number(let limit) where check.subject.isPercentage:
            // What values in 0…100 satisfy it.
            let name = check.subject.name
            let never: Bool, always: Bool
            switch check.comparison {
            case .less: never = limit <= 0; always = limit > 100
            case .lessOrEqual: never = limit < 0; always = limit >= 100
            case .greater: never = limit >= 100; always = limit < 0
            case .greaterOrEqual: never = limit > 100; always = limit <= 0
            case .equal: never = limit < 0 || limit > 100; always = false
            case .notEqual: never = false; always = limit < 0 || limit > 100
            }
            if never {
                return .failure(Problem(reason: "'\(trimmed)' can never hold: \(name) is a percentage from 0 to 100, so this alert could never fire"))
            }
            if always {
                return .failure(Problem(reason: "'\(trimmed)' holds for every value of \(name) (0 to 100), so this alert would always fire"))
            }
        default:
            break
        }
        return .success(.check(check))
    }

    /// Whether the rule watches a device with these tags (what groups see: declared over
    /// reported), given its group's selector and listed devices when the rule names a group.
    public func watches(device: String, tags: [String: String], group: (selector: LabelSelector?, devices: Set<String>)?) -> Bool {
        if spec.group != nil {
            guard let group else { return false }  // a group the commit no longer has
            return group.devices.contains(device) || (group.selector?.matches(tags) ?? false)
        }
        return selector?.matches(tags) ?? true
    }
}

/// What moved when a rule met a heartbeat or a deadline.
public enum AlertTransition: Sendable, Equatable {
    /// The condition began to hold; it fires once it has held for the rule's `for`.
    case pending
    case fired
    case resolved
    /// A pending alert whose condition stopped holding before it fired: forgotten, never sent.
    case cleared
}

/// The alert state machine: a pure function of the last record, the rule and what was observed.
///
/// inactive → pending when the condition holds; pending → firing once it has held for `for` (at
/// once with `for: 0`); pending → cleared when it stops holding first; firing → resolved when it
/// stops holding; resolved → pending when it holds again. A heartbeat that does not report the
/// subject says nothing, and changes nothing: no data is neither an alert nor a recovery.
public enum AlertEvaluation {
    /// The record after `sample` (nil: none kept), and the transition, if any.
    ///
    /// `silentSince`: the device's heartbeat before this one, when it came longer ago than the
    /// server counts a device offline. A pending alert then starts again from this heartbeat: the
    /// condition was not seen to hold while the device said nothing.
    public static func step(rule: AlertRule, project: String, device: String, current: AlertRecord?,
                            sample: HealthSample, silentSince: Date? = nil) -> (record: AlertRecord?, transition: AlertTransition?) {
        var live = current.flatMap { $0.state == .resolved ? nil : $0 }
        if silentSince != nil, var pending = live, pending.state == .pending, case .check(let check) = rule.condition {
            switch check.evaluate(sample) {
            case .holds(let observed):
                pending.since = sample.at
                pending.observed = DisplayText.safe(observed)
                if rule.spec.forSeconds > 0 { return (pending, .pending) }
                live = pending
            case .fails, .unreported:
                return (nil, .cleared)
            }
        }
        switch rule.condition {
        case .offline:
            // A heartbeat: the device is heard from.
            guard let live else { return (current, nil) }
            if live.state == .pending { return (nil, .cleared) }
            return (resolved(live, at: sample.at, observed: "heard from again"), .resolved)
        case .check(let check):
            switch check.evaluate(sample) {
            case .unreported:
                return (current, nil)
            case .fails(let observed):
                guard let live else { return (current, nil) }
                if live.state == .pending { return (nil, .cleared) }
                return (resolved(live, at: sample.at, observed: DisplayText.safe(observed)), .resolved)
            case .holds(let observed):
                return holding(rule: rule, project: project, device: device, current: current, live: live,
                               since: sample.at, at: sample.at, observed: DisplayText.safe(observed))
            }
        }
    }

    /// An `offline` rule at `now` for a device last heard from at `lastHeard`. `minimumSilence`:
    /// the server's own offline window, below which no device counts as silent whatever `for` says.
    public static func silence(rule: AlertRule, project: String, device: String, current: AlertRecord?,
                               lastHeard: Date, now: Date, minimumSilence: Double = 0) -> (record: AlertRecord?, transition: AlertTransition?) {
        guard rule.condition == .offline else { return (current, nil) }
        let live = current.flatMap { $0.state == .resolved ? nil : $0 }
        guard now.timeIntervalSince(lastHeard) >= max(rule.spec.forSeconds, minimumSilence) else { return (current, nil) }
        if live?.state == .firing { return (current, nil) }
        let record = AlertRecord(project: project, rule: rule.name, device: device, state: .firing, severity: rule.spec.severity,
                                 since: lastHeard, firingAt: now, observed: "silent since \(Timestamp.format(lastHeard))",
                                 summary: rule.spec.summary, version: current?.version ?? 0)
        return (record, .fired)
    }

    /// When an `offline` rule fires for a device last heard from at `lastHeard`.
    public static func deadline(rule: AlertRule, lastHeard: Date, minimumSilence: Double = 0) -> Date? {
        guard rule.condition == .offline else { return nil }
        return lastHeard.addingTimeInterval(max(rule.spec.forSeconds, minimumSilence))
    }

    private static func holding(rule: AlertRule, project: String, device: String, current: AlertRecord?, live: AlertRecord?,
                                since: Date, at: Date, observed: String) -> (record: AlertRecord?, transition: AlertTransition?) {
        if var live {
            guard live.state == .pending else {
                // Firing, and still: nothing to say (the observation is kept as it was when it fired).
                return (live, nil)
            }
            guard at.timeIntervalSince(live.since) >= rule.spec.forSeconds else { return (live, nil) }
            live.state = .firing
            live.firingAt = at
            live.observed = observed
            return (live, .fired)
        }
        let fires = rule.spec.forSeconds <= 0
        let record = AlertRecord(project: project, rule: rule.name, device: device, state: fires ? .firing : .pending,
                                 severity: rule.spec.severity, since: since, firingAt: fires ? at : nil, observed: observed,
                                 summary: rule.spec.summary, version: current?.version ?? 0)
        return (record, fires ? .fired : .pending)
    }

    private static func resolved(_ record: AlertRecord, at date: Date, observed: String) -> AlertRecord {
        var record = record
        record.state = .resolved
        record.resolvedAt = date
        record.observed = observed
        return record
    }
}
