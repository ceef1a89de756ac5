import FleetProtocol
public import FleetStore
public import Foundation
public import Logging
import NIOCore
import PostgresNIO

/// The shared store: PostgreSQL, for any number of servers on one database.
///
/// The same records and rules as `SQLiteFleetStore` (one conformance suite runs against both).
/// Where SQLite has one writer at a time, here transactions run side by side: every
/// read-modify-write locks the rows it changes (`FOR UPDATE`) or is one statement, so two
/// replicas applying the same report, taking the same work or enrolling the same board do it once.
public final class PostgresFleetStore: FleetStore {
    /// The connection pool, shared by the fenced views of this store.
    final class Pool: Sendable {
        let client: PostgresClient
        private let running: Task<Void, Never>

        init(_ client: PostgresClient) {
            self.client = client
            running = Task { await client.run() }
        }

        func close() { running.cancel() }
        deinit { running.cancel() }
    }

    let pool: Pool
    var client: PostgresClient { pool.client }
    let logger: Logger
    public let url: DatabaseURL
    /// When set, every transaction first checks that this lease is still held, and fails
    /// otherwise: what a controller writes cannot land after another replica took over.
    let fence: LeaderLease?
    /// Deployments decoded before, shared with the fenced views (`deployments(project:limit:)`).
    let deploymentCache: DeploymentCache

    /// Connects to the database at `url` (failing fast, with the server's own error, when it
    /// cannot be reached), and applies the migrations it lacks.
    public static func open(_ url: DatabaseURL, logger: Logger = Logger(label: "flotilla.postgres"), maximumConnections: Int = 20)
        async throws -> PostgresFleetStore {
        // The pool retries an unreachable server for a long while and then reports only that its
        // breaker tripped; one plain connection first says what is wrong.
        do {
            let probe = try await PostgresConnection.connect(configuration: try url.connectionConfiguration, id: 0, logger: logger)
            defer { Task { try? await probe.close() } }
            // Replicas compare times they each wrote (heartbeats, executions): a clock far from
            // the database's, and so from the other replicas', skews every rollout decision.
            let before = Date()
            let rows = try await probe.query("SELECT extract(epoch FROM clock_timestamp())::float8 AS now", logger: logger)
            for try await (databaseNow) in rows.decode(Double.self) {
                let offset = before.addingTimeInterval(Date().timeIntervalSince(before) / 2).timeIntervalSince1970 - databaseNow
                if abs(offset) > 2 {
                    logger.warning("this server's clock is \(Int(offset.rounded())) s from the database's: replicas compare the times they record, so keep every clock synchronised (NTP)")
                }
            }
        } catch {
            throw StoreError(.unavailable, "cannot connect to \(url): \(Self.describe(error))")
        }
        var configuration = url.clientConfiguration
        configuration.options.maximumConnections = maximumConnections
        // The pool's own chatter (a connection closed as the store shuts down, a query queued
        // before the pool's task ran) stays out of the log; what fails reaches the caller anyway.
        var background = logger
        background.logLevel = max(logger.logLevel, .error)
        let store = PostgresFleetStore(pool: Pool(PostgresClient(configuration: configuration, backgroundLogger: background)), url: url,
                                       logger: logger, fence: nil, deploymentCache: DeploymentCache())
        do {
            let applied = try await PostgresSchema.migrate(store.client, logger: logger)
            if !applied.isEmpty { logger.info("migrated the database", metadata: ["migrations": "\(applied)"]) }
        } catch {
            store.close()
            throw StoreError(.unavailable, "cannot migrate \(url): \(Self.describe(error))")
        }
        return store
    }

    private init(pool: Pool, url: DatabaseURL, logger: Logger, fence: LeaderLease?, deploymentCache: DeploymentCache) {
        self.deploymentCache = deploymentCache
        self.pool = pool
        self.url = url
        self.logger = logger
        self.fence = fence
    }

