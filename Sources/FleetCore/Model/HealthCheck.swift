public import FleetProtocol
public import FoundationEssentials

/// `health:` on an app: what its devices must keep showing in their heartbeats after an update,
/// and for how long, before the update counts and the next wave starts.
public struct HealthPolicy: Hashable, Sendable {
    /// How long after its update a device must keep passing; zero: its first heartbeat after
    /// the update decides.
    public var observeSeconds: Double
    public var checks: [HealthCheck]
    /// The custom values the app publishes in heartbeats, by name: whether each is a number.
    public var custom: [String: HealthCheck.ValueKind]

    public init(observeSeconds: Double, checks: [HealthCheck], custom: [String: HealthCheck.ValueKind] = [:]) {
        self.observeSeconds = observeSeconds
        self.checks = checks
        self.custom = custom
    }

    /// In words, for plans.
    public var summary: String {
        checks.map(\.text).joined(separator: ", ") + observed
    }

    /// In words, for a pull request's comment: each check as a code span, so what its text says
    /// (`<!--`, a link, a new line) shows as written instead of hiding or forging what follows.
    public var markdownSummary: String {
        checks.map { DisplayText.codeSpan($0.text) }.joined(separator: ", ") + observed
    }

    private var observed: String {
        observeSeconds > 0 ? ", observed for \(DurationText.format(.milliseconds(Int64(observeSeconds * 1_000))))" : ""
    }
}

/// What one heartbeat said, as much as health checks read: percentages for CPU, memory and the
/// fullest disk, the monitored processes, and the custom values.
public struct HealthSample: Sendable, Equatable {
    public var at: Date
    public var cpu: Double?
    public var memory: Double?
    public var disk: Double?
    public var processes: [String: Bool]
    public var custom: [String: String]
    /// The version of each app the heartbeat reported; nil when it did not say.
    public var versions: [String: String]?

    public init(at: Date, cpu: Double? = nil, memory: Double? = nil, disk: Double? = nil, processes: [String: Bool] = [:],
                custom: [String: String] = [:], versions: [String: String]? = nil) {
        self.versions = versions
        self.at = at
        self.cpu = cpu
        self.memory = memory
        self.disk = disk
        self.processes = processes
        self.custom = custom
    }
}

extension HealthSample {
    /// What health checks and alert rules read of a heartbeat received at `at`: percentages,
    /// processes, custom values, app versions.
    public init(_ report: Heartbeat, at: Date) {
        self.init(at: at, cpu: report.cpuPercent, memory: report.memoryPercent, disk: report.fullestDiskPercent,
                  processes: Dictionary((report.processes ?? []).map { ($0.name, $0.running) }, uniquingKeysWith: { $1 }),
                  custom: report.custom ?? [:], versions: report.apps?.mapValues(\.version))
    }
}

/// One check: `SUBJECT OP OPERAND`, such as `cpu <= baseline + 20%`, `memory < 90%`,
/// `process.thermostat == up`, `custom.errors < 5`, `custom.version == ${version}`.
///
/// Subjects: `cpu`, `memory` and `disk` (percent used; disk is the fullest one),
/// `process.NAME` (up or down), `custom.NAME` (a value the device's apps publish).
/// Operands: a number (a trailing `%` is allowed on the percentages), `baseline` — the device's
/// own mean before its update — optionally `+` or `-` a number (`baseline + 20`, points) or a
/// percentage of it (`baseline + 20%`), or text (`up`, `"eco"`, `${version}`).
public struct HealthCheck: Hashable, Sendable {
    public enum ValueKind: String, Hashable, Sendable { case number, text }

    public enum Subject: Hashable, Sendable {
        case cpu, memory, disk
        case process(String)
        case custom(String)

        var name: String {
            switch self {
            case .cpu: "cpu"
            case .memory: "memory"
            case .disk: "disk"
            case .process(let name): "process.\(name)"
            case .custom(let name): "custom.\(name)"
            }
        }

        var isPercentage: Bool { self == .cpu || self == .memory || self == .disk }
    }

    public enum Comparison: String, Hashable, Sendable, CaseIterable {
        case lessOrEqual = "<=", greaterOrEqual = ">=", equal = "==", notEqual = "!=", less = "<", greater = ">"

        var isOrdering: Bool { self != .equal && self != .notEqual }

        func holds<T: Comparable>(_ left: T, _ right: T) -> Bool {
            switch self {
            case .less: left < right
            case .lessOrEqual: left <= right
            case .greater: left > right
            case .greaterOrEqual: left >= right
            case .equal: left == right
            case .notEqual: left != right
            }
        }
    }

    public enum Operand: Hashable, Sendable {
        case number(Double)
        /// The device's own mean before the update, plus `offset` points, or plus `offset`
        /// percent of itself when `relative`.
        case baseline(offset: Double, relative: Bool)
        case text(String)
    }

