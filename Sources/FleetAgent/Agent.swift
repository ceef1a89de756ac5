import FleetProtocol
import Glibc
import Synchronization

/// The agent: enrolls once, then heartbeats on one thread and long-polls for work and runs it on
/// another. It only ever dials out. Everything it must not lose is on disk under the data
/// directory, written atomically: its identity, the installed apps, the journal of the execution
/// in progress, and the outbox of reports not yet delivered.
public final class Agent: Sendable {
    public static let version = AgentRelease.version

    public enum Stop: Error, CustomStringConvertible {
        case configuration(String)
        case deleted

        public var description: String {
            switch self {
            case .configuration(let why): why
            case .deleted: "this device was deleted by an operator; the agent stops (enroll again to bring it back)"
            }
        }
    }

    struct Identity: WireDecodable, WireEncodable {
        var deviceID: String
        var project: String
        var deviceToken: String

        init(deviceID: String, project: String, deviceToken: String) {
            self.deviceID = deviceID
            self.project = project
            self.deviceToken = deviceToken
        }

        init(wire value: WireJSON, path: String) throws(WireDecodingError) {
            var object = try WireObject(value, path: path)
            deviceID = try object.string("deviceID")
            project = try object.string("project")
            deviceToken = try object.string("deviceToken")
        }

        func write(to writer: inout WireWriter) {
            writer.beginObject()
            writer.field("deviceID", deviceID)
            writer.field("deviceToken", deviceToken)
            writer.field("project", project)
            writer.endObject()
        }
    }

    public let configuration: AgentConfiguration
    private let executor: any StepExecutor & Sendable
    private let outbox: Outbox
    private let apps: Mutex<[String: InstalledApp]>
    /// The execution being run, for the heartbeat: the server does not give the device other
    /// work while it resumes one the server had given up on.
    private let executing = Mutex<String?>(nil)
    private let interval: Atomic<Int>
    private let stopped = Atomic<Bool>(false)
    private let heartbeatNow = Atomic<Bool>(false)
    private let fault: String?

    private var root: String { configuration.dataDirectory }
    private var identityPath: String { root + "/identity.json" }
    private var secretPath: String { root + "/device-secret" }
    private var appsPath: String { root + "/apps.json" }
    private var journalPath: String { root + "/journal.json" }
    private var finishedPath: String { root + "/finished.json" }

    public init(configuration: AgentConfiguration, executor: any StepExecutor & Sendable,
                fault: String? = nil) throws(AgentError) {
        self.configuration = configuration
        self.executor = executor
        self.fault = fault
        try Files.makeDirectories(configuration.dataDirectory)
        chmod(configuration.dataDirectory, 0o700)
        outbox = try Outbox(directory: configuration.dataDirectory + "/outbox", limit: configuration.outboxLimit)
        var installed: [String: InstalledApp] = [:]
        if let bytes = try Files.read(configuration.dataDirectory + "/apps.json"), let members = WireJSON.parse(bytes)?.members {
            for member in members {
                if let app = try? InstalledApp(wire: member.value, path: member.key) { installed[member.key] = app }
            }
        }
        apps = Mutex(installed)
        interval = Atomic(configuration.heartbeatIntervalSeconds)
    }

    /// Runs until the device is deleted (or a setting makes running impossible).
    public func run() throws(Stop) {
        HTTPClient.initialize()
        let identity = try enroll()
        Log.info("device \(identity.deviceID) in project \(identity.project); heartbeat every \(interval.load(ordering: .relaxed)) s")
        let heartbeatThread = Worker.start { [self] in heartbeatLoop(identity) }
        workLoop(identity)
        heartbeatThread.join()
        throw .deleted
    }

    // MARK: Enrollment

