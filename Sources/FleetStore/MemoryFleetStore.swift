public import FleetProtocol
public import Foundation

/// A store in memory: for tests, and for a server that keeps nothing.
public actor MemoryFleetStore: FleetStore {
    private var projectRecords: [String: ProjectRecord] = [:]
    private var tokenRecords: [String: AccessTokenRecord] = [:]
    private var deviceRecords: [String: DeviceRecord] = [:]
    private var heartbeatRecords: [String: [HeartbeatRecord]] = [:]
    private var metricBuckets: [String: [Date: MetricBucket]] = [:]
    private var seenReports: [String: Set<String>] = [:]
    private var auditRecords: [AuditRecord] = []
    private var deploymentRecords: [String: DeploymentRecord] = [:]
    private var deploymentOrder: [String] = []
    private var executionRecords: [String: ExecutionRecord] = [:]
    private var executionOrder: [String] = []
    private var appliedReports: [String: Set<String>] = [:]

    public init() {}

    public func ensureProject(_ name: String, at date: Date) {
        if projectRecords[name] == nil { projectRecords[name] = ProjectRecord(name: name, createdAt: date) }
    }

    public func projects() -> [ProjectRecord] { projectRecords.values.sorted { $0.name < $1.name } }

    public func insertToken(_ token: AccessTokenRecord) throws {
        guard tokenRecords[token.id] == nil else { throw StoreError(.duplicate, "token \(token.id) exists") }
        tokenRecords[token.id] = token
    }

    public func token(id: String) -> AccessTokenRecord? { tokenRecords[id] }

    public func tokens(project: String) -> [AccessTokenRecord] {
        tokenRecords.values.filter { $0.project == project }.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    public func pruneSessions(expiredBefore date: Date) -> Int {
        let ended = tokenRecords.values.filter { $0.kind == .session && ($0.revoked || $0.expiresAt.map { $0 < date } ?? false) }
        for record in ended { tokenRecords[record.id] = nil }
        return ended.count
    }

    public func revokeToken(id: String) throws {
        guard tokenRecords[id] != nil else { throw StoreError(.notFound, "no token \(id)") }
        tokenRecords[id]?.revoked = true
    }

    public func enroll(_ device: DeviceRecord) throws -> DeviceRecord {
        if let existing = deviceRecords.values.first(where: { $0.project == device.project && $0.hardwareID == device.hardwareID && !$0.deleted }) {
            return existing
        }
        guard deviceRecords[device.id] == nil else { throw StoreError(.duplicate, "device \(device.id) exists") }
        deviceRecords[device.id] = device
        return device
    }

    public func device(id: String) -> DeviceRecord? { deviceRecords[id] }

    public func devices(project: String) -> [DeviceRecord] {
        deviceRecords.values.filter { $0.project == project && !$0.deleted }.sorted { $0.id < $1.id }
    }

    public func resetIdentity(deviceID: String, claimHash: String, claimExpiresAt: Date) throws -> DeviceRecord {
        guard var device = deviceRecords[deviceID] else { throw StoreError(.notFound, "no device \(deviceID)") }
        device.secretHash = ""
        device.tokenGeneration += 1
        device.claimHash = claimHash
        device.claimExpiresAt = claimExpiresAt
        deviceRecords[deviceID] = device
        return device
    }

    public func claimIdentity(deviceID: String, claimHash: String, secretHash: String, at date: Date) -> DeviceRecord? {
        guard var device = deviceRecords[deviceID], !device.deleted, device.secretHash.isEmpty, device.claimHash == claimHash,
              let expiry = device.claimExpiresAt, expiry > date else { return nil }
        device.secretHash = secretHash
        device.claimHash = nil
        device.claimExpiresAt = nil
        deviceRecords[deviceID] = device
        return device
    }

    public func deleteDevice(id: String) throws {
        guard deviceRecords[id] != nil else { throw StoreError(.notFound, "no device \(id)") }
        deviceRecords[id]?.deleted = true
    }

    public func recordHeartbeats(_ heartbeats: [HeartbeatRecord]) throws -> [Bool] {
        heartbeats.map { heartbeat in
            guard let device = deviceRecords[heartbeat.deviceID],
                  seenReports[heartbeat.deviceID, default: []].insert(heartbeat.report.reportID).inserted
            else { return false }
            heartbeatRecords[heartbeat.deviceID, default: []].append(heartbeat)
            deviceRecords[heartbeat.deviceID] = device.updated(by: heartbeat)
            return true
        }
    }

    public func heartbeats(deviceID: String, before: Date, limit: Int) -> [HeartbeatRecord] {
        // Newest received first, and of two received at once the later stored, as the SQL stores order them.
        let records = heartbeatRecords[deviceID] ?? []
        return Array(records.indices.reversed().filter { records[$0].receivedAt < before }
            .sorted { records[$0].receivedAt > records[$1].receivedAt || records[$0].receivedAt == records[$1].receivedAt && $0 > $1 }
            .prefix(limit).map { records[$0] })
    }

    public func pruneHeartbeats(before date: Date) {
        for (device, records) in heartbeatRecords {
            let kept = records.filter { $0.receivedAt >= date }
            heartbeatRecords[device] = kept
            seenReports[device] = Set(kept.map(\.report.reportID))
        }
    }

    public func heartbeats(deviceID: String, since: Date, until: Date, limit: Int, maximumBytes: Int) -> HeartbeatSpan {
        var span = HeartbeatSpan.Builder(limit: limit, maximumBytes: maximumBytes)
        for record in (heartbeatRecords[deviceID] ?? []).filter({ $0.receivedAt >= since && $0.receivedAt < until }).sorted(by: { $0.receivedAt < $1.receivedAt }) {
            let size = record.report.wireJSON().utf8.count
            guard span.fits(size: size) else { break }
            span.take(record, size: size)
        }
        return span.span
    }

    public func rollUpHeartbeats(before date: Date, bucketSeconds: Int) -> Int {
        var rolled = 0
        for (device, records) in heartbeatRecords {
            let old = records.filter { $0.receivedAt < date }
            guard !old.isEmpty else { continue }
            for bucket in MetricHistory.buckets(old, seconds: bucketSeconds) {
                metricBuckets[device, default: [:]][bucket.start] = metricBuckets[device]?[bucket.start].map { $0.merged(with: bucket) } ?? bucket
            }
            let kept = records.filter { $0.receivedAt >= date }
            heartbeatRecords[device] = kept
            seenReports[device] = Set(kept.map(\.report.reportID))
            rolled += old.count
        }
        return rolled
    }

    public func metrics(deviceID: String, since: Date, until: Date) -> [MetricBucket] {
        (metricBuckets[deviceID] ?? [:]).values.filter { $0.start >= since && $0.start < until }.sorted { $0.start < $1.start }
    }

    public func pruneMetrics(before date: Date) {
        for (device, buckets) in metricBuckets { metricBuckets[device] = buckets.filter { $0.key >= date } }
    }

    public func createDeployment(_ deployment: DeploymentRecord, executions: [ExecutionRecord]) throws {
        guard deploymentRecords[deployment.id] == nil else { throw StoreError(.duplicate, "deployment \(deployment.id) exists") }
        deploymentRecords[deployment.id] = deployment
        deploymentOrder.append(deployment.id)
        for execution in executions {
            executionRecords[execution.id] = execution
            executionOrder.append(execution.id)
        }
    }

    public func deployment(id: String) -> DeploymentRecord? { deploymentRecords[id] }

    public func deployments(project: String, limit: Int) -> [DeploymentRecord] {
        Array(deploymentOrder.reversed().compactMap { deploymentRecords[$0] }.filter { $0.project == project }.prefix(limit))
    }

    public func executions(deploymentID: String) -> [ExecutionRecord] {
        executionOrder.compactMap { executionRecords[$0] }.filter { $0.deploymentID == deploymentID }
    }

    public func executionSummaries(deploymentIDs: [String]) -> [ExecutionSummary] {
        let wanted = Set(deploymentIDs)
        return executionOrder.enumerated().compactMap { order, id in
            guard let record = executionRecords[id], wanted.contains(record.deploymentID) else { return nil }
            var summary = record.summary
            summary.order = Int64(order)
            return summary
        }
    }

    public func executions(deviceID: String, limit: Int) -> [ExecutionRecord] {
        Array(executionOrder.reversed().lazy.compactMap { self.executionRecords[$0] }.filter { $0.deviceID == deviceID }.prefix(limit))
    }

    public func activeExecutions(deviceID: String) -> [ExecutionRecord] {
        executionOrder.compactMap { executionRecords[$0] }.filter { $0.deviceID == deviceID && !$0.state.isFinal }
    }

    public func execution(id: String, deviceID: String) -> ExecutionRecord? {
        executionRecords[id].flatMap { $0.deviceID == deviceID ? $0 : nil }
    }

    public func applyExecutionReport(executionID: String, deviceID: String, report: ExecutionReport, at date: Date) -> ExecutionReportOutcome {
        guard let execution = executionRecords[executionID], execution.deviceID == deviceID else { return .notFound }
        if appliedReports[executionID, default: []].contains(report.reportID) { return .duplicate(execution) }
        guard let next = execution.applying(report, at: date) else { return .finished(execution) }
        appliedReports[executionID, default: []].insert(report.reportID)
        executionRecords[executionID] = next
        return .applied(next)
    }

    public func abortDeployment(id: String, at date: Date) throws -> [ExecutionRecord] {
        guard deploymentRecords[id] != nil else { throw StoreError(.notFound, "no deployment \(id)") }
        deploymentRecords[id]?.aborted = true
        var cancelled: [ExecutionRecord] = []
        for executionID in executionOrder {
            guard let execution = executionRecords[executionID], execution.deploymentID == id,
                  let ended = execution.ended(as: .cancelled, message: "the deployment was aborted", at: date) else { continue }
            executionRecords[executionID] = ended
            cancelled.append(ended)
        }
        return cancelled
    }

    public func endExecution(id: String, as state: ExecutionState, message: String, unlessUpdatedAfter: Date?, at date: Date)
        -> ExecutionRecord? {
        guard let ended = executionRecords[id]?.ended(as: state, message: message, unlessUpdatedAfter: unlessUpdatedAfter, at: date)
        else { return nil }
        executionRecords[id] = ended
        return ended
    }

    public func takeExecutions(deviceID: String, at date: Date) -> [ExecutionRecord] {
        activeExecutions(deviceID: deviceID).map { execution in
            guard let taken = execution.taken(at: date) else { return execution }
            executionRecords[execution.id] = taken
            return taken
        }
    }

    public func appendAudit(_ entry: AuditRecord) { auditRecords.append(entry) }

    public func audit(project: String, limit: Int) -> [AuditRecord] {
        Array(auditRecords.filter { $0.project == project }.reversed().prefix(limit))
    }

    private var secretRecords: [String: SecretRecord] = [:]

    public func putSecret(_ secret: SecretRecord) -> SecretRecord {
        var secret = secret
        secret.version = (secretRecords[secret.project + "/" + secret.name]?.version ?? 0) + 1
        secretRecords[secret.project + "/" + secret.name] = secret
        return secret
    }

    public func secret(project: String, name: String) -> SecretRecord? { secretRecords[project + "/" + name] }

    public func secrets(project: String) -> [SecretRecord] {
        secretRecords.values.filter { $0.project == project }.sorted { $0.name < $1.name }
    }

    public func deleteSecret(project: String, name: String) -> Bool {
        secretRecords.removeValue(forKey: project + "/" + name) != nil
    }

    private var suspensions: [String: Set<String>] = [:]

    public func suspendedApps(project: String) -> Set<String> { suspensions[project] ?? [] }

    public func setSuspended(_ suspended: Bool, app: String, project: String, at date: Date) {
        if suspended { suspensions[project, default: []].insert(app) } else { suspensions[project]?.remove(app) }
    }

    private var approvalRecords: [ApprovalRecord] = []

    public func approve(_ approval: ApprovalRecord) -> ApprovalRecord {
        if let kept = approvalRecords.first(where: {
            $0.project == approval.project && $0.app == approval.app && $0.group == approval.group && $0.digest == approval.digest
        }) { return kept }
        approvalRecords.append(approval)
        return approval
    }

    public func approvals(project: String) -> [ApprovalRecord] { approvalRecords.filter { $0.project == project } }

    private var alertRecords: [String: AlertRecord] = [:]

    private static func alertKey(_ project: String, _ rule: String, _ device: String) -> String { project + "\u{0}" + rule + "\u{0}" + device }

    public func alerts(project: String) -> [AlertRecord] {
        alertRecords.values.filter { $0.project == project }.sorted { ($0.rule, $0.device) < ($1.rule, $1.device) }
    }

    public func alerts(deviceID: String) -> [AlertRecord] {
        alertRecords.values.filter { $0.device == deviceID }.sorted { $0.rule < $1.rule }
    }

    public func saveAlert(_ record: AlertRecord, replacing current: AlertRecord?) -> AlertRecord? {
        let key = Self.alertKey(record.project, record.rule, record.device)
        let held = alertRecords[key]
        guard held?.version == current?.version, held?.since == current?.since else { return nil }
        var stored = record
        stored.version = (current?.version ?? 0) + 1
        alertRecords[key] = stored
        return stored
    }

    public func removeAlert(_ current: AlertRecord) -> Bool {
        let key = Self.alertKey(current.project, current.rule, current.device)
        guard let held = alertRecords[key], held.version == current.version, held.since == current.since else { return false }
        alertRecords[key] = nil
        return true
    }

    public func pruneAlerts(resolvedBefore date: Date) {
        alertRecords = alertRecords.filter { !($0.value.state == .resolved && ($0.value.resolvedAt ?? .distantFuture) < date) }
    }

    private var commandRecords: [String: RemoteCommandRecord] = [:]
    private var commandOutputs: [String: [UInt8]] = [:]

    public func queueCommands(_ commands: [RemoteCommandRecord]) throws {
        guard Set(commands.map(\.id)).count == commands.count, !commands.contains(where: { commandRecords[$0.id] != nil }) else {
            throw StoreError(.duplicate, "a command with one of these ids exists")
        }
        for command in commands { commandRecords[command.id] = command }
    }

    public func takeCommands(deviceID: String, kinds: Set<RemoteCommand.Kind>, at date: Date) -> [RemoteCommandRecord] {
        let queued = commandRecords.values.filter { $0.deviceID == deviceID && $0.state == .queued && kinds.contains($0.command.kind) }
            .sorted { ($0.requestedAt, $0.id) < ($1.requestedAt, $1.id) }
        return queued.compactMap { command in
            guard let taken = command.taken(at: date) else { return nil }
            commandRecords[command.id] = taken
            return taken
        }
    }

    public func updateCommand(id: String, deviceID: String, _ change: @escaping @Sendable (RemoteCommandRecord) -> RemoteCommandUpdate)
        -> RemoteCommandUpdate {
        guard let record = commandRecords[id], record.deviceID == deviceID else { return .notFound }
        let update = change(record)
        if case .accepted(let updated, let append) = update {
            commandRecords[id] = updated
            commandOutputs[id, default: []] += append
        }
        return update
    }

    public func commands(batch: String, project: String, at date: Date) -> [RemoteCommandRecord] {
        commandRecords.values.filter { $0.batch == batch && $0.project == project }.map { $0.settled(at: date) }.sorted { $0.deviceID < $1.deviceID }
    }

    public func commandOutput(id: String, project: String, offset: Int) -> [UInt8]? {
        guard let record = commandRecords[id], record.project == project else { return nil }
        let output = commandOutputs[id] ?? []
        return Array(output.dropFirst(max(0, offset)))
    }

    public func openCommands(deviceID: String, at date: Date) -> Int {
        commandRecords.values.filter { $0.deviceID == deviceID && !$0.settled(at: date).state.isFinal }.count
    }

    public func pruneCommands(before date: Date) {
        for (id, record) in commandRecords where record.requestedAt < date {
            commandRecords[id] = nil
            commandOutputs[id] = nil
        }
    }
}