    public var subject: Subject
    public var comparison: Comparison
    public var operand: Operand
    /// As written (after `${…}` was filled in).
    public var text: String

    public struct Problem: Error, Sendable, Equatable { public var reason: String }

    /// Parses one check; `custom` is what the app declared it publishes.
    public static func parse(_ text: String, custom: [String: ValueKind] = [:]) -> Result<HealthCheck, Problem> {
        let shape = "write it as SUBJECT OP VALUE, such as 'cpu <= baseline + 20%', 'custom.errors < 5' or 'process.app == up'"
        let trimmed = text.trimmedSpaces
        // The operator: the first of <=, >=, ==, !=, <, > (two-character ones before one).
        var found: (Comparison, Range<String.Index>)?
        search: for index in trimmed.indices {
            for comparison in Comparison.allCases where trimmed[index...].hasPrefix(comparison.rawValue) {
                found = (comparison, index..<trimmed.index(index, offsetBy: comparison.rawValue.count))
                break search
            }
        }
        guard let (comparison, range) = found else { return .failure(Problem(reason: "no comparison (<, <=, >, >=, ==, !=); " + shape)) }
        let left = trimmed[..<range.lowerBound].trimmedSpaces
        let right = trimmed[range.upperBound...].trimmedSpaces
        guard !left.isEmpty, !right.isEmpty else { return .failure(Problem(reason: shape)) }

        let subject: Subject
        switch left {
        case "cpu": subject = .cpu
        case "memory": subject = .memory
        case "disk": subject = .disk
        default:
            if left.hasPrefix("process."), left.count > 8 {
                subject = .process(String(left.dropFirst(8)))
            } else if left.hasPrefix("custom."), left.count > 7 {
                let name = String(left.dropFirst(7))
                guard custom[name] != nil else {
                    return .failure(Problem(reason: "custom value '\(name)' is not declared in health.custom"
                                            + Suggestion.hint(for: name, in: custom.keys.sorted())))
                }
                subject = .custom(name)
            } else {
                return .failure(Problem(reason: "unknown subject '\(left)': use cpu, memory, disk, process.NAME or custom.NAME"))
            }
        }
        let numeric: Bool = switch subject {
        case .cpu, .memory, .disk: true
        case .process: false
        case .custom(let name): custom[name] == .number
        }

        let operand: Operand
        if right.hasPrefix("baseline") {
            guard numeric else { return .failure(Problem(reason: "'baseline' compares numbers; \(subject.name) is not one")) }
            let rest = right.dropFirst(8).trimmedSpaces
            if rest.isEmpty {
                operand = .baseline(offset: 0, relative: false)
            } else {
                guard let sign = rest.first, sign == "+" || sign == "-",
                      let (value, percent) = number(rest.dropFirst().trimmedSpaces)
                else { return .failure(Problem(reason: "after 'baseline' write + or - and a number, such as 'baseline + 20%'")) }
                operand = .baseline(offset: sign == "-" ? -value : value, relative: percent)
            }
        } else if numeric {
            guard let (value, percent) = number(right) else {
                return .failure(Problem(reason: "\(subject.name) is a number; '\(right)' is not"))
            }
            if percent, !subject.isPercentage {
                return .failure(Problem(reason: "'%' is for cpu, memory and disk; \(subject.name) is a plain number"))
            }
            operand = .number(value)
        } else {
            guard !comparison.isOrdering else {
                return .failure(Problem(reason: "\(subject.name) is compared with == or != only"))
            }
            var value = right
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            if case .process = subject, value != "up", value != "down" {
                return .failure(Problem(reason: "a process is up or down, not '\(value)'"))
            }
            operand = .text(value)
        }
        return .success(HealthCheck(subject: subject, comparison: comparison, operand: operand, text: trimmed))
    }

    /// `12`, `12.5`, `90%`, `-10`, `+1`, `1e3`: finite decimals, as devices' values are read.
    private static func number(_ text: String) -> (Double, Bool)? {
        let percent = text.hasSuffix("%")
        let digits = percent ? String(text.dropLast()).trimmedSpaces : text
        guard !digits.isEmpty, digits.contains(where: \.isNumber), let value = finite(digits) else { return nil }
        return (value, percent)
    }

