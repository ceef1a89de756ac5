import FleetProtocol
import FleetStore
import FleetStorePostgres
import FleetStoreSQLite
import FleetTesting
import Foundation
import Testing

/// One suite, every store: what the server relies on holds for each implementation.
struct StoreConformanceTests {
    enum Kind: String, CaseIterable, CustomTestStringConvertible {
        case memory, sqlite, postgres
        var testDescription: String { rawValue }

        func make() async throws -> any FleetStore {
            switch self {
            case .memory: return MemoryFleetStore()
            case .sqlite: return try SQLiteFleetStore(path: NSTemporaryDirectory() + "flotilla-store-\(UUID().uuidString).sqlite")
            case .postgres:
                return try await PostgresFleetStore.open(try DatabaseURL(parsing: try await PostgresServer.shared().createDatabase() + "?sslmode=disable"))
            }
        }
    }

    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func device(_ id: String, hardware: String, project: String = "acme") -> DeviceRecord {
        DeviceRecord(id: id, project: project, name: id, hardwareID: hardware, secretHash: "hash-\(id)",
                     reportedTags: ["site": "berlin"], attributes: ["arch": "arm64"], enrolledAt: now)
    }

    func heartbeat(_ device: String, _ report: String, at offset: TimeInterval, version: String = "1.0") -> HeartbeatRecord {
        HeartbeatRecord(deviceID: device, receivedAt: now.addingTimeInterval(offset),
                        report: Heartbeat(reportID: report, cpuPercent: 12.5, memory: .init(usedBytes: 1, totalBytes: 2),
                                          apps: ["thermostat": InstalledApp(version: version)], agentVersion: "0.1.0"))
    }

    @Test(arguments: Kind.allCases)
    func projectsAndTokens(_ kind: Kind) async throws {
        let store = try await kind.make()
        try await store.ensureProject("acme", at: now)
        try await store.ensureProject("acme", at: now.addingTimeInterval(60))
        #expect(try await store.projects() == [ProjectRecord(name: "acme", createdAt: now)])

        let token = AccessTokenRecord(id: "t1", kind: .enrollment, project: "acme", group: "canary", secretHash: "abc",
                                      createdAt: now, expiresAt: now.addingTimeInterval(3_600))
        try await store.insertToken(token)
        #expect(try await store.token(id: "t1") == token)
        await #expect(throws: StoreError.self) { try await store.insertToken(token) }
        try await store.revokeToken(id: "t1")
        #expect(try await store.token(id: "t1")?.revoked == true)
        #expect(try await store.tokens(project: "acme").map(\.id) == ["t1"])
        #expect(try await store.token(id: "nope") == nil)
        // An operator token's access is kept; one without any grants everything, as before access existed.
        for (id, access) in [("t2", OperatorAccess.read), ("t3", .rollout), ("t4", nil)] as [(String, OperatorAccess?)] {
            let made = AccessTokenRecord(id: id, kind: .operator, project: "acme", secretHash: "h-\(id)", createdAt: now, access: access)
            try await store.insertToken(made)
            #expect(try await store.token(id: id) == made)
        }
        #expect(try await store.token(id: "t4")?.grants == .admin)
    }

