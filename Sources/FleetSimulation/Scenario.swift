import FleetCore
public import FoundationEssentials

/// Everything one simulated run is made of, drawn from its seed: the fleet, its policy, the
/// devices' outages, step durations, failure rates, commits arriving mid-rollout, suspensions
/// and controller restarts.
public struct Scenario: Sendable {
    public var seed: UInt64
    public var deviceCount: Int
    /// Per device: its `ring` tag (canary or main) and the outages it will have.
    public var devices: [SimulatedDeviceSpec]
    public var policy: String
    public var twoTargets: Bool
    public var selfHeal: Bool
    public var stepCount: Int
    /// Seconds one step takes, at least and at most.
    public var stepSeconds: ClosedRange<Int>
    /// Chance that one step of a version fails, by version.
    public var failureRate: [String: Double]
    /// Commits after the first, at virtual seconds.
    public var commits: [(at: Int, change: CommitChange)]
    /// Suspensions: the app held from `at` for `seconds`.
    public var suspensions: [(at: Int, seconds: Int)]
    /// Controller restarts: all of its memory lost (it keeps none, which is the point).
    public var restarts: [Int]
    /// A device changed by hand (drift) at this second.
    public var tamper: [(at: Int, device: Int)]
    /// The run lasts this long, then a calm phase follows: every device online, nothing failing.
    public var chaosSeconds: Int
    public var executionTimeout: Int
    /// With two targets: what holds `main` back before it starts (nil: nothing).
    public var gate: Gate?
    /// The app's maintenance windows (nil: none); each device reads them in its own zone.
    public var windows: Windows?

    /// The app's health checks (nil: none), and what goes wrong on devices running some versions.
    public var health: Health?

    public struct Health: Sendable, CustomStringConvertible {
        public var observeSeconds: Int
        public var regressions: [String: Regression]

        public enum Regression: String, Sendable {
            /// CPU rises by 45 points.
            case cpu
            /// The monitored process `app` is down.
            case crash
        }

        var yaml: String {
            // A baseline needs time to compare over: without observe, absolute checks only.
            "health: {observe: \(observeSeconds)s, checks: [\(observeSeconds > 0 ? "\"cpu <= baseline + 50%\", " : "")\"cpu <= 60\", \"process.app == up\"]}"
        }

