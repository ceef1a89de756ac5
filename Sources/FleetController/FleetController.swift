public import FleetCore
public import FleetGit
import FleetProtocol
public import FleetServer
public import FleetStore
public import Foundation
public import Logging
public import ServiceLifecycle

/// How the controller watches and reports.
public struct ControllerConfiguration: Sendable {
    /// The fleet repository: a path, file://, git://, https:// or ssh:// URL.
    public var repository: String
    public var branch: String
    /// Where the bare mirror of the repository is kept.
    public var cacheDirectory: String
    /// How often the repository is polled (with up to 10% jitter).
    public var pollInterval: Duration
    /// How often the desired state is compared with the devices.
    public var reconcileInterval: Duration
    /// A device is offline after this long without a heartbeat.
    public var offlineAfterSeconds: Double
    /// Write a note on each reconciled commit and STATUS.md / status.json to the status branch.
    public var writeStatus: Bool
    public var credentials: GitCredentials
    /// The token for the forge's commit-status API (fleet.yaml `status.forge`); never logged.
    public var forgeToken: String?
    /// A drifting device of a `selfHeal: true` app is corrected at most this often.
    public var selfHealInterval: Duration = .seconds(600)
    /// While a rollout runs its counts change on every pass; they are written to the note, the
    /// status branch and the forge at most this often. A change of state (pending, success,
    /// failure) or of commit is written at once.
    public var statusInterval: Duration = .seconds(10)
    /// fleet.yaml's `status:` as flags override it: two controllers reading one repository
    /// (staging and production, say) post under two context prefixes.
    public var statusOverrides = StatusOverrides()

    public init(repository: String, branch: String = "main", cacheDirectory: String, pollInterval: Duration = .seconds(15),
                reconcileInterval: Duration = .seconds(2), offlineAfterSeconds: Double = 75, writeStatus: Bool = true,
                credentials: GitCredentials = GitCredentials(), forgeToken: String? = nil) {
        self.forgeToken = forgeToken
        self.repository = repository
        self.branch = branch
        self.cacheDirectory = cacheDirectory
        self.pollInterval = pollInterval
        self.reconcileInterval = reconcileInterval
        self.offlineAfterSeconds = offlineAfterSeconds
        self.writeStatus = writeStatus
        self.credentials = credentials
    }
}

/// Where commit statuses go when flags say otherwise than fleet.yaml.
public struct StatusOverrides: Sendable, Equatable {
    public var forge: StatusSettings.Forge?
    public var repository: String?
    public var apiURL: String?
    public var contextPrefix: String?

    public init(forge: StatusSettings.Forge? = nil, repository: String? = nil, apiURL: String? = nil, contextPrefix: String? = nil) {
        self.forge = forge
        self.repository = repository
        self.apiURL = apiURL
        self.contextPrefix = contextPrefix
    }

    /// fleet.yaml's settings with these. A prefix given here is a second controller's: its
    /// status branch becomes `<prefix>/status`, as its notes go under `refs/notes/<prefix>`.
    public func applied(to settings: StatusSettings) -> StatusSettings {
        var settings = settings
        if let forge { settings.forge = forge }
        if let repository { settings.repository = repository }
        if let apiURL { settings.apiURL = apiURL }
        if let contextPrefix {
            settings.contextPrefix = contextPrefix
            settings.branch = contextPrefix + "/status"
        }
        return settings
    }

    /// Where this controller's notes go: `refs/notes/flotilla`, or `refs/notes/<prefix>` for a
    /// prefix given here.
    public var notesRef: String { contextPrefix.map { "refs/notes/" + $0 } ?? GitMirror.notesRef }
}

