public import FleetProtocol
public import FleetStore
#if canImport(Glibc)
import Glibc
#endif

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
    /// The most of a device's stored heartbeats (their JSON) one metrics request reads: about 25
    /// times a day of an ordinary device's (3,456 heartbeats of under a kilobyte, more with
    /// custom data). A device decides how large its heartbeats are.
    public var maximumMetricsReadBytes = 64 << 20
    /// Heartbeats are committed together at least this often, in milliseconds.
    public var batchMilliseconds: Int
    /// … or as soon as this many are waiting.
    public var batchSize: Int
    /// Among replicas on one database: this one's name and whether it leads the controllers.
    public var leadership: (any ReplicaRole)?
    /// How long a poll for assignments waits for work before answering 304.
    public var longPollSeconds: Double = 30
    /// Long-polls held open at once (assignments and remote commands together). A device past it
    /// that can be deferred (`LongPollDeferral`) is answered at once and asks again after a half
    /// to a whole long-poll's time, asked to close its connection meanwhile: it learns of new
    /// work up to that much later. nil: seven eighths of `maximumConnections` — a fleet whose
    /// polls fit the connections is never deferred (one deferred device holds up every wave it
    /// is in), and the last eighth stays for heartbeats, reports and operators.
    public var maximumLongPolls: Int?
    /// `maximumLongPolls`, or its default.
    public var longPollLimit: Int { maximumLongPolls ?? max(1, maximumConnections - maximumConnections / 8) }
    /// What each device may send (heartbeats, reports, remote output) before it is answered 429;
    /// nil: no limit.
    public var deviceRequests: DeviceRequestAllowance? = .standard
    /// How many devices each enrollment token may enroll before it is answered 429; nil: no limit.
    public var enrollments: DeviceRequestAllowance? = .enrollments
    /// How long heartbeats are kept as history.
    public var heartbeatRetention: Duration = .seconds(24 * 3_600)
    /// How long the metrics history (heartbeats summed up per ten minutes) is kept.
    public var metricsRetention: Duration = .seconds(7 * 86_400)
    /// How often old heartbeats are rolled up and old history pruned.
    public var retentionCheckInterval: Duration = .seconds(600)
    /// A connection that sends nothing for this long — between requests, or in the middle of
    /// one's headers or body — is closed. A long-poll waiting for its answer is not idle.
    public var idleTimeoutSeconds: Int = 30
    /// A request's head and body must arrive within this many seconds of its head; a client
    /// dripping its body slower is cut off.
    public var requestTimeoutSeconds: Int = 60
    /// Connections accepted at once; more wait in the kernel's backlog. By default the
    /// descriptor limit less `reservedDescriptors`, so the store and the git mirror can always
    /// open their files however many clients connect.
    public var maximumConnections: Int = ServerConfiguration.connectionsWithinDescriptorLimit()
    /// Mark the console's session cookie Secure (and `__Host-`) whatever the request says: the
    /// server is reached over https through a proxy that terminates TLS.
    public var secureCookies = false
    /// URL prefixes alert receivers (fleet.yaml's `alerts:`) must be under; empty: any http(s) URL.
    /// Whoever writes the fleet repository chooses where the server posts alerts; this lets the
    /// server's operator bound it.
    public var alertReceiverAllow: [WebURL] = []
    /// Descriptors kept back from clients for SQLite, the key, the git mirror and calls out.
    public static let reservedDescriptors = 256

    /// The process's open-file limit less the reserve, at least 64.
    public static func connectionsWithinDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max else { return 16_384 }
        return max(64, min(Int(clamping: limit.rlim_cur), 1 << 20) - reservedDescriptors)
    }

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