    /// This store, with every transaction fenced by `lease` (see `fence`).
    public func fenced(by lease: LeaderLease) -> PostgresFleetStore {
        PostgresFleetStore(pool: pool, url: url, logger: logger, fence: lease, deploymentCache: deploymentCache)
    }

    /// Closes every connection; the store (and its fenced views) are unusable afterwards.
    public func close() {
        pool.close()
    }

    // MARK: - Projects and tokens

    public func ensureProject(_ name: String, at date: Date) async throws {
        try await execute("INSERT INTO project (name, created_at) VALUES (\(name), \(date.timeIntervalSince1970)) ON CONFLICT DO NOTHING")
    }

    static func ensureProject(_ name: String, at date: Date, _ connection: PostgresConnection, _ logger: Logger) async throws {
        try await connection.query("""
            INSERT INTO project (name, created_at) VALUES (\(name), \(date.timeIntervalSince1970)) ON CONFLICT DO NOTHING
            """, logger: logger)
    }

    public func projects() async throws -> [ProjectRecord] {
        try await rows("SELECT name, created_at FROM project ORDER BY name COLLATE \"C\"") { row in
            ProjectRecord(name: try row["name"], createdAt: try row.date("created_at"))
        }
    }

    public func insertToken(_ token: AccessTokenRecord) async throws {
        try await write { connection in
            try await Self.ensureProject(token.project, at: token.createdAt, connection, self.logger)
            try await connection.query("""
                INSERT INTO access_token (id, kind, project, grp, secret_hash, created_at, expires_at, revoked, created_by, access)
                VALUES (\(token.id), \(token.kind.rawValue), \(token.project), \(token.group), \(token.secretHash),
                        \(token.createdAt.timeIntervalSince1970), \(token.expiresAt?.timeIntervalSince1970), \(token.revoked), \(token.createdBy),
                        \(token.access?.rawValue))
                """, logger: self.logger)
        }
    }

    public func token(id: String) async throws -> AccessTokenRecord? {
        try await rows("SELECT * FROM access_token WHERE id = \(id)", Self.token).first
    }

    public func tokens(project: String) async throws -> [AccessTokenRecord] {
        try await rows("SELECT * FROM access_token WHERE project = \(project) ORDER BY created_at, id COLLATE \"C\"", Self.token)
    }

    public func pruneSessions(expiredBefore date: Date) async throws -> Int {
        try await rows("""
            DELETE FROM access_token WHERE kind = 'session' AND (revoked OR expires_at < \(date.timeIntervalSince1970)) RETURNING id
            """) { _ in () }.count
    }

    public func revokeToken(id: String) async throws {
        let revoked = try await rows("UPDATE access_token SET revoked = TRUE WHERE id = \(id) RETURNING id") { try $0["id"] as String }
        guard !revoked.isEmpty else { throw StoreError(.notFound, "no token \(id)") }
    }

    // MARK: - Devices

    public func enroll(_ device: DeviceRecord) async throws -> DeviceRecord {
        try await write { connection in
            func live() async throws -> DeviceRecord? {
                try await Self.rows(connection, self.logger, """
                    SELECT \(unescaped: Self.deviceColumns) FROM device WHERE project = \(device.project) AND hardware_id = \(device.hardwareID) AND NOT deleted
                    """, Self.device).first
            }
            if let known = try await live() { return known }
            try await Self.ensureProject(device.project, at: device.enrolledAt, connection, self.logger)
            // Two servers enrolling the same board at once: one row is made, both return it.
            let inserted = try await Self.rows(connection, self.logger, """
                INSERT INTO device (id, project, name, hardware_id, secret_hash, reported_tags, attributes, apps, enrolled_at,
                                    last_heartbeat_at, deleted, executing, token_generation)
                VALUES (\(device.id), \(device.project), \(device.name), \(device.hardwareID), \(device.secretHash),
                        \(try Self.json(device.reportedTags)), \(try Self.json(device.attributes))::jsonb, \(try Self.json(device.apps)),
                        \(device.enrolledAt.timeIntervalSince1970), \(device.lastHeartbeatAt?.timeIntervalSince1970), \(device.deleted),
                        \(device.executing), \(device.tokenGeneration))
                ON CONFLICT (project, hardware_id) WHERE NOT deleted DO NOTHING RETURNING id
                """) { try $0["id"] as String }
            if inserted.isEmpty {
                // The row it conflicted with was deleted in between: the caller tries again.
                guard let known = try await live() else { throw StoreError(.unavailable, "enrollment raced a deletion; try again") }
                return known
            }
            return device
        }
    }

