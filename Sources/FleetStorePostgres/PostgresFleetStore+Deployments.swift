public import FleetProtocol
public import FleetStore
public import Foundation
import PostgresNIO

/// Deployments and their executions.
extension PostgresFleetStore {
    public func createDeployment(_ deployment: DeploymentRecord, executions: [ExecutionRecord]) async throws {
        let body = try Self.json(deployment)
        try await write { connection in
            try await Self.ensureProject(deployment.project, at: deployment.createdAt, connection, self.logger)
            try await connection.query("""
                INSERT INTO deployment (id, project, created_at, aborted, body)
                VALUES (\(deployment.id), \(deployment.project), \(deployment.createdAt.timeIntervalSince1970), \(deployment.aborted), \(body))
                """, logger: self.logger)
            // A wave of thousands is one statement per thousand executions, not one per device.
            for start in stride(from: 0, to: executions.count, by: 1_000) {
                let chunk = executions[start..<min(start + 1_000, executions.count)]
                try await connection.query("""
                    INSERT INTO execution (id, deployment_id, device_id, state, updated_at, taken_at, health_passed, body)
                    SELECT id, deployment_id, device_id, state, updated_at, nullif(taken_at, 'NaN'::float8), health_passed, body
                    FROM unnest(\(chunk.map(\.id)), \(chunk.map(\.deploymentID)), \(chunk.map(\.deviceID)), \(chunk.map(\.state.rawValue)),
                                \(chunk.map(\.updatedAt.timeIntervalSince1970)), \(chunk.map { $0.takenAt?.timeIntervalSince1970 ?? .nan }),
                                \(chunk.map { $0.healthPassedAt != nil }), \(chunk.map { $0.wireJSON() }))
                        WITH ORDINALITY AS t(id, deployment_id, device_id, state, updated_at, taken_at, health_passed, body, n)
                    ORDER BY n
                    """, logger: self.logger)
            }
        }
    }

    public func deployment(id: String) async throws -> DeploymentRecord? {
        try await rows("SELECT body FROM deployment WHERE id = \(id)") { try Self.decode(DeploymentRecord.self, try $0["body"]) }.first
    }

    public func deployments(project: String, limit: Int) async throws -> [DeploymentRecord] {
        // The controller lists up to 10,000 deployments on every pass; a deployment's body
        // changes only when it is aborted (on any replica: the flag is read each time), so
        // decoded ones are kept and only new or newly aborted ones are read and decoded again.
        let listed: [(id: String, aborted: Bool)] = try await rows(
            "SELECT id, aborted FROM deployment WHERE project = \(project) ORDER BY created_at DESC, seq DESC LIMIT \(limit)"
        ) { (try $0["id"], try $0["aborted"]) }
        var known: [String: DeploymentRecord] = [:]
        var missing: [String] = []
        for (id, aborted) in listed {
            if let record = deploymentCache.record(id: id, aborted: aborted) { known[id] = record } else { missing.append(id) }
        }
        if !missing.isEmpty {
            for record in try await rows("SELECT body FROM deployment WHERE id = ANY(\(missing))", { try Self.decode(DeploymentRecord.self, try $0["body"]) }) {
                deploymentCache.keep(record)
                known[record.id] = record
            }
        }
        // A deployment deleted between the two reads is left out, as if listed a moment later.
        return listed.compactMap { known[$0.id] }
    }

    public func executions(deploymentID: String) async throws -> [ExecutionRecord] {
        try await rows("SELECT body FROM execution WHERE deployment_id = \(deploymentID) ORDER BY seq") { try Self.execution(try $0["body"]) }
    }

    public func executionSummaries(deploymentIDs: [String]) async throws -> [ExecutionSummary] {
        guard !deploymentIDs.isEmpty else { return [] }
        // Columns only: no body is read or decoded.
        return try await rows("""
            SELECT seq, id, deployment_id, device_id, state, updated_at, taken_at, health_passed FROM execution
            WHERE deployment_id = ANY(\(deploymentIDs)) ORDER BY seq
            """) { row in
            let state: String = try row["state"]
            guard let known = ExecutionState(rawValue: state) else {
                throw StoreError(.corrupt, "execution \(try row["id"] as String) has state '\(state)'")
            }
            return ExecutionSummary(id: try row["id"], deploymentID: try row["deployment_id"], deviceID: try row["device_id"], state: known,
                                    updatedAt: try row.date("updated_at"), takenAt: try row.optionalDate("taken_at"),
                                    healthPassed: try row["health_passed"], order: try row["seq"])
        }
    }