/// Merge-to-deploy: polls the fleet repository, compiles each new head, and rolls the desired
/// state out to the devices in waves until they converge. A commit that does not validate
/// changes nothing: the last good desired state stays in force and the commit's note says why.
///
/// Everything it decides is derived from the repository and the store on every pass, so it
/// keeps no state of its own that a restart — or kill -9 — could lose.
public actor FleetController: Service, ControllerHandle {
    public struct Desired: Sendable {
        public var commit: CommitID
        public var fleet: CompiledFleet
    }

    private let configuration: ControllerConfiguration
    private let store: any FleetStore
    private let deployer: Deployer
    private let logger: Logger
    private var mirror: GitMirror?
    public private(set) var desired: Desired?
    public private(set) var head: CommitID?
    /// The first errors of the head commit, when it does not validate.
    public private(set) var headErrors: [String] = []
    public private(set) var status: FleetStatusReport?
    private var nextPoll = ContinuousClock.now
    private var lastNote: [CommitID: String] = [:]
    private var lastStatusFiles: [String: [UInt8]] = [:]
    private var reporter: (key: String, reporter: CommitStatusReporter)?

    public init(configuration: ControllerConfiguration, store: any FleetStore, deployer: Deployer, logger: Logger) {
        self.configuration = configuration
        self.store = store
        self.deployer = deployer
        self.logger = logger
        suspended = Self.loadSuspended(configuration)
    }

    /// Polls at once on the next pass (a webhook or `flotilla reconcile` asks for this).
    public func requestPoll() {
        nextPoll = .now
        wake?.resume()
        wake = nil
    }

    public func statusJSON() -> [UInt8]? { status?.json }

    public nonisolated var watchedBranch: String { configuration.branch }

    /// Apps whose new waves, heals and rollbacks are held; kept in the cache directory, so a
    /// suspension survives a restart.
    private var suspended: Set<String>

    private var suspendedPath: String { configuration.cacheDirectory + "/suspended-apps.json" }

    private static func loadSuspended(_ configuration: ControllerConfiguration) -> Set<String> {
        guard let data = FileManager.default.contents(atPath: configuration.cacheDirectory + "/suspended-apps.json"),
              let names = try? JSONDecoder().decode([String].self, from: data) else { return [] }
        return Set(names)
    }

    public func setSuspended(_ suspend: Bool, app: String) throws {
        if suspend { suspended.insert(app) } else { suspended.remove(app) }
        try FileManager.default.createDirectory(atPath: configuration.cacheDirectory, withIntermediateDirectories: true)
        try JSONEncoder().encode(suspended.sorted()).write(to: URL(fileURLWithPath: suspendedPath), options: .atomic)
        logger.info(suspend ? "app suspended" : "app resumed", metadata: ["app": "\(app)"])
        requestPoll()
    }

    private var wake: CheckedContinuation<Void, Never>?

    /// Devices that looked drifted ("app device"), with the heartbeat that first showed it; a
    /// later heartbeat still showing it confirms the drift.
    private var driftSuspects: [String: Date] = [:]

    public func run() async throws {
        while !Task.isShuttingDownGracefully, !Task.isCancelled {
            await pass()
            await nap(configuration.reconcileInterval)
        }
    }

    /// Sleeps until the next pass is due, a poll is requested, an execution ends, or shutdown
    /// begins. What came while the last pass ran shortens the sleep.
    private func nap(_ interval: Duration) async {
        var interval = interval
        if ContinuousClock.now >= nextPoll { interval = .zero } else if executionsEnded { interval = min(interval, Self.settle) }
        let timer = Task { [weak self, interval] in
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            await self?.requestPollWake()
        }
        await withCheckedContinuation { wake = $0 }
        timer.cancel()
    }

    /// How long after an execution ends the next pass comes: a wave's executions end close
    /// together, and one pass takes them all.
    static let settle: Duration = .milliseconds(250)

    /// Whether an execution ended since the last pass read the store.
    private var executionsEnded = false
    private var settling = false

    /// A device finished an execution: the next wave may be due now, not at the next interval.
    public func executionEnded() {
        executionsEnded = true
        guard wake != nil, !settling else { return }
        settling = true
        Task { [weak self] in
            try? await Task.sleep(for: Self.settle)
            await self?.settled()
        }
    }

    private func settled() {
        settling = false
        requestPollWake()
    }

    private func requestPollWake() {
        wake?.resume()
        wake = nil
    }

    /// One pass: poll when due, then reconcile.
    public func pass() async {
        if ContinuousClock.now >= nextPoll {
            let jitter = Double.random(in: 0...0.1)
            nextPoll = .now + configuration.pollInterval + configuration.pollInterval * jitter
            await poll()
        }
        guard desired != nil else { return }
        let started = ContinuousClock.now
        do {
            try await reconcile()
        } catch {
            logger.error("reconcile failed", metadata: ["error": "\(error)"])
        }
        let elapsed = ContinuousClock.now - started
        passMetrics.passes += 1
        passMetrics.lastPassSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        passMetrics.passSeconds += passMetrics.lastPassSeconds
    }

    private var passMetrics = ControllerMetrics()

    /// The commit and app states last written out, and when.
    private var lastPublished: (states: [String], at: Date) = ([], .distantPast)

    public func metrics() -> ControllerMetrics { passMetrics }

    // MARK: Watching

    func poll() async {
        do {
            if mirror == nil {
                mirror = try GitMirror(url: configuration.repository, cacheDirectory: configuration.cacheDirectory,
                                       credentials: configuration.credentials)
            }
            let mirror = mirror!, branch = configuration.branch
            let fetched = try await Self.offPool { try mirror.fetch(branch) }
            guard fetched.commit != head else { return }
            head = fetched.commit
            if fetched.forcePushed { logger.warning("the branch was force-pushed", metadata: ["commit": "\(fetched.commit)"]) }
            let tree = try await Self.offPool { try mirror.fleetTree(at: fetched.commit) }
            do {
                let fleet = try FleetLoader.load(tree)
                if let previous = desired, let text = lastNote[previous.commit], previous.commit != fetched.commit {
                    // The commit before keeps its history, and says it is no longer the one in force.
                    await writeNote(text + "superseded by \(fetched.commit)\n", on: previous.commit)
                }
                desired = Desired(commit: fetched.commit, fleet: fleet)
                headErrors = []
                logger.info("new desired state", metadata: ["commit": "\(fetched.commit)"])
            } catch {
                headErrors = error.diagnostics.prefix(5).map { "\($0.location.path):\($0.location.line):\($0.location.column): \($0.message)" }
                logger.warning("commit does not validate; the last good state stays in force",
                               metadata: ["commit": "\(fetched.commit)", "errors": "\(error.diagnostics.count)"])
                await writeNote(Self.invalidNote(commit: fetched.commit, errors: headErrors, total: error.diagnostics.count,
                                                 lastGood: desired?.commit), on: fetched.commit)
                if let fleet = desired?.fleet, let reporter = reporter(for: fleet) {
                    let contexts = fleet.apps.isEmpty ? ["fleet"] : fleet.apps.map(\.name)
                    for app in contexts {
                        await postStatus(reporter, commit: fetched.commit, context: "\(statusSettings(fleet).contextPrefix)/\(app)", state: .failure,
                                     description: "does not validate: \(headErrors.first ?? "see the note") — nothing deployed")
                    }
                }
            }
        } catch {
            logger.error("cannot read the fleet repository", metadata: ["error": "\(error)"])
        }
    }

    static func invalidNote(commit: CommitID, errors: [String], total: Int, lastGood: CommitID?) -> String {
        var text = "flotilla: failure — this commit does not validate; nothing was deployed.\n"
        text += lastGood.map { "The desired state stays at \($0).\n" } ?? "No earlier commit validated.\n"
        text += "\n" + errors.joined(separator: "\n") + "\n"
        if total > errors.count { text += "… and \(total - errors.count) more\n" }
        return text
    }

    // MARK: Reconciling

    func reconcile() async throws {
        guard let desired else { return }
        executionsEnded = false
        let fleet = desired.fleet
        let project = fleet.fleet.project
        let now = Date()
        let records = try await store.devices(project: project).filter { !$0.deleted }
        let lastHeard = Dictionary(uniqueKeysWithValues: records.map { ($0.id, $0.lastHeartbeatAt) })
        let inventory = DeviceInventory(records.map { record in
            ReportedDevice(id: record.id, tags: record.reportedTags,
                           apps: record.apps.mapValues { ReportedApp(version: $0.version, digest: $0.digest) },
                           online: record.lastHeartbeatAt.map { now.timeIntervalSince($0) <= configuration.offlineAfterSeconds } ?? false)
        })
        let plan = try Planner.plan(fleet, inventory: inventory)
        let ours = try await store.deployments(project: project, limit: 10_000).filter { $0.createdBy.hasPrefix("controller") }
        var executions: [String: [ExecutionSummary]] = [:]
        for execution in try await store.executionSummaries(deploymentIDs: ours.map(\.id)) {
            executions[execution.deploymentID, default: []].append(execution)
        }

        var suspectsNow: [String: Date] = [:]
        defer { driftSuspects = suspectsNow }
        var report = FleetStatusReport(commit: desired.commit.description, head: head?.description ?? desired.commit.description,
                                       headErrors: headErrors, apps: [])
        for appPlan in plan.apps {
            guard let app = fleet.apps.first(where: { $0.name == appPlan.name }) else { continue }
            let appDeployments = ours.filter { $0.app == app.name }
            let wanted = Set(app.targets.map(\.digest))
            // A deployment of a digest no target wants any more is superseded: what has not
            // finished is cancelled, so no device runs both.
            for deployment in appDeployments where !wanted.contains(deployment.digest) && !deployment.aborted
                && !wanted.contains(where: { deployment.createdBy == "controller:rollback:\($0)" }) {
                if executions[deployment.id]?.contains(where: { !$0.state.isFinal }) == true {
                    logger.info("superseded", metadata: ["deployment": "\(deployment.id)", "app": "\(app.name)"])
                    try await deployer.abort(deployment.id, at: now)
                    executions[deployment.id] = try await store.executionSummaries(deploymentIDs: [deployment.id])
                }
            }
            // An execution with no progress past its rollout's timeout is timed out: it counts as a
            // failure and frees its device.
            let timeout = Double(app.app.rollout.executionTimeout.components.seconds)
            for deployment in appDeployments {
                for execution in executions[deployment.id] ?? [] where !execution.state.isFinal && now.timeIntervalSince(execution.updatedAt) > timeout {
                    if try await store.timeOutExecution(id: execution.id, staleBefore: now.addingTimeInterval(-timeout), at: now) != nil {
                        logger.warning("execution timed out", metadata: ["execution": "\(execution.id)", "device": "\(execution.deviceID)"])
                        executions[deployment.id] = try await store.executionSummaries(deploymentIDs: [deployment.id])
                        await deployer.board.notify([execution.deviceID])
                    }
                }
            }
            var busy: [String: String] = [:]
            // Drifted devices a heal is correcting: still drifted until it ends.
            var healing = Set<String>()
            for deployment in appDeployments {
                for execution in executions[deployment.id] ?? [] where !execution.state.isFinal {
                    busy[execution.deviceID] = deployment.digest
                    if deployment.createdBy == "controller:heal" { healing.insert(execution.deviceID) }
                }
            }
            // Each device's newest execution of the app that was not cancelled: only that one says
            // where the device stands, so after a revert to an earlier version, that version's old
            // successes no longer count.
            var newest: [String: (at: Date, execution: String)] = [:]
            for deployment in appDeployments {
                for execution in executions[deployment.id] ?? [] where execution.state != .cancelled {
                    if let known = newest[execution.deviceID], known.at >= deployment.createdAt { continue }
                    newest[execution.deviceID] = (deployment.createdAt, execution.id)
                }
            }
            var appStatus = FleetStatusReport.App(name: app.name, targets: [], drifted: [])
            for targetPlan in appPlan.targets {
                let target = targetPlan.target
                var progress = RolloutProgress()
                var finishedAt: [String: Date] = [:]
                for deployment in appDeployments where deployment.digest == target.digest
                    && (deployment.createdBy == "controller" || deployment.createdBy == "controller:heal") {
                    for execution in executions[deployment.id] ?? [] where newest[execution.deviceID]?.execution == execution.id
                        || (execution.state.isFinal == false) {
                        switch execution.state {
                        case .succeeded:
                            progress.succeeded.insert(execution.deviceID)
                            finishedAt[execution.deviceID] = max(finishedAt[execution.deviceID] ?? .distantPast, execution.updatedAt)
                        case .failed, .timedOut: progress.failed.insert(execution.deviceID)
                        case .cancelled: break
                        case .queued, .assigned, .running: progress.active.insert(execution.deviceID)
                        }
                    }
                }
                let pending = targetPlan.changes.map { plan.deviceID($0.device) }.filter { busy[$0] == nil || busy[$0] == target.digest }
                // Drift: a device that finished this rollout, has reported since, and reports
                // something else — with nothing in flight for it. Seen in two heartbeats: one
                // built before the execution ended can arrive after its final report.
                let suspects = pending.compactMap { device -> (String, Date)? in
                    guard busy[device] == nil, let finished = finishedAt[device], let heard = lastHeard[device] ?? nil, heard > finished else {
                        return nil
                    }
                    return (device, heard)
                }
                var drifted: [String] = []
                for (device, heard) in suspects {
                    let key = app.name + " " + device
                    let first = driftSuspects[key] ?? heard
                    suspectsNow[key] = first
                    if heard > first { drifted.append(device) }
                }
                drifted += pending.filter { healing.contains($0) && busy[$0] == target.digest }
                appStatus.drifted += drifted
                let held = suspended.contains(app.name)
                if app.app.selfHeal, !drifted.isEmpty, !held {
                    try await heal(drifted, app: app, target: target, fleet: fleet, deployments: appDeployments, executions: executions,
                                   project: project, now: now)
                }
                let step = RolloutStep.next(pending: pending, progress: progress, policy: targetPlan.rollout)
                switch held ? .waiting(active: 0) : step {
                case .deploy(let devices):
                    let record = Self.deployment(of: app, target: target, fleet: fleet, createdBy: "controller", at: now)
                    try await deployer.create(record, devices: devices, at: now)
                    try await store.appendAudit(AuditRecord(at: now, project: project, actor: "controller", action: "deployment.create",
                                                            subject: record.id,
                                                            detail: "\(app.name) \(target.version) to \(devices.count) devices at \(desired.commit)"))
                    logger.info("wave", metadata: ["app": "\(app.name)", "version": "\(target.version)", "devices": "\(devices.count)"])
                case .aborted(_, _, let changed) where targetPlan.rollout.onAbort == .rollback:
                    try await rollBack(changed, app: app.name, abortedDigest: target.digest, deployments: appDeployments,
                                       executions: executions, project: project, now: now)
                default:
                    break
                }
                appStatus.targets.append(.init(group: target.group, version: target.version, devices: targetPlan.unchanged.count + targetPlan.changes.count,
                                               converged: targetPlan.unchanged.count, updating: progress.active.count,
                                               failed: progress.failed.count, offline: targetPlan.offlineCount,
                                               state: Self.label(step, held: held, remaining: targetPlan.changes.count, drifted: drifted.count)))
            }
            report.apps.append(appStatus)
        }
        status = report
        // What is written at once when it changes: the commit and the branch head (valid or
        // not), each app's and target's state, and the drifted devices. Counts alone wait for the interval.
        let states = [desired.commit.description, report.head, "\(report.headErrors)"] + report.apps.map { app in
            "\(app.name) \(FleetStatusReport.state(of: app)) \(app.targets.map(\.state)) \(app.drifted)"
        }
        let interval = Double(configuration.statusInterval.components.seconds) + Double(configuration.statusInterval.components.attoseconds) / 1e18
        guard states != lastPublished.states || now.timeIntervalSince(lastPublished.at) >= interval else { return }
        lastPublished = (states, now)
        if configuration.writeStatus { await publish(report, commit: desired.commit, settings: statusSettings(fleet)) }
        if let reporter = reporter(for: fleet) {
            for app in report.apps {
                let state: CommitStatusReporter.State = switch FleetStatusReport.state(of: app) {
                case "failure": .failure
                case "pending": .pending
                default: .success
                }
                await postStatus(reporter, commit: desired.commit, context: "\(statusSettings(fleet).contextPrefix)/\(app.name)", state: state,
                             description: app.summary)
            }
        }
    }

    /// Puts drifted devices back on the target's version, each at most once per selfHealInterval.
    private func heal(_ devices: [String], app: CompiledApp, target: DesiredTarget, fleet: CompiledFleet, deployments: [DeploymentRecord],
                      executions: [String: [ExecutionSummary]], project: String, now: Date) async throws {
        let window = Double(configuration.selfHealInterval.components.seconds)
        let recent = Set(deployments.filter { $0.createdBy == "controller:heal" && now.timeIntervalSince($0.createdAt) < window }
            .flatMap { executions[$0.id] ?? [] }.map(\.deviceID))
        let due = devices.filter { !recent.contains($0) }
        guard !due.isEmpty else { return }
        let record = Self.deployment(of: app, target: target, fleet: fleet, createdBy: "controller:heal", at: now)
        try await deployer.create(record, devices: due, at: now)
        try await store.appendAudit(AuditRecord(at: now, project: project, actor: "controller", action: "deployment.heal", subject: record.id,
                                                detail: "\(app.name) \(target.version) back on drifted \(due.joined(separator: ", "))"))
        logger.warning("drift corrected", metadata: ["app": "\(app.name)", "version": "\(target.version)", "devices": "\(due.count)"])
    }

    /// Gives the devices an aborted rollout changed the version they had before it.
    private func rollBack(_ devices: [String], app: String, abortedDigest: String, deployments: [DeploymentRecord],
                          executions: [String: [ExecutionSummary]], project: String, now: Date) async throws {
        let marker = "controller:rollback:\(abortedDigest)"
        let done = Set(deployments.filter { $0.createdBy == marker }.flatMap { executions[$0.id] ?? [] }.map(\.deviceID))
        var byDeployment: [String: [String]] = [:]
        for device in devices where !done.contains(device) {
            // The newest earlier deployment of another digest this device completed.
            let lastGood = deployments.filter { $0.digest != abortedDigest && $0.createdBy != marker }
                .sorted { $0.createdAt > $1.createdAt }
                .first { deployment in executions[deployment.id]?.contains { $0.deviceID == device && $0.state == .succeeded } == true }
            if let lastGood { byDeployment[lastGood.id, default: []].append(device) }
        }
        for (id, devices) in byDeployment {
            guard var record = deployments.first(where: { $0.id == id }) else { continue }
            record.id = Deployer.newDeploymentID()
            record.createdAt = now
            record.createdBy = marker
            record.aborted = false
            try await deployer.create(record, devices: devices, at: now)
            try await store.appendAudit(AuditRecord(at: now, project: project, actor: "controller", action: "deployment.rollback",
                                                    subject: record.id, detail: "\(app) back to \(record.version) on \(devices.count) devices"))
            logger.warning("rollout aborted; rolling back", metadata: ["app": "\(app)", "version": "\(record.version)", "devices": "\(devices.count)"])
        }
    }

    /// The word for a target in the report: converged only when every device reports the version
    /// (a finished device whose heartbeat has not come yet is still updating).
    static func label(_ step: RolloutStep, held: Bool, remaining: Int, drifted: Int) -> String {
        if held, step != .converged || remaining > 0 { return "suspended" }
        guard step == .converged, remaining > 0 else { return step.label }
        return remaining == drifted ? "drifted" : "updating"
    }

    /// A deployment of `target`'s version with the app's flow, as the compiled fleet resolves it.
    static func deployment(of app: CompiledApp, target: DesiredTarget, fleet: CompiledFleet, createdBy: String, at now: Date) -> DeploymentRecord {
        DeploymentRecord(id: Deployer.newDeploymentID(), project: fleet.fleet.project, app: app.name, version: target.version,
                         flow: app.flow.name, digest: target.digest, parameters: target.parameters, steps: app.flow.steps.map(assigned),
                         rollback: app.flow.rollback.map(assigned), artifactAllowlist: fleet.fleet.artifactSources.map(\.description),
                         createdAt: now, createdBy: createdBy)
    }

    static func assigned(_ step: Step) -> AssignedStep {
        var assigned = AssignedStep(name: step.name, kind: .run, timeoutSeconds: Int(step.timeout.components.seconds), retries: step.retries,
                                    onFailure: step.onFailure.rawValue, idempotent: step.idempotent)
        switch step.action {
        case .run(let command): assigned.command = command
        case .script(let script): assigned.kind = .script; assigned.command = script
        case .download(let url, let sha256, let destination):
            assigned.kind = .download; assigned.url = url; assigned.sha256 = sha256; assigned.destination = destination
        case .compose(let project, let file, let action):
            assigned.kind = .compose; assigned.project = project; assigned.file = file; assigned.action = action.rawValue
        case .install(let package): assigned.kind = .install; assigned.command = package
        }
        return assigned
    }

    // MARK: Reporting on the forge

    /// The reporter for the fleet's `status` settings, when they name a forge and a token is set.
    /// git's blocking work — network round trips through libgit2, object writes — runs on a
    /// thread of its own, one operation at a time, never on the cooperative pool the server's
    /// requests share.
    private static let gitQueue = DispatchQueue(label: "flotilla.controller.git")

    private static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            gitQueue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// fleet.yaml's status settings with the flags' overrides.
    private func statusSettings(_ fleet: CompiledFleet) -> StatusSettings {
        configuration.statusOverrides.applied(to: fleet.fleet.status)
    }

    private func reporter(for fleet: CompiledFleet) -> CommitStatusReporter? {
        let settings = statusSettings(fleet)
        guard settings.forge != .none, let repository = settings.repository, let token = configuration.forgeToken else { return nil }
        let key = "\(settings.forge.rawValue) \(repository) \(settings.apiURL ?? "")"
        if let reporter, reporter.key == key { return reporter.reporter }
        let made = CommitStatusReporter(settings: .init(forge: settings.forge, repository: repository, apiURL: settings.apiURL, token: token))
        reporter = (key, made)
        return made
    }

    private func postStatus(_ reporter: CommitStatusReporter, commit: CommitID, context: String, state: CommitStatusReporter.State,
                        description: String) async {
        do {
            var report: String?
            if let fleet = desired?.fleet { report = await reporter.reportURL(statusBranch: statusSettings(fleet).branch) }
            try await reporter.post(commit: commit.description, context: context, state: state, description: description, targetURL: report)
        } catch {
            logger.warning("cannot post a commit status", metadata: ["context": "\(context)", "error": "\(error)"])
        }
    }

    // MARK: Reporting in the repository

    /// The note (unless fleet.yaml says `notes: false`) and the status branch fleet.yaml names.
    private func publish(_ report: FleetStatusReport, commit: CommitID, settings: StatusSettings) async {
        if settings.notes { await writeNote(report.note(prefix: settings.contextPrefix), on: commit) }
        let files = ["STATUS.md": Array(report.markdown.utf8), "status.json": report.json]
        guard files != lastStatusFiles, let mirror else { return }
        do {
            let message = "flotilla: status at \(commit.description.prefix(12))", branch = settings.branch
            _ = try await Self.offPool { try mirror.commitFiles(files, to: branch, message: message) }
            lastStatusFiles = files
        } catch {
            logger.warning("cannot write the status branch", metadata: ["error": "\(error)"])
        }
    }

    private func writeNote(_ text: String, on commit: CommitID) async {
        guard configuration.writeStatus, lastNote[commit] != text, let mirror else { return }
        do {
            let ref = configuration.statusOverrides.notesRef
            _ = try await Self.offPool { try mirror.writeNote(text, on: commit, ref: ref) }
            lastNote[commit] = text
        } catch {
            logger.warning("cannot write the note", metadata: ["commit": "\(commit)", "error": "\(error)"])
        }
    }
}