    public func resetIdentity(deviceID: String, claimHash: String, claimExpiresAt: Date) async throws -> DeviceRecord {
        try await write { connection in
            let reset = try await Self.rows(connection, self.logger, """
                UPDATE device SET secret_hash = '', token_generation = token_generation + 1, claim_hash = \(claimHash),
                    claim_expires_at = \(claimExpiresAt.timeIntervalSince1970)
                WHERE id = \(deviceID) RETURNING \(unescaped: Self.deviceColumns)
                """, Self.device)
            guard let device = reset.first else { throw StoreError(.notFound, "no device \(deviceID)") }
            try await Self.revoked(deviceID, connection, self.logger)
            return device
        }
    }

    /// Every replica's device cache forgets `device` when this transaction commits, and only
    /// then (NOTIFY is transactional): `WakeRelay` listens.
    static func revoked(_ device: String, _ connection: PostgresConnection, _ logger: Logger) async throws {
        try await connection.query("SELECT pg_notify(\(WakeRelay.registryChannel), \(device))", logger: logger)
    }

    public func claimIdentity(deviceID: String, claimHash: String, secretHash: String, at date: Date) async throws -> DeviceRecord? {
        // One statement: of two boards presenting the same code at once, one claims it.
        try await rows("""
            UPDATE device SET secret_hash = \(secretHash), claim_hash = NULL, claim_expires_at = NULL
            WHERE id = \(deviceID) AND NOT deleted AND secret_hash = '' AND claim_hash = \(claimHash)
                AND claim_expires_at > \(date.timeIntervalSince1970)
            RETURNING \(unescaped: Self.deviceColumns)
            """, Self.device).first
    }

    public func device(id: String) async throws -> DeviceRecord? {
        try await rows("SELECT \(unescaped: Self.deviceColumns) FROM device WHERE id = \(id)", Self.device).first
    }

    public func devices(project: String) async throws -> [DeviceRecord] {
        try await rows("SELECT \(unescaped: Self.deviceColumns) FROM device WHERE project = \(project) AND NOT deleted ORDER BY id COLLATE \"C\"", Self.device)
    }

    public func deleteDevice(id: String) async throws {
        try await write { connection in
            let deleted = try await Self.rows(connection, self.logger, "UPDATE device SET deleted = TRUE WHERE id = \(id) RETURNING id") {
                try $0["id"] as String
            }
            guard !deleted.isEmpty else { throw StoreError(.notFound, "no device \(id)") }
            try await Self.revoked(id, connection, self.logger)
        }
    }

    // MARK: - Heartbeats

