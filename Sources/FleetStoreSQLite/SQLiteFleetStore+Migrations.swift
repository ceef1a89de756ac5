import Foundation
import GRDB

extension SQLiteFleetStore {
    /// Named and append-only: a released migration is never edited, only followed by another.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("2026-11-29 registry") { db in
            try db.execute(sql: """
                CREATE TABLE project (name TEXT PRIMARY KEY, created_at REAL NOT NULL);
                CREATE TABLE access_token (
                    id TEXT PRIMARY KEY, kind TEXT NOT NULL, project TEXT NOT NULL REFERENCES project(name),
                    grp TEXT, secret_hash TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL,
                    revoked INTEGER NOT NULL DEFAULT 0);
                CREATE INDEX access_token_project ON access_token(project);
                CREATE TABLE device (
                    id TEXT PRIMARY KEY, project TEXT NOT NULL REFERENCES project(name), name TEXT NOT NULL,
                    hardware_id TEXT NOT NULL, secret_hash TEXT NOT NULL, reported_tags TEXT NOT NULL,
                    attributes TEXT NOT NULL, apps TEXT NOT NULL, enrolled_at REAL NOT NULL,
                    last_heartbeat_at REAL, deleted INTEGER NOT NULL DEFAULT 0);
                CREATE UNIQUE INDEX device_live_hardware ON device(project, hardware_id) WHERE deleted = 0;
                CREATE TABLE heartbeat (
                    device_id TEXT NOT NULL REFERENCES device(id), report_id TEXT NOT NULL,
                    received_at REAL NOT NULL, report TEXT NOT NULL,
                    PRIMARY KEY (device_id, report_id));
                CREATE INDEX heartbeat_received ON heartbeat(device_id, received_at);
                CREATE TABLE audit (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, project TEXT NOT NULL,
                    actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT NOT NULL, detail TEXT NOT NULL);
                CREATE INDEX audit_project ON audit(project, seq);
                """)
        }
        migrator.registerMigration("2026-11-29 deployments") { db in
            try db.execute(sql: """
                CREATE TABLE deployment (
                    id TEXT PRIMARY KEY, project TEXT NOT NULL REFERENCES project(name), created_at REAL NOT NULL,
                    aborted INTEGER NOT NULL DEFAULT 0, body TEXT NOT NULL);
                CREATE INDEX deployment_project ON deployment(project, created_at);
                CREATE TABLE execution (
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
                    deployment_id TEXT NOT NULL REFERENCES deployment(id), device_id TEXT NOT NULL,
                    state TEXT NOT NULL, body TEXT NOT NULL);
                CREATE INDEX execution_deployment ON execution(deployment_id, seq);
                CREATE INDEX execution_device_state ON execution(device_id, state);
                CREATE TABLE execution_report (
                    execution_id TEXT NOT NULL REFERENCES execution(id), report_id TEXT NOT NULL,
                    PRIMARY KEY (execution_id, report_id));
                """)
        }
        migrator.registerMigration("2026-12-03 device executing") { db in
            // The execution a device's last heartbeat says it works on (see Heartbeat.executing).
            try db.execute(sql: "ALTER TABLE device ADD COLUMN executing TEXT")
        }
        migrator.registerMigration("2026-12-03 device identity") { db in
            // Device tokens name the generation they were issued in; a reset moves it on (DeviceRecord.tokenGeneration).
            try db.execute(sql: """
                ALTER TABLE device ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE device ADD COLUMN claim_hash TEXT;
                ALTER TABLE device ADD COLUMN claim_expires_at REAL;
                """)
        }
        migrator.registerMigration("2026-12-03 token lineage") { db in
            // The operator token that made a token through the API (AccessTokenRecord.createdBy).
            try db.execute(sql: "ALTER TABLE access_token ADD COLUMN created_by TEXT")
        }
        migrator.registerMigration("2026-12-03 secrets") { db in
            // Sealed by the server; the key is in a file beside the database, never in it.
            try db.execute(sql: """
                CREATE TABLE secret (
                    project TEXT NOT NULL, name TEXT NOT NULL, sealed BLOB NOT NULL, version INTEGER NOT NULL,
                    updated_at REAL NOT NULL, updated_by TEXT NOT NULL, PRIMARY KEY (project, name))
                """)
        }
        migrator.registerMigration("2026-12-03 app suspensions") { db in
            // Held apps per project; before, a file in each controller's git cache.
            try db.execute(sql: """
                CREATE TABLE app_suspension (
                    project TEXT NOT NULL, app TEXT NOT NULL, suspended_at REAL NOT NULL, PRIMARY KEY (project, app))
                """)
        }
        migrator.registerMigration("2026-12-03 body dates since 1970") { db in
            // Dates inside JSON bodies were JSONEncoder's default, seconds since 2001-01-01;
            // now they are written as seconds since 1970 on purpose (StoredJSON).
            let offset = Date.timeIntervalBetween1970AndReferenceDate
            try db.execute(sql: "UPDATE execution SET body = json_set(body, '$.updatedAt', json_extract(body, '$.updatedAt') + ?)",
                           arguments: [offset])
            try db.execute(sql: """
                UPDATE execution SET body = json_set(body, '$.takenAt', json_extract(body, '$.takenAt') + ?)
                WHERE json_type(body, '$.takenAt') IN ('integer', 'real')
                """, arguments: [offset])
            try db.execute(sql: "UPDATE deployment SET body = json_set(body, '$.createdAt', json_extract(body, '$.createdAt') + ?)",
                           arguments: [offset])
        }
        migrator.registerMigration("2026-12-03 approvals") { db in
            // One row per approved release (digest) of a target; the first approval stays.
            try db.execute(sql: """
                CREATE TABLE approval (
                    project TEXT NOT NULL, app TEXT NOT NULL, grp TEXT NOT NULL, digest TEXT NOT NULL,
                    approved_by TEXT NOT NULL, approved_at REAL NOT NULL, PRIMARY KEY (project, app, grp, digest))
                """)
        }
        migrator.registerMigration("2026-12-03 device update lock") { db in
            // The update lock the device's newest heartbeat carried, as its wire JSON.
            try db.execute(sql: "ALTER TABLE device ADD COLUMN update_lock TEXT")
        }
        migrator.registerMigration("2026-12-04 metrics history") { db in
            // Heartbeats summed up per device and ten minutes once they are a day old
            // (MetricBucket): counts, and means and highs in whole hundredths.
            try db.execute(sql: """
                CREATE TABLE metric (
                    device_id TEXT NOT NULL, start INTEGER NOT NULL, seconds INTEGER NOT NULL, samples INTEGER NOT NULL,
                    cpu_n INTEGER NOT NULL, cpu_mean INTEGER, cpu_max INTEGER, memory_n INTEGER NOT NULL, memory_mean INTEGER, memory_max INTEGER,
                    disk_n INTEGER NOT NULL, disk_mean INTEGER, disk_max INTEGER, load_n INTEGER NOT NULL, load_mean INTEGER, load_max INTEGER,
                    PRIMARY KEY (device_id, start)) WITHOUT ROWID;
                CREATE INDEX metric_age ON metric(start);
                """)
        }
        migrator.registerMigration("2026-12-04 remote commands") { db in
            // Operators' exec and fetch, one row per device: the record as JSON; its output apart,
            // one row per piece the device sent (appending never rewrites what is there).
            try db.execute(sql: """
                CREATE TABLE remote_command (
                    id TEXT PRIMARY KEY, batch TEXT NOT NULL, project TEXT NOT NULL, device_id TEXT NOT NULL, state TEXT NOT NULL,
                    requested_at REAL NOT NULL, body TEXT NOT NULL);
                CREATE TABLE remote_output (command_id TEXT NOT NULL, start INTEGER NOT NULL, bytes BLOB NOT NULL,
                    PRIMARY KEY (command_id, start)) WITHOUT ROWID;
                CREATE INDEX remote_command_device ON remote_command(device_id, state);
                CREATE INDEX remote_command_batch ON remote_command(batch);
                CREATE INDEX remote_command_age ON remote_command(requested_at);
                """)
        }
        migrator.registerMigration("2026-12-05 alerts") { db in
            // One row per rule and device that is pending, firing or recently resolved (AlertRecord as JSON).
            try db.execute(sql: """
                CREATE TABLE alert (
                    project TEXT NOT NULL, rule TEXT NOT NULL, device_id TEXT NOT NULL, version INTEGER NOT NULL,
                    since REAL NOT NULL, state TEXT NOT NULL, resolved_at REAL, body TEXT NOT NULL,
                    PRIMARY KEY (project, rule, device_id));
                CREATE INDEX alert_device ON alert(device_id);
                """)
        }
        migrator.registerMigration("2026-12-05 execution summary columns") { db in
            // What every controller pass reads of every execution, as columns: SQLite 3.40
            // parses the whole body again for each field json_extract takes out of it.
            try db.execute(sql: """
                ALTER TABLE execution ADD COLUMN updated_at REAL;
                ALTER TABLE execution ADD COLUMN taken_at REAL;
                ALTER TABLE execution ADD COLUMN health_passed INTEGER NOT NULL DEFAULT 0;
                UPDATE execution SET updated_at = json_extract(body, '$.updatedAt'), taken_at = json_extract(body, '$.takenAt'),
                    health_passed = json_extract(body, '$.healthPassedAt') IS NOT NULL;
                """)
        }
        migrator.registerMigration("2026-12-06 operator token access") { db in
            // NULL: everything, as every token made before.
            try db.execute(sql: "ALTER TABLE access_token ADD COLUMN access TEXT")
        }
        migrator.registerMigration("2026-12-06 executions by device") { db in
            // A device's page reads its latest executions, whatever their state.
            try db.execute(sql: "CREATE INDEX execution_device ON execution(device_id, seq)")
        }
        return migrator
    }
}
