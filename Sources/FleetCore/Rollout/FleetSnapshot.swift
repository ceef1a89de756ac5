public import FleetProtocol
public import FoundationEssentials

/// Everything the rollout decision reads, gathered in one place: the desired fleet at the
/// commit in force, what each device reports, the deployments and executions so far, and the
/// time. The controller gathers it from git and the store; the simulator builds it from its
/// virtual fleet; both hand it to `RolloutDecision.decide`.
public struct FleetSnapshot: Sendable {
    /// The commit whose desired state is in force, and the branch head (they differ when the
    /// head does not validate).
    public var commit: String
    public var head: String
    /// The head's first errors when it does not validate.
    public var headErrors: [String]
    public var fleet: CompiledFleet
    /// The devices as reported; `online` already says whether each was heard within
    /// `settings.offlineAfter` of `now` (`Device.isOnline`).
    public var inventory: DeviceInventory
    /// Per inventory index: when the device was last heard, and the execution its last
    /// heartbeat says it works on.
    public var lastHeard: [Date?]
    public var executing: [String?]
    /// Per inventory index: why the device refuses updates now (its lock holds at `now`); nil
    /// when it does not.
    public var locked: [String?]
    /// Per inventory index, only for devices whose apps have probes: what each probe last said.
    /// The inventory's versions already follow them (`Device.observedApps`).
    public var probes: [Int: [String: ProbeResult]]
    /// Every deployment of the project that the decision may need, any order.
    public var deployments: [Deployment]
    /// Their executions, in creation order.
    public var executions: [Execution]
    /// Apps whose new waves, heals and rollbacks are held.
    public var suspended: Set<String>
    /// The approvals operators gave, each for one digest of one target (`approvalKey`).
    public var approvals: Set<String>
    /// By device id, oldest first: the heartbeats of devices whose updates' health is judged
    /// now (those of apps with `health` checks, updated recently).
    public var samples: [String: [HealthSample]]
    public var now: Date
    public var settings: RolloutSettings

    public init(commit: String, head: String? = nil, headErrors: [String] = [], fleet: CompiledFleet, devices: [Device],
                deployments: [Deployment], executions: [Execution], suspended: Set<String> = [], approvals: Set<String> = [],
                samples: [String: [HealthSample]] = [:], now: Date, settings: RolloutSettings = RolloutSettings()) {
        self.approvals = approvals
        self.samples = samples
        self.commit = commit
        self.head = head ?? commit
        self.headErrors = headErrors
        self.fleet = fleet
        var inventory = DeviceInventory()
        inventory.reserveCapacity(devices: devices.count, tagsPerDevice: 4, appsPerDevice: max(1, fleet.apps.count))
        lastHeard = []
        lastHeard.reserveCapacity(devices.count)
        executing = []
        executing.reserveCapacity(devices.count)
        locked = []
        locked.reserveCapacity(devices.count)
        probes = [:]
        for device in devices {
            locked.append(device.lock.flatMap { lock in lock.until.map { $0 > now } ?? true ? lock.reason : nil })
            if !device.probes.isEmpty { probes[lastHeard.count] = device.probes }
            inventory.append(id: device.id, tags: device.tags, apps: device.probes.isEmpty ? device.apps : device.observedApps,
                             online: Device.isOnline(lastHeard: device.lastHeard, now: now, offlineAfter: settings.offlineAfter))
            lastHeard.append(device.lastHeard)
            executing.append(device.executing)
        }
        self.inventory = inventory
        self.deployments = deployments
        self.executions = executions
        self.suspended = suspended
        self.now = now
        self.settings = settings
    }

    /// An approval's key: it belongs to one digest of one target of one app, so a new commit
    /// that changes what the target deploys needs a new approval.
    public static func approvalKey(app: String, group: String, digest: String) -> String {
        "\(app)\u{0}\(group)\u{0}\(digest)"
    }