    /// A batch in three statements, whatever its size: lock the devices (in id order, so two
    /// replicas' batches cannot deadlock), insert the new reports (`unnest`), update each device
    /// once with what its reports of the batch say in order. It was one statement per report,
    /// a round trip each while the transaction held its connection.
    public func recordHeartbeats(_ heartbeats: [HeartbeatRecord]) async throws -> [Bool] {
        guard !heartbeats.isEmpty else { return [] }
        let reports = heartbeats.map { $0.report.wireJSON() }
        let deviceIDs = Array(Set(heartbeats.map(\.deviceID))).sorted()
        return try await write { connection in
            var last: [String: Double] = [:]
            var known = Set<String>()
            for (id, at) in try await Self.rows(connection, self.logger, """
                SELECT id, last_heartbeat_at FROM device WHERE id = ANY(\(deviceIDs)) ORDER BY id FOR UPDATE
                """, { (try $0["id"] as String, try $0["last_heartbeat_at"] as Double?) }) {
                known.insert(id)
                if let at { last[id] = at }
            }
            // A report id twice in one batch is stored once: the first.
            var seen = Set<String>(), candidates: [Int] = []
            for (index, heartbeat) in heartbeats.enumerated() where known.contains(heartbeat.deviceID) {
                if seen.insert(heartbeat.deviceID + "\u{0}" + heartbeat.report.reportID).inserted { candidates.append(index) }
            }
            guard !candidates.isEmpty else { return Array(repeating: false, count: heartbeats.count) }
            let inserted = Set(try await Self.rows(connection, self.logger, """
                INSERT INTO heartbeat (device_id, report_id, received_at, report)
                SELECT * FROM unnest(\(candidates.map { heartbeats[$0].deviceID }), \(candidates.map { heartbeats[$0].report.reportID }),
                                     \(candidates.map { heartbeats[$0].receivedAt.timeIntervalSince1970 }), \(candidates.map { reports[$0] }))
                ON CONFLICT DO NOTHING RETURNING device_id, report_id
                """, { (try $0["device_id"] as String) + "\u{0}" + (try $0["report_id"] as String) }))
            var accepted = Array(repeating: false, count: heartbeats.count)
            var devices: [String: DeviceHeartbeat] = [:]
            for index in candidates where inserted.contains(heartbeats[index].deviceID + "\u{0}" + heartbeats[index].report.reportID) {
                accepted[index] = true
                let heartbeat = heartbeats[index]
                devices[heartbeat.deviceID, default: DeviceHeartbeat(last: last[heartbeat.deviceID] ?? 0)].apply(heartbeat.report,
                    at: heartbeat.receivedAt.timeIntervalSince1970)
            }
            guard !devices.isEmpty else { return accepted }
            let ids = devices.keys.sorted()
            let updates = ids.map { devices[$0]! }
            _ = try await Self.rows(connection, self.logger, """
                UPDATE device SET
                    update_lock = CASE WHEN u.lock_set THEN nullif(u.new_lock, '') ELSE device.update_lock END,
                    last_heartbeat_at = u.new_last,
                    apps = CASE WHEN u.apps_set THEN u.new_apps ELSE device.apps END,
                    executing = nullif(u.new_executing, ''),
                    attributes = CASE WHEN u.version_set THEN jsonb_set(device.attributes, '{agentVersion}', to_jsonb(u.new_version))
                                      ELSE device.attributes END
                FROM unnest(\(ids), \(updates.map(\.lockSet)), \(updates.map { $0.lock ?? "" }), \(updates.map(\.last)),
                            \(updates.map { $0.apps != nil }), \(updates.map { $0.apps ?? "" }), \(updates.map { $0.executing ?? "" }),
                            \(updates.map { $0.version != nil }), \(updates.map { $0.version ?? "" }))
                    AS u(id, lock_set, new_lock, new_last, apps_set, new_apps, new_executing, version_set, new_version)
                WHERE device.id = u.id RETURNING device.id
                """, { _ in () })
            return accepted
        }
    }

    /// What a device's new reports of one batch leave on its row, applied in order as one
    /// statement per report would have: the lock of a report not older than the newest before
    /// it, the latest time, the last apps and agent version said, the last `executing`.
    struct DeviceHeartbeat {
        var last: Double
        var lockSet = false
        var lock: String?
        var apps: String?
        var executing: String?
        var version: String?