    private func enroll() throws(Stop) -> Identity {
        if let bytes = try? Files.read(identityPath), let identity = try? Identity.decode(wire: bytes) { return identity }
        guard let server = configuration.server else { throw .configuration("no server: set 'server' in the configuration or pass --server") }
        _ = server
        guard let token = configuration.enrollmentToken else {
            throw .configuration("not enrolled yet and no enrollment token: set 'enrollmentToken' or pass --token")
        }
        let hardwareID = configuration.hardwareID ?? ((try? Files.readText("/etc/machine-id")) ?? nil)?.trimmed ?? ""
        guard !hardwareID.isEmpty else { throw .configuration("no hardware id: /etc/machine-id is missing; set 'hardwareID'") }
        // The secret is kept before it is sent, so a retried enrollment presents the same one.
        let secret: String
        if let existing = ((try? Files.readText(secretPath)) ?? nil)?.trimmed, existing.utf8.count >= 32 {
            secret = existing
        } else {
            secret = Random.hex(bytes: 32)
            do { try Files.writeAtomically(secretPath, Array(secret.utf8)) } catch { throw .configuration(error.description) }
        }
        let api = makeAPI(token: nil)
        let request = EnrollmentRequest(token: token, hardwareID: hardwareID, deviceSecret: secret, name: configuration.name,
                                        tags: configuration.tags.isEmpty ? nil : configuration.tags, attributes: Self.attributes(),
                                        claimCode: configuration.claimCode)
        var backoff = Backoff()
        while true {
            let response: EnrollmentResponse
            do throws(AgentAPI.Failure) {
                response = try api.enroll(request)
            } catch .unavailable(let why, let retryAfter) {
                let delay = backoff.next(retryAfter: retryAfter)
                Log.warning("cannot enroll yet (\(why)); trying again in \(Int(delay)) s")
                Clock.sleep(seconds: delay)
                continue
            } catch .deleted {
                throw .deleted
            } catch {
                throw .configuration("enrollment refused: \(error)")
            }
            let identity = Identity(deviceID: response.deviceID, project: response.project, deviceToken: response.deviceToken)
            do { try Files.writeAtomically(identityPath, Array(identity.wireJSON().utf8)) } catch { throw .configuration(error.description) }
            interval.store(max(1, response.heartbeatIntervalSeconds), ordering: .relaxed)
            Log.info("enrolled as \(response.deviceID)")
            return identity
        }
    }

