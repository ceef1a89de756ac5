public import FleetStore
public import FleetProtocol
public import Foundation
import GRDB
import Synchronization

/// The embedded store: one SQLite file in WAL mode, migrated by named, append-only steps.
///
/// Writes that belong together run in one transaction; heartbeats arrive in batches and are
/// committed together, so the write rate scales with batches, not devices.
public final class SQLiteFleetStore: FleetStore {
    private let pool: DatabasePool
    private let deploymentCache = DeploymentCache()
    public let path: String

    /// Opens (creating and migrating) the database at `path`.
    public init(path: String) throws {
        self.path = path
        var configuration = Configuration()
        // Another process may write the same file (`flotilla token create` beside a running
        // server): wait for its lock rather than fail the enrollment or heartbeats at hand.
        configuration.busyMode = .timeout(10)
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            try db.execute(sql: "PRAGMA foreign_keys = ON")
        }
        do {
            pool = try DatabasePool(path: path, configuration: configuration)
            // A newer release migrated it: this one would misread what it does not know.
            if try pool.read({ try Self.migrator.hasBeenSuperseded($0) }) {
                throw StoreError(.unavailable, "the database \(path) was migrated by a newer release of flotilla; run that release or a newer one")
            }
            try Self.migrator.migrate(pool)
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError(.unavailable, "cannot open the database \(path): \(error)")
        }
    }

    public func ensureProject(_ name: String, at date: Date) async throws {
        try await write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO project (name, created_at) VALUES (?, ?)",
                           arguments: [name, date.timeIntervalSince1970])
        }
    }

    public func projects() async throws -> [ProjectRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT name, created_at FROM project ORDER BY name").map {
                ProjectRecord(name: $0["name"], createdAt: Date(timeIntervalSince1970: $0["created_at"]))
            }
        }
    }

    public func insertToken(_ token: AccessTokenRecord) async throws {
        try await write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO project (name, created_at) VALUES (?, ?)",
                           arguments: [token.project, token.createdAt.timeIntervalSince1970])
            try db.execute(sql: """
                INSERT INTO access_token (id, kind, project, grp, secret_hash, created_at, expires_at, revoked, created_by, access)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [token.id, token.kind.rawValue, token.project, token.group, token.secretHash,
                                 token.createdAt.timeIntervalSince1970, token.expiresAt?.timeIntervalSince1970, token.revoked,
                                 token.createdBy, token.access?.rawValue])
        }
    }

    public func token(id: String) async throws -> AccessTokenRecord? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT * FROM access_token WHERE id = ?", arguments: [id]).map(Self.token) }
    }

    public func tokens(project: String) async throws -> [AccessTokenRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM access_token WHERE project = ? ORDER BY created_at, id", arguments: [project]).map(Self.token)
        }
    }

    public func pruneSessions(expiredBefore date: Date) async throws -> Int {
        try await write { db in
            try db.execute(sql: "DELETE FROM access_token WHERE kind = 'session' AND (revoked = 1 OR expires_at < ?)",
                           arguments: [date.timeIntervalSince1970])
            return db.changesCount
        }
    }

    public func revokeToken(id: String) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE access_token SET revoked = 1 WHERE id = ?", arguments: [id])
            guard db.changesCount > 0 else { throw StoreError(.notFound, "no token \(id)") }
        }
    }

    public func enroll(_ device: DeviceRecord) async throws -> DeviceRecord {
        try await write { db in
            if let row = try Row.fetchOne(db, sql: "SELECT \(Self.deviceColumns) FROM device WHERE project = ? AND hardware_id = ? AND deleted = 0",
                                          arguments: [device.project, device.hardwareID]) {
                return try Self.device(row)
            }
            try db.execute(sql: "INSERT OR IGNORE INTO project (name, created_at) VALUES (?, ?)",
                           arguments: [device.project, device.enrolledAt.timeIntervalSince1970])
            try db.execute(sql: """
                INSERT INTO device (id, project, name, hardware_id, secret_hash, reported_tags, attributes, apps, enrolled_at, last_heartbeat_at, deleted)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, arguments: [device.id, device.project, device.name, device.hardwareID, device.secretHash,
                                 try Self.json(device.reportedTags), try Self.json(device.attributes), try Self.json(device.apps),
                                 device.enrolledAt.timeIntervalSince1970, device.lastHeartbeatAt?.timeIntervalSince1970, device.deleted])
            return device
        }
    }

    public func resetIdentity(deviceID: String, claimHash: String, claimExpiresAt: Date) async throws -> DeviceRecord {
        try await write { db in
            try db.execute(sql: """
                UPDATE device SET secret_hash = '', token_generation = token_generation + 1, claim_hash = ?, claim_expires_at = ?
                WHERE id = ?
                """, arguments: [claimHash, claimExpiresAt.timeIntervalSince1970, deviceID])
            guard db.changesCount > 0,
                  let row = try Row.fetchOne(db, sql: "SELECT \(Self.deviceColumns) FROM device WHERE id = ?", arguments: [deviceID]) else {
                throw StoreError(.notFound, "no device \(deviceID)")
            }
            return try Self.device(row)
        }
    }

    public func claimIdentity(deviceID: String, claimHash: String, secretHash: String, at date: Date) async throws -> DeviceRecord? {
        try await write { db in
            // One statement: of two boards presenting the same code at once, one claims it.
            try db.execute(sql: """
                UPDATE device SET secret_hash = ?, claim_hash = NULL, claim_expires_at = NULL
                WHERE id = ? AND deleted = 0 AND secret_hash = '' AND claim_hash = ? AND claim_expires_at > ?
                """, arguments: [secretHash, deviceID, claimHash, date.timeIntervalSince1970])
            guard db.changesCount > 0 else { return nil }
            return try Row.fetchOne(db, sql: "SELECT \(Self.deviceColumns) FROM device WHERE id = ?", arguments: [deviceID]).map(Self.device)
        }
    }

    public func device(id: String) async throws -> DeviceRecord? {
        try await read { db in try Row.fetchOne(db, sql: "SELECT \(Self.deviceColumns) FROM device WHERE id = ?", arguments: [id]).map(Self.device) }
    }

    public func devices(project: String) async throws -> [DeviceRecord] {
        try await read { db in
            // Decoded from the cursor's rows as they are stepped, not copied into rows first: a
            // controller pass reads every device.
            var devices: [DeviceRecord] = []
            let rows = try Row.fetchCursor(db, sql: "SELECT \(Self.deviceColumns) FROM device WHERE project = ? AND deleted = 0 ORDER BY id",
                                           arguments: [project])
            while let row = try rows.next() { devices.append(try Self.device(row)) }
            return devices
        }
    }

    public func deleteDevice(id: String) async throws {
        try await write { db in
            try db.execute(sql: "UPDATE device SET deleted = 1 WHERE id = ?", arguments: [id])
            guard db.changesCount > 0 else { throw StoreError(.notFound, "no device \(id)") }
        }
    }

    public func recordHeartbeats(_ heartbeats: [HeartbeatRecord]) async throws -> [Bool] {
        // Encoded outside the write lock: the lock is held only for the statements. The wire
        // writer gives the same JSON as JSONEncoder with sorted keys, at a fraction of the cost.
        let rows = heartbeats.map { heartbeat in
            (heartbeat, heartbeat.report.wireJSON(), heartbeat.report.apps.map { $0.wireJSON() }, heartbeat.report.lock.map { $0.wireJSON() })
        }
        return try await write { db in
            // Devices' rows are updated in SQL (json_set), so no row is read and decoded per report.
            let insert = try db.cachedStatement(sql: """
                INSERT OR IGNORE INTO heartbeat (device_id, report_id, received_at, report)
                SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM device WHERE id = ?)
                """)
            let touch = try db.cachedStatement(sql: """
                UPDATE device SET update_lock = CASE WHEN ? >= coalesce(last_heartbeat_at, 0) THEN ? ELSE update_lock END,
                    last_heartbeat_at = max(coalesce(last_heartbeat_at, 0), ?),
                    apps = coalesce(?, apps),
                    executing = ?,
                    attributes = CASE WHEN ? IS NULL THEN attributes ELSE json_set(attributes, '$.agentVersion', ?) END
                WHERE id = ?
                """)
            var accepted: [Bool] = []
            accepted.reserveCapacity(rows.count)
            for (heartbeat, report, apps, lock) in rows {
                let at = heartbeat.receivedAt.timeIntervalSince1970
                try insert.execute(arguments: [heartbeat.deviceID, heartbeat.report.reportID, at, report, heartbeat.deviceID])
                let isNew = db.changesCount > 0
                accepted.append(isNew)
                guard isNew else { continue }
                let version = heartbeat.report.agentVersion
                try touch.execute(arguments: [at, lock, at, apps, heartbeat.report.executing, version, version, heartbeat.deviceID])
            }
            return accepted
        }
    }

    public func heartbeats(deviceID: String, before: Date, limit: Int) async throws -> [HeartbeatRecord] {
        try await read { db in
            let decoder = StoredJSON.decoder()
            return try Row.fetchAll(db, sql: """
                SELECT device_id, received_at, report FROM heartbeat WHERE device_id = ? AND received_at < ?
                ORDER BY received_at DESC, rowid DESC LIMIT ?
                """, arguments: [deviceID, before.timeIntervalSince1970, limit]).map { row in
                HeartbeatRecord(deviceID: row["device_id"], receivedAt: Date(timeIntervalSince1970: row["received_at"]),
                                report: try StoredColumns.heartbeat(row["report"] as String, decoder: decoder))
            }
        }
    }

    public func pruneHeartbeats(before date: Date) async throws {
        try await write { db in
            try db.execute(sql: "DELETE FROM heartbeat WHERE received_at < ?", arguments: [date.timeIntervalSince1970])
        }
    }

    // MARK: Metrics history

    public func heartbeats(deviceID: String, since: Date, until: Date, limit: Int, maximumBytes: Int) async throws -> HeartbeatSpan {
        try await read { db in
            let decoder = StoredJSON.decoder()
            var span = HeartbeatSpan.Builder(limit: limit, maximumBytes: maximumBytes)
            // Stepped a row at a time, and a row's size is asked before its JSON is read: the
            // read stops at the first row that does not fit.
            let rows = try Row.fetchCursor(db, sql: """
                SELECT received_at, length(CAST(report AS BLOB)), report FROM heartbeat WHERE device_id = ? AND received_at >= ? AND received_at < ?
                ORDER BY received_at, rowid LIMIT ?
                """, arguments: [deviceID, since.timeIntervalSince1970, until.timeIntervalSince1970, limit + 1])
            while let row = try rows.next() {
                let size: Int = row[1]
                guard span.fits(size: size) else { break }
                span.take(HeartbeatRecord(deviceID: deviceID, receivedAt: Date(timeIntervalSince1970: row[0]),
                                          report: try StoredColumns.heartbeat(row[2] as String, decoder: decoder)), size: size)
            }
            return span.span
        }
    }

    public func rollUpHeartbeats(before date: Date, bucketSeconds: Int) async throws -> Int {
        let devices = try await read { db in try String.fetchAll(db, sql: "SELECT id FROM device ORDER BY id") }
        var rolled = 0
        // A hundred devices a transaction: each its own range of the (device_id, received_at)
        // index, so the writer is never held for long and no table scan is needed.
        for start in stride(from: 0, to: devices.count, by: 100) {
            let chunk = Array(devices[start..<min(start + 100, devices.count)])
            rolled += try await write { db in
                let decoder = StoredJSON.decoder()
                // At most `rollUpBatch` heartbeats in memory at once, however many a device sent.
                let select = try db.cachedStatement(sql: """
                    SELECT rowid, received_at, report FROM heartbeat WHERE device_id = ? AND received_at < ? ORDER BY received_at, rowid LIMIT ?
                    """)
                let existing = try db.cachedStatement(sql: "SELECT * FROM metric WHERE device_id = ? AND start = ?")
                let upsert = try db.cachedStatement(sql: """
                    INSERT OR REPLACE INTO metric (device_id, start, seconds, samples, cpu_n, cpu_mean, cpu_max, memory_n, memory_mean, memory_max,
                                                   disk_n, disk_mean, disk_max, load_n, load_mean, load_max)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """)
                // Up to the last heartbeat read, in the order read.
                let delete = try db.cachedStatement(sql: """
                    DELETE FROM heartbeat WHERE device_id = ? AND received_at < ? AND (received_at, rowid) <= (?, ?)
                    """)
                var count = 0
                for device in chunk {
                    while true {
                        let rows = try Row.fetchAll(select, arguments: [device, date.timeIntervalSince1970, Self.rollUpBatch])
                        guard let last = rows.last else { break }
                        let records = try rows.map { row in
                            HeartbeatRecord(deviceID: device, receivedAt: Date(timeIntervalSince1970: row["received_at"]),
                                            report: try StoredColumns.heartbeat(row["report"] as String, decoder: decoder))
                        }
                        for var bucket in MetricHistory.buckets(records, seconds: bucketSeconds) {
                            let start = Int(bucket.start.timeIntervalSince1970)
                            if let row = try Row.fetchOne(existing, arguments: [device, start]) { bucket = Self.metric(row).merged(with: bucket) }
                            try upsert.execute(arguments: StatementArguments(Self.columns(bucket)))
                        }
                        try delete.execute(arguments: [device, date.timeIntervalSince1970, last["received_at"] as Double, last["rowid"] as Int64])
                        count += records.count
                        if rows.count < Self.rollUpBatch { break }
                    }
                }
                return count
            }
        }
        return rolled
    }

    /// How many heartbeats a rollup holds in memory at once.
    static let rollUpBatch = 5_000

    public func metrics(deviceID: String, since: Date, until: Date) async throws -> [MetricBucket] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM metric WHERE device_id = ? AND start >= ? AND start < ? ORDER BY start",
                             arguments: [deviceID, Int(since.timeIntervalSince1970.rounded(.down)), Int(until.timeIntervalSince1970.rounded(.up))])
                .map(Self.metric)
        }
    }

    public func pruneMetrics(before date: Date) async throws {
        try await write { db in try db.execute(sql: "DELETE FROM metric WHERE start < ?", arguments: [Int(date.timeIntervalSince1970)]) }
    }

    /// A bucket's row: its statistics as counts and whole hundredths.
    static func columns(_ bucket: MetricBucket) -> [(any DatabaseValueConvertible)?] {
        var values: [(any DatabaseValueConvertible)?] = [bucket.deviceID, Int(bucket.start.timeIntervalSince1970), bucket.seconds, bucket.samples]
        for statistic in [bucket.cpu, bucket.memory, bucket.disk, bucket.load] {
            let hundredths = statistic?.hundredths
            values += [statistic?.count ?? 0, hundredths?.mean, hundredths?.max]
        }
        return values
    }

    static func metric(_ row: Row) -> MetricBucket {
        func statistic(_ name: String) -> MetricBucket.Statistic? {
            let count: Int = row[name + "_n"]
            guard count > 0, let mean: Int = row[name + "_mean"], let max: Int = row[name + "_max"] else { return nil }
            return MetricBucket.Statistic(count: count, meanHundredths: mean, maxHundredths: max)
        }
        return MetricBucket(deviceID: row["device_id"], start: Date(timeIntervalSince1970: Double(row["start"] as Int)), seconds: row["seconds"],
                            samples: row["samples"], cpu: statistic("cpu"), memory: statistic("memory"), disk: statistic("disk"),
                            load: statistic("load"))
    }

    public func createDeployment(_ deployment: DeploymentRecord, executions: [ExecutionRecord]) async throws {
        try await write { db in
            try db.execute(sql: "INSERT OR IGNORE INTO project (name, created_at) VALUES (?, ?)",
                           arguments: [deployment.project, deployment.createdAt.timeIntervalSince1970])
            try db.execute(sql: "INSERT INTO deployment (id, project, created_at, aborted, body) VALUES (?, ?, ?, ?, ?)",
                           arguments: [deployment.id, deployment.project, deployment.createdAt.timeIntervalSince1970,
                                       deployment.aborted, try Self.json(deployment)])
            for execution in executions { try Self.insert(execution, db) }
        }
    }

    public func deployment(id: String) async throws -> DeploymentRecord? {
        try await read { db in
            try String.fetchOne(db, sql: "SELECT body FROM deployment WHERE id = ?", arguments: [id]).map { try Self.decode(DeploymentRecord.self, $0) }
        }
    }

    public func deployments(project: String, limit: Int) async throws -> [DeploymentRecord] {
        let cache = deploymentCache
        return try await read { db in
            // The controller lists up to 10,000 deployments on every pass; a deployment's body
            // changes only when it is aborted, so decoded ones are kept and only new or newly
            // aborted ones are read and decoded again.
            let rows = try Row.fetchAll(db, sql: "SELECT id, aborted FROM deployment WHERE project = ? ORDER BY created_at DESC, rowid DESC LIMIT ?",
                                        arguments: [project, limit])
            let body = try db.cachedStatement(sql: "SELECT body FROM deployment WHERE id = ?")
            return try rows.map { row in
                let id: String = row["id"], aborted: Bool = row["aborted"]
                if let known = cache.record(id: id, aborted: aborted) { return known }
                guard let text = try String.fetchOne(body, arguments: [id]) else { throw StoreError(.corrupt, "deployment \(id) has no body") }
                let record = try Self.decode(DeploymentRecord.self, text)
                cache.keep(record)
                return record
            }
        }
    }

    public func executions(deploymentID: String) async throws -> [ExecutionRecord] {
        try await read { db in
            try String.fetchAll(db, sql: "SELECT body FROM execution WHERE deployment_id = ? ORDER BY seq", arguments: [deploymentID])
                .map { try Self.execution($0) }
        }
    }

    public func executionSummaries(deploymentIDs: [String]) async throws -> [ExecutionSummary] {
        guard !deploymentIDs.isEmpty else { return [] }
        return try await read { db in
            var summaries: [ExecutionSummary] = []
            // Columns only, by position: no body is read or decoded.
            for chunk in stride(from: 0, to: deploymentIDs.count, by: 500).map({ deploymentIDs[$0..<min($0 + 500, deploymentIDs.count)] }) {
                let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
                let rows = try Row.fetchCursor(db, sql: """
                    SELECT seq, id, deployment_id, device_id, state, updated_at, taken_at, health_passed
                    FROM execution WHERE deployment_id IN (\(marks))
                    """, arguments: StatementArguments(Array(chunk)))
                while let row = try rows.next() {
                    let state: String = row[4]
                    guard let known = ExecutionState(rawValue: state), let updated = row[5] as Double? else {
                        throw StoreError(.corrupt, "execution \(row[1] as String) has state '\(state)' or no updatedAt")
                    }
                    summaries.append(ExecutionSummary(id: row[1], deploymentID: row[2], deviceID: row[3], state: known,
                                                      updatedAt: Date(timeIntervalSince1970: updated),
                                                      takenAt: (row[6] as Double?).map(Date.init(timeIntervalSince1970:)),
                                                      healthPassed: row[7], order: row[0]))
                }
            }
            summaries.sort { $0.order < $1.order }
            return summaries
        }
    }

    public func executions(deviceID: String, limit: Int) async throws -> [ExecutionRecord] {
        try await read { db in
            try String.fetchAll(db.cachedStatement(sql: "SELECT body FROM execution WHERE device_id = ? ORDER BY seq DESC LIMIT ?"),
                                arguments: [deviceID, limit]).map { try Self.execution($0) }
        }
    }

    public func activeExecutions(deviceID: String) async throws -> [ExecutionRecord] {
        try await read { db in
            try String.fetchAll(db.cachedStatement(sql: """
                SELECT body FROM execution WHERE device_id = ? AND state IN ('queued', 'assigned', 'running') ORDER BY seq
                """), arguments: [deviceID]).map { try Self.execution($0) }
        }
    }

    public func execution(id: String, deviceID: String) async throws -> ExecutionRecord? {
        try await read { db in
            try String.fetchOne(db.cachedStatement(sql: "SELECT body FROM execution WHERE id = ? AND device_id = ?"), arguments: [id, deviceID])
                .map { try Self.execution($0) }
        }
    }

    public func applyExecutionReport(executionID: String, deviceID: String, report: ExecutionReport, at date: Date) async throws -> ExecutionReportOutcome {
        try await write { db in
            // Every report of every device comes this way: prepared statements are kept.
            guard let body = try String.fetchOne(db.cachedStatement(sql: "SELECT body FROM execution WHERE id = ? AND device_id = ?"),
                                                 arguments: [executionID, deviceID]) else { return .notFound }
            let execution = try Self.execution(body)
            let seen = try Bool.fetchOne(db.cachedStatement(sql: "SELECT 1 FROM execution_report WHERE execution_id = ? AND report_id = ?"),
                                         arguments: [executionID, report.reportID]) ?? false
            if seen { return .duplicate(execution) }
            guard let next = execution.applying(report, at: date) else { return .finished(execution) }
            try db.cachedStatement(sql: "INSERT INTO execution_report (execution_id, report_id) VALUES (?, ?)")
                .execute(arguments: [executionID, report.reportID])
            try Self.update(next, db)
            return .applied(next)
        }
    }

    public func abortDeployment(id: String, at date: Date) async throws -> [ExecutionRecord] {
        try await write { db in
            guard let body = try String.fetchOne(db, sql: "SELECT body FROM deployment WHERE id = ?", arguments: [id]) else {
                throw StoreError(.notFound, "no deployment \(id)")
            }
            var deployment = try Self.decode(DeploymentRecord.self, body)
            deployment.aborted = true
            try db.execute(sql: "UPDATE deployment SET aborted = 1, body = ? WHERE id = ?", arguments: [try Self.json(deployment), id])
            let active = try String.fetchAll(db, sql: """
                SELECT body FROM execution WHERE deployment_id = ? AND state IN ('queued', 'assigned', 'running') ORDER BY seq
                """, arguments: [id]).map { try Self.execution($0) }
            return try active.compactMap { execution in
                guard let cancelled = execution.ended(as: .cancelled, message: "the deployment was aborted", at: date) else { return nil }
                try Self.update(cancelled, db)
                return cancelled
            }
        }
    }

    public func endExecution(id: String, as state: ExecutionState, message: String, unlessUpdatedAfter: Date?, at date: Date) async throws
        -> ExecutionRecord? {
        try await write { db in
            guard let body = try String.fetchOne(db, sql: "SELECT body FROM execution WHERE id = ?", arguments: [id]),
                  let ended = try Self.execution(body).ended(as: state, message: message, unlessUpdatedAfter: unlessUpdatedAfter, at: date)
            else { return nil }
            try Self.update(ended, db)
            return ended
        }
    }

    public func takeExecutions(deviceID: String, at date: Date) async throws -> [ExecutionRecord] {
        try await write { db in
            let active = try String.fetchAll(db.cachedStatement(sql: """
                SELECT body FROM execution WHERE device_id = ? AND state IN ('queued', 'assigned', 'running') ORDER BY seq
                """), arguments: [deviceID]).map { try Self.execution($0) }
            return try active.map { execution in
                guard let taken = execution.taken(at: date) else { return execution }
                try Self.update(taken, db)
                return taken
            }
        }
    }

    private static func insert(_ execution: ExecutionRecord, _ db: Database) throws {
        try db.cachedStatement(sql: """
            INSERT INTO execution (id, deployment_id, device_id, state, updated_at, taken_at, health_passed, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """).execute(arguments: [execution.id, execution.deploymentID, execution.deviceID, execution.state.rawValue,
                                     execution.updatedAt.timeIntervalSince1970, execution.takenAt?.timeIntervalSince1970,
                                     execution.healthPassedAt != nil, execution.wireJSON()])
    }

    private static func update(_ execution: ExecutionRecord, _ db: Database) throws {
        try db.cachedStatement(sql: "UPDATE execution SET state = ?, updated_at = ?, taken_at = ?, health_passed = ?, body = ? WHERE id = ?")
            .execute(arguments: [execution.state.rawValue, execution.updatedAt.timeIntervalSince1970, execution.takenAt?.timeIntervalSince1970,
                                 execution.healthPassedAt != nil, execution.wireJSON(), execution.id])
    }

    private static func execution(_ body: String) throws -> ExecutionRecord {
        do {
            return try ExecutionRecord.decode(wire: body.utf8)
        } catch {
            throw StoreError(.corrupt, "a stored execution does not decode: \(error.message)")
        }
    }

    public func appendAudit(_ entry: AuditRecord) async throws {
        try await write { db in
            try db.execute(sql: "INSERT INTO audit (at, project, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?, ?)",
                           arguments: [entry.at.timeIntervalSince1970, entry.project, entry.actor, entry.action, entry.subject, entry.detail])
        }
    }

    public func audit(project: String, limit: Int) async throws -> [AuditRecord] {
        try await read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM audit WHERE project = ? ORDER BY seq DESC LIMIT ?", arguments: [project, limit]).map {
                AuditRecord(at: Date(timeIntervalSince1970: $0["at"]), project: $0["project"], actor: $0["actor"],
                            action: $0["action"], subject: $0["subject"], detail: $0["detail"])
            }
        }
    }

    // MARK: - Rows

    func write<T: Sendable>(_ body: @Sendable @escaping (Database) throws -> T) async throws -> T {
        do {
            return try await pool.write(body)
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError where error.resultCode == .SQLITE_CONSTRAINT {
            throw StoreError(.duplicate, error.message ?? "constraint violated")
        } catch let error as DatabaseError {
            throw StoreError(.unavailable, error.message ?? "database error")
        }
    }

    func read<T: Sendable>(_ body: @Sendable @escaping (Database) throws -> T) async throws -> T {
        do {
            return try await pool.read(body)
        } catch let error as DatabaseError {
            throw StoreError(.unavailable, error.message ?? "database error")
        }
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

    private static func token(_ row: Row) -> AccessTokenRecord {
        AccessTokenRecord(id: row["id"], kind: AccessTokenRecord.Kind(rawValue: row["kind"]) ?? .enrollment, project: row["project"],
                          group: row["grp"], secretHash: row["secret_hash"], createdAt: Date(timeIntervalSince1970: row["created_at"]),
                          expiresAt: (row["expires_at"] as Double?).map(Date.init(timeIntervalSince1970:)), revoked: row["revoked"],
                          createdBy: row["created_by"], access: (row["access"] as String?).map(OperatorAccess.init(stored:)))
    }

    /// A device row's columns, in the order `device(_:)` reads them by position. By name, a
    /// copied row finds each value by lowercasing the name asked for and every column name before
    /// it: a controller pass over 10,000 devices made over a million strings just to find columns.
    static let deviceColumns = "id, project, name, hardware_id, secret_hash, reported_tags, attributes, apps, enrolled_at, "
        + "last_heartbeat_at, executing, deleted, token_generation, claim_hash, claim_expires_at, update_lock"

    /// A row of `deviceColumns`.
    private static func device(_ row: Row) throws -> DeviceRecord {
        DeviceRecord(id: row[0], project: row[1], name: row[2], hardwareID: row[3],
                     secretHash: row[4], reportedTags: try StoredColumns.map(row[5], column: "reported_tags", WireObject.string),
                     attributes: try StoredColumns.map(row[6], column: "attributes", WireObject.string),
                     apps: try StoredColumns.map(row[7], column: "apps") { (value, path) throws(WireDecodingError) in try InstalledApp(wire: value, path: path) },
                     enrolledAt: Date(timeIntervalSince1970: row[8]),
                     lastHeartbeatAt: (row[9] as Double?).map(Date.init(timeIntervalSince1970:)),
                     executing: row[10], deleted: row[11], tokenGeneration: row[12],
                     claimHash: row[13], claimExpiresAt: (row[14] as Double?).map(Date.init(timeIntervalSince1970:)),
                     lock: try StoredColumns.lock(row[15]))
    }
}
