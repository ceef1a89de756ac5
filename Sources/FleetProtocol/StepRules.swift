/// What makes a step safe to hand to a device, checked in one place: by the compiler for flows in
/// the repository, by the operator API for deployments, and by the agent before it runs anything.
public enum StepRules {
    /// Attempts after the first.
    public static let retries = 0...100
    /// How long one attempt may run: a second to a week.
    public static let timeoutSeconds = 1...(7 * 86_400)
    public static let onFailure = ["rollback", "continue", "abort"]
    public static let composeActions = ["up", "down"]
    public static let maximumNameLength = 128
    /// Commands, scripts, URLs and paths, once parameters are filled in: long enough for any real
    /// script, short enough that a deployment cannot carry a payload.
    public static let maximumTextLength = 64 * 1024
    /// All the filled-in fields of one assignment together: what one device poll may cost.
    public static let maximumAssignmentBytes = 1 << 20

    /// A problem with one field of a step; `field` is a path such as `steps[2].retries`.
    public struct Problem: Error, Sendable, Equatable, CustomStringConvertible {
        public var field: String
        public var message: String

        public init(field: String, message: String) {
            self.field = field
            self.message = message
        }

        public var description: String { message }
    }

    /// The first problem with `step`, or nil when a device can run it.
    public static func problem(in step: AssignedStep, at path: String) -> Problem? {
        func fail(_ key: String, _ message: String) -> Problem { Problem(field: "\(path).\(key)", message: "'\(path).\(key)' \(message)") }
        if let problem = nameProblem(step.name) { return fail("name", problem) }
        guard timeoutSeconds.contains(step.timeoutSeconds) else {
            return fail("timeoutSeconds", "must be from \(timeoutSeconds.lowerBound) to \(timeoutSeconds.upperBound) (a week)")
        }
        guard retries.contains(step.retries) else { return fail("retries", "must be from \(retries.lowerBound) to \(retries.upperBound)") }
        guard onFailure.contains(step.onFailure) else { return fail("onFailure", "must be one of \(onFailure.joined(separator: ", "))") }
        let texts = step.templateTexts
        for (key, value) in texts {
            if value.utf8.count > maximumTextLength { return fail(key, "is longer than \(maximumTextLength) bytes") }
            if value.utf8.contains(0) { return fail(key, "contains a NUL byte") }
        }
        let needed: [String]
        switch step.kind {
        case .run, .script, .install: needed = ["command"]
        case .download: needed = ["url", "sha256", "destination"]
        case .agentUpdate: needed = ["url", "sha256"]
        case .compose: needed = ["project", "file"]
        }
        for key in needed where !texts.contains(where: { $0.key == key && !$0.text.isEmpty }) {
            let kind = step.kind.rawValue
            return fail(key, "is required for \(kind.first.map { "aeiou".contains($0) } == true ? "an" : "a") \(kind) step")
        }
        if step.kind == .compose, let action = step.action, !composeActions.contains(action) {
            return fail("action", "must be one of \(composeActions.joined(separator: ", "))")
        }
        if let destination = step.destination, let problem = pathProblem(destination) { return fail("destination", problem) }
        if step.kind == .download || step.kind == .agentUpdate, let sha256 = step.sha256, !sha256.contains("${"),
           sha256.utf8.count != 64 || !sha256.utf8.allSatisfy({ (48...57).contains($0) || (97...102).contains($0) }) {
            return fail("sha256", "must be 64 lowercase hexadecimal digits")
        }
        return nil
    }

    /// How long a probe may run, and how often it runs: a second to an hour, ten seconds to a day.
    public static let probeTimeoutSeconds = 1...3_600
    public static let probeIntervalSeconds = 10...86_400
    public static let probeDefaultTimeoutSeconds = 30
    public static let probeDefaultIntervalSeconds = 300

    /// The first problem with a probe, or nil when a device can run it.
    public static func problem(in probe: AssignedProbe, at path: String) -> Problem? {
        func fail(_ key: String, _ message: String) -> Problem { Problem(field: "\(path).\(key)", message: "'\(path).\(key)' \(message)") }
        if probe.command.isEmpty { return fail("command", "is required for a probe") }
        if probe.command.utf8.count > maximumTextLength { return fail("command", "is longer than \(maximumTextLength) bytes") }
        if probe.command.utf8.contains(0) { return fail("command", "contains a NUL byte") }
        guard probeTimeoutSeconds.contains(probe.timeoutSeconds) else {
            return fail("timeoutSeconds", "must be from \(probeTimeoutSeconds.lowerBound) to \(probeTimeoutSeconds.upperBound) (an hour)")
        }
        guard probeIntervalSeconds.contains(probe.intervalSeconds) else {
            return fail("intervalSeconds", "must be from \(probeIntervalSeconds.lowerBound) to \(probeIntervalSeconds.upperBound) (a day)")
        }
        return nil
    }

    /// Versions are what agents report, and what a probe prints: 1–128 letters, digits, '.',
    /// '-', '+', '_' and '~'.
    public static func versionProblem(_ version: String) -> String? {
        let scalars = version.unicodeScalars
        guard !scalars.isEmpty, scalars.count <= 128 else { return "use 1 to 128 characters" }
        let allowed = scalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || ".-+_~".unicodeScalars.contains($0)
        }
        return allowed ? nil : "use only letters, digits, '.', '-', '+', '_' and '~'"
    }

    /// Why a step's name is refused.
    public static func nameProblem(_ name: String) -> String? {
        guard name.isEmpty || name.utf8.count > maximumNameLength || name.unicodeScalars.contains(where: isControl) else { return nil }
        return "must be 1 to \(maximumNameLength) bytes without control characters"
    }

    /// Why a path a step writes to is refused: it climbs out of where it points with `..`, or it
    /// is relative (and so depends on the agent's working directory). Templates (`${…}`) are
    /// checked as written; the agent checks the filled-in path against its allowed roots.
    public static func pathProblem(_ path: String) -> String? {
        if path.split(separator: "/", omittingEmptySubsequences: false).contains("..") {
            return "must not contain a '..' component: a download stays under the directory it names"
        }
        if !path.hasPrefix("/"), !path.hasPrefix("${") { return "must be an absolute path" }
        return nil
    }

    /// Control characters, and the line separators and bidirectional overrides that make text
    /// read otherwise than it is.
    public static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
