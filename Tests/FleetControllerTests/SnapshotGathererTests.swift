@testable import FleetController
import FleetCore
import FleetGit
import FleetProtocol
import FleetStore
import Foundation
import Testing

/// What the controller reads: of heartbeats, what a health verdict needs, not a device's day of
/// them; of executions, what the decision reads, not every rollout before.
struct SnapshotGathererTests {
    static let files: [String: String] = [
        "fleet.yaml": "kind: Fleet\nproject: acme\n",
        "groups/all.yaml": "kind: Group\nname: all\nselector: hw=rpi4\n",
        "flows/install.yaml": "kind: UpdateFlow\nname: install\nsteps:\n  - name: install\n    run: install\n",
        "apps/web.yaml": """
            kind: App
            name: web
            flow: install
            targets:
              - {group: all, version: '2.0'}
            health:
              checks: ["cpu <= baseline + 20", "process.web == up"]
              observe: 10m
            """,
        "apps/db.yaml": """
            kind: App
            name: db
            flow: install
            targets:
              - {group: all, version: '5.0'}
            health:
              checks: ["cpu <= baseline + 20"]
              observe: 10m
            """,
    ]

    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func fleet() throws -> CompiledFleet {
        var tree = FleetTree()
        for (path, text) in Self.files { tree.addFile(path, bytes: Array(text.utf8)) }
        return try FleetLoader.load(tree)
    }

    func deployment(_ id: String, _ fleet: CompiledFleet, app: String) throws -> DeploymentRecord {
        let target = try #require(fleet.apps.first { $0.name == app }?.targets.first)
        return DeploymentRecord(id: id, project: "acme", app: app, version: target.version, flow: "install", digest: target.digest,
                                parameters: [:], steps: [], rollback: [], artifactAllowlist: [], createdAt: now.addingTimeInterval(-7_200),
                                createdBy: "controller", purpose: .rollout, group: "all")
    }

    /// A device heard every 25 s for the 14 hours before `now`: 2,016 heartbeats, CPU 30 until
    /// `loadedFrom` and 90 after.
    func heartbeats(_ store: MemoryFleetStore, device: String, loadedFrom: Date) async throws {
        _ = try await store.enroll(DeviceRecord(id: device, project: "acme", name: device, hardwareID: device, secretHash: "",
                                                enrolledAt: now.addingTimeInterval(-86_400)))
        let beats = stride(from: 14 * 3_600.0, to: 0, by: -25).map { ago in
            let at = now.addingTimeInterval(-ago)
            return HeartbeatRecord(deviceID: device, receivedAt: at,
                                   report: Heartbeat(reportID: "\(device)-\(Int(ago))", cpuPercent: at < loadedFrom ? 30 : 90,
                                                     processes: [.init(name: "web", running: true)],
                                                     apps: ["web": InstalledApp(version: "2.0"), "db": InstalledApp(version: "5.0")]))
        }
        _ = try await store.recordHeartbeats(beats)
    }

    @Test func onlyTheBaselineAndWhatCameSinceTheUpdateAreRead() async throws {
        let store = MemoryFleetStore()
        let fleet = try fleet()
        let web = try deployment("dep-web", fleet, app: "web")
        let taken = now.addingTimeInterval(-300), succeeded = now.addingTimeInterval(-240)
        try await heartbeats(store, device: "d1", loadedFrom: succeeded)
        let executions = [FleetSnapshot.Execution(id: "e1", deploymentID: web.id, deviceID: "d1", state: .succeeded,
                                                  updatedAt: succeeded, takenAt: taken)]
        let gatherer = SnapshotGatherer(store: store, settings: RolloutSettings())
        let samples = try await gatherer.healthSamples(fleet: fleet, deployments: [web], executions: executions, now: now)
        let read = try #require(samples["d1"])
        // Ten before the update began, and the twelve since (every 25 s over 300 s); before the
        // change every heartbeat the device kept, up to 2,000, was read on every pass.
        #expect(read.count == HealthPolicy.baselineCount + 12)
        #expect(read.map(\.at) == read.map(\.at).sorted())
        #expect(read.filter { $0.at < taken }.count == HealthPolicy.baselineCount)
        // And the verdict is what it was with the whole history: CPU 90 against a baseline of 30.
        let health = try #require(fleet.apps.first { $0.name == "web" }?.targets.first?.health)
        let verdict = health.verdict(samples: read, takenAt: taken, succeededAt: succeeded, installed: ("web", "2.0"))
        let whole = try await store.heartbeats(deviceID: "d1", limit: 10_000).reversed().map(HealthSample.init)
        #expect(verdict == health.verdict(samples: Array(whole), takenAt: taken, succeededAt: succeeded, installed: ("web", "2.0")))
        guard case .failed(let why) = verdict else { Issue.record("expected a failed verdict, got \(verdict)"); return }
        #expect(why.contains("baseline 30"))
    }