    public func executions(deviceID: String, limit: Int) async throws -> [ExecutionRecord] {
        try await rows("SELECT body FROM execution WHERE device_id = \(deviceID) ORDER BY seq DESC LIMIT \(limit)") { try Self.execution(try $0["body"]) }
    }

    public func activeExecutions(deviceID: String) async throws -> [ExecutionRecord] {
        try await rows("""
            SELECT body FROM execution WHERE device_id = \(deviceID) AND state IN ('queued', 'assigned', 'running') ORDER BY seq
            """) { try Self.execution(try $0["body"]) }
    }

    public func execution(id: String, deviceID: String) async throws -> ExecutionRecord? {
        try await rows("SELECT body FROM execution WHERE id = \(id) AND device_id = \(deviceID)") { try Self.execution(try $0["body"]) }.first
    }

    public func applyExecutionReport(executionID: String, deviceID: String, report: ExecutionReport, at date: Date) async throws
        -> ExecutionReportOutcome {
        try await write { connection in
            // The row is locked: the same report arriving at two servers is applied once.
            guard let execution = try await Self.rows(connection, self.logger, """
                SELECT body FROM execution WHERE id = \(executionID) AND device_id = \(deviceID) FOR UPDATE
                """, { try Self.execution(try $0["body"]) }).first else { return .notFound }
            let seen = try await Self.rows(connection, self.logger, """
                SELECT 1 AS seen FROM execution_report WHERE execution_id = \(executionID) AND report_id = \(report.reportID)
                """) { try $0["seen"] as Int32 }
            if !seen.isEmpty { return .duplicate(execution) }
            guard let next = execution.applying(report, at: date) else { return .finished(execution) }
            try await connection.query("INSERT INTO execution_report (execution_id, report_id) VALUES (\(executionID), \(report.reportID))",
                                       logger: self.logger)
            try await Self.update(next, connection, self.logger)
            return .applied(next)
        }
    }

    public func abortDeployment(id: String, at date: Date) async throws -> [ExecutionRecord] {
        try await write { connection in
            guard let body = try await Self.rows(connection, self.logger, "SELECT body FROM deployment WHERE id = \(id) FOR UPDATE", {
                try $0["body"] as String
            }).first else { throw StoreError(.notFound, "no deployment \(id)") }
            var deployment = try Self.decode(DeploymentRecord.self, body)
            deployment.aborted = true
            try await connection.query("UPDATE deployment SET aborted = TRUE, body = \(try Self.json(deployment)) WHERE id = \(id)",
                                       logger: self.logger)
            let active = try await Self.rows(connection, self.logger, """
                SELECT body FROM execution WHERE deployment_id = \(id) AND state IN ('queued', 'assigned', 'running') ORDER BY seq FOR UPDATE
                """) { try Self.execution(try $0["body"]) }
            var cancelled: [ExecutionRecord] = []
            for execution in active {
                guard let ended = execution.ended(as: .cancelled, message: "the deployment was aborted", at: date) else { continue }
                try await Self.update(ended, connection, self.logger)
                cancelled.append(ended)
            }
            return cancelled
        }
    }

    public func endExecution(id: String, as state: ExecutionState, message: String, unlessUpdatedAfter: Date?, at date: Date) async throws
        -> ExecutionRecord? {
        try await write { connection in
            guard let execution = try await Self.rows(connection, self.logger, "SELECT body FROM execution WHERE id = \(id) FOR UPDATE", {
                try Self.execution(try $0["body"])
            }).first, let ended = execution.ended(as: state, message: message, unlessUpdatedAfter: unlessUpdatedAfter, at: date) else {
                return nil
            }
            try await Self.update(ended, connection, self.logger)
            return ended
        }
    }

    public func takeExecutions(deviceID: String, at date: Date) async throws -> [ExecutionRecord] {
        try await write { connection in
            let active = try await Self.rows(connection, self.logger, """
                SELECT body FROM execution WHERE device_id = \(deviceID) AND state IN ('queued', 'assigned', 'running') ORDER BY seq FOR UPDATE
                """) { try Self.execution(try $0["body"]) }
            var sent: [ExecutionRecord] = []
            for execution in active {
                guard let taken = execution.taken(at: date) else {
                    sent.append(execution)
                    continue
                }
                try await Self.update(taken, connection, self.logger)
                sent.append(taken)
            }
            return sent
        }
    }