        mutating func apply(_ report: Heartbeat, at: Double) {
            if at >= last {
                lockSet = true
                lock = report.lock.map { $0.wireJSON() }
            }
            last = max(last, at)
            if let reported = report.apps { apps = reported.wireJSON() }
            executing = report.executing
            if let agent = report.agentVersion { version = agent }
        }
    }

    public func heartbeats(deviceID: String, before: Date, limit: Int) async throws -> [HeartbeatRecord] {
        let decoder = StoredJSON.decoder()
        return try await rows("""
            SELECT device_id, received_at, report FROM heartbeat WHERE device_id = \(deviceID) AND received_at < \(before.timeIntervalSince1970)
            ORDER BY received_at DESC, seq DESC LIMIT \(limit)
            """) { row in
            HeartbeatRecord(deviceID: try row["device_id"], receivedAt: try row.date("received_at"),
                            report: try StoredColumns.heartbeat(try row["report"] as String, decoder: decoder))
        }
    }

    public func pruneHeartbeats(before date: Date) async throws {
        try await execute("DELETE FROM heartbeat WHERE received_at < \(date.timeIntervalSince1970)")
    }

    // MARK: - Metrics history

    public func heartbeats(deviceID: String, since: Date, until: Date, limit: Int, maximumBytes: Int) async throws -> HeartbeatSpan {
        let decoder = StoredJSON.decoder()
        var span = HeartbeatSpan.Builder(limit: limit, maximumBytes: maximumBytes)
        // The server sends only the rows within the size (and the first past it, which tells that
        // some were left out): each row's running total of bytes, from the sizes PostgreSQL
        // keeps, without reading the reports that are not sent.
        let rows = try await rows("""
            SELECT received_at, size, report FROM (
                SELECT received_at, seq, report, octet_length(report)::bigint AS size,
                       sum(octet_length(report)) OVER (ORDER BY received_at, seq ROWS UNBOUNDED PRECEDING) AS running
                FROM heartbeat
                WHERE device_id = \(deviceID) AND received_at >= \(since.timeIntervalSince1970) AND received_at < \(until.timeIntervalSince1970)
            ) AS span
            WHERE running - size <= \(maximumBytes)
            ORDER BY received_at, seq LIMIT \(limit + 1)
            """) { row in (at: try row.date("received_at"), size: try row["size"] as Int, report: try row["report"] as String) }
        for row in rows {
            guard span.fits(size: row.size) else { break }
            span.take(HeartbeatRecord(deviceID: deviceID, receivedAt: row.at, report: try StoredColumns.heartbeat(row.report, decoder: decoder)),
                      size: row.size)
        }
        return span.span
    }