    @Test(arguments: Kind.allCases)
    func theSameHardwareEnrollsAsTheSameDevice(_ kind: Kind) async throws {
        let store = try await kind.make()
        let first = try await store.enroll(device("d1", hardware: "serial-1"))
        let again = try await store.enroll(device("d2", hardware: "serial-1"))
        #expect(again.id == first.id)
        let other = try await store.enroll(device("d3", hardware: "serial-2"))
        #expect(other.id == "d3")
        #expect(try await store.devices(project: "acme").map(\.id) == ["d1", "d3"])

        // An identity reset revokes the device's tokens (a new generation) and keeps a claim;
        // enrolling does not take the identity, only claiming it with the code's hash does, once.
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let reset = try await store.resetIdentity(deviceID: first.id, claimHash: "claim-hash", claimExpiresAt: now.addingTimeInterval(60))
        #expect(reset.tokenGeneration == first.tokenGeneration + 1)
        #expect(reset.secretHash.isEmpty && reset.claimHash == "claim-hash")
        var replaced = device("d9", hardware: "serial-1")
        replaced.secretHash = "new-hash"
        #expect(try await store.enroll(replaced).secretHash.isEmpty)
        #expect(try await store.claimIdentity(deviceID: first.id, claimHash: "wrong", secretHash: "new-hash", at: now) == nil)
        #expect(try await store.claimIdentity(deviceID: first.id, claimHash: "claim-hash", secretHash: "new-hash",
                                              at: now.addingTimeInterval(61)) == nil)
        let claimed = try await store.claimIdentity(deviceID: first.id, claimHash: "claim-hash", secretHash: "new-hash", at: now)
        #expect(claimed?.secretHash == "new-hash" && claimed?.claimHash == nil && claimed?.tokenGeneration == reset.tokenGeneration)
        #expect(try await store.claimIdentity(deviceID: first.id, claimHash: "claim-hash", secretHash: "other", at: now) == nil)
        #expect(try await store.device(id: first.id)?.secretHash == "new-hash")
        #expect(try await store.enroll(replaced).tokenGeneration == reset.tokenGeneration)
        await #expect(throws: StoreError.self) {
            try await store.resetIdentity(deviceID: "nope", claimHash: "x", claimExpiresAt: now)
        }
        // Once deleted, the hardware enrolls as a new device.
        try await store.deleteDevice(id: "d1")
        #expect(try await store.device(id: "d1")?.deleted == true)
        #expect(try await store.enroll(device("d4", hardware: "serial-1")).id == "d4")
        #expect(try await store.devices(project: "acme").map(\.id) == ["d3", "d4"])
    }

    @Test(arguments: Kind.allCases)
    func heartbeatsAreStoredOnceAndUpdateTheDevice(_ kind: Kind) async throws {
        let store = try await kind.make()
        _ = try await store.enroll(device("d1", hardware: "serial-1"))
        let accepted = try await store.recordHeartbeats([
            heartbeat("d1", "r1", at: 10),
            heartbeat("d1", "r2", at: 20, version: "1.1"),
            heartbeat("d1", "r1", at: 30),   // a retry of r1
            heartbeat("ghost", "r1", at: 30), // not a device
        ])
        #expect(accepted == [true, true, false, false])
        #expect(try await store.recordHeartbeats([heartbeat("d1", "r2", at: 40)]) == [false])

        let stored = try await store.heartbeats(deviceID: "d1", limit: 10)
        #expect(stored.map(\.report.reportID) == ["r2", "r1"])
        #expect(stored.first?.report.memory == .init(usedBytes: 1, totalBytes: 2))
        let device = try #require(try await store.device(id: "d1"))
        #expect(device.apps == ["thermostat": InstalledApp(version: "1.1")])
        #expect(device.attributes == ["arch": "arm64", "agentVersion": "0.1.0"])
        #expect(device.lastHeartbeatAt == now.addingTimeInterval(20))
        // Before a moment: only those received earlier, newest first, and no more than asked.
        _ = try await store.recordHeartbeats([heartbeat("d1", "r3", at: 25), heartbeat("d1", "r4", at: 35)])
        #expect(try await store.heartbeats(deviceID: "d1", before: now.addingTimeInterval(30), limit: 10).map(\.report.reportID) == ["r3", "r2", "r1"])
        #expect(try await store.heartbeats(deviceID: "d1", before: now.addingTimeInterval(25), limit: 1).map(\.report.reportID) == ["r2"])
        #expect(try await store.heartbeats(deviceID: "d1", before: now.addingTimeInterval(10), limit: 10).isEmpty)

        try await store.pruneHeartbeats(before: now.addingTimeInterval(15))
        #expect(try await store.heartbeats(deviceID: "d1", limit: 10).map(\.report.reportID) == ["r4", "r3", "r2"])
    }

    /// Ended console sessions go; live ones and every other token stay, revoked or expired.
    @Test(arguments: Kind.allCases)
    func endedSessionsArePruned(_ kind: Kind) async throws {
        let store = try await kind.make()
        try await store.ensureProject("acme", at: now)
        let made: [(String, AccessTokenRecord.Kind, Double?, Bool)] = [
            ("live", .session, 3_600, false), ("revoked", .session, 3_600, true), ("expired", .session, -1, false),
            ("old-operator", .operator, -1, true), ("enrollment", .enrollment, -1, false), ("operator", .operator, nil, false),
        ]
        for (id, tokenKind, expires, revoked) in made {
            var record = AccessTokenRecord(id: id, kind: tokenKind, project: "acme", secretHash: "h-\(id)", createdAt: now,
                                           expiresAt: expires.map { now.addingTimeInterval($0) })
            record.revoked = revoked
            try await store.insertToken(record)
        }
        #expect(try await store.pruneSessions(expiredBefore: now) == 2)
        #expect(try await store.tokens(project: "acme").map(\.id).sorted() == ["enrollment", "live", "old-operator", "operator"])
        #expect(try await store.pruneSessions(expiredBefore: now) == 0)
        #expect(try await store.pruneSessions(expiredBefore: now.addingTimeInterval(7_200)) == 1)
    }

    /// A device decides how large its heartbeats are: a span is read up to a count and a size,
    /// and says whether either left some out.
    @Test(arguments: Kind.allCases)
    func aSpanOfHeartbeatsIsBoundedByCountAndBySize(_ kind: Kind) async throws {
        let store = try await kind.make()
        _ = try await store.enroll(device("d1", hardware: "serial-1"))
        var beats: [HeartbeatRecord] = []
        for (index, padding) in [10, 5_000, 10, 20_000, 10].enumerated() {
            var beat = heartbeat("d1", "r\(index)", at: Double(index) * 25)
            beat.report.custom = ["blob": String(repeating: "x", count: padding)]
            beats.append(beat)
        }
        _ = try await store.recordHeartbeats(beats)
        let sizes = beats.map { $0.report.wireJSON().utf8.count }
        let all = now.addingTimeInterval(1_000)
        func read(limit: Int = 100, bytes: Int, since: Date? = nil) async throws -> (ids: [String], complete: Bool) {
            let span = try await store.heartbeats(deviceID: "d1", since: since ?? now, until: all, limit: limit, maximumBytes: bytes)
            return (span.records.map(\.report.reportID), span.complete)
        }
        let total = sizes.reduce(0, +)
        let cases: [(limit: Int, bytes: Int, since: Date?, ids: [String], complete: Bool)] = [
            (100, .max, nil, ["r0", "r1", "r2", "r3", "r4"], true),
            (5, total, nil, ["r0", "r1", "r2", "r3", "r4"], true),
            (4, .max, nil, ["r0", "r1", "r2", "r3"], false),
            (100, total - 1, nil, ["r0", "r1", "r2", "r3"], false),
            // The large one does not fit: it and all after it are left out, small ones too.
            (100, sizes[0] + sizes[1] + sizes[2] + 100, nil, ["r0", "r1", "r2"], false),
            (100, sizes[0] + sizes[1], nil, ["r0", "r1"], false),
            (100, sizes[0] - 1, nil, [], false),
            (100, sizes[3] + sizes[4], now.addingTimeInterval(75), ["r3", "r4"], true),
            (1, .max, now.addingTimeInterval(100), ["r4"], true),
        ]
        for test in cases {
            let got = try await read(limit: test.limit, bytes: test.bytes, since: test.since)
            #expect(got.ids == test.ids, "limit \(test.limit), \(test.bytes) bytes")
            #expect(got.complete == test.complete, "limit \(test.limit), \(test.bytes) bytes")
        }
        let read = try await store.heartbeats(deviceID: "d1", since: now, until: all, limit: 100, maximumBytes: .max).records
        #expect(read == beats)
    }

    @Test(arguments: Kind.allCases)
    func theAuditLogIsPerProjectNewestFirst(_ kind: Kind) async throws {
        let store = try await kind.make()
        for (index, project) in ["acme", "other", "acme"].enumerated() {
            try await store.appendAudit(AuditRecord(at: now.addingTimeInterval(Double(index)), project: project, actor: "cli",
                                                    action: "token.create", subject: "t\(index)"))
        }
        #expect(try await store.audit(project: "acme", limit: 10).map(\.subject) == ["t2", "t0"])
        #expect(try await store.audit(project: "acme", limit: 1).map(\.subject) == ["t2"])
    }

    func deployment(_ id: String, at offset: TimeInterval = 0) -> DeploymentRecord {
        DeploymentRecord(id: id, project: "acme", app: "thermostat", version: "2.5.0", flow: "compose-app", digest: "abc",
                         parameters: ["healthUrl": "http://127.0.0.1/healthz"],
                         steps: [AssignedStep(name: "start", kind: .run, command: "start ${app} ${version}", timeoutSeconds: 60,
                                              retries: 0, onFailure: "rollback", idempotent: false)],
                         rollback: [], artifactAllowlist: ["https://cdn.example.com/"], createdAt: now.addingTimeInterval(offset),
                         createdBy: "operator:t1")
    }

    /// A device's latest executions, newest first, finished or not, and only its own.
    @Test(arguments: Kind.allCases)
    func aDevicesLatestExecutionsAreReadByTheDevice(_ kind: Kind) async throws {
        let store = try await kind.make()
        for index in 0..<5 {
            try await store.createDeployment(deployment("dep\(index)", at: Double(index)), executions: ["d1", "d2"].map {
                ExecutionRecord(id: "e\(index)-\($0)", deploymentID: "dep\(index)", deviceID: $0, updatedAt: now)
            })
        }
        _ = try await store.abortDeployment(id: "dep3", at: now)
        #expect(try await store.executions(deviceID: "d1", limit: 3).map(\.id) == ["e4-d1", "e3-d1", "e2-d1"])
        #expect(try await store.executions(deviceID: "d1", limit: 3).map(\.state) == [.queued, .cancelled, .queued])
        #expect(try await store.executions(deviceID: "d2", limit: 10).map(\.id) == ["e4-d2", "e3-d2", "e2-d2", "e1-d2", "e0-d2"])
        #expect(try await store.executions(deviceID: "d3", limit: 10).isEmpty)
    }

    @Test(arguments: Kind.allCases)
    func deploymentsAndExecutionsFollowReports(_ kind: Kind) async throws {
        let store = try await kind.make()
        let executions = ["d1", "d2"].map { ExecutionRecord(id: "e-\($0)", deploymentID: "dep1", deviceID: $0, updatedAt: now) }
        try await store.createDeployment(deployment("dep1"), executions: executions)
        try await store.createDeployment(deployment("dep2", at: 10), executions: [])
        #expect(try await store.deployment(id: "dep1") == deployment("dep1"))
        #expect(try await store.deployments(project: "acme", limit: 10).map(\.id) == ["dep2", "dep1"])
        #expect(try await store.activeExecutions(deviceID: "d1").map(\.id) == ["e-d1"])

        let step = StepResult(index: 0, name: "start", status: .succeeded, exitCode: 0, outputTail: "ok")
        let running = ExecutionReport(reportID: "p1", state: .running, step: step)
        guard case .applied(let applied) = try await store.applyExecutionReport(executionID: "e-d1", deviceID: "d1", report: running, at: now) else {
            Issue.record("the first report should apply")
            return
        }
        #expect(applied.state == .running)
        #expect(applied.results == [step])
        #expect(applied.revision == 1)
        // The same report again changes nothing; another device cannot report on it.
        #expect(try await store.applyExecutionReport(executionID: "e-d1", deviceID: "d1", report: running, at: now) == .duplicate(applied))
        #expect(try await store.applyExecutionReport(executionID: "e-d1", deviceID: "d2", report: running, at: now) == .notFound)

        let done = ExecutionReport(reportID: "p2", state: .succeeded)
        guard case .applied(let finished) = try await store.applyExecutionReport(executionID: "e-d1", deviceID: "d1", report: done, at: now) else {
            Issue.record("the final report should apply")
            return
        }
        #expect(finished.state == .succeeded)
        #expect(try await store.activeExecutions(deviceID: "d1").isEmpty)
        // A final execution takes no more reports.
        let late = ExecutionReport(reportID: "p3", state: .failed)
        #expect(try await store.applyExecutionReport(executionID: "e-d1", deviceID: "d1", report: late, at: now) == .finished(finished))

        // Listed before the abort and after it: the list shows the abort (a store may keep
        // decoded deployments between lists).
        #expect(try await store.deployments(project: "acme", limit: 10).first { $0.id == "dep1" }?.aborted == false)
        let cancelled = try await store.abortDeployment(id: "dep1", at: now)
        #expect(try await store.deployments(project: "acme", limit: 10).first { $0.id == "dep1" }?.aborted == true)
        #expect(cancelled.map(\.id) == ["e-d2"])
        #expect(cancelled.first?.state == .cancelled)
        #expect(try await store.deployment(id: "dep1")?.aborted == true)
        #expect(try await store.executions(deploymentID: "dep1").map(\.state) == [.succeeded, .cancelled])
        await #expect(throws: StoreError.self) { try await store.abortDeployment(id: "nope", at: now) }
    }

    @Test(arguments: Kind.allCases)
    func staleExecutionsEndAndOthersDoNot(_ kind: Kind) async throws {
        let store = try await kind.make()
        let executions = ["d1", "d2"].map { ExecutionRecord(id: "e-\($0)", deploymentID: "dep1", deviceID: $0, updatedAt: now) }
        try await store.createDeployment(deployment("dep1"), executions: executions)
        // Progress after the decision looked keeps an execution alive.
        let later = now.addingTimeInterval(60)
        _ = try await store.applyExecutionReport(executionID: "e-d2", deviceID: "d2", report: ExecutionReport(reportID: "r", state: .running), at: later)
        let timedOut = try await store.endExecution(id: "e-d1", as: .timedOut, message: "stalled", unlessUpdatedAfter: now, at: later)
        #expect(timedOut?.state == .timedOut)
        #expect(timedOut?.message == "stalled")
        #expect(try await store.endExecution(id: "e-d2", as: .timedOut, message: "stalled", unlessUpdatedAfter: now, at: later) == nil)
        // A final execution stays as it is.
        #expect(try await store.endExecution(id: "e-d1", as: .cancelled, message: "x", unlessUpdatedAfter: nil, at: later) == nil)
        #expect(try await store.executions(deploymentID: "dep1").map(\.state) == [.timedOut, .running])
        #expect(try await store.activeExecutions(deviceID: "d1").isEmpty)
    }

    /// The health verdict: a succeeded execution, and only one, becomes failed, keeping when it finished.
    @Test(arguments: Kind.allCases)
    func aSuccessCanBeFailedForItsHealthOnce(_ kind: Kind) async throws {
        let store = try await kind.make()
        try await store.createDeployment(deployment("dep1"), executions: ["d1", "d2"].map {
            ExecutionRecord(id: "e-\($0)", deploymentID: "dep1", deviceID: $0, updatedAt: now)
        })
        _ = try await store.applyExecutionReport(executionID: "e-d1", deviceID: "d1", report: ExecutionReport(reportID: "f", state: .succeeded), at: now)
        let later = now.addingTimeInterval(300)
        let failed = try #require(try await store.endExecution(id: "e-d1", as: .failed, message: "health check 'cpu < 90' failed", unlessUpdatedAfter: nil,
                                                               at: later))
        #expect(failed.state == .failed)
        #expect(failed.message == "health check 'cpu < 90' failed")
        #expect(failed.updatedAt == now)
        // Not twice, and never an execution that did not succeed.
        #expect(try await store.endExecution(id: "e-d1", as: .failed, message: "again", unlessUpdatedAfter: nil, at: later) == nil)
        #expect(try await store.endExecution(id: "e-d2", as: .failed, message: "queued", unlessUpdatedAfter: nil, at: later) == nil)
        #expect(try await store.executions(deploymentID: "dep1").map(\.state) == [.failed, .queued])

        // The other verdict: passed, recorded once, shown in the summaries the decision reads;
        // a passed execution is never failed after.
        try await store.createDeployment(deployment("dep2"), executions: [ExecutionRecord(id: "e-d3", deploymentID: "dep2", deviceID: "d3", updatedAt: now)])
        _ = try await store.applyExecutionReport(executionID: "e-d3", deviceID: "d3", report: ExecutionReport(reportID: "f", state: .succeeded), at: now)
        #expect(try await store.executionSummaries(deploymentIDs: ["dep2"]).first?.healthPassed == false)
        let passed = try #require(try await store.endExecution(id: "e-d3", as: .succeeded, message: "", unlessUpdatedAfter: nil, at: later))
        #expect(passed.healthPassedAt == later)
        #expect(passed.state == .succeeded)
        #expect(try await store.executionSummaries(deploymentIDs: ["dep2"]).first?.healthPassed == true)
        #expect(try await store.endExecution(id: "e-d3", as: .succeeded, message: "", unlessUpdatedAfter: nil, at: later) == nil)
        #expect(try await store.endExecution(id: "e-d3", as: .failed, message: "late", unlessUpdatedAfter: nil, at: later) == nil)
    }

    @Test(arguments: Kind.allCases)
    func takingAnExecutionMarksItAssignedOnce(_ kind: Kind) async throws {
        let store = try await kind.make()
        try await store.createDeployment(deployment("dep1"), executions: [
            ExecutionRecord(id: "e-a", deploymentID: "dep1", deviceID: "d1", updatedAt: now),
            ExecutionRecord(id: "e-b", deploymentID: "dep1", deviceID: "d2", updatedAt: now),
        ])
        let later = now.addingTimeInterval(5)
        // Another device's execution is not taken by this one.
        let taken = try await store.takeExecutions(deviceID: "d1", at: later)
        #expect(taken.map(\.id) == ["e-a"])
        #expect(taken.first?.state == .assigned)
        #expect(taken.first?.updatedAt == later)
        #expect(try await store.executions(deploymentID: "dep1").map(\.state) == [.assigned, .queued])
        // Taken again (a resent poll): unchanged.
        let again = try await store.takeExecutions(deviceID: "d1", at: later.addingTimeInterval(5))
        #expect(again.first?.updatedAt == later)
        #expect(again.first?.revision == taken.first?.revision)
    }

    /// What a device did is the truth: a report for an execution the server gave up on is recorded.
    @Test(arguments: Kind.allCases)
    func aLateFinalReportReplacesTheServersVerdict(_ kind: Kind) async throws {
        let store = try await kind.make()
        try await store.createDeployment(deployment("dep1"), executions: [ExecutionRecord(id: "e-a", deploymentID: "dep1", deviceID: "d1", updatedAt: now)])
        #expect(try await store.takeExecutions(deviceID: "d1", at: now).map(\.state) == [.assigned])
        try await store.createDeployment(deployment("dep2"), executions: [ExecutionRecord(id: "e-b", deploymentID: "dep2", deviceID: "d1", updatedAt: now)])
        let timedOut = try #require(try await store.endExecution(id: "e-a", as: .timedOut, message: "stalled", unlessUpdatedAfter: nil, at: now))
        // One cancelled before the device took it never ran: a report for it is refused.
        let untaken = try #require(try await store.endExecution(id: "e-b", as: .cancelled, message: "offline", unlessUpdatedAfter: nil, at: now))
        #expect(try await store.applyExecutionReport(executionID: "e-b", deviceID: "d1", report: ExecutionReport(reportID: "x", state: .succeeded),
                                                     at: now) == .finished(untaken))
        // A step report changes nothing the server holds once it gave up: refused.
        let step = StepResult(index: 0, name: "install", status: .succeeded)
        #expect(try await store.applyExecutionReport(executionID: "e-a", deviceID: "d1",
                                                     report: ExecutionReport(reportID: "s0", state: .running, step: step), at: now) == .finished(timedOut))
        guard case .applied(let final) = try await store.applyExecutionReport(
            executionID: "e-a", deviceID: "d1", report: ExecutionReport(reportID: "f", state: .succeeded), at: now) else {
            Issue.record("a late final report was refused")
            return
        }
        #expect(final.state == .succeeded)
        #expect(final.message?.contains("after the server had marked it timedOut") == true)
        // Once the device has said it is final, it stays so.
        #expect(try await store.applyExecutionReport(executionID: "e-a", deviceID: "d1", report: ExecutionReport(reportID: "g", state: .failed),
                                                     at: now) == .finished(final))
    }

    @Test(arguments: Kind.allCases)
    func purposeAndExecutingAreKept(_ kind: Kind) async throws {
        let store = try await kind.make()
        var record = deployment("dep1")
        record.purpose = .rollback(abortedDigest: "abc")
        try await store.createDeployment(record, executions: [])
        #expect(try await store.deployment(id: "dep1")?.purpose == .rollback(abortedDigest: "abc"))
        #expect(try await store.deployments(project: "acme", limit: 5).first?.purpose == .rollback(abortedDigest: "abc"))

        _ = try await store.enroll(device("d1", hardware: "serial-1"))
        var report = Heartbeat(reportID: "h1", executing: "e-9")
        _ = try await store.recordHeartbeats([HeartbeatRecord(deviceID: "d1", receivedAt: now, report: report)])
        #expect(try await store.device(id: "d1")?.executing == "e-9")
        report = Heartbeat(reportID: "h2")
        _ = try await store.recordHeartbeats([HeartbeatRecord(deviceID: "d1", receivedAt: now.addingTimeInterval(1), report: report)])
        #expect(try await store.device(id: "d1")?.executing == nil, "a heartbeat without it clears it")
    }

    @Test(arguments: Kind.allCases)
    func summariesAreTheExecutionsWithoutTheirResults(_ kind: Kind) async throws {
        let store = try await kind.make()
        try await store.createDeployment(deployment("dep1"), executions: ["d1", "d2"].map {
            ExecutionRecord(id: "e1-\($0)", deploymentID: "dep1", deviceID: $0, updatedAt: now)
        })
        try await store.createDeployment(deployment("dep2"), executions: [ExecutionRecord(id: "e2-d1", deploymentID: "dep2", deviceID: "d1", updatedAt: now)])
        try await store.createDeployment(deployment("dep3"), executions: [ExecutionRecord(id: "e3-d3", deploymentID: "dep3", deviceID: "d3", updatedAt: now)])
        let later = now.addingTimeInterval(12.5)
        _ = try await store.applyExecutionReport(executionID: "e1-d2", deviceID: "d2",
                                                 report: ExecutionReport(reportID: "r", state: .failed, message: "no"), at: later)
        let summaries = try await store.executionSummaries(deploymentIDs: ["dep2", "dep1"])
        var expected: [ExecutionSummary] = []
        for id in ["dep1", "dep2"] { expected += try await store.executions(deploymentID: id).map(\.summary) }
        #expect(summaries.map { var unordered = $0; unordered.order = 0; return unordered } == expected)
        #expect(summaries.map(\.id) == ["e1-d1", "e1-d2", "e2-d1"])
        // Their place in creation order, comparable across reads: the controller reads the
        // history a few deployments at a time and puts it back in this order.
        let third = try #require(try await store.executionSummaries(deploymentIDs: ["dep3"]).first)
        #expect(summaries[0].order < summaries[1].order && summaries[1].order < summaries[2].order && summaries[2].order < third.order)
        #expect(summaries[1].state == .failed && summaries[1].updatedAt == later)
        #expect(try await store.executionSummaries(deploymentIDs: []).isEmpty)
        // More deployments than one statement takes.
        let many = (0..<1_200).map { "dep-\($0)" } + ["dep3"]
        #expect(try await store.executionSummaries(deploymentIDs: many).map(\.id) == ["e3-d3"])
    }

    /// Another process writing the same database (`flotilla token create` on the server's machine,
    /// while the server runs) makes a write wait for its lock, not fail at once: the server's
    /// enrollments and heartbeats were answered 500 when one came in that instant.
    @Test func aWriteWaitsForAnotherProcessHoldingTheDatabase() async throws {
        let root = NSTemporaryDirectory() + "flotilla-store-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let store = try SQLiteFleetStore(path: root + "/flotilla.sqlite")
        try await store.ensureProject("acme", at: now)
        // The sqlite3 shell takes the write lock, says so, and holds it for a second.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        holder.arguments = [root + "/flotilla.sqlite"]
        let input = Pipe()
        holder.standardInput = input
        try holder.run()
        input.fileHandleForWriting.write(Data("BEGIN IMMEDIATE;\n.shell touch \(root)/held; sleep 1\nCOMMIT;\n".utf8))
        try input.fileHandleForWriting.close()
        for _ in 0..<500 where !FileManager.default.fileExists(atPath: root + "/held") { try await Task.sleep(for: .milliseconds(10)) }
        #expect(FileManager.default.fileExists(atPath: root + "/held"), "the other process never took the lock")
        let token = AccessTokenRecord(id: "t1", kind: .operator, project: "acme", secretHash: "h", createdAt: now)
        try await store.insertToken(token)
        #expect(try await store.token(id: "t1") == token)
        holder.waitUntilExit()
        #expect(holder.terminationStatus == 0)
    }

    @Test func theSQLiteStoreKeepsItsDataAcrossReopening() async throws {
        let path = NSTemporaryDirectory() + "flotilla-store-\(UUID().uuidString).sqlite"
        do {
            let store = try SQLiteFleetStore(path: path)
            _ = try await store.enroll(device("d1", hardware: "serial-1"))
            _ = try await store.recordHeartbeats([heartbeat("d1", "r1", at: 1)])
        }
        let reopened = try SQLiteFleetStore(path: path)
        #expect(try await reopened.device(id: "d1")?.lastHeartbeatAt == now.addingTimeInterval(1))
        #expect(try await reopened.recordHeartbeats([heartbeat("d1", "r1", at: 2)]) == [false])
    }
}

