import FleetProtocol
import FleetStore
@testable import FleetStorePostgres
import FleetTesting
import Foundation
import Logging
import Testing

/// Several servers on one PostgreSQL database: what each does alone (the conformance suite)
/// still holds when they do it at the same moment.
struct PostgresReplicaTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func database() async throws -> DatabaseURL {
        try DatabaseURL(parsing: try await PostgresServer.shared().createDatabase() + "?sslmode=disable")
    }

    /// Replicas started together on an empty database: one migrates, none fails, each migration
    /// is recorded once.
    @Test func replicasStartingTogetherMigrateOnce() async throws {
        let url = try await database()
        let stores = try await withThrowingTaskGroup(of: PostgresFleetStore.self) { group in
            for _ in 0..<6 { group.addTask { try await PostgresFleetStore.open(url) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(stores.count == 6)
        let recorded = try PostgresServer.shared().psql("SELECT name, count(*) FROM flotilla_migration GROUP BY name",
                                                        database: url.adminForm)
        let lines = recorded.split(separator: "\n")
        #expect(!lines.isEmpty && lines.allSatisfy { $0.hasSuffix("|1") }, "\(recorded)")
        // And a store opened later finds nothing to do and works.
        let later = try await PostgresFleetStore.open(url)
        try await later.ensureProject("acme", at: now)
        #expect(try await stores[0].projects().map(\.name) == ["acme"])
    }

    /// A replica keeps the deployments it decoded; one aborted or made on another replica is
    /// read again, not answered from what it kept.
    @Test func aDeploymentAbortedOnAnotherReplicaIsListedAborted() async throws {
        let url = try await database()
        let a = try await PostgresFleetStore.open(url), b = try await PostgresFleetStore.open(url)
        try await a.ensureProject("acme", at: now)
        func deployment(_ id: String, at offset: Double) -> DeploymentRecord {
            DeploymentRecord(id: id, project: "acme", app: "thermostat", version: "2.5.0", flow: "compose-app", digest: id,
                             parameters: [:], steps: [], rollback: [], artifactAllowlist: [], createdAt: now.addingTimeInterval(offset), createdBy: "test")
        }
        try await a.createDeployment(deployment("dep-1", at: 0), executions: [])
        try await a.createDeployment(deployment("dep-2", at: 1), executions: [])
        #expect(try await a.deployments(project: "acme", limit: 10).map(\.id) == ["dep-2", "dep-1"])
        _ = try await b.abortDeployment(id: "dep-1", at: now)
        try await b.createDeployment(deployment("dep-3", at: 2), executions: [])
        let listed = try await a.deployments(project: "acme", limit: 10)
        #expect(listed.map(\.id) == ["dep-3", "dep-2", "dep-1"])
        #expect(listed.map(\.aborted) == [false, false, true])
        // The limit still takes the newest.
        #expect(try await a.deployments(project: "acme", limit: 2).map(\.id) == ["dep-3", "dep-2"])
    }

    /// The same report reaching two replicas at once (an agent's retry through a load balancer)
    /// is applied once; the same device's long-polls on two replicas take each execution once.
    @Test func theSameReportAndTheSameWorkAreHandledOnce() async throws {
        let url = try await database()
        let a = try await PostgresFleetStore.open(url), b = try await PostgresFleetStore.open(url)
        let device = DeviceRecord(id: "d1", project: "acme", name: "d1", hardwareID: "hw-1", secretHash: "h", reportedTags: [:],
                                  attributes: [:], enrolledAt: now)
        _ = try await a.enroll(device)
        let deployment = DeploymentRecord(id: "dep-1", project: "acme", app: "thermostat", version: "2.5.0", flow: "compose-app", digest: "d1",
                                          parameters: [:], steps: [], rollback: [], artifactAllowlist: [], createdAt: now, createdBy: "test")
        try await a.createDeployment(deployment, executions: (0..<20).map {
            ExecutionRecord(id: "e-\($0)", deploymentID: "dep-1", deviceID: "d1", updatedAt: now)
        })

        let taken = try await withThrowingTaskGroup(of: [ExecutionRecord].self) { group in
            for (index, store) in [a, b, a, b, a, b].enumerated() {
                group.addTask { try await store.takeExecutions(deviceID: "d1", at: self.now.addingTimeInterval(Double(index + 1))) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        // Every poll sees all 20 executions, and every one of them was taken exactly once: each
        // poll took it at its own instant, so one instant in every answer and in the store means once.
        #expect(taken.allSatisfy { $0.count == 20 && $0.allSatisfy { $0.state == .assigned } })
        let stored = try await b.executions(deploymentID: "dep-1")
        for execution in stored {
            let seen = Set(taken.compactMap { answer in answer.first { $0.id == execution.id }?.takenAt })
            #expect(seen == Set([execution.takenAt].compactMap { $0 }), "\(execution.id) was taken at \(seen)")
        }

        let report = ExecutionReport(reportID: "r-1", state: .running)
        let outcomes = try await withThrowingTaskGroup(of: ExecutionReportOutcome.self) { group in
            for store in [a, b, a, b, a, b] {
                group.addTask { try await store.applyExecutionReport(executionID: "e-0", deviceID: "d1", report: report, at: self.now) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(outcomes.filter { if case .applied = $0 { true } else { false } }.count == 1)
        #expect(outcomes.filter { if case .duplicate = $0 { true } else { false } }.count == 5)
    }

    /// One replica leads at a time; a leader whose lease expired (a long pause) cannot write
    /// through its fenced store once another took over, and learns it lost the lease.
    @Test func aDeposedLeaderCannotWrite() async throws {
        let url = try await database()
        let a = try await PostgresFleetStore.open(url), b = try await PostgresFleetStore.open(url)
        let leaseA = LeaderLease(store: a, holder: "a", timeToLive: .seconds(30))
        let leaseB = LeaderLease(store: b, holder: "b", timeToLive: .seconds(30))
        #expect(try await leaseA.acquire())
        #expect(try await leaseB.acquire() == false)
        #expect(try await leaseA.leader()?.holder == "a")
        let fencedA = a.fenced(by: leaseA)
        func deployment(_ id: String) -> DeploymentRecord {
            DeploymentRecord(id: id, project: "acme", app: "thermostat", version: "2.5.0", flow: "compose-app", digest: "d1", parameters: [:],
                             steps: [], rollback: [], artifactAllowlist: [], createdAt: now, createdBy: "controller")
        }
        try await fencedA.createDeployment(deployment("dep-1"), executions: [])

        // a stalls past its lease; b takes over.
        try PostgresServer.shared().psql("UPDATE leader_lease SET expires_at = now() - interval '1 second'", database: url.adminForm)
        #expect(try await leaseB.acquire())
        let refused = await #expect(throws: StoreError.self) { try await fencedA.createDeployment(deployment("dep-2"), executions: []) }
        #expect(refused.map { "\($0)".contains("no longer leads") } == true, "\(String(describing: refused))")
        #expect(try await a.deployment(id: "dep-2") == nil)
        #expect(try await leaseA.renew() == false)
        #expect(try await leaseA.leader()?.holder == "b")
        // The new leader's fenced writes land.
        try await b.fenced(by: leaseB).createDeployment(deployment("dep-3"), executions: [])
        #expect(try await b.deployment(id: "dep-3") != nil)
        // Released on shutdown, the lease is free at once.
        await leaseB.release()
        #expect(try await leaseA.acquire())
    }

    /// Heartbeats with a NUL are refused before they reach a batch; batches of the same devices
    /// from two replicas in opposite orders do not deadlock.
    @Test func crossingHeartbeatBatchesDoNotDeadlock() async throws {
        let url = try await database()
        let a = try await PostgresFleetStore.open(url), b = try await PostgresFleetStore.open(url)
        for index in 0..<50 {
            _ = try await a.enroll(DeviceRecord(id: "d\(index)", project: "acme", name: "d", hardwareID: "hw-\(index)", secretHash: "h",
                                                reportedTags: [:], attributes: [:], enrolledAt: now))
        }
        func batch(_ order: [Int], _ round: Int) -> [HeartbeatRecord] {
            order.map { HeartbeatRecord(deviceID: "d\($0)", receivedAt: now, report: Heartbeat(reportID: "r\(round)-\($0)-\(order.first!)")) }
        }
        try await withThrowingTaskGroup(of: [Bool].self) { group in
            for round in 0..<10 {
                group.addTask { try await a.recordHeartbeats(batch(Array(0..<50), round)) }
                group.addTask { try await b.recordHeartbeats(batch(Array((0..<50).reversed()), round)) }
            }
            for try await accepted in group { #expect(accepted.allSatisfy { $0 }) }
        }
    }

    /// One board enrolling through two replicas at once is one device.
    @Test func oneBoardEnrollingTwiceAtOnceIsOneDevice() async throws {
        let url = try await database()
        let a = try await PostgresFleetStore.open(url), b = try await PostgresFleetStore.open(url)
        let enrolled = try await withThrowingTaskGroup(of: DeviceRecord.self) { group in
            for (index, store) in [a, b, a, b].enumerated() {
                group.addTask {
                    try await store.enroll(DeviceRecord(id: "d\(index)", project: "acme", name: "d", hardwareID: "hw-1", secretHash: "h",
                                                        reportedTags: [:], attributes: [:], enrolledAt: self.now))
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(enrolled.map(\.id)).count == 1)
        #expect(try await a.devices(project: "acme").count == 1)
    }

    /// Unreachable or refusing databases fail at once with the server's reason, and no password
    /// is ever part of what is said.
    @Test func aDatabaseThatCannotBeUsedSaysWhyWithoutThePassword() async throws {
        let port = try GitDaemon.freePort()
        let closed = try DatabaseURL(parsing: "postgres://flotilla:hunter2@127.0.0.1:\(port)/fleet?sslmode=disable")
        let started = ContinuousClock.now
        let error = await #expect(throws: StoreError.self) { try await PostgresFleetStore.open(closed) }
        // Not the connection pool's minute of retries before a bare "circuit breaker tripped"
        // (the bound leaves room for a machine busy with the whole suite).
        #expect(ContinuousClock.now - started < .seconds(50))
        #expect(error?.code == .unavailable)
        #expect(error.map { "\($0)".contains("127.0.0.1:\(port)") && !"\($0)".contains("hunter2") } == true, "\(String(describing: error))")

        var missing = try await database()
        missing.database = "no_such_database"
        let refused = await #expect(throws: StoreError.self) { try await PostgresFleetStore.open(missing) }
        #expect(refused.map { "\($0)".contains("no_such_database") } == true, "\(String(describing: refused))")
    }

    /// A database a newer release migrated is refused with one sentence, not misread; a wrong
    /// password is refused with the server's reason, and the password is not repeated.
    @Test func aNewerSchemaAndAWrongPasswordAreRefused() async throws {
        let url = try await database()
        _ = try await PostgresFleetStore.open(url)
        try PostgresServer.shared().psql("INSERT INTO flotilla_migration (name) VALUES ('2099-01-01 from the future')", database: url.adminForm)
        let newer = await #expect(throws: StoreError.self) { try await PostgresFleetStore.open(url) }
        #expect(newer.map { "\($0)".contains("migrated by a newer release of flotilla (migration '2099-01-01 from the future'") } == true,
                "\(String(describing: newer))")

        let role = "flotilla_password_test"
        try PostgresServer.shared().psql("DO $$ BEGIN CREATE ROLE \(role) LOGIN PASSWORD 'right-horse'; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        var wrong = try await database()
        wrong.user = role
        wrong.password = "wrong-battery"
        let refused = await #expect(throws: StoreError.self) { try await PostgresFleetStore.open(wrong) }
        #expect(refused.map { "\($0)".contains("password authentication failed") && !"\($0)".contains("wrong-battery") } == true,
                "\(String(describing: refused))")
    }

    @Test(arguments: [
        ("postgres://fleet@db.example:6432/flotilla?sslmode=require", "postgres://fleet@db.example:6432/flotilla?sslmode=require"),
        ("postgresql://fleet:s3cret@db/flotilla", "postgres://fleet:***@db:5432/flotilla"),
        ("postgres://fl%40eet@db/fleet%2Dx", "postgres://fl@eet@db:5432/fleet-x"),
    ])
    func databaseURLsParseAndNeverShowThePassword(_ text: String, _ shown: String) throws {
        #expect(try DatabaseURL(parsing: text).description == shown)
    }

    @Test(arguments: [
        ("mysql://fleet@db/x", "expected postgres://"),
        ("postgres://db/x", "names no user"),
        ("postgres://fleet@db", "names no database"),
        ("postgres://fleet@db/x?sslmode=maybe", "sslmode is disable, prefer or require"),
        ("postgres://fleet@db/x?timeout=3", "unknown parameter 'timeout'"),
    ])
    func badDatabaseURLsSayWhatIsWrong(_ text: String, _ reason: String) {
        #expect {
            try DatabaseURL(parsing: text)
        } throws: { error in
            "\(error)".contains(reason)
        }
    }
}

extension DatabaseURL {
    /// The URL psql is given (no sslmode parameter of ours).
    var adminForm: String { "postgres://\(user)@\(host):\(port)/\(database)" }
}

/// Work queued on one replica wakes the device long-polling another, through NOTIFY.
struct WakeRelayTests {
    @Test func aDeviceWaitingOnOneReplicaIsWokenByAnother() async throws {
        let url = try DatabaseURL(parsing: try await PostgresServer.shared().createDatabase() + "?sslmode=disable")
        let a = try await PostgresFleetStore.open(url), b = try await PostgresFleetStore.open(url)
        let boardA = AssignmentBoard(), boardB = AssignmentBoard()
        let relays = [WakeRelay(store: a, board: boardA, logger: Logger(label: "a")), WakeRelay(store: b, board: boardB, logger: Logger(label: "b"))]
        let running = relays.map { relay in Task { try await relay.run() } }
        defer { running.forEach { $0.cancel() } }
        // Both listen once a notification sent before the wait is seen (LISTEN is asynchronous).
        try await Task.sleep(for: .milliseconds(500))

        let waited = Task {
            let started = ContinuousClock.now
            await boardB.wait(device: "d-7", timeout: .seconds(30))
            return ContinuousClock.now - started
        }
        try await Task.sleep(for: .milliseconds(200))
        // Other devices' work and a long list wake nobody else, and do not get in the way.
        await boardA.notify((0..<3_000).map { "other-\($0)" } + ["d-7"])
        let elapsed = await waited.value
        // Far under the 30-second deadline it would otherwise reach, and far over any scheduling delay.
        #expect(elapsed < .seconds(20), "woken after \(elapsed)")
        #expect(WakeRelay.payloads((0..<3_000).map { "device-\($0)" }).allSatisfy { $0.utf8.count <= 7_000 })
        #expect(WakeRelay.payloads((0..<3_000).map { "device-\($0)" }).joined(separator: "\n").split(separator: "\n").count == 3_000)
    }
}
