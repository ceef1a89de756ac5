public import FleetProtocol
public import Foundation

/// A device as the operator API lists it (`GET /api/v1/devices`): never its secret hash.
/// The server writes it and `flotilla devices` reads it (so it lives here, beside the records).
public struct OperatorDeviceView: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var project: String
    public var hardwareID: String
    public var tags: [String: String]
    public var attributes: [String: String]
    public var apps: [String: InstalledApp]
    public var online: Bool
    public var enrolledAt: Date
    public var lastHeartbeatAt: Date?

    public init(id: String, name: String, project: String, hardwareID: String, tags: [String: String], attributes: [String: String],
                apps: [String: InstalledApp], online: Bool, enrolledAt: Date, lastHeartbeatAt: Date?) {
        self.id = id
        self.name = name
        self.project = project
        self.hardwareID = hardwareID
        self.tags = tags
        self.attributes = attributes
        self.apps = apps
        self.online = online
        self.enrolledAt = enrolledAt
        self.lastHeartbeatAt = lastHeartbeatAt
    }
}

/// `GET /api/v1/devices/{id}`: the device and its latest heartbeats, newest first.
public struct OperatorDeviceDetail: Codable, Sendable {
    public var device: OperatorDeviceView
    public var heartbeats: [Heartbeat]

    public init(device: OperatorDeviceView, heartbeats: [Heartbeat]) {
        self.device = device
        self.heartbeats = heartbeats
    }
}

/// `GET /api/v1/deployments/{id}`: the deployment and each device's execution.
public struct DeploymentDetail: Codable, Sendable {
    public var deployment: DeploymentRecord
    public var executions: [ExecutionRecord]

    public init(deployment: DeploymentRecord, executions: [ExecutionRecord]) {
        self.deployment = deployment
        self.executions = executions
    }
}

/// `GET /api/v1/devices/{id}/metrics`: what the device's heartbeats said over a span, in buckets
/// of one width — raw heartbeats for the last day, the ten-minute history before.
public struct DeviceMetrics: Codable, Sendable, Equatable {
    public var device: String
    public var since: Date
    public var until: Date
    /// The width of every point's bucket.
    public var bucketSeconds: Int
    /// Oldest first; buckets without a heartbeat are left out.
    public var points: [Point]

    public struct Point: Codable, Sendable, Equatable {
        /// When the bucket starts.
        public var at: Date
        public var samples: Int
        /// CPU use, percent.
        public var cpu: Measure?
        /// Memory used, percent.
        public var memory: Measure?
        /// Disk used, percent of the fullest watched mount.
        public var disk: Measure?
        /// The 1-minute load average.
        public var load: Measure?

        public init(_ bucket: MetricBucket) {
            at = bucket.start
            samples = bucket.samples
            cpu = bucket.cpu.map(Measure.init)
            memory = bucket.memory.map(Measure.init)
            disk = bucket.disk.map(Measure.init)
            load = bucket.load.map(Measure.init)
        }
    }

    /// The mean and the highest of one measure in a bucket, to two decimals.
    public struct Measure: Codable, Sendable, Equatable {
        public var mean: Double
        public var max: Double

        public init(_ statistic: MetricBucket.Statistic) {
            mean = (statistic.mean * 100).rounded() / 100
            max = (statistic.max * 100).rounded() / 100
        }
    }

    public init(device: String, since: Date, until: Date, bucketSeconds: Int, points: [Point]) {
        self.device = device
        self.since = since
        self.until = until
        self.bucketSeconds = bucketSeconds
        self.points = points
    }
}

/// `POST /api/v1/exec` and `POST /api/v1/fetch` answers, and `GET /api/v1/remote/{id}`: an
/// operator's request and where each device's part of it stands. The output is read apart
/// (`GET /api/v1/remote/{id}/devices/{device}/output?offset=N`), as the raw bytes the device sent.
public struct RemoteBatchView: Codable, Sendable, Equatable {
    public struct Device: Codable, Sendable, Equatable {
        public var device: String
        public var state: RemoteCommandRecord.State
        public var exitCode: Int?
        public var timedOut: Bool
        public var truncated: Bool
        public var droppedBytes: Int64
        public var outputBytes: Int
        public var message: String?
        public var takenAt: Date?
        public var finishedAt: Date?

        public init(_ record: RemoteCommandRecord) {
            device = record.deviceID
            state = record.state
            exitCode = record.result?.exitCode
            timedOut = record.result?.timedOut ?? false
            truncated = record.result?.truncated ?? false
            droppedBytes = record.result?.droppedBytes ?? 0
            outputBytes = record.outputBytes
            message = record.message
            takenAt = record.takenAt
            finishedAt = record.finishedAt
        }
    }

    public var id: String
    public var kind: RemoteCommand.Kind
    /// `exec`: the command's words; `fetch`: the path.
    public var command: [String]
    public var requestedBy: String
    public var requestedAt: Date
    public var timeoutSeconds: Int
    public var maximumBytes: Int
    /// Every device's part has ended.
    public var done: Bool
    public var devices: [Device]

    public init(records: [RemoteCommandRecord]) {
        let first = records[0]
        id = first.batch
        kind = first.command.kind
        command = first.command.kind == .fetch ? [first.command.path ?? ""] : first.command.command
        requestedBy = first.requestedBy
        requestedAt = first.requestedAt
        timeoutSeconds = first.command.timeoutSeconds
        maximumBytes = first.command.maximumBytes
        done = records.allSatisfy(\.state.isFinal)
        devices = records.map(Device.init)
    }
}