extension StoreConformanceTests {
    @Test(arguments: Kind.allCases)
    func secretsAreKeptPerProjectWithAVersion(_ kind: Kind) async throws {
        let store = try await kind.make()
        let first = try await store.putSecret(SecretRecord(project: "acme", name: "db", sealed: [1, 2, 3], updatedAt: now, updatedBy: "operator:a"))
        #expect(first.version == 1)
        let second = try await store.putSecret(SecretRecord(project: "acme", name: "db", sealed: [4, 5], updatedAt: now.addingTimeInterval(1),
                                                            updatedBy: "operator:b"))
        #expect(second.version == 2)
        #expect(try await store.secret(project: "acme", name: "db") == second)
        _ = try await store.putSecret(SecretRecord(project: "other", name: "db", sealed: [9], updatedAt: now, updatedBy: "operator:c"))
        _ = try await store.putSecret(SecretRecord(project: "acme", name: "api", sealed: [7], updatedAt: now, updatedBy: "operator:a"))
        #expect(try await store.secrets(project: "acme").map(\.name) == ["api", "db"])
        #expect(try await store.secret(project: "other", name: "db")?.sealed == [9])
        #expect(try await store.deleteSecret(project: "acme", name: "db"))
        #expect(try await !store.deleteSecret(project: "acme", name: "db"))
        #expect(try await store.secret(project: "acme", name: "db") == nil)
        #expect(try await store.secret(project: "other", name: "db") != nil, "another project's secret of the same name stays")
    }
}

