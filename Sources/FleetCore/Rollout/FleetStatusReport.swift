import FleetProtocol
/// What the controller last saw, per app and target: for the note, STATUS.md, status.json,
/// the API and the forge. Made by `RolloutDecision.decide` alongside its actions.
public struct FleetStatusReport: Codable, Sendable, Equatable {
    public struct Target: Codable, Sendable, Equatable {
        public var group: String
        public var version: String
        public var devices: Int
        public var converged: Int
        public var updating: Int
        public var failed: Int
        /// Devices that still need the version and are offline: they wait, and are updated
        /// when they are heard again. Never failures.
        public var offline: Int
        /// converged, updating, waiting (for its gate: notBefore, after/bake, approval; or for
        /// its devices' maintenance window),
        /// suspended, drifted, aborted or failed.
        public var state: String
        /// Why nothing starts now, when something holds the target.
        public var reason: String?
        /// Devices that still need the version and refuse updates now (an update lock): they
        /// wait, never failures.
        public var locked: Int
        /// Devices that still need the version and are outside their maintenance window now:
        /// they wait for it to open.
        public var outsideWindow: Int
        /// Devices that finished the update and whose health checks are still being observed.
        public var observing: Int
        /// Devices whose health checks failed after the update: which check, and what was seen.
        /// Also counted in `failed`.
        public var unhealthy: [DeviceReason]

        public init(group: String, version: String, devices: Int, converged: Int, updating: Int, failed: Int, offline: Int, state: String,
                    reason: String? = nil, locked: Int = 0, outsideWindow: Int = 0, observing: Int = 0, unhealthy: [DeviceReason] = []) {
            self.observing = observing
            self.unhealthy = unhealthy
            self.locked = locked
            self.outsideWindow = outsideWindow
            self.group = group
            self.version = version
            self.devices = devices
            self.converged = converged
            self.updating = updating
            self.failed = failed
            self.offline = offline
            self.state = state
            self.reason = reason
        }
    }

    public struct App: Codable, Sendable, Equatable {
        public var name: String
        public var targets: [Target]
        public var drifted: [String]
        /// Each drifted device, and what says so: "probe says 2.4.1, desired 2.5.0", or what
        /// the agent reports when the app has no probe.
        public var drift: [DeviceReason]
        /// Devices whose probe of the app could not tell what runs (timed out, failed), the
        /// first `probeFailureLimit` by id: their version is taken as the agent recorded it.
        public var probeFailures: [DeviceReason]
        /// How many devices' probes could not tell, all of them.
        public var probeFailed: Int
        /// Why the app could not be reconciled on the last pass (the store refused a write,
        /// say); the others went on. Nil when all went well.
        public var error: String?

        public static let probeFailureLimit = 50

        public init(name: String, targets: [Target], drifted: [String], error: String? = nil, drift: [DeviceReason] = [],
                    probeFailures: [DeviceReason] = [], probeFailed: Int = 0) {
            self.drift = drift
            self.probeFailures = probeFailures
            self.probeFailed = probeFailed
            self.name = name
            self.targets = targets
            self.drifted = drifted
            self.error = error
        }

        private enum CodingKeys: String, CodingKey { case name, targets, drifted, drift, probeFailures, probeFailed, error }

        /// A server older than the probes sends none of their fields.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            targets = try container.decode([Target].self, forKey: .targets)
            drifted = try container.decode([String].self, forKey: .drifted)
            drift = try container.decodeIfPresent([DeviceReason].self, forKey: .drift) ?? []
            probeFailures = try container.decodeIfPresent([DeviceReason].self, forKey: .probeFailures) ?? []
            probeFailed = try container.decodeIfPresent(Int.self, forKey: .probeFailed) ?? 0
            error = try container.decodeIfPresent(String.self, forKey: .error)
        }

