import FleetCore
import FleetGit
import FleetProtocol
import FleetStore
import Foundation

/// Gathers what the rollout decision reads from the store: the project's devices, its
/// deployments and their executions, and the approvals operators gave. Reads only.
struct SnapshotGatherer {
    let store: any FleetStore
    let settings: RolloutSettings
    /// How many of the project's newest deployments are read.
    var deploymentLimit = 10_000
    /// How many deployments' executions are read at a time: what a pass holds of the history
    /// beyond what it keeps (`ExecutionHistory`) is one such read.
    var deploymentsPerRead = 50

    struct Gathered {
        var snapshot: FleetSnapshot
        /// The deployments read, by id: a rollback copies one of them.
        var deployments: [String: DeploymentRecord]
        /// Executions read, of which the snapshot keeps what the decision reads.
        var executionsRead: Int
    }

    func gather(desired: FleetController.Desired, head: CommitID?, headErrors: [String], suspended: Set<String>, now: Date) async throws
        -> Gathered {
        let fleet = desired.fleet
        let project = fleet.fleet.project
        let records = try await store.devices(project: project).filter { !$0.deleted }
        let devices = records.map { record in
            FleetSnapshot.Device(id: record.id, tags: record.reportedTags.map { ($0.key, $0.value) },
                                 apps: record.apps.map { (name: $0.key, version: $0.value.version, digest: $0.value.digest) },
                                 lastHeard: record.lastHeartbeatAt, executing: record.executing,
                                 lock: record.lock.map { ($0.reason, $0.untilMilliseconds.map { Date(timeIntervalSince1970: Double($0) / 1_000) }) },
                                 probes: record.apps.compactMapValues(\.probe))
        }
        let appNames = Set(fleet.apps.map(\.name))
        let deployments = try await store.deployments(project: project, limit: deploymentLimit).filter { appNames.contains($0.app) }
        let snapshotDeployments = deployments.map {
            FleetSnapshot.Deployment(id: $0.id, app: $0.app, version: $0.version, digest: $0.digest, purpose: $0.purpose,
                                     group: $0.group, createdAt: $0.createdAt, aborted: $0.aborted)
        }
        // The history a few deployments at a time, keeping only what the decision reads of it.
        var history = ExecutionHistory(fleet: fleet, deployments: snapshotDeployments, executing: Set(records.compactMap(\.executing)),
                                       now: now, settings: settings)
        for start in stride(from: 0, to: deployments.count, by: deploymentsPerRead) {
            let ids = deployments[start..<min(start + deploymentsPerRead, deployments.count)].map(\.id)
            for summary in try await store.executionSummaries(deploymentIDs: ids) {
                history.offer(FleetSnapshot.Execution(id: summary.id, deploymentID: summary.deploymentID, deviceID: summary.deviceID,
                                                      state: summary.state, updatedAt: summary.updatedAt, takenAt: summary.takenAt,
                                                      healthPassed: summary.healthPassed),
                              position: summary.order)
            }
        }
        let executions = history.executions()
        // Only approvals of targets that ask for one are read into the snapshot.
        let gated = fleet.apps.contains { $0.targets.contains { $0.gate.approval } }
        let approvals = gated ? Set(try await store.approvals(project: project).map {
            FleetSnapshot.approvalKey(app: $0.app, group: $0.group, digest: $0.digest)
        }) : []
        let samples = try await healthSamples(fleet: fleet, deployments: deployments, executions: executions, now: now)
        let snapshot = FleetSnapshot(
            commit: desired.commit.description, head: head?.description, headErrors: headErrors, fleet: fleet, devices: devices,
            deployments: snapshotDeployments, executions: executions, suspended: suspended, approvals: approvals, samples: samples, now: now, settings: settings)
        return Gathered(snapshot: snapshot, deployments: Dictionary(deployments.map { ($0.id, $0) }, uniquingKeysWith: { first, _ in first }),
                        executionsRead: history.offeredCount)
    }

    /// Most heartbeats read for one device from its update on: more than an observation of a
    /// day at the shortest heartbeat interval keeps.
    var samplesPerDevice = 4_000
    /// Most bytes of those heartbeats' stored JSON read for one device: 4,000 of 4 kB, where an
    /// ordinary heartbeat is under one. A device decides how large its heartbeats are.
    var sampleBytesPerDevice = 16 << 20

    /// The heartbeats of devices whose update of a health-checked target finished recently
    /// enough to be judged: only those, so a decision over a large fleet reads a wave's worth.
    /// Of each, only what a verdict reads: the heartbeats since the update began, and the
    /// baseline before it (`HealthPolicy.baselineCount`) — not the day of heartbeats a device
    /// keeps, which over a wave of thousands would be millions of rows on every pass.
    func healthSamples(fleet: CompiledFleet, deployments: [DeploymentRecord], executions: [FleetSnapshot.Execution], now: Date) async throws
        -> [String: [HealthSample]] {
        var observe: [String: Double] = [:]
        for app in fleet.apps {
            for target in app.targets { if let health = target.health { observe[target.digest] = health.observeSeconds } }
        }
        guard !observe.isEmpty else { return [:] }
        var judged: [String: Double] = [:]
        for deployment in deployments where deployment.purpose == .rollout || deployment.purpose == .heal {
            if let seconds = observe[deployment.digest] { judged[deployment.id] = seconds }
        }
        // Each device from the earliest update of it being judged: successes not judged yet
        // within the judging horizon (a device offline since is judged when it is heard again),
        // and recent failures, for what the status says of them.
        var from: [String: Date] = [:]
        for execution in executions {
            guard let observe = judged[execution.deploymentID] else { continue }
            let age = now.timeIntervalSince(execution.updatedAt)
            guard execution.state == .succeeded && !execution.healthPassed && age <= observe + HealthPolicy.judgingHorizon
                || execution.state == .failed && age <= observe + 3_600 else { continue }
            let began = min(execution.takenAt ?? execution.updatedAt, execution.updatedAt)
            from[execution.deviceID] = min(from[execution.deviceID] ?? began, began)
        }
        var samples: [String: [HealthSample]] = [:]
        for (device, began) in from.sorted(by: { $0.key < $1.key }) {
            // The baseline of an update that began later is in what is read since `began`.
            let baseline = try await store.heartbeats(deviceID: device, before: began, limit: HealthPolicy.baselineCount)
            // Bounded by size too: a device that sent huge heartbeats is judged on the first that fit.
            let since = try await store.heartbeats(deviceID: device, since: began, until: .distantFuture, limit: samplesPerDevice,
                                                   maximumBytes: sampleBytesPerDevice).records
            samples[device] = (baseline.reversed() + since).map(HealthSample.init)
        }
        return samples
    }
}

extension HealthSample {
    init(_ record: HeartbeatRecord) { self.init(record.report, at: record.receivedAt) }
}
