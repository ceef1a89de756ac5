/// `POST /agent/v1/heartbeat`: what a device reports about itself, every interval.
public struct Heartbeat: Codable, Sendable, Equatable {
    /// Made by the agent, unique per report, so a retried report is counted once.
    public var reportID: String
    /// When the agent made the report, in milliseconds since 1970.
    public var sentAtMilliseconds: Int64?
    public var cpuPercent: Double?
    public var memory: Memory?
    public var disks: [Disk]?
    public var uptimeSeconds: Int64?
    /// 1, 5 and 15 minute load averages.
    public var load: [Double]?
    public var processes: [MonitoredProcess]?
    /// Values the device's own apps publish.
    public var custom: [String: String]?
    /// Installed apps and their versions.
    public var apps: [String: InstalledApp]?
    public var agentVersion: String?
    /// The execution the agent is working on (from its journal), if any: a device that returns
    /// after an outage and resumes an execution the server gave up on says so here, so it is
    /// not given another one meanwhile.
    public var executing: String?

    /// The device refuses updates while it is busy (`flotilla-agent lock`, or a lock file an
    /// application writes): it is skipped, never failed, until the lock is gone or expires.
    public var lock: UpdateLock?

    public struct UpdateLock: Codable, Sendable, Equatable {
        /// Why, in the words of whoever locked it.
        public var reason: String
        /// When the lock ends by itself (milliseconds since 1970); nil: when it is removed.
        public var untilMilliseconds: Int64?

        public init(reason: String, untilMilliseconds: Int64? = nil) {
            self.reason = reason
            self.untilMilliseconds = untilMilliseconds
        }
    }

    public struct Memory: Codable, Sendable, Equatable {
        public var usedBytes: Int64
        public var totalBytes: Int64

        public init(usedBytes: Int64, totalBytes: Int64) {
            self.usedBytes = usedBytes
            self.totalBytes = totalBytes
        }
    }

    public struct Disk: Codable, Sendable, Equatable {
        public var mount: String
        public var usedBytes: Int64
        public var totalBytes: Int64

        public init(mount: String, usedBytes: Int64, totalBytes: Int64) {
            self.mount = mount
            self.usedBytes = usedBytes
            self.totalBytes = totalBytes
        }
    }

    public struct MonitoredProcess: Codable, Sendable, Equatable {
        public var name: String
        public var running: Bool

        public init(name: String, running: Bool) {
            self.name = name
            self.running = running
        }
    }

    public init(reportID: String, sentAtMilliseconds: Int64? = nil, cpuPercent: Double? = nil, memory: Memory? = nil,
                disks: [Disk]? = nil, uptimeSeconds: Int64? = nil, load: [Double]? = nil, processes: [MonitoredProcess]? = nil,
                custom: [String: String]? = nil, apps: [String: InstalledApp]? = nil, agentVersion: String? = nil,
                executing: String? = nil, lock: UpdateLock? = nil) {
        self.lock = lock
        self.reportID = reportID
        self.sentAtMilliseconds = sentAtMilliseconds
        self.cpuPercent = cpuPercent
        self.memory = memory
        self.disks = disks
        self.uptimeSeconds = uptimeSeconds
        self.load = load
        self.processes = processes
        self.custom = custom
        self.apps = apps
        self.agentVersion = agentVersion
        self.executing = executing
    }
}

extension Heartbeat {
    /// Memory used, percent of the total; nil without a total.
    public var memoryPercent: Double? { memory.flatMap { Self.percent($0.usedBytes, of: $0.totalBytes) } }
    /// Disk used, percent of the fullest mount reported; nil without one.
    public var fullestDiskPercent: Double? { disks?.compactMap { Self.percent($0.usedBytes, of: $0.totalBytes) }.max() }

    static func percent(_ used: Int64, of total: Int64) -> Double? { total > 0 ? Double(used) / Double(total) * 100 : nil }
}

/// An installed app as the agent reports it.
public struct InstalledApp: Codable, Sendable, Equatable {
    /// The version the agent installed, as its deployment named it.
    public var version: String
    /// The digest of the deployment that installed it, when known.
    public var digest: String?
    /// What the app's probe last said runs, when its flow declares one.
    public var probe: ProbeResult?

    public init(version: String, digest: String? = nil, probe: ProbeResult? = nil) {
        self.version = version
        self.digest = digest
        self.probe = probe
    }
}

/// What an app's probe said, the last time it ran.
public struct ProbeResult: Codable, Sendable, Equatable {
    /// The version it printed; nil with no `error`: nothing of the app runs.
    public var version: String?
    /// Why the probe could not tell ("probe timed out after 30 s", "probe exited with status 2:
    /// …"): the version is unknown, which is never taken as drift.
    public var error: String?
    /// When it ran, in milliseconds since 1970.
    public var atMilliseconds: Int64

    public init(version: String?, error: String? = nil, atMilliseconds: Int64) {
        self.version = version
        self.error = error
        self.atMilliseconds = atMilliseconds
    }

    /// In a sentence, for STATUS.md and the CLI: "probe says 2.4.1", "probe says nothing runs",
    /// "probe timed out after 30 s".
    public var summary: String {
        if let error { return error }
        return version.map { "probe says \($0)" } ?? "probe says nothing runs"
    }
}

/// The server's answer to a heartbeat, sent once the report is durable.
public struct HeartbeatAcknowledgement: Codable, Sendable, Equatable {
    /// The report this acknowledges.
    public var reportID: String
    /// False when the report had been received before and was not counted again.
    public var accepted: Bool
    /// How often to send a heartbeat, in seconds.
    public var heartbeatIntervalSeconds: Int
    /// The project lets operators reach the device (`remote:` in fleet.yaml): the agent then
    /// long-polls for remote commands too. Absent (an older server) means no.
    public var remote: Bool?

    public init(reportID: String, accepted: Bool, heartbeatIntervalSeconds: Int, remote: Bool? = nil) {
        self.reportID = reportID
        self.accepted = accepted
        self.heartbeatIntervalSeconds = heartbeatIntervalSeconds
        self.remote = remote
    }
}

/// Every error the server returns: what went wrong, and the request field when one is to blame.
public struct ErrorResponse: Codable, Sendable, Equatable {
    public struct Detail: Codable, Sendable, Equatable {
        /// A stable, machine-readable code such as `invalid_field` or `token_expired`.
        public var code: String
        public var message: String
        /// The JSON path of the offending field, e.g. `disks[1].mount`.
        public var field: String?

        public init(code: String, message: String, field: String? = nil) {
            self.code = code
            self.message = message
            self.field = field
        }
    }

    public var error: Detail

    public init(code: String, message: String, field: String? = nil) {
        error = Detail(code: code, message: message, field: field)
    }
}