extension RolloutStep {
    var label: String {
        switch self {
        case .converged: "converged"
        case .waiting, .deploy: "updating"
        case .aborted: "aborted"
        case .finishedWithFailures: "failed"
        }
    }
}

/// What the controller last saw, per app and target: for the note, STATUS.md and status.json.
public struct FleetStatusReport: Codable, Sendable, Equatable {
    public struct Target: Codable, Sendable, Equatable {
        public var group: String
        public var version: String
        public var devices: Int
        public var converged: Int
        public var updating: Int
        public var failed: Int
        public var offline: Int
        /// converged, updating, aborted or failed.
        public var state: String
    }

    public struct App: Codable, Sendable, Equatable {
        public var name: String
        public var targets: [Target]
        public var drifted: [String]

        /// "12/50 devices at 2.5.0", or per version when targets differ.
        public var summary: String {
            let converged = targets.reduce(0) { $0 + $1.converged }
            let devices = targets.reduce(0) { $0 + $1.devices }
            let versions = targets.filter { $0.devices > 0 }.map(\.version)
            let failed = targets.reduce(0) { $0 + $1.failed }
            var text = Set(versions).count == 1
                ? "\(converged)/\(devices) devices at \(versions[0])"
                : "\(converged)/\(devices) devices at their version (" + targets.filter { $0.devices > 0 }
                    .map { "\($0.group) \($0.version)" }.joined(separator: ", ") + ")"
            if failed > 0 { text += "; \(failed) failed" }
            if targets.contains(where: { $0.state == "aborted" }) { text += "; rollout aborted" }
            return text
        }
    }