    public func rollUpHeartbeats(before date: Date, bucketSeconds: Int) async throws -> Int {
        let devices = try await rows("SELECT id FROM device ORDER BY id") { try $0["id"] as String }
        let cutoff = date.timeIntervalSince1970
        var rolled = 0
        for start in stride(from: 0, to: devices.count, by: 100) {
            let chunk = Array(devices[start..<min(start + 100, devices.count)])
            // A full batch: the same devices again, until what is left is less.
            var batch = Self.rollUpBatch
            while batch == Self.rollUpBatch {
                batch = try await write { connection in
                    let decoder = StoredJSON.decoder()
                    // Locked, so a replica rolling up the same devices at once waits, then finds them gone.
                    // At most `rollUpBatch` heartbeats in memory at once: the caller comes back for the rest.
                    let rows = try await Self.rows(connection, self.logger, """
                        SELECT seq, device_id, received_at, report FROM heartbeat WHERE device_id = ANY(\(chunk)) AND received_at < \(cutoff)
                        ORDER BY seq LIMIT \(Self.rollUpBatch) FOR UPDATE
                        """) { row in
                        (seq: try row["seq"] as Int64, record: HeartbeatRecord(deviceID: try row["device_id"], receivedAt: try row.date("received_at"),
                                                                              report: try StoredColumns.heartbeat(try row["report"] as String, decoder: decoder)))
                    }
                    guard !rows.isEmpty else { return 0 }
                    let records = rows.map(\.record)
                    var buckets = MetricHistory.buckets(records, seconds: bucketSeconds)
                    let starts = buckets.map { Int64($0.start.timeIntervalSince1970) }
                    var existing: [String: MetricBucket] = [:]
                    for bucket in try await Self.rows(connection, self.logger, """
                        SELECT * FROM metric WHERE (device_id, start) IN (SELECT * FROM unnest(\(buckets.map(\.deviceID)), \(starts))) FOR UPDATE
                        """, Self.metric) {
                        existing[bucket.deviceID + "\u{0}\(Int64(bucket.start.timeIntervalSince1970))"] = bucket
                    }
                    for index in buckets.indices {
                        if let old = existing[buckets[index].deviceID + "\u{0}\(starts[index])"] { buckets[index] = old.merged(with: buckets[index]) }
                    }
                    // A measure no heartbeat carried has a count of 0 (its mean and high are then 0, unread).
                    func column(_ statistic: (MetricBucket) -> MetricBucket.Statistic?) -> (counts: [Int64], means: [Int64], highs: [Int64]) {
                        let values = buckets.map(statistic)
                        return (values.map { Int64($0?.count ?? 0) }, values.map { Int64($0?.hundredths.mean ?? 0) },
                                values.map { Int64($0?.hundredths.max ?? 0) })
                    }
                    let cpu = column(\.cpu), memory = column(\.memory), disk = column(\.disk), load = column(\.load)
                    try await Self.rows(connection, self.logger, """
                        INSERT INTO metric (device_id, start, seconds, samples, cpu_n, cpu_mean, cpu_max, memory_n, memory_mean, memory_max,
                                            disk_n, disk_mean, disk_max, load_n, load_mean, load_max)
                        SELECT * FROM unnest(\(buckets.map(\.deviceID)), \(starts), \(buckets.map { Int64($0.seconds) }), \(buckets.map { Int64($0.samples) }),
                                             \(cpu.counts), \(cpu.means), \(cpu.highs), \(memory.counts), \(memory.means), \(memory.highs),
                                             \(disk.counts), \(disk.means), \(disk.highs), \(load.counts), \(load.means), \(load.highs))
                        ON CONFLICT (device_id, start) DO UPDATE SET
                            seconds = excluded.seconds, samples = excluded.samples,
                            cpu_n = excluded.cpu_n, cpu_mean = excluded.cpu_mean, cpu_max = excluded.cpu_max,
                            memory_n = excluded.memory_n, memory_mean = excluded.memory_mean, memory_max = excluded.memory_max,
                            disk_n = excluded.disk_n, disk_mean = excluded.disk_mean, disk_max = excluded.disk_max,
                            load_n = excluded.load_n, load_mean = excluded.load_mean, load_max = excluded.load_max
                        """) { _ in () }
                    // Through the (device_id, received_at, seq) index, row by row.
                    try await Self.rows(connection, self.logger, """
                        DELETE FROM heartbeat WHERE (device_id, received_at, seq) IN (
                            SELECT * FROM unnest(\(records.map(\.deviceID)), \(records.map { $0.receivedAt.timeIntervalSince1970 }), \(rows.map(\.seq))))
                        """) { _ in () }
                    return records.count
                }
                rolled += batch
            }
        }
        return rolled
    }

    /// How many heartbeats a rollup holds in memory at once.
    static let rollUpBatch = 5_000

    public func metrics(deviceID: String, since: Date, until: Date) async throws -> [MetricBucket] {
        try await rows("""
            SELECT * FROM metric WHERE device_id = \(deviceID) AND start >= \(Int64(since.timeIntervalSince1970.rounded(.down)))
            AND start < \(Int64(until.timeIntervalSince1970.rounded(.up))) ORDER BY start
            """, Self.metric)
    }

