/// How `flotilla serve` runs.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// Where the database and signing key live.
    public var dataDirectory: String
    /// How often agents send a heartbeat.
    public var heartbeatIntervalSeconds: Int
    /// A device is offline after this many missed heartbeats.
    public var missedHeartbeatsBeforeOffline: Int
    /// Request bodies larger than this are refused with 413.
    public var maximumBodyBytes: Int
    /// Operator requests may be larger: a deployment lists every device it reaches.
    public var maximumOperatorBodyBytes = 8 << 20
    /// Heartbeats are committed together at least this often, in milliseconds.
    public var batchMilliseconds: Int
    /// … or as soon as this many are waiting.
    public var batchSize: Int
    /// How long a poll for assignments waits for work before answering 304.
    public var longPollSeconds: Double = 30
    /// How long heartbeats are kept as history.
    public var heartbeatRetention: Duration = .seconds(24 * 3_600)
    /// How often old heartbeats are pruned.
    public var retentionCheckInterval: Duration = .seconds(600)

    public init(host: String = "127.0.0.1", port: Int = 8080, dataDirectory: String = "./flotilla-data",
                heartbeatIntervalSeconds: Int = 25, missedHeartbeatsBeforeOffline: Int = 3, maximumBodyBytes: Int = 64 * 1024,
                batchMilliseconds: Int = 50, batchSize: Int = 512) {
        self.host = host
        self.port = port
        self.dataDirectory = dataDirectory
        self.heartbeatIntervalSeconds = heartbeatIntervalSeconds
        self.missedHeartbeatsBeforeOffline = missedHeartbeatsBeforeOffline
        self.maximumBodyBytes = maximumBodyBytes
        self.batchMilliseconds = batchMilliseconds
        self.batchSize = batchSize
    }

    /// Seconds without a heartbeat after which a device counts as offline.
    public var offlineAfterSeconds: Double { Double(heartbeatIntervalSeconds * missedHeartbeatsBeforeOffline) }
}