    public var commit: String
    public var head: String
    public var headErrors: [String]
    public var apps: [App]

    /// The overall word for an app: failure when a target aborted, pending while any updates.
    public static func state(of app: App) -> String {
        if app.targets.contains(where: { $0.state == "aborted" || $0.state == "failed" }) { return "failure" }
        if app.targets.contains(where: { $0.state == "updating" }) { return "pending" }
        return "success"
    }

    /// The note's text, each app under its commit-status context.
    func note(prefix: String) -> String {
        var text = ""
        for app in apps {
            text += "\(prefix)/\(app.name): \(Self.state(of: app))\n"
            for target in app.targets {
                text += "  \(target.group) → \(target.version): \(target.converged)/\(target.devices) converged"
                    + ", \(target.updating) updating, \(target.failed) failed, \(target.offline) offline (\(target.state))\n"
            }
            if !app.drifted.isEmpty { text += "  drifted: \(app.drifted.joined(separator: ", "))\n" }
        }
        return text
    }

    var markdown: String {
        var text = "# Fleet status\n\nReconciled commit `\(commit)`"
        text += head == commit ? ".\n" : "; the branch head `\(head)` does not validate:\n\n" + headErrors.map { "- `\($0)`" }.joined(separator: "\n") + "\n"
        for app in apps {
            text += "\n## \(app.name): \(Self.state(of: app))\n\n| group | version | converged | updating | failed | offline | state |\n|---|---|---|---|---|---|---|\n"
            for target in app.targets {
                text += "| \(target.group) | \(target.version) | \(target.converged)/\(target.devices) | \(target.updating) | \(target.failed) | \(target.offline) | \(target.state) |\n"
            }
            if !app.drifted.isEmpty { text += "\nDrifted (reporting another version with nothing in flight): " + app.drifted.map { "`\($0)`" }.joined(separator: ", ") + "\n" }
        }
        return text
    }

    var json: [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array((try? encoder.encode(self)) ?? Data())
    }
}