    /// One device as the registry knows it.
    public struct Device: Sendable {
        public var id: String
        public var tags: [(String, String)]
        public var apps: [(name: String, version: String, digest: String?)]
        public var lastHeard: Date?
        public var executing: String?
        /// The update lock it reported: why, and until when (nil: until removed).
        public var lock: (reason: String, until: Date?)?
        /// By app: what the app's probe last said runs, for apps whose flow has one.
        public var probes: [String: ProbeResult]

        public init(id: String, tags: [(String, String)], apps: [(name: String, version: String, digest: String?)], lastHeard: Date?,
                    executing: String? = nil, lock: (reason: String, until: Date?)? = nil, probes: [String: ProbeResult] = [:]) {
            self.lock = lock
            self.probes = probes
            self.id = id
            self.tags = tags
            self.apps = apps
            self.lastHeard = lastHeard
            self.executing = executing
        }

        /// What runs, as far as the device knows: where a probe tells, what it says — another
        /// version (installed by no deployment, so no digest), or nothing (the app is not
        /// there); where it cannot tell (timed out, failed), or there is no probe, what the
        /// agent installed. An unknown version is never drift.
        public var observedApps: [(name: String, version: String, digest: String?)] {
            apps.compactMap { app in
                guard let probe = probes[app.name], probe.error == nil else { return app }
                guard let version = probe.version else { return nil }
                return version == app.version ? app : (app.name, version, nil)
            }
        }

        /// Heard within `offlineAfter` seconds of `now`. A device never heard is offline.
        public static func isOnline(lastHeard: Date?, now: Date, offlineAfter: Double) -> Bool {
            guard let lastHeard else { return false }
            return now.timeIntervalSince(lastHeard) <= offlineAfter
        }
    }

    /// A deployment, as much as the decision reads of it.
    public struct Deployment: Sendable, Equatable {
        public var id: String
        public var app: String
        public var version: String
        public var digest: String
        public var purpose: DeploymentPurpose
        /// The target group it is for; nil for an operator's (and rows stored before groups were).
        public var group: String?
        public var createdAt: Date
        /// Its rollout was aborted; sticky, so no new wave of the digest starts.
        public var aborted: Bool

        public init(id: String, app: String, version: String, digest: String, purpose: DeploymentPurpose, group: String? = nil, createdAt: Date,
                    aborted: Bool = false) {
            self.id = id
            self.app = app
            self.version = version
            self.digest = digest
            self.purpose = purpose
            self.group = group
            self.createdAt = createdAt
            self.aborted = aborted
        }
    }

    /// One device's part in a deployment.
    public struct Execution: Sendable, Equatable {
        public var id: String
        public var deploymentID: String
        public var deviceID: String
        public var state: ExecutionState
        /// When it last changed: queued, taken by the device, a report, or ended.
        public var updatedAt: Date
        /// When the device took it; nil while queued.
        public var takenAt: Date?
        /// Its device passed the app's health checks after it succeeded (recorded once).
        public var healthPassed: Bool

        public init(id: String, deploymentID: String, deviceID: String, state: ExecutionState, updatedAt: Date, takenAt: Date? = nil,
                    healthPassed: Bool = false) {
            self.healthPassed = healthPassed
            self.id = id
            self.deploymentID = deploymentID
            self.deviceID = deviceID
            self.state = state
            self.updatedAt = updatedAt
            self.takenAt = takenAt
        }
    }
}

/// The controller's own settings that the decision depends on.
public struct RolloutSettings: Sendable, Equatable {
    /// A device not heard for this many seconds is offline: never put in a wave, never failed.
    public var offlineAfter: Double
    /// A drifting device of a `selfHeal: true` app is corrected at most this often (seconds).
    public var selfHealInterval: Double
    /// A device counts as drifted only when heard this many seconds after its execution ended
    /// still reporting another version: a heartbeat made before the end can arrive after it.
    public var driftGrace: Double

    public init(offlineAfter: Double = 75, selfHealInterval: Double = 600, driftGrace: Double = 10) {
        self.offlineAfter = offlineAfter
        self.selfHealInterval = selfHealInterval
        self.driftGrace = driftGrace
    }
}