    static func update(_ execution: ExecutionRecord, _ connection: PostgresConnection, _ logger: Logger) async throws {
        try await connection.query("""
            UPDATE execution SET state = \(execution.state.rawValue), updated_at = \(execution.updatedAt.timeIntervalSince1970),
                taken_at = \(execution.takenAt?.timeIntervalSince1970), health_passed = \(execution.healthPassedAt != nil),
                body = \(execution.wireJSON())
            WHERE id = \(execution.id)
            """, logger: logger)
    }

    static func execution(_ body: String) throws -> ExecutionRecord {
        do {
            return try ExecutionRecord.decode(wire: body.utf8)
        } catch {
            throw StoreError(.corrupt, "a stored execution does not decode: \(error.message)")
        }
    }
}

/// Held apps, approvals and sealed secrets.
extension PostgresFleetStore {
    public func suspendedApps(project: String) async throws -> Set<String> {
        Set(try await rows("SELECT app FROM app_suspension WHERE project = \(project)") { try $0["app"] as String })
    }

    public func setSuspended(_ suspended: Bool, app: String, project: String, at date: Date) async throws {
        if suspended {
            try await execute("""
                INSERT INTO app_suspension (project, app, suspended_at) VALUES (\(project), \(app), \(date.timeIntervalSince1970))
                ON CONFLICT DO NOTHING
                """)
        } else {
            try await execute("DELETE FROM app_suspension WHERE project = \(project) AND app = \(app)")
        }
    }

    public func approve(_ approval: ApprovalRecord) async throws -> ApprovalRecord {
        try await write { connection in
            try await connection.query("""
                INSERT INTO approval (project, app, grp, digest, approved_by, approved_at)
                VALUES (\(approval.project), \(approval.app), \(approval.group), \(approval.digest), \(approval.approvedBy),
                        \(approval.approvedAt.timeIntervalSince1970))
                ON CONFLICT DO NOTHING
                """, logger: self.logger)
            var kept = approval
            if let first = try await Self.rows(connection, self.logger, """
                SELECT approved_by, approved_at FROM approval
                WHERE project = \(approval.project) AND app = \(approval.app) AND grp = \(approval.group) AND digest = \(approval.digest)
                """, { row in (try row["approved_by"] as String, try row.date("approved_at")) }).first {
                kept.approvedBy = first.0
                kept.approvedAt = first.1
            }
            return kept
        }
    }

    public func approvals(project: String) async throws -> [ApprovalRecord] {
        try await rows("""
            SELECT app, grp, digest, approved_by, approved_at FROM approval WHERE project = \(project) ORDER BY approved_at, seq
            """) { row in
            ApprovalRecord(project: project, app: try row["app"], group: try row["grp"], digest: try row["digest"],
                           approvedBy: try row["approved_by"], approvedAt: try row.date("approved_at"))
        }
    }

    public func putSecret(_ secret: SecretRecord) async throws -> SecretRecord {
        // One statement: two servers replacing a secret at once give it two versions, not one.
        let version = try await rows("""
            INSERT INTO secret (project, name, sealed, version, updated_at, updated_by)
            VALUES (\(secret.project), \(secret.name), \(ByteBuffer(bytes: secret.sealed)), 1, \(secret.updatedAt.timeIntervalSince1970),
                    \(secret.updatedBy))
            ON CONFLICT (project, name) DO UPDATE SET sealed = excluded.sealed, version = secret.version + 1,
                updated_at = excluded.updated_at, updated_by = excluded.updated_by
            RETURNING version
            """) { try $0["version"] as Int }
        var stored = secret
        stored.version = version.first ?? 1
        return stored
    }

    public func secret(project: String, name: String) async throws -> SecretRecord? {
        try await rows("SELECT * FROM secret WHERE project = \(project) AND name = \(name)", Self.secret).first
    }

    public func secrets(project: String) async throws -> [SecretRecord] {
        try await rows("SELECT * FROM secret WHERE project = \(project) ORDER BY name COLLATE \"C\"", Self.secret)
    }

    public func deleteSecret(project: String, name: String) async throws -> Bool {
        !(try await rows("DELETE FROM secret WHERE project = \(project) AND name = \(name) RETURNING name") { try $0["name"] as String }).isEmpty
    }

    static func secret(_ row: Columns) throws -> SecretRecord {
        let sealed: ByteBuffer = try row["sealed"]
        return SecretRecord(project: try row["project"], name: try row["name"], sealed: Array(sealed.readableBytesView),
                            version: try row["version"], updatedAt: try row.date("updated_at"), updatedBy: try row["updated_by"])
    }
}