    public func pruneMetrics(before date: Date) async throws {
        try await execute("DELETE FROM metric WHERE start < \(Int64(date.timeIntervalSince1970))")
    }

    static func metric(_ row: Columns) throws -> MetricBucket {
        func statistic(_ name: String) throws -> MetricBucket.Statistic? {
            let count = try row[name + "_n"] as Int32
            guard count > 0, let mean = try row[name + "_mean"] as Int32?, let max = try row[name + "_max"] as Int32? else { return nil }
            return MetricBucket.Statistic(count: Int(count), meanHundredths: Int(mean), maxHundredths: Int(max))
        }
        return MetricBucket(deviceID: try row["device_id"], start: Date(timeIntervalSince1970: Double(try row["start"] as Int64)),
                            seconds: Int(try row["seconds"] as Int32), samples: Int(try row["samples"] as Int32), cpu: try statistic("cpu"),
                            memory: try statistic("memory"), disk: try statistic("disk"), load: try statistic("load"))
    }

    // MARK: - Audit

    public func appendAudit(_ entry: AuditRecord) async throws {
        try await execute("""
            INSERT INTO audit (at, project, actor, action, subject, detail)
            VALUES (\(entry.at.timeIntervalSince1970), \(entry.project), \(entry.actor), \(entry.action), \(entry.subject), \(entry.detail))
            """)
    }

    public func audit(project: String, limit: Int) async throws -> [AuditRecord] {
        try await rows("SELECT * FROM audit WHERE project = \(project) ORDER BY seq DESC LIMIT \(limit)") { row in
            AuditRecord(at: try row.date("at"), project: try row["project"], actor: try row["actor"], action: try row["action"],
                        subject: try row["subject"], detail: try row["detail"])
        }
    }

    // MARK: - Rows

    static let deviceColumns = """
        id, project, name, hardware_id, secret_hash, reported_tags, attributes::text AS attributes, apps, enrolled_at, last_heartbeat_at,
        deleted, executing, token_generation, claim_hash, claim_expires_at, update_lock
        """

    static func device(_ row: Columns) throws -> DeviceRecord {
        DeviceRecord(id: try row["id"], project: try row["project"], name: try row["name"], hardwareID: try row["hardware_id"],
                     secretHash: try row["secret_hash"],
                     reportedTags: try StoredColumns.map(try row["reported_tags"], column: "reported_tags", WireObject.string),
                     attributes: try StoredColumns.map(try row["attributes"], column: "attributes", WireObject.string),
                     apps: try StoredColumns.map(try row["apps"], column: "apps") { (value, path) throws(WireDecodingError) in try InstalledApp(wire: value, path: path) },
                     enrolledAt: try row.date("enrolled_at"), lastHeartbeatAt: try row.optionalDate("last_heartbeat_at"),
                     executing: try row["executing"], deleted: try row["deleted"], tokenGeneration: try row["token_generation"],
                     claimHash: try row["claim_hash"], claimExpiresAt: try row.optionalDate("claim_expires_at"),
                     lock: try StoredColumns.lock(try row["update_lock"]))
    }

    static func token(_ row: Columns) throws -> AccessTokenRecord {
        AccessTokenRecord(id: try row["id"], kind: AccessTokenRecord.Kind(rawValue: try row["kind"]) ?? .enrollment, project: try row["project"],
                          group: try row["grp"], secretHash: try row["secret_hash"], createdAt: try row.date("created_at"),
                          expiresAt: try row.optionalDate("expires_at"), revoked: try row["revoked"], createdBy: try row["created_by"],
                          access: (try row["access"] as String?).map(OperatorAccess.init(stored:)))
    }

    static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try StoredJSON.encoder().encode(value), as: UTF8.self)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        do {
            return try StoredJSON.decoder().decode(type, from: Data(text.utf8))
        } catch {
            throw StoreError(.corrupt, "a stored \(type) does not decode: \(error)")
        }
    }
}