        public var description: String {
            "observe \(observeSeconds) s, regressions \(regressions.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.rawValue)" })"
        }
    }

    /// Daily from `startHour` for `hours`, never on `denyDay` (0: Monday) when there is one.
    public struct Windows: Sendable, CustomStringConvertible {
        public var startHour: Int
        public var hours: Int
        public var denyDay: Int?

        static let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]

        var yaml: String {
            func two(_ hour: Int) -> String { hour < 10 ? "0\(hour)" : "\(hour)" }
            let deny = denyDay.map { ", deny: [\(Self.days[$0])]" } ?? ""
            return "windows: {allow: [\"daily \(two(startHour)):00-\(two((startHour + hours) % 24)):00\"]\(deny)}"
        }

        public var description: String { "daily from \(startHour):00 for \(hours) h" + (denyDay.map { ", never on \(Self.days[$0])" } ?? "") }
    }

    /// main's gate: after canary (baked this long), not before a second, approval required (and
    /// given, for the digest in force then, at these seconds).
    public struct Gate: Sendable, CustomStringConvertible {
        public var after: Bool
        public var bakeSeconds: Int
        public var notBefore: Int?
        public var approval: Bool
        public var approvals: [Int]

        public var description: String {
            var parts: [String] = []
            if after { parts.append("after canary" + (bakeSeconds > 0 ? ", bake \(bakeSeconds)s" : "")) }
            if let notBefore { parts.append("notBefore +\(notBefore)s") }
            if approval { parts.append("approval required, given at \(approvals.isEmpty ? "never" : approvals.map { "\($0)s" }.joined(separator: ", "))") }
            return parts.joined(separator: "; ")
        }
    }

    public enum CommitChange: Sendable, Equatable, CustomStringConvertible {
        /// The desired version becomes this.
        case version(String)
        /// A commit that does not validate: nothing changes.
        case invalid

        public var description: String {
            switch self {
            case .version(let version): "version \(version)"
            case .invalid: "an invalid commit"
            }
        }
    }

    public init(seed: UInt64) {
        var random = SeededGenerator(seed: seed)
        self.seed = seed
        deviceCount = Int.random(in: 1...24, using: &random)
        twoTargets = Bool.random(using: &random)
        selfHeal = Bool.random(using: &random)
        stepCount = Int.random(in: 1...3, using: &random)
        let low = Int.random(in: 5...60, using: &random)
        stepSeconds = low...(low + Int.random(in: 0...120, using: &random))
        executionTimeout = [120, 300, 600, 1_800].randomElement(using: &random)!
        let batch = Bool.random(using: &random) ? "\(Int.random(in: 1...6, using: &random))" : "\([10, 25, 50, 100].randomElement(using: &random)!)%"
        let unavailable = Bool.random(using: &random) ? "\(Int.random(in: 1...5, using: &random))" : "\([10, 25, 50, 100].randomElement(using: &random)!)%"
        let failures = Bool.random(using: &random) ? "\(Int.random(in: 0...3, using: &random))" : "\([0, 5, 20, 50].randomElement(using: &random)!)%"
        let onAbort = Bool.random(using: &random) ? "rollback" : "pause"
        policy = "{batchSize: \"\(batch)\", maxUnavailable: \"\(unavailable)\", maxFailures: \"\(failures)\", onAbort: \(onAbort), executionTimeout: \(executionTimeout)s}"
        chaosSeconds = Int.random(in: 1_800...14_400, using: &random)
        let versions = ["2.0", "2.1", "3.0"]
        var rates: [String: Double] = ["1.0": 0]
        for version in versions { rates[version] = [0, 0, 0.02, 0.1, 0.4].randomElement(using: &random)! }
        failureRate = rates
        var commits: [(Int, CommitChange)] = [(0, .version("2.0"))]
        for _ in 0..<Int.random(in: 0...3, using: &random) {
            let at = Int.random(in: 30...max(30, chaosSeconds), using: &random)
            let change: CommitChange = switch Int.random(in: 0...3, using: &random) {
            case 0: .invalid
            case 1: .version("1.0") // a revert
            default: .version(versions[Int.random(in: 1..<versions.count, using: &random)])
            }
            commits.append((at, change))
        }
        self.commits = commits.sorted { $0.0 < $1.0 }
        let suspendAt = Int.random(in: 0...chaosSeconds, using: &random)
        suspensions = Bool.random(using: &random) ? [] : [(suspendAt, Int.random(in: 60...1_800, using: &random))]
        let count = deviceCount, chaos = chaosSeconds
        restarts = (0..<Int.random(in: 0...2, using: &random)).map { _ in Int.random(in: 0...chaos, using: &random) }.sorted()
        tamper = (0..<Int.random(in: 0...1, using: &random)).map { _ in (Int.random(in: 600...chaos, using: &random), Int.random(in: 0..<count, using: &random)) }
        devices = (0..<count).map { _ in SimulatedDeviceSpec(random: &random, chaosSeconds: chaos) }
        // Drawn from a generator of its own, so every other part of a seed's world is what it was
        // before gates existed.
        var locks = SeededGenerator(seed: seed ^ 0x10C4_10C4_10C4_10C4)
        for index in devices.indices where Int.random(in: 0..<6, using: &locks) == 0 {
            var at = 0
            for _ in 0..<Int.random(in: 1...2, using: &locks) {
                at += Int.random(in: 0...max(1, chaos / 2), using: &locks)
                let length = Int.random(in: 30...1_800, using: &locks)
                devices[index].locks.append((at, at + length))
                at += length
            }
        }
        var gates = SeededGenerator(seed: seed ^ 0x6A7E_6A7E_6A7E_6A7E)
        if twoTargets, Bool.random(using: &gates) {
            let after = Int.random(in: 0..<10, using: &gates) < 7
            let approval = Int.random(in: 0..<10, using: &gates) < 3
            gate = Gate(after: after,
                        bakeSeconds: after && Bool.random(using: &gates) ? Int.random(in: 300...3_600, using: &gates) : 0,
                        notBefore: Int.random(in: 0..<10, using: &gates) < 3 ? Int.random(in: 0...chaos, using: &gates) : nil,
                        approval: approval,
                        approvals: approval ? (0..<Int.random(in: 0...2, using: &gates)).map { _ in Int.random(in: 0...chaos, using: &gates) }.sorted() : [])
        }
        var healthRandom = SeededGenerator(seed: seed ^ 0x4EA1_74EA_174E_A174)
        if Int.random(in: 0..<3, using: &healthRandom) == 0 {
            var regressions: [String: Health.Regression] = [:]
            for version in versions where Int.random(in: 0..<4, using: &healthRandom) == 0 {
                regressions[version] = Bool.random(using: &healthRandom) ? .cpu : .crash
            }
            health = Health(observeSeconds: Int.random(in: 0...600, using: &healthRandom), regressions: regressions)
        }
        var windowRandom = SeededGenerator(seed: seed ^ 0x3157_3157_3157_3157)
        if Int.random(in: 0..<3, using: &windowRandom) == 0 {
            windows = Windows(startHour: Int.random(in: 0..<24, using: &windowRandom), hours: Int.random(in: 1...6, using: &windowRandom),
                              denyDay: Bool.random(using: &windowRandom) ? Int.random(in: 0..<7, using: &windowRandom) : nil)
            // Whole hours and half hours, with and without daylight saving time; some devices
            // name no zone and use the windows' own (UTC).
            let zones = [nil, "Europe.Berlin", "America.New_York", "Asia.Kolkata", "Australia.Adelaide"]
            for index in devices.indices { devices[index].zone = zones.randomElement(using: &windowRandom)! }
        }
    }

    /// The fleet repository at a commit that wants `version`, as files.
    func files(version: String) -> [String: String] {
        var files: [String: String] = [
            "fleet.yaml": "kind: Fleet\nproject: sim\n",
            "groups/rings.yaml": """
                kind: Group
                name: canary
                selector: ring=canary
                ---
                kind: Group
                name: main
                selector: ring=main
                ---
                kind: Group
                name: all
                selector: ring
                """,
        ]
        var flow = "kind: UpdateFlow\nname: install\nsteps:\n"
        for step in 0..<stepCount { flow += "  - {name: step\(step), run: \"install ${version} \(step)\", onFailure: rollback}\n" }
        flow += "rollback:\n  - {name: restore, run: \"restore\"}\n"
        files["flows/install.yaml"] = flow
        var mainGate = ""
        if let gate {
            if gate.after { mainGate += ", after: canary" + (gate.bakeSeconds > 0 ? ", bake: \(gate.bakeSeconds)s" : "") }
            if let notBefore = gate.notBefore { mainGate += ", notBefore: \(Timestamp.format(FleetSimulator.start.addingTimeInterval(Double(notBefore))))" }
            if gate.approval { mainGate += ", approval: required" }
        }
        let targets = twoTargets
            ? "  - {group: canary, version: \"\(version)\"}\n  - {group: main, version: \"\(version)\"\(mainGate)}\n"
            : "  - {group: all, version: \"\(version)\"}\n"
        let windows = (self.windows.map { $0.yaml + "\n" } ?? "") + (health.map { $0.yaml + "\n" } ?? "")
        files["apps/app.yaml"] = "kind: App\nname: app\nflow: install\nselfHeal: \(selfHeal)\n\(windows)targets:\n\(targets)rollout: \(policy)\n"
        return files
    }

    func fleet(version: String) throws -> CompiledFleet {
        var tree = FleetTree()
        for (path, text) in files(version: version) { tree.addFile(path, bytes: Array(text.utf8)) }
        return try FleetLoader.load(tree)
    }
}