    static func attributes() -> [String: String] {
        var names = utsname()
        uname(&names)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
        }
        var attributes = ["arch": field(names.machine), "kernel": field(names.release), "agentVersion": version]
        if let release = (try? Files.readText("/etc/os-release", limit: 8_192)) ?? nil {
            for line in release.split(byte: 0x0A) where line.hasPrefix("PRETTY_NAME=") {
                attributes["os"] = String(line.dropFirst("PRETTY_NAME=".count)).trimmingQuotes
            }
        }
        return attributes
    }

    private func makeAPI(token: String?) -> AgentAPI {
        AgentAPI(server: configuration.server ?? "", caFile: configuration.caFile, deviceToken: token)
    }

    // MARK: Heartbeats

    private func heartbeatLoop(_ identity: Identity) {
        let api = makeAPI(token: identity.deviceToken)
        let metrics = SystemMetrics()
        var backoff = Backoff()
        var nextBeat = Clock.monotonic()
        var nextAttempt = 0.0
        while !stopped.load(ordering: .relaxed) {
            let now = Clock.monotonic()
            if now >= nextBeat || heartbeatNow.exchange(false, ordering: .relaxed) {
                nextBeat = now + Double(interval.load(ordering: .relaxed))
                let body = Array(heartbeat(metrics).wireJSON().utf8)
                if outbox.isEmpty, now >= nextAttempt {
                    do throws(AgentAPI.Failure) {
                        let ack = try api.heartbeat(body)
                        interval.store(max(1, ack.heartbeatIntervalSeconds), ordering: .relaxed)
                        backoff.reset()
                    } catch {
                        if handle(error) { return }
                        queue(body)
                        nextAttempt = now + backoff.next(retryAfter: error.retryAfter)
                    }
                } else {
                    queue(body)
                }
            }
            if !outbox.isEmpty, Clock.monotonic() >= nextAttempt {
                do throws(AgentAPI.Failure) {
                    try outbox.flush(api)
                    backoff.reset()
                    Log.info("the server is reachable again; queued reports delivered")
                } catch {
                    if handle(error) { return }
                    let delay = backoff.next(retryAfter: error.retryAfter)
                    nextAttempt = Clock.monotonic() + delay
                    Log.warning("server unreachable (\(error)); \(outbox.entries.count) reports queued; next try in \(Int(delay)) s")
                }
            }
            let wake = outbox.isEmpty ? nextBeat : min(nextBeat, max(nextAttempt, Clock.monotonic() + 0.05))
            // Short naps, so a finished execution's heartbeat goes out at once.
            Clock.sleep(seconds: min(0.25, max(0.01, wake - Clock.monotonic())))
        }
    }

    private func queue(_ body: [UInt8]) {
        do { try outbox.enqueue(heartbeat: body) } catch { Log.error("cannot queue a heartbeat: \(error)") }
    }

    /// Stops the agent on a deleted device; says whether the caller should stop.
    private func handle(_ failure: AgentAPI.Failure) -> Bool {
        if case .deleted = failure {
            stopped.store(true, ordering: .relaxed)
            Log.error("this device was deleted by an operator; stopping")
            return true
        }
        return false
    }

    func heartbeat(_ metrics: SystemMetrics) -> Heartbeat {
        let custom = configuration.custom.map(CustomData.read) ?? [:]
        let processes = metrics.processes(configuration.processes)
        return Heartbeat(reportID: "h-" + Random.hex(bytes: 12), sentAtMilliseconds: Clock.epochMilliseconds(),
                         cpuPercent: metrics.cpuPercent(), memory: metrics.memory(), disks: metrics.disks(configuration.mounts),
                         uptimeSeconds: metrics.uptimeSeconds(), load: metrics.load(), processes: processes.isEmpty ? nil : processes,
                         custom: custom.isEmpty ? nil : custom, apps: apps.withLock { $0 }, agentVersion: Self.version,
                         executing: executing.withLock { $0 })
    }

    // MARK: Work

    private func workLoop(_ identity: Identity) {
        let api = makeAPI(token: identity.deviceToken)
        if let progress = loadJournal() {
            Log.info("resuming execution \(progress.assignment.executionID) after a restart")
            var progress = progress
            if let interrupted = progress.recoverInterruptedStep() {
                Log.warning("step '\(interrupted.name)' was interrupted; counted as failed")
            }
            save(progress)
            // Reports already made may not have reached the server; their ids make a resend harmless.
            for result in progress.results { enqueue(progress.report(for: result), progress) }
            run(&progress, api)
        }
        var entityTag: String?
        var backoff = Backoff()
        while !stopped.load(ordering: .relaxed) {
            do throws(AgentAPI.Failure) {
                try? outbox.flush(api)
                switch try api.assignments(entityTag: entityTag, waitSeconds: 30) {
                case .unchanged:
                    break
                case .changed(let list, let tag):
                    entityTag = tag
                    let finished = Set(finishedExecutions())
                    if let assignment = list.assignments.first(where: { !finished.contains($0.executionID) }) {
                        var progress = ExecutionProgress(assignment: assignment)
                        Log.info("execution \(assignment.executionID): \(assignment.app) \(assignment.version), \(assignment.steps.count) steps")
                        save(progress)
                        run(&progress, api)
                        entityTag = nil
                    }
                }
                backoff.reset()
            } catch {
                if handle(error) { return }
                let delay = backoff.next(retryAfter: error.retryAfter)
                Log.warning("cannot fetch assignments (\(error)); trying again in \(Int(delay)) s")
                Clock.sleep(seconds: delay)
            }
        }
    }

    /// Runs the execution's remaining steps, journaling before and after each one.
    private func run(_ progress: inout ExecutionProgress, _ api: AgentAPI) {
        executing.withLock { $0 = progress.assignment.executionID }
        defer { executing.withLock { $0 = nil } }
        while let (step, index, rollback) = progress.current {
            let point = "\(rollback ? "rollback" : "step"):\(index)"
            progress.begin()
            save(progress)
            injectFault("begun:" + point)
            Log.info("\(rollback ? "rollback " : "")step \(index + 1) '\(step.name)' (\(step.kind.rawValue))")
            let outcome = executor.execute(step, of: progress.assignment)
            injectFault("ran:" + point)
            let result = progress.complete(succeeded: outcome.succeeded, attempts: outcome.attempts, exitCode: outcome.exitCode,
                                           output: outcome.output, reason: outcome.reason)
            save(progress)
            injectFault("completed:" + point)
            if !outcome.succeeded { Log.warning("step '\(step.name)' failed: \(outcome.reason ?? "no reason given")") }
            enqueue(progress.report(for: result), progress)
            try? outbox.flush(api)
        }
        finish(progress, api)
    }

    /// Records the outcome: the installed version changes only when every step succeeded.
    private func finish(_ progress: ExecutionProgress, _ api: AgentAPI) {
        guard let report = progress.finalReport else { return }
        let assignment = progress.assignment
        if report.state == .succeeded {
            let installed = apps.withLock { apps in
                apps[assignment.app] = InstalledApp(version: assignment.version, digest: assignment.digest.isEmpty ? nil : assignment.digest)
                return apps
            }
            do { try Files.writeAtomically(appsPath, Array(installed.wireJSON().utf8)) } catch { Log.error("cannot record installed apps: \(error)") }
        }
        var finished = finishedExecutions()
        if !finished.contains(assignment.executionID) { finished.append(assignment.executionID) }
        var writer = WireWriter()
        writer.beginArray()
        for id in finished.suffix(64) { writer.string(id) }
        writer.endArray()
        do { try Files.writeAtomically(finishedPath, writer.bytes) } catch { Log.error("cannot record finished executions: \(error)") }
        enqueue(report, progress)
        Files.remove(journalPath)
        Log.info("execution \(assignment.executionID) \(report.state.rawValue)\(report.message.map { ": \($0)" } ?? "")")
        heartbeatNow.store(true, ordering: .relaxed)
        try? outbox.flush(api)
    }

    private func enqueue(_ report: ExecutionReport, _ progress: ExecutionProgress) {
        do { try outbox.enqueue(report: report, execution: progress.assignment.executionID) } catch {
            Log.error("cannot queue a report: \(error)")
        }
    }

    private func save(_ progress: ExecutionProgress) {
        do { try Files.writeAtomically(journalPath, Array(progress.wireJSON().utf8)) } catch {
            // Without a journal a crash could run a step twice: stop rather than go on blind.
            Log.error("cannot write the journal: \(error); stopping")
            exit(1)
        }
    }

    private func loadJournal() -> ExecutionProgress? {
        guard let bytes = (try? Files.read(journalPath)) ?? nil else { return nil }
        do {
            return try ExecutionProgress.decode(wire: bytes)
        } catch {
            Log.error("the journal \(journalPath) cannot be read (\(error.message)); set aside as journal.json.unreadable")
            rename(journalPath, journalPath + ".unreadable")
            return nil
        }
    }

    private func finishedExecutions() -> [String] {
        guard let bytes = (try? Files.read(finishedPath)) ?? nil, case .array(let items)? = WireJSON.parse(bytes) else { return [] }
        return items.compactMap { if case .string(let id) = $0 { id } else { nil } }
    }

    /// Test hook: `FLOTILLA_AGENT_FAULT=begun:step:1` kills the agent with SIGKILL at that point.
    private func injectFault(_ point: String) {
        guard let fault, fault == point else { return }
        Log.warning("fault injection: killing the agent at \(point)")
        kill(getpid(), SIGKILL)
    }
}