    /// A device's custom value as a number: finite decimals only ("inf", "nan" and hex are not).
    static func finite(_ text: String) -> Double? {
        guard text.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "." || $0 == "-" || $0 == "+" || $0 == "e" || $0 == "E") }),
              let value = Double(text), value.isFinite else { return nil }
        return value
    }

    /// Whether the check references `baseline`.
    public var usesBaseline: Bool { if case .baseline = operand { true } else { false } }

    /// What a check found in one heartbeat: it holds, it does not (and what was observed, in
    /// words), or the heartbeat did not say.
    public enum Evaluation: Sendable, Equatable {
        case holds(observed: String)
        case fails(observed: String)
        case unreported
    }

    /// The one evaluator of the expression language: a rollout's health gate and alert rules
    /// both read a heartbeat through it.
    public func evaluate(_ sample: HealthSample, baseline: [HealthSample] = []) -> Evaluation {
        func format(_ value: Double) -> String {
            value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String((value * 10).rounded() / 10)
        }
        let observed: String?
        let number: Double?
        switch subject {
        case .cpu: number = sample.cpu; observed = sample.cpu.map(format)
        case .memory: number = sample.memory; observed = sample.memory.map(format)
        case .disk: number = sample.disk; observed = sample.disk.map(format)
        case .process(let name): number = nil; observed = sample.processes[name].map { $0 ? "up" : "down" }
        case .custom(let name): observed = sample.custom[name]; number = sample.custom[name].flatMap(Self.finite)
        }
        guard let observed else { return .unreported }
        func verdict(_ holds: Bool, _ words: String) -> Evaluation { holds ? .holds(observed: words) : .fails(observed: words) }
        switch operand {
        case .text(let expected):
            return verdict(comparison.holds(observed, expected), "\(subject.name) is \(observed)")
        case .number(let limit):
            guard let number else { return .fails(observed: "\(subject.name) \(observed) is not a number") }
            return verdict(comparison.holds(number, limit), "\(subject.name) \(format(number))")
        case .baseline(let offset, let relative):
            guard let number else { return .fails(observed: "\(subject.name) \(observed) is not a number") }
            let before = baseline.compactMap { earlier -> Double? in
                switch subject {
                case .cpu: earlier.cpu
                case .memory: earlier.memory
                case .disk: earlier.disk
                case .custom(let name): earlier.custom[name].flatMap(Self.finite)
                case .process: nil
                }
            }
            // No baseline (no heartbeat before the update was kept): nothing to compare with.
            guard !before.isEmpty else { return .holds(observed: "\(subject.name) \(format(number)), no baseline") }
            let mean = before.reduce(0, +) / Double(before.count)
            let limit = relative ? mean * (1 + offset / 100) : mean + offset
            return verdict(comparison.holds(number, limit), "\(subject.name) \(format(number)), baseline \(format(mean)) (limit \(format(limit)))")
        }
    }

    /// nil when `sample` passes; else what was observed, in words: "cpu 85, baseline 40 (limit 48)".
    public func failure(in sample: HealthSample, baseline: [HealthSample]) -> String? {
        switch evaluate(sample, baseline: baseline) {
        case .holds: nil
        case .fails(let observed): observed
        case .unreported: "\(subject.name) not reported"
        }
    }
}

/// The health of one device's update, from its heartbeats since.
extension HealthPolicy {
    /// A success older than its observation and this is passed without judging: heartbeats are
    /// kept a day, and an app given health checks does not judge its old updates.
    public static let judgingHorizon: Double = 86_400
    /// How many heartbeats before an update make its baseline.
    public static let baselineCount = 10
}

public enum HealthVerdict: Sendable, Equatable {
    case passed
    /// Still inside its observation (or waiting for its first heartbeat after the update).
    case observing(until: Date)
    /// A check failed: which, when, and what was observed.
    case failed(String)
}

extension HealthPolicy {
    /// The verdict on an update the device took at `takenAt` and finished at `succeededAt`.
    /// `samples` are its heartbeats, oldest first. The baseline is the mean of the last ten
    /// heartbeats before it took the update. Every heartbeat from its success to the end of
    /// `observeSeconds`, and the first one after — a device offline meanwhile is judged by what
    /// it says when it is back — must pass every check; it passes once that first one came.
    ///
    /// With `installed` (the app and the version the update installed), a heartbeat that reports
    /// the app at another version, or not at all, is not judged: the device made it before the
    /// update ended, though it arrived after the success (a heartbeat in flight while the final
    /// report went ahead of it), and it says nothing of the new version.
    public func verdict(samples: [HealthSample], takenAt: Date?, succeededAt: Date,
                        installed: (app: String, version: String)? = nil) -> HealthVerdict {
        let end = succeededAt.addingTimeInterval(observeSeconds)
        let before = takenAt ?? succeededAt
        let baseline = Array(samples.filter { $0.at < before }.suffix(Self.baselineCount))
        let after = samples.filter { sample in
            guard sample.at >= succeededAt else { return false }
            guard let installed, let versions = sample.versions else { return true }
            return versions[installed.app] == installed.version
        }
        var window = after.filter { $0.at < end }
        let closing = after.first { $0.at >= end }
        if let closing { window.append(closing) }
        for sample in window {
            for check in checks {
                if let observed = check.failure(in: sample, baseline: baseline) {
                    return .failed("health check '\(check.text)' failed at \(Timestamp.format(sample.at)): \(observed)")
                }
            }
        }
        return closing == nil ? .observing(until: end) : .passed
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmedSpaces: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