        /// "12/50 devices at 2.5.0", or per version when targets differ; offline devices still
        /// to update are named, not counted as failures.
        public var summary: String {
            let converged = targets.reduce(0) { $0 + $1.converged }
            let devices = targets.reduce(0) { $0 + $1.devices }
            let versions = targets.filter { $0.devices > 0 }.map(\.version)
            let failed = targets.reduce(0) { $0 + $1.failed }
            let offline = targets.reduce(0) { $0 + $1.offline }
            var text = Set(versions).count == 1
                ? "\(converged)/\(devices) devices at \(versions[0])"
                : "\(converged)/\(devices) devices at their version (" + targets.filter { $0.devices > 0 }
                    .map { "\($0.group) \($0.version)" }.joined(separator: ", ") + ")"
            if offline > 0 { text += "; \(offline) offline pending" }
            let locked = targets.reduce(0) { $0 + $1.locked }
            if locked > 0 { text += "; \(locked) locked pending" }
            if failed > 0 { text += "; \(failed) failed" }
            if targets.contains(where: { $0.state == "aborted" }) { text += "; rollout aborted" }
            // What the forge's pending status is waiting for.
            for target in targets where target.state == "waiting" { text += "; \(target.group) \(target.reason ?? "waiting")" }
            if let error { text += "; not reconciled: \(error)" }
            return text
        }
    }

    public var commit: String
    /// The first line of the commit's message and its author, when the repository could tell.
    public var commitSubject: String?
    public var commitAuthor: String?
    /// The commit's page on the forge, when the fleet names one.
    public var commitURL: String?
    public var head: String
    public var headErrors: [String]
    public var apps: [App]
    /// Devices that refuse updates now (an update lock), with why.
    public var locked: [LockedDevice]
    /// The alerts of `alerts/` firing now, by rule and device, the first `alertLimit`; nil from a
    /// server without alerts.
    public var alerts: [Alert]?
    /// How many alerts fire, all of them.
    public var alertsFiring: Int?

    public static let alertLimit = 50

    /// An alert rule firing on a device.
    public struct Alert: Codable, Sendable, Equatable {
        public var rule: String
        public var device: String
        public var severity: String
        /// RFC 3339, UTC.
        public var firingAt: String
        /// What was observed when it fired, in words.
        public var observed: String
        public var summary: String?

        public init(rule: String, device: String, severity: String, firingAt: String, observed: String, summary: String? = nil) {
            self.rule = rule
            self.device = device
            self.severity = severity
            self.firingAt = firingAt
            self.observed = observed
            self.summary = summary
        }

        /// "[critical] hot on d-1 since 2026-12-05T10:00:00Z: cpu 97".
        public var line: String {
            "[\(severity)] \(rule) on \(device) since \(firingAt): \(observed)"
        }
    }

    public typealias LockedDevice = DeviceReason

    /// A device, and why it is listed.
    public struct DeviceReason: Codable, Sendable, Equatable {
        public var device: String
        public var reason: String

        public init(device: String, reason: String) {
            self.device = device
            self.reason = reason
        }
    }

    public init(commit: String, head: String, headErrors: [String], apps: [App], locked: [LockedDevice] = []) {
        self.locked = locked
        self.commit = commit
        self.head = head
        self.headErrors = headErrors
        self.apps = apps
    }

    /// The overall word for an app: failure when a target aborted or failed (or the app could
    /// not be reconciled), pending while any updates, success otherwise — also when the only
    /// devices left are offline.
    public static func state(of app: App) -> String {
        if app.error != nil { return "failure" }
        if app.targets.contains(where: { $0.state == "aborted" || $0.state == "failed" }) { return "failure" }
        if app.targets.contains(where: { $0.state == "updating" || $0.state == "waiting" }) { return "pending" }
        return "success"
    }
}

extension FleetStatusReport.Target {
    /// The state with what qualifies it: "converged, 3 offline pending", "suspended (…)".
    public var label: String {
        var text = state
        if state == "converged", offline > 0 { text += ", \(offline) offline pending" }
        if state == "converged", locked > 0 { text += ", \(locked) locked pending" }
        if let reason { text += " (\(reason))" }
        return text
    }
}

extension FleetStatusReport.App {
    /// Drifted devices with what says so, and probes that could not tell; for the note and the CLI.
    public func driftLines(indent: String) -> String {
        var text = ""
        if !drift.isEmpty {
            // A reason quotes what the device reported: printed, never obeyed by a terminal.
            for device in drift { text += "\(indent)drifted \(device.device): \(DisplayText.safe(device.reason, limit: 400))\n" }
        } else if !drifted.isEmpty {
            text += "\(indent)drifted: \(drifted.joined(separator: ", "))\n"
        }
        for device in probeFailures { text += "\(indent)probe of \(device.device) cannot tell: \(DisplayText.safe(device.reason, limit: 400))\n" }
        if probeFailed > probeFailures.count { text += "\(indent)… and \(probeFailed - probeFailures.count) more probes that cannot tell\n" }
        return text
    }
}
