public import FleetProtocol
public import Foundation

/// Where the server keeps projects, tokens, devices, heartbeats and the audit log.
///
/// Implementations: `MemoryFleetStore` (tests, a throwaway server) and `SQLiteFleetStore`
/// (the embedded default). One conformance suite runs against every implementation.
public protocol FleetStore: Sendable {
    /// Creates the project if it does not exist.
    func ensureProject(_ name: String, at date: Date) async throws
    func projects() async throws -> [ProjectRecord]

    func insertToken(_ token: AccessTokenRecord) async throws
    func token(id: String) async throws -> AccessTokenRecord?
    func tokens(project: String) async throws -> [AccessTokenRecord]
    func revokeToken(id: String) async throws

    /// Registers `device`, or returns the device already registered for its project and
    /// hardware id unchanged (the same hardware enrolling again is the same device; the caller
    /// checks it proves the device secret, or claims a reset identity).
    func enroll(_ device: DeviceRecord) async throws -> DeviceRecord
    /// Forgets the device's secret and moves its token generation on (every device token issued
    /// before is refused from now), and keeps the hash of a one-time claim code valid until
    /// `claimExpiresAt`: the replaced board presents it to take the device's place. Returns the device.
    func resetIdentity(deviceID: String, claimHash: String, claimExpiresAt: Date) async throws -> DeviceRecord
    /// Gives a reset device the new board's secret, once: only while its secret is unset and its
    /// claim hash is `claimHash` and unexpired at `date`. Returns the device then, nil otherwise.
    func claimIdentity(deviceID: String, claimHash: String, secretHash: String, at date: Date) async throws -> DeviceRecord?
    func device(id: String) async throws -> DeviceRecord?
    func devices(project: String) async throws -> [DeviceRecord]
    /// Marks the device deleted; its hardware id can enroll afresh only as a new device.
    func deleteDevice(id: String) async throws

    /// Stores heartbeats in one transaction, in order. Returns, for each, whether it was new:
    /// a report id seen before for the same device is not stored again.
    func recordHeartbeats(_ heartbeats: [HeartbeatRecord]) async throws -> [Bool]
    /// The device's most recent heartbeats received before `before`, newest first.
    func heartbeats(deviceID: String, before: Date, limit: Int) async throws -> [HeartbeatRecord]
    /// Forgets heartbeats received before `date` (the metrics history is bounded).
    func pruneHeartbeats(before date: Date) async throws
    /// The device's heartbeats received from `since` up to (not including) `until`, oldest
    /// first: at most `limit` of them, and at most `maximumBytes` of their stored JSON (the
    /// first that would pass it is left out, with all after it). A device decides how large its
    /// heartbeats are, so what is read is bounded by size, not only by count. `complete` says
    /// whether either bound left any out.
    func heartbeats(deviceID: String, since: Date, until: Date, limit: Int, maximumBytes: Int) async throws -> HeartbeatSpan
    /// Sums up the heartbeats received before `date` into the metrics history, in buckets of
    /// `bucketSeconds` (merged with a bucket already there), and forgets them, each device's in
    /// one transaction: nothing is counted twice or lost on a crash. Returns how many it rolled up.
    func rollUpHeartbeats(before date: Date, bucketSeconds: Int) async throws -> Int
    /// The device's metrics history from `since` up to `until`, oldest first.
    func metrics(deviceID: String, since: Date, until: Date) async throws -> [MetricBucket]
    /// Forgets the metrics history before `date`.
    func pruneMetrics(before date: Date) async throws

    /// Stores a deployment and one queued execution per device, in one transaction.
    func createDeployment(_ deployment: DeploymentRecord, executions: [ExecutionRecord]) async throws
    func deployment(id: String) async throws -> DeploymentRecord?
    /// The project's deployments, newest first.
    func deployments(project: String, limit: Int) async throws -> [DeploymentRecord]
    func executions(deploymentID: String) async throws -> [ExecutionRecord]
    /// Where each execution of these deployments stands, without its step results: what the
    /// controller reads on every pass. In creation order.
    func executionSummaries(deploymentIDs: [String]) async throws -> [ExecutionSummary]
    /// The device's latest `limit` executions, newest first, whatever their state: a device's
    /// page reads these, not every execution of the project's recent deployments.
    func executions(deviceID: String, limit: Int) async throws -> [ExecutionRecord]
    /// The device's executions that are not final, oldest first.
    func activeExecutions(deviceID: String) async throws -> [ExecutionRecord]
    /// Applies a device's report to its execution, once per report id.
    /// One execution of one device, in whatever state.
    func execution(id: String, deviceID: String) async throws -> ExecutionRecord?
    func applyExecutionReport(executionID: String, deviceID: String, report: ExecutionReport, at date: Date) async throws -> ExecutionReportOutcome
    /// Marks the deployment aborted and cancels its executions that are not final; returns them.
    func abortDeployment(id: String, at date: Date) async throws -> [ExecutionRecord]
    /// Ends an unfinished execution as `timedOut` or `cancelled` (`ExecutionRecord.ended`),
    /// unless it moved since `unlessUpdatedAfter`; returns it then, nil otherwise.
    func endExecution(id: String, as state: ExecutionState, message: String, unlessUpdatedAfter: Date?, at date: Date) async throws
        -> ExecutionRecord?
    /// The device's unfinished executions, oldest first, with every queued one marked taken
    /// (`assigned`) in the same transaction: what is returned is what the device is sent.
    func takeExecutions(deviceID: String, at date: Date) async throws -> [ExecutionRecord]