extension StoreConformanceTests {
    @Test(arguments: Kind.allCases)
    func suspensionsAreKeptPerProject(_ kind: Kind) async throws {
        let store = try await kind.make()
        #expect(try await store.suspendedApps(project: "acme").isEmpty)
        try await store.setSuspended(true, app: "thermostat", project: "acme", at: now)
        try await store.setSuspended(true, app: "thermostat", project: "acme", at: now.addingTimeInterval(1))
        try await store.setSuspended(true, app: "telemetry", project: "acme", at: now)
        try await store.setSuspended(true, app: "thermostat", project: "other", at: now)
        #expect(try await store.suspendedApps(project: "acme") == ["thermostat", "telemetry"])
        try await store.setSuspended(false, app: "thermostat", project: "acme", at: now)
        try await store.setSuspended(false, app: "nothing", project: "acme", at: now)
        #expect(try await store.suspendedApps(project: "acme") == ["telemetry"])
        #expect(try await store.suspendedApps(project: "other") == ["thermostat"], "another project's hold stays")
    }
}

extension StoreConformanceTests {
    @Test(arguments: Kind.allCases)
    func approvalsBelongToOneDigestAndTheFirstStays(_ kind: Kind) async throws {
        let store = try await kind.make()
        let first = ApprovalRecord(project: "acme", app: "thermostat", group: "europe", digest: "d1", approvedBy: "operator:a", approvedAt: now)
        #expect(try await store.approve(first) == first)
        var again = first
        again.approvedBy = "operator:b"
        again.approvedAt = now.addingTimeInterval(60)
        #expect(try await store.approve(again) == first, "approving an approved digest keeps who approved it first")
        var next = first
        next.digest = "d2"
        next.approvedAt = now.addingTimeInterval(120)
        _ = try await store.approve(next)
        var other = first
        other.project = "other"
        _ = try await store.approve(other)
        #expect(try await store.approvals(project: "acme") == [first, next])
        #expect(try await store.approvals(project: "other") == [other])
        #expect(try await store.approvals(project: "nobody").isEmpty)
    }
}

