import FleetStore
import Logging
import PostgresNIO

/// The PostgreSQL schema: named, append-only migrations, as the SQLite store's. Each is a list of
/// statements (the extended query protocol takes one at a time) applied in one transaction.
///
/// Times are seconds since 1970 as `double precision`, like the SQLite store's, so that the
/// stores' records compare equal; bodies are the same wire JSON as there.
enum PostgresSchema {
    struct Migration {
        let name: String
        let statements: [String]
    }

    /// Any number of servers may start at once on one database: the first to take this
    /// transaction-level advisory lock migrates, the others wait for it and find nothing to do.
    static let migrationLock: Int64 = 0x466C_6F74_696C_6C61 // "Flotilla"

    static let migrations: [Migration] = [
        Migration(name: "2026-12-04 registry, deployments, secrets", statements: [
            "CREATE TABLE project (name TEXT PRIMARY KEY, created_at DOUBLE PRECISION NOT NULL)",
            """
            CREATE TABLE access_token (
                id TEXT PRIMARY KEY, kind TEXT NOT NULL, project TEXT NOT NULL REFERENCES project(name), grp TEXT,
                secret_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION,
                revoked BOOLEAN NOT NULL DEFAULT FALSE, created_by TEXT)
            """,
            "CREATE INDEX access_token_project ON access_token(project)",
            """
            CREATE TABLE device (
                id TEXT PRIMARY KEY, project TEXT NOT NULL REFERENCES project(name), name TEXT NOT NULL,
                hardware_id TEXT NOT NULL, secret_hash TEXT NOT NULL, reported_tags TEXT NOT NULL,
                attributes JSONB NOT NULL, apps TEXT NOT NULL, enrolled_at DOUBLE PRECISION NOT NULL,
                last_heartbeat_at DOUBLE PRECISION, deleted BOOLEAN NOT NULL DEFAULT FALSE, executing TEXT,
                token_generation BIGINT NOT NULL DEFAULT 0, claim_hash TEXT, claim_expires_at DOUBLE PRECISION,
                update_lock TEXT)
            """,
            "CREATE UNIQUE INDEX device_live_hardware ON device(project, hardware_id) WHERE NOT deleted",
            "CREATE INDEX device_project ON device(project, id) WHERE NOT deleted",
            """
            CREATE TABLE heartbeat (
                device_id TEXT NOT NULL REFERENCES device(id), report_id TEXT NOT NULL, seq BIGSERIAL NOT NULL,
                received_at DOUBLE PRECISION NOT NULL, report TEXT NOT NULL, PRIMARY KEY (device_id, report_id))
            """,
            "CREATE INDEX heartbeat_received ON heartbeat(device_id, received_at, seq)",
            "CREATE INDEX heartbeat_age ON heartbeat(received_at)",
            """
            CREATE TABLE audit (
                seq BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, project TEXT NOT NULL, actor TEXT NOT NULL,
                action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL)
            """,
            "CREATE INDEX audit_project ON audit(project, seq)",
            """
            CREATE TABLE deployment (
                id TEXT PRIMARY KEY, seq BIGSERIAL NOT NULL, project TEXT NOT NULL REFERENCES project(name),
                created_at DOUBLE PRECISION NOT NULL, aborted BOOLEAN NOT NULL DEFAULT FALSE, body TEXT NOT NULL)
            """,
            "CREATE INDEX deployment_project ON deployment(project, created_at, seq)",
            // What the controller reads of every execution on every pass is in columns; the
            // whole record is the body.
            """
            CREATE TABLE execution (
                seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, deployment_id TEXT NOT NULL REFERENCES deployment(id),
                device_id TEXT NOT NULL, state TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
                taken_at DOUBLE PRECISION, health_passed BOOLEAN NOT NULL DEFAULT FALSE, body TEXT NOT NULL)
            """,
            "CREATE INDEX execution_deployment ON execution(deployment_id, seq)",
            "CREATE INDEX execution_device_active ON execution(device_id, seq) WHERE state IN ('queued', 'assigned', 'running')",
            """
            CREATE TABLE execution_report (
                execution_id TEXT NOT NULL REFERENCES execution(id), report_id TEXT NOT NULL,
                PRIMARY KEY (execution_id, report_id))
            """,
            """
            CREATE TABLE secret (
                project TEXT NOT NULL, name TEXT NOT NULL, sealed BYTEA NOT NULL, version BIGINT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL, updated_by TEXT NOT NULL, PRIMARY KEY (project, name))
            """,
            """
            CREATE TABLE app_suspension (
                project TEXT NOT NULL, app TEXT NOT NULL, suspended_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (project, app))
            """,
            """
            CREATE TABLE approval (
                project TEXT NOT NULL, app TEXT NOT NULL, grp TEXT NOT NULL, digest TEXT NOT NULL, seq BIGSERIAL NOT NULL,
                approved_by TEXT NOT NULL, approved_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (project, app, grp, digest))
            """,
        ]),
        Migration(name: "2026-12-04 replicas", statements: [
            // Which replica runs the controllers: a lease renewed by its holder; a new holder
            // takes it only once it has expired, and moves the epoch on (the fencing token).
            """
            CREATE TABLE leader_lease (
                id INTEGER PRIMARY KEY CHECK (id = 1), holder TEXT NOT NULL, epoch BIGINT NOT NULL,
                expires_at TIMESTAMPTZ NOT NULL, acquired_at TIMESTAMPTZ NOT NULL)
            """,
            // Fingerprints of the keys every replica must share (device-token signing, secret
            // sealing): a replica started with another key is refused, not silently divergent.
            "CREATE TABLE server_key (name TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, pinned_at TIMESTAMPTZ NOT NULL DEFAULT now())",
            // The leader's controllers' last word, which standbys serve in their place.
            "CREATE TABLE controller_snapshot (key TEXT PRIMARY KEY, body TEXT NOT NULL, published_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        ]),
        Migration(name: "2026-12-04 metrics history", statements: [
            // Heartbeats summed up per device and ten minutes once they are a day old
            // (MetricBucket): counts, and means and highs in whole hundredths.
            """
            CREATE TABLE metric (
                device_id TEXT NOT NULL, start BIGINT NOT NULL, seconds INTEGER NOT NULL, samples INTEGER NOT NULL,
                cpu_n INTEGER NOT NULL, cpu_mean INTEGER, cpu_max INTEGER, memory_n INTEGER NOT NULL, memory_mean INTEGER, memory_max INTEGER,
                disk_n INTEGER NOT NULL, disk_mean INTEGER, disk_max INTEGER, load_n INTEGER NOT NULL, load_mean INTEGER, load_max INTEGER,
                PRIMARY KEY (device_id, start))
            """,
            "CREATE INDEX metric_age ON metric(start)",
        ]),
        Migration(name: "2026-12-04 remote commands", statements: [
            // Operators' exec and fetch, one row per device: the record as JSON; its output apart,
            // one row per piece the device sent (appending never rewrites what is there).
            """
            CREATE TABLE remote_command (
                id TEXT PRIMARY KEY, batch TEXT NOT NULL, project TEXT NOT NULL, device_id TEXT NOT NULL, state TEXT NOT NULL,
                requested_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL)
            """,
            "CREATE TABLE remote_output (command_id TEXT NOT NULL, start INTEGER NOT NULL, bytes BYTEA NOT NULL, PRIMARY KEY (command_id, start))",
            "CREATE INDEX remote_command_device ON remote_command(device_id, state)",
            "CREATE INDEX remote_command_batch ON remote_command(batch)",
            "CREATE INDEX remote_command_age ON remote_command(requested_at)",
        ]),
        Migration(name: "2026-12-05 alerts", statements: [
            // One row per rule and device that is pending, firing or recently resolved (AlertRecord as JSON);
            // `version` and `since` are what replicas compare before they change it.
            """
            CREATE TABLE alert (
                project TEXT NOT NULL, rule TEXT NOT NULL, device_id TEXT NOT NULL, version INTEGER NOT NULL,
                since DOUBLE PRECISION NOT NULL, state TEXT NOT NULL, resolved_at DOUBLE PRECISION, body TEXT NOT NULL,
                PRIMARY KEY (project, rule, device_id))
            """,
            "CREATE INDEX alert_device ON alert(device_id)",
        ]),
        // NULL: everything, as every token made before.
        Migration(name: "2026-12-06 operator token access", statements: ["ALTER TABLE access_token ADD COLUMN access TEXT"]),
        // A device's page reads its latest executions, whatever their state.
        Migration(name: "2026-12-06 executions by device", statements: ["CREATE INDEX execution_device ON execution(device_id, seq)"]),
    ]

    /// Applies the migrations this database lacks, under the migration lock; returns their names.
    static func migrate(_ client: PostgresClient, logger: Logger) async throws -> [String] {
        try await client.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(\(migrationLock))", logger: logger)
            try await connection.query("""
                CREATE TABLE IF NOT EXISTS flotilla_migration (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())
                """, logger: logger)
            var applied: Set<String> = []
            for try await name in try await connection.query("SELECT name FROM flotilla_migration", logger: logger).decode(String.self) {
                applied.insert(name)
            }
            // A newer release migrated it: this one would misread what it does not know.
            if let unknown = applied.subtracting(migrations.map(\.name)).sorted().first {
                throw StoreError(.unavailable, "the database was migrated by a newer release of flotilla (migration '\(unknown)' is unknown "
                                 + "to this one); run that release or a newer one")
            }
            var done: [String] = []
            for migration in migrations where !applied.contains(migration.name) {
                for statement in migration.statements {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
                try await connection.query("INSERT INTO flotilla_migration (name) VALUES (\(migration.name))", logger: logger)
                done.append(migration.name)
            }
            return done
        }
    }
}