/// Exponential back-off with full jitter: 1 s, 2 s, 4 s … up to 5 minutes, each drawn from the
/// upper half of its range so a fleet that lost its server does not return in step.
struct Backoff {
    var attempt = 0
    var base = 1.0
    var cap = 300.0

    mutating func next(retryAfter: Int? = nil) -> Double {
        defer { attempt += 1 }
        let ceiling = min(cap, base * Double(1 << min(attempt, 16)))
        let delay = Double.random(in: ceiling / 2...ceiling)
        return max(delay, Double(retryAfter ?? 0))
    }

    mutating func reset() { attempt = 0 }
}

extension AgentAPI.Failure {
    var retryAfter: Int? {
        if case .unavailable(_, let seconds) = self { return seconds }
        return nil
    }
}

extension String {
    var trimmingQuotes: String {
        var text = Substring(self)
        if text.hasPrefix("\"") { text = text.dropFirst() }
        if text.hasSuffix("\"") { text = text.dropLast() }
        return String(text)
    }
}

/// A thread of its own (the agent links no Dispatch and no concurrency runtime).
final class Worker {
    private var thread = pthread_t()

    private init() {}

    static func start(_ body: @escaping @Sendable () -> Void) -> Worker {
        let worker = Worker()
        let box = Unmanaged.passRetained(Box(body))
        let status = pthread_create(&worker.thread, nil, { context in
            let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        precondition(status == 0, "cannot start a thread")
        return worker
    }

    func join() { pthread_join(thread, nil) }

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