    func appendAudit(_ entry: AuditRecord) async throws
    /// The project's audit log, newest first.
    func audit(project: String, limit: Int) async throws -> [AuditRecord]

    /// Stores a sealed secret, replacing one of the same name; its version is one more than the
    /// replaced one's (1 for a new one). Returns what was stored.
    func putSecret(_ secret: SecretRecord) async throws -> SecretRecord
    func secret(project: String, name: String) async throws -> SecretRecord?
    /// The project's secrets, by name.
    func secrets(project: String) async throws -> [SecretRecord]
    /// Whether there was one to delete.
    func deleteSecret(project: String, name: String) async throws -> Bool

    /// The project's apps whose new waves, heals and rollbacks are held.
    func suspendedApps(project: String) async throws -> Set<String>
    /// Holds (or releases) an app of the project; holding a held app changes nothing.
    func setSuspended(_ suspended: Bool, app: String, project: String, at date: Date) async throws

    /// Records an approval; the first one of a digest stays (who approved it, and when), and
    /// the approval that is kept is returned.
    func approve(_ approval: ApprovalRecord) async throws -> ApprovalRecord
    /// The project's approvals, oldest first.
    func approvals(project: String) async throws -> [ApprovalRecord]

    /// Queues remote commands (one record per device), in one transaction.
    func queueCommands(_ commands: [RemoteCommandRecord]) async throws
    /// The device's queued commands of `kinds` still in time, marked running (taken at `date`) in
    /// the same transaction: what is returned is what the device is sent. (Commands of a kind the
    /// project no longer allows stay queued, and expire.)
    func takeCommands(deviceID: String, kinds: Set<RemoteCommand.Kind>, at date: Date) async throws -> [RemoteCommandRecord]
    /// Applies `change` to the device's command under the store's lock, and keeps what it
    /// accepts (the record, and the output it appends). `.notFound` when the device has no such command.
    func updateCommand(id: String, deviceID: String, _ change: @escaping @Sendable (RemoteCommandRecord) -> RemoteCommandUpdate) async throws
        -> RemoteCommandUpdate
    /// The project's records of one request, as they stand at `date` (`settled`), by device id.
    func commands(batch: String, project: String, at date: Date) async throws -> [RemoteCommandRecord]
    /// The output of one of the project's commands from byte `offset`; nil when there is no such command.
    func commandOutput(id: String, project: String, offset: Int) async throws -> [UInt8]?
    /// How many of the device's commands have not ended at `date`.
    func openCommands(deviceID: String, at date: Date) async throws -> Int
    /// Forgets the commands asked before `date`, with their output.
    func pruneCommands(before date: Date) async throws

    /// The project's alerts (pending, firing and resolved), by rule, then device.
    func alerts(project: String) async throws -> [AlertRecord]
    /// The device's alerts, by rule.
    func alerts(deviceID: String) async throws -> [AlertRecord]
    /// Stores `record` in place of `current` — the alert of its rule and device as the caller last
    /// read it, nil for none — only if the store still holds just that (the same version and
    /// start). Returns it as stored, one version on from `current`; nil when another replica
    /// changed it meanwhile (read again, and decide again).
    func saveAlert(_ record: AlertRecord, replacing current: AlertRecord?) async throws -> AlertRecord?
    /// Removes `current` only if the store still holds just that; whether it did.
    func removeAlert(_ current: AlertRecord) async throws -> Bool
    /// Forgets alerts resolved before `date`.
    func pruneAlerts(resolvedBefore date: Date) async throws
    /// Forgets console sessions that ended: revoked ones, and those expired before `date`.
    /// Returns how many. (A session is no use once ended; each sign-in makes one.)
    func pruneSessions(expiredBefore date: Date) async throws -> Int
}

extension FleetStore {
    /// The device's most recent heartbeats, newest first.
    public func heartbeats(deviceID: String, limit: Int) async throws -> [HeartbeatRecord] {
        try await heartbeats(deviceID: deviceID, before: .distantFuture, limit: limit)
    }
}

extension DeviceRecord {
    /// The device after `heartbeat`: its apps, agent version and last-seen time.
    public func updated(by heartbeat: HeartbeatRecord) -> DeviceRecord {
        var device = self
        // The lock is what the newest heartbeat says; an older one arriving late does not undo it.
        if heartbeat.receivedAt >= (device.lastHeartbeatAt ?? .distantPast) { device.lock = heartbeat.report.lock }
        device.lastHeartbeatAt = max(device.lastHeartbeatAt ?? heartbeat.receivedAt, heartbeat.receivedAt)
        if let apps = heartbeat.report.apps { device.apps = apps }
        device.executing = heartbeat.report.executing
        if let version = heartbeat.report.agentVersion { device.attributes["agentVersion"] = version }
        return device
    }
}