    /// Two updates of one device being judged: one read from the earlier covers the later one's
    /// baseline too.
    @Test func twoUpdatesOfOneDeviceEachHaveTheirBaseline() async throws {
        let store = MemoryFleetStore()
        let fleet = try fleet()
        let web = try deployment("dep-web", fleet, app: "web"), db = try deployment("dep-db", fleet, app: "db")
        let webTaken = now.addingTimeInterval(-3_000), dbTaken = now.addingTimeInterval(-200)
        try await heartbeats(store, device: "d1", loadedFrom: now.addingTimeInterval(-100))
        let executions = [
            FleetSnapshot.Execution(id: "e1", deploymentID: web.id, deviceID: "d1", state: .failed, updatedAt: webTaken.addingTimeInterval(60),
                                    takenAt: webTaken),
            FleetSnapshot.Execution(id: "e2", deploymentID: db.id, deviceID: "d1", state: .succeeded, updatedAt: dbTaken.addingTimeInterval(60),
                                    takenAt: dbTaken),
        ]
        let samples = try await SnapshotGatherer(store: store, settings: RolloutSettings())
            .healthSamples(fleet: fleet, deployments: [web, db], executions: executions, now: now)
        let read = try #require(samples["d1"])
        #expect(read.count == HealthPolicy.baselineCount + 120)
        #expect(read.filter { $0.at < dbTaken }.suffix(HealthPolicy.baselineCount).allSatisfy { $0.cpu == 30 })
        let health = try #require(fleet.apps.first { $0.name == "db" }?.targets.first?.health)
        let verdict = health.verdict(samples: read, takenAt: dbTaken, succeededAt: dbTaken.addingTimeInterval(60), installed: ("db", "5.0"))
        guard case .failed(let why) = verdict else { Issue.record("expected a failed verdict, got \(verdict)"); return }
        #expect(why.contains("baseline 30"))
    }

    /// Thirty releases of `web` rolled out to twenty devices before the one wanted now: read a
    /// few deployments at a time, and of them only each device's newest kept.
    @Test func aPassKeepsOnlyTheHistoryItsDecisionReads() async throws {
        let store = MemoryFleetStore()
        let fleet = try fleet()
        let devices = (1...20).map { "d\($0)" }
        for device in devices {
            _ = try await store.enroll(DeviceRecord(id: device, project: "acme", name: device, hardwareID: device, secretHash: "",
                                                    enrolledAt: now.addingTimeInterval(-86_400)))
        }
        _ = try await store.recordHeartbeats(devices.map { device in
            HeartbeatRecord(deviceID: device, receivedAt: now.addingTimeInterval(-5),
                            report: Heartbeat(reportID: "\(device)-now", cpuPercent: 10, apps: ["web": InstalledApp(version: "1.29")]))
        })
        for release in 0..<30 {
            let created = now.addingTimeInterval(Double(-100_000 + release * 600))
            var record = try deployment("old\(release)", fleet, app: "web")
            record.version = "1.\(release)"
            record.digest = "old\(release)"
            record.createdAt = created
            try await store.createDeployment(record, executions: devices.map {
                ExecutionRecord(id: "old\(release)-\($0)", deploymentID: record.id, deviceID: $0, state: .succeeded,
                                updatedAt: created.addingTimeInterval(60), takenAt: created)
            })
        }
        var wanted = try deployment("new", fleet, app: "web")
        wanted.createdAt = now.addingTimeInterval(-3_600)
        try await store.createDeployment(wanted, executions: devices.prefix(11).enumerated().map { index, device in
            ExecutionRecord(id: "new-\(device)", deploymentID: wanted.id, deviceID: device, state: index < 10 ? .succeeded : .running,
                            updatedAt: now.addingTimeInterval(-3_000), takenAt: now.addingTimeInterval(-3_100))
        })
        var gatherer = SnapshotGatherer(store: store, settings: RolloutSettings())
        gatherer.deploymentsPerRead = 7
        let desired = FleetController.Desired(commit: try #require(CommitID(String(repeating: "a", count: 40))), fleet: fleet)
        let gathered = try await gatherer.gather(desired: desired, head: nil, headErrors: [], suspended: [], now: now)
        #expect(gathered.executionsRead == 30 * 20 + 11)
        let kept = gathered.snapshot.executions
        // The wanted release's eleven, and each device's newest of the thirty before.
        #expect(kept.count == 11 + 20)
        #expect(Set(kept.filter { $0.deploymentID.hasPrefix("old") }.map(\.deploymentID)) == ["old29"])
        // In creation order, as the decision reads them, whatever order the reads came in.
        let all = try await store.executionSummaries(deploymentIDs: gathered.deployments.keys.sorted())
        let rank = Dictionary(uniqueKeysWithValues: all.map { ($0.id, $0.order) })
        #expect(kept.map { rank[$0.id]! } == kept.map { rank[$0.id]! }.sorted())
        // And the decision over them is the decision over the whole history.
        var whole = gathered.snapshot
        whole.executions = all.map {
            FleetSnapshot.Execution(id: $0.id, deploymentID: $0.deploymentID, deviceID: $0.deviceID, state: $0.state, updatedAt: $0.updatedAt,
                                    takenAt: $0.takenAt, healthPassed: $0.healthPassed)
        }
        #expect(whole.executions.count == 611)
        let overKept = try RolloutDecision.decide(gathered.snapshot)
        let overWhole = try RolloutDecision.decide(whole)
        #expect(overKept.actions == overWhole.actions)
        #expect(overKept.report == overWhole.report)
        #expect(!overWhole.actions.isEmpty)
    }
}