/// One simulated device's nature: its tag and its outages.
public struct SimulatedDeviceSpec: Sendable {
    public var ring: String
    /// Outages as virtual seconds: from, until. A power cut stops a running execution until
    /// the device is back; a network outage lets it run on, its reports queued.
    public var outages: [(from: Int, until: Int, powerCut: Bool)]
    /// Offline from the start, heard first at this second (0: online from the start).
    public var firstHeard: Int
    /// Update locks as virtual seconds: from, until. While locked the device takes no new work
    /// and says so in its heartbeats.
    public var locks: [(from: Int, until: Int)] = []
    /// Its `timezone` tag: an IANA zone with '.' for '/'; nil: no tag.
    public var zone: String?

    func isLocked(at second: Int) -> Bool { locks.contains { second >= $0.from && second < $0.until } }

    init(random: inout SeededGenerator, chaosSeconds: Int) {
        ring = Int.random(in: 0..<4, using: &random) == 0 ? "canary" : "main"
        firstHeard = Int.random(in: 0..<5, using: &random) == 0 ? Int.random(in: 0...chaosSeconds, using: &random) : 0
        var outages: [(Int, Int, Bool)] = []
        var at = 0
        for _ in 0..<Int.random(in: 0...3, using: &random) {
            at += Int.random(in: 10...max(11, chaosSeconds / 2), using: &random)
            let length = Int.random(in: 0..<3, using: &random) == 0 ? Int.random(in: 3_600...10_800, using: &random) : Int.random(in: 20...900, using: &random)
            outages.append((at, at + length, Bool.random(using: &random)))
            at += length
        }
        self.outages = outages
    }

    func isConnected(at second: Int) -> Bool {
        second >= firstHeard && !outages.contains { second >= $0.from && second < $0.until }
    }

    func isPoweredOff(at second: Int) -> Bool {
        outages.contains { second >= $0.from && second < $0.until && $0.powerCut }
    }
}
