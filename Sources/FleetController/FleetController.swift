public import FleetCore
public import FleetGit
public import FleetStatus
public import FleetProtocol
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
    /// The token may go to a forge over plain http (a forge on a trusted local network).
    public var allowPlainHTTPForge = false
    /// When set, only a head signed by one of these keys is rolled out; any other is treated as
    /// an invalid commit. The server's operator names them, never the repository.
    public var trustedSigners: TrustedKeys?
    /// A drifting device of a `selfHeal: true` app is corrected at most this often.
    public var selfHealInterval: Duration = .seconds(600)
    /// While a rollout runs its counts change on every pass; they are written to the note, the
    /// status branch and the forge at most this often. A change of state (pending, success,
    /// failure) or of commit is written at once.
    public var statusInterval: Duration = .seconds(10)
    /// fleet.yaml's `status:` as flags override it: two controllers reading one repository
    /// (staging and production, say) post under two context prefixes.
    public var statusOverrides = StatusOverrides()
    /// The project the server's operator assigned this repository (`serve --config`). A head
    /// whose fleet.yaml names another project is refused like an invalid commit: a repository
    /// cannot move itself into another project's devices. Nil with `serve --repo`, where the
    /// repository's own `project:` is taken.
    public var project: String?

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
        /// Its subject and author, as `git log` shows them; nil when the repository could not tell.
        public var summary: CommitSummary? = nil
    }

    private let configuration: ControllerConfiguration
    private let store: any FleetStore
    private let deployer: Deployer
    private let logger: Logger
    /// The repository: given (a `MemoryRepository` in tests), or a `GitMirror` made on the first
    /// poll that can make it.
    private var mirror: (any FleetRepository)?
    /// Makes a reporter for the fleet's status settings: `CommitStatusReporter`, or a double.
    private let makeReporter: @Sendable (CommitStatusReporter.Settings) -> any CommitStatusPosting
    public private(set) var desired: Desired?
    public private(set) var head: CommitID?
    /// The first errors of the head commit, when it does not validate.
    public private(set) var headErrors: [String] = []
    public private(set) var status: FleetStatusReport?
    private var nextPoll = ContinuousClock.now
    private var lastNote: [CommitID: String] = [:]
    private var lastStatusFiles: [String: [UInt8]] = [:]
    /// The reporter for the current status settings; nil inside when they cannot be posted to.
    private var reporter: (key: String, reporter: (any CommitStatusPosting)?)?

    /// `repository` and `forge` replace git and the forge's HTTP API, for tests of the wiring
    /// without processes: `MemoryRepository` and `MemoryForge.reporter`.
    public init(configuration: ControllerConfiguration, store: any FleetStore, deployer: Deployer, logger: Logger,
                repository: (any FleetRepository)? = nil,
                forge: @escaping @Sendable (CommitStatusReporter.Settings) -> any CommitStatusPosting = { CommitStatusReporter(settings: $0) }) {
        mirror = repository
        makeReporter = forge
        self.configuration = configuration
        self.store = store
        self.deployer = deployer
        var logger = logger
        if let project = configuration.project { logger[metadataKey: "project"] = "\(project)" }
        self.logger = logger
        gitQueue = DispatchQueue(label: "flotilla.controller.git." + (configuration.project ?? "repository"))
    }

    /// Polls at once on the next pass (a webhook or `flotilla reconcile` asks for this).
    public func requestPoll() {
        nextPoll = .now
        wake?.resume()
        wake = nil
    }

    public func statusJSON() -> [UInt8]? { status?.json }

    public func scope() -> (project: String, apps: [String])? {
        desired.map { ($0.fleet.fleet.project, $0.fleet.apps.map(\.name)) }
    }

    public func target(app: String, group: String) -> (version: String, digest: String, approval: Bool)? {
        guard let target = desired?.fleet.apps.first(where: { $0.name == app })?.targets.first(where: { $0.group == group }) else { return nil }
        return (target.version, target.digest, target.gate.approval)
    }

    /// Declared `async`, as the protocol's default is: called on the concrete type from an async
    /// context (a replica's own controller), a synchronous one would lose to that default.
    public func remoteAccess() async -> RemoteAccess? { desired?.fleet.fleet.remote }

    /// What a standby replica serves in this controller's place (nil before a commit validated).
    public func snapshot(leader: String, at date: Date) -> ControllerSnapshot? {
        guard let fleet = desired?.fleet else { return nil }
        let targets = fleet.apps.flatMap { app in
            app.targets.map { ControllerSnapshot.Target(app: app.name, group: $0.group, version: $0.version, digest: $0.digest,
                                                        approval: $0.gate.approval) }
        }
        return ControllerSnapshot(project: fleet.fleet.project, apps: fleet.apps.map(\.name), targets: targets,
                                  status: status.map { String(decoding: $0.json, as: UTF8.self) }, leader: leader, publishedAt: date,
                                  remote: fleet.fleet.remote, inventory: currentInventory(), alerting: fleet.alerting)
    }

    /// Declared `async`, as the protocol's default is (see `remoteAccess`).
    public func inventory() async -> FleetInventory? { currentInventory() }

    /// Declared `async`, as the protocol's default is (see `remoteAccess`).
    public func alerting() async -> AlertingSettings? { desired?.fleet.alerting }

    private func currentInventory() -> FleetInventory? {
        guard let fleet = desired?.fleet else { return nil }
        return FleetInventory(groups: fleet.groups.map { FleetInventory.Group(name: $0.name, selector: $0.selector?.description,
                                                                             devices: $0.deviceIDs.map(\.value)) },
                              declaredTags: Dictionary(fleet.devices.map { ($0.id, $0.tags) }, uniquingKeysWith: { first, _ in first }))
    }

    /// Who this controller is among replicas: the same repository, branch and project on each.
    public nonisolated var replicaKey: String {
        "\(configuration.project ?? "") \(RemoteURL.redact(configuration.repository)) \(configuration.branch)"
    }

    public nonisolated var watchedBranch: String { configuration.branch }

    public nonisolated var assignedProject: String? { configuration.project }

    /// Apps whose new waves, heals and rollbacks are held are kept in the store with the project,
    /// so a suspension survives a restart and a move from `--repo` to `--config`. Earlier releases
    /// kept them in a file in the git cache; it is taken into the store once, then removed.
    private var legacySuspensionsPath: String { configuration.cacheDirectory + "/suspended-apps.json" }

    private var legacySuspensionsTaken = false

    private func suspendedApps(project: String) async throws -> Set<String> {
        // Looked for once, not on every pass.
        if !legacySuspensionsTaken, let data = FileManager.default.contents(atPath: legacySuspensionsPath) {
            for app in (try? JSONDecoder().decode([String].self, from: data)) ?? [] {
                try await store.setSuspended(true, app: app, project: project, at: Date())
            }
            try FileManager.default.removeItem(atPath: legacySuspensionsPath)
            logger.info("suspensions moved from the git cache into the store")
        }
        legacySuspensionsTaken = true
        return try await store.suspendedApps(project: project)
    }

    public func setSuspended(_ suspend: Bool, app: String) async throws {
        guard let project = configuration.project ?? desired?.fleet.fleet.project else {
            throw StoreError(.notFound, "the controller has not read a commit yet")
        }
        try await store.setSuspended(suspend, app: app, project: project, at: Date())
        logger.info(suspend ? "app suspended" : "app resumed", metadata: ["app": "\(app)"])
        requestPoll()
    }

    private var wake: CheckedContinuation<Void, Never>?

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
        if let recheck = recheckAfter { interval = min(interval, recheck) }
        let timer = Task { [weak self, interval] in
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            await self?.requestPollWake()
        }
        // Cancelled (this replica stopped leading): the pass loop ends now, not at the next interval.
        await withTaskCancellationHandler {
            await withCheckedContinuation { wake = $0 }
        } onCancel: {
            Task { await self.requestPollWake() }
        }
        timer.cancel()
    }

    /// How long after an execution ends the next pass comes: a wave's executions end close
    /// together, and one pass takes them all.
    static let settle: Duration = .milliseconds(250)

    /// How soon the last decision asked to be made again (health observations).
    private var recheckAfter: Duration?

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
        passMetrics.lastPassSeconds = elapsed.seconds
        passMetrics.passSeconds += passMetrics.lastPassSeconds
    }

    private var passMetrics = ControllerMetrics()

    /// The commit and app states last written out, and when.
    private var lastPublished: (states: [String], at: Date) = ([], .distantPast)

    public func metrics() -> ControllerMetrics { passMetrics }

    // MARK: Watching

    func poll() async {
        // A head that could not be read (its signature or its tree) is read again at the next
        // poll, not taken as seen: a passing failure must not leave a commit never reconciled.
        let seen = head
        do {
            if mirror == nil {
                mirror = try GitMirror(url: configuration.repository, cacheDirectory: configuration.cacheDirectory,
                                       credentials: configuration.credentials)
            }
            let mirror = mirror!, branch = configuration.branch
            let fetched = try await offPool { try mirror.fetch(branch) }
            guard fetched.commit != head else { return }
            head = fetched.commit
            if fetched.forcePushed { logger.warning("the branch was force-pushed", metadata: ["commit": "\(fetched.commit)"]) }
            if let trusted = configuration.trustedSigners {
                let verification = try await offPool { try mirror.verifySignature(of: fetched.commit, trusted: trusted) }
                if let refusal = Self.signatureRefusal(verification) {
                    await refuse(fetched.commit, errors: [refusal], total: 1, why: "is not signed by an allowed signer")
                    return
                }
            }
            let tree = try await offPool { try mirror.fleetTree(at: fetched.commit) }
            // Loaded on the git queue too: a large repository takes a while, and the shared
            // threads serve every project's devices meanwhile.
            let loaded = try await offPool { Result { () throws(FleetValidationError) in try FleetLoader.load(tree) } }
            do {
                let fleet = try loaded.get()
                if let project = configuration.project, fleet.fleet.project != project {
                    let place = fleet.fleet.location
                    await refuse(fetched.commit, errors: ["\(place.path):\(place.line):\(place.column): fleet.yaml says project '\(fleet.fleet.project)', "
                                                          + "but this server reconciles this repository as project '\(project)'"],
                                 total: 1, why: "names another project")
                    return
                }
                if let previous = desired, let text = lastNote[previous.commit], previous.commit != fetched.commit {
                    // The commit before keeps its history, and says it is no longer the one in force.
                    await writeNote(text + "superseded by \(fetched.commit)\n", on: previous.commit)
                }
                let summary = try? await offPool { try mirror.commitSummary(fetched.commit) }
                desired = Desired(commit: fetched.commit, fleet: fleet, summary: summary)
                headErrors = []
                logger.info("new desired state", metadata: ["commit": "\(fetched.commit)"])
            } catch {
                let errors = error.diagnostics.prefix(5).map { "\($0.location.path):\($0.location.line):\($0.location.column): \($0.message)" }
                await refuse(fetched.commit, errors: errors, total: error.diagnostics.count, why: "does not validate")
            }
        } catch {
            head = seen
            logger.error("cannot read the fleet repository; trying again at the next poll", metadata: ["error": "\(error)"])
        }
    }

    /// Why a head's signature does not let it be rolled out, or nil when it does.
    static func signatureRefusal(_ verification: SignatureVerification) -> String? {
        let signer = verification.signer.map { "signed by \($0)" }
        switch verification.verdict {
        case .good: return nil
        case .unsigned: return "the commit is not signed; the server requires a signature by an allowed signer"
        case .unknownKey:
            return "\(signer ?? "signed") with a key that is not an allowed signer (\(DisplayText.safe(verification.detail, limit: 200)))"
        case .bad:
            return "\(signer ?? "signed"), but the signature does not match the commit: it was altered after signing "
                + "(\(DisplayText.safe(verification.detail, limit: 200)))"
        }
    }

    /// A head that is not rolled out: the last good state stays in force, and the note and the
    /// forge say why.
    private func refuse(_ commit: CommitID, errors: [String], total: Int, why: String) async {
        // Errors quote what the repository says: cut, and their control characters written out,
        // before they go to the note, the forge, status.json and STATUS.md.
        let errors = errors.map { DisplayText.safe($0, limit: 600) }
        headErrors = errors
        logger.warning("commit \(why); the last good state stays in force", metadata: ["commit": "\(commit)", "errors": "\(total)"])
        await writeNote(FleetStatusReport.invalidNote(commit: commit.description, errors: errors, total: total, lastGood: desired?.commit.description, why: why), on: commit)
        if let fleet = desired?.fleet, let reporter = reporter(for: fleet) {
            let contexts = fleet.apps.isEmpty ? ["fleet"] : fleet.apps.map(\.name)
            for app in contexts {
                await postStatus(reporter, commit: commit, context: "\(statusSettings(fleet).contextPrefix)/\(app)", state: .failure,
                                 description: "\(why): \(errors.first ?? "see the note") — nothing deployed")
            }
        }
    }


    // MARK: Reconciling

    /// One reconcile: gather a snapshot, decide, apply, report. The report is written even
    /// when applying fails: an app whose actions fail carries the error, and the others go on.
    func reconcile() async throws {
        guard let desired else { return }
        executionsEnded = false
        let now = Date()
        let gathered = try await SnapshotGatherer(store: store, settings: rolloutSettings)
            .gather(desired: desired, head: head, headErrors: headErrors,
                    suspended: try await suspendedApps(project: desired.fleet.fleet.project), now: now)
        passMetrics.lastExecutionsRead = gathered.executionsRead
        passMetrics.lastExecutionsKept = gathered.snapshot.executions.count
        logger.debug("gathered the fleet", metadata: [
            "devices": "\(gathered.snapshot.inventory.count)", "deployments": "\(gathered.deployments.count)",
            "executionsRead": "\(gathered.executionsRead)", "executionsKept": "\(gathered.snapshot.executions.count)",
        ])
        var decision = try RolloutDecision.decide(gathered.snapshot)
        // An observed device passes at its first heartbeat after its observation: look again
        // then (and, once it has ended, every second), not only at the next interval.
        recheckAfter = decision.recheckAt.map { .seconds(max(1, $0.timeIntervalSince(now))) }
        let applier = ActionApplier(store: store, deployer: deployer, logger: logger, fleet: desired.fleet, commit: desired.commit,
                                    deployments: gathered.deployments, projectPinned: configuration.project != nil)
        var failures: [String: String] = [:]
        for action in decision.actions where failures[action.app] == nil {
            do {
                try await applier.apply(action, at: now)
            } catch {
                failures[action.app] = "\(error)"
                logger.error("cannot apply a rollout action", metadata: ["app": "\(action.app)", "error": "\(error)"])
            }
        }
        for index in decision.report.apps.indices {
            decision.report.apps[index].error = failures[decision.report.apps[index].name]
        }
        await report(decision.report, desired: desired, now: now)
    }

    private var rolloutSettings: RolloutSettings {
        RolloutSettings(offlineAfter: configuration.offlineAfterSeconds, selfHealInterval: configuration.selfHealInterval.seconds)
    }

    /// Writes the report where people look: the note, the status branch, the forge. What is
    /// written at once when it changes: the commit and the branch head (valid or not), each
    /// app's and target's state, and the drifted devices. Counts alone wait for the interval.
    private func report(_ report: FleetStatusReport, desired: Desired, now: Date) async {
        var report = report
        report.commitSubject = desired.summary.map { DisplayText.safe($0.subject, limit: 200) }
        report.commitAuthor = desired.summary.map { DisplayText.safe($0.author, limit: 100) }
        if let reporter = reporter(for: desired.fleet) { report.commitURL = await reporter.commitURL(desired.commit.description) }
        if !desired.fleet.alertRules.isEmpty,
           let firing = (try? await store.alerts(project: desired.fleet.fleet.project))?.filter({ $0.state == .firing }) {
            // What the server's alert engine keeps (a store that cannot answer now leaves them out
            // of this pass). Published with the counts, at the status interval: alerts that flap
            // never write a commit each.
            report.alertsFiring = firing.count
            report.alerts = firing.prefix(FleetStatusReport.alertLimit).map {
                FleetStatusReport.Alert(rule: $0.rule, device: $0.device, severity: $0.severity.rawValue,
                                        firingAt: Timestamp.format($0.firingAt ?? $0.since), observed: $0.observed, summary: $0.summary)
            }
        }
        status = report
        let fleet = desired.fleet
        let states = [desired.commit.description, report.head, "\(report.headErrors)"] + report.apps.map { app in
            "\(app.name) \(FleetStatusReport.state(of: app)) \(app.targets.map(\.label)) \(app.drift) \(app.probeFailures) \(app.error ?? "")"
        }
        guard states != lastPublished.states || now.timeIntervalSince(lastPublished.at) >= configuration.statusInterval.seconds else { return }
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

    // MARK: Reporting on the forge

    /// The reporter for the fleet's `status` settings, when they name a forge and a token is set.
    /// git's blocking work — network round trips through libgit2, object writes — runs on a
    /// thread of its own, one operation at a time, never on the cooperative pool the server's
    /// requests share.
    /// Each controller has its own thread, so one project's unreachable remote never holds
    /// another's fetch back.
    private let gitQueue: DispatchQueue

    private func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        let queue = gitQueue
        return try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try work() }) }
        }
    }

    /// fleet.yaml's status settings with the flags' overrides.
    private func statusSettings(_ fleet: CompiledFleet) -> StatusSettings {
        configuration.statusOverrides.applied(to: fleet.fleet.status)
    }

    private func reporter(for fleet: CompiledFleet) -> (any CommitStatusPosting)? {
        let settings = statusSettings(fleet)
        guard settings.forge != .none, let repository = settings.repository, let token = configuration.forgeToken else { return nil }
        let endpoint = ForgeEndpoint.resolve(forge: settings.forge, operatorURL: configuration.statusOverrides.apiURL,
                                             repositoryURL: fleet.fleet.status.apiURL, allowPlainHTTP: configuration.allowPlainHTTPForge)
        let key = "\(settings.forge.rawValue) \(repository) \(endpoint.root ?? "") \(fleet.fleet.status.apiURL ?? "")"
        if let reporter, reporter.key == key { return reporter.reporter }
        // Once per change of settings, not on every pass.
        if let warning = endpoint.warning { logger.warning("forge statuses: \(warning)") }
        let made = endpoint.root.map { makeReporter(.init(forge: settings.forge, repository: repository, apiURL: $0, token: token)) }
        reporter = (key, made)
        return made
    }

    private func postStatus(_ reporter: any CommitStatusPosting, commit: CommitID, context: String, state: CommitStatusReporter.State,
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
            _ = try await offPool { try mirror.commitFiles(files, to: branch, message: message) }
            lastStatusFiles = files
        } catch {
            logger.warning("cannot write the status branch", metadata: ["error": "\(error)"])
        }
    }

    private func writeNote(_ text: String, on commit: CommitID) async {
        guard configuration.writeStatus, lastNote[commit] != text, let mirror else { return }
        do {
            let ref = configuration.statusOverrides.notesRef
            _ = try await offPool { try mirror.writeNote(text, on: commit, ref: ref) }
            lastNote[commit] = text
        } catch {
            logger.warning("cannot write the note", metadata: ["commit": "\(commit)", "error": "\(error)"])
        }
    }
}