extension StoreConformanceTests {
    /// The device keeps the update lock of its newest heartbeat: a lock, its removal, and a late
    /// older heartbeat that must not bring it back.
    @Test(arguments: Kind.allCases)
    func theDeviceKeepsTheLockOfItsNewestHeartbeat(_ kind: Kind) async throws {
        let store = try await kind.make()
        _ = try await store.enroll(device("d1", hardware: "serial-1"))
        let lock = Heartbeat.UpdateLock(reason: "surgery \"in\" progress", untilMilliseconds: 1_796_000_000_000)
        _ = try await store.recordHeartbeats([HeartbeatRecord(deviceID: "d1", receivedAt: now.addingTimeInterval(10),
                                                              report: Heartbeat(reportID: "r1", lock: lock))])
        #expect(try await store.device(id: "d1")?.lock == lock)
        _ = try await store.recordHeartbeats([HeartbeatRecord(deviceID: "d1", receivedAt: now.addingTimeInterval(20), report: Heartbeat(reportID: "r2"))])
        #expect(try await store.device(id: "d1")?.lock == nil)
        _ = try await store.recordHeartbeats([HeartbeatRecord(deviceID: "d1", receivedAt: now.addingTimeInterval(15),
                                                              report: Heartbeat(reportID: "r0", lock: lock))])
        #expect(try await store.device(id: "d1")?.lock == nil, "an older heartbeat arriving late does not lock the device again")
    }
}
