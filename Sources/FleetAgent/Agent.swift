import FleetProtocol
import Glibc
import Synchronization

/// The agent: enrolls once, then heartbeats on one thread and long-polls for work and runs it on
/// another. It only ever dials out. Everything it must not lose is on disk under the data
/// directory, written atomically: its identity, the installed apps, the journal of the execution
/// in progress, and the outbox of reports not yet delivered.
public final class Agent: Sendable {
    public static let version = AgentVersion.current

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
    let executor: any StepExecutor & Sendable
    let outbox: Outbox
    let apps: Mutex<[String: InstalledApp]>
    /// Each installed app's probe, as its last install brought it; and what each last said.
    let probes: Mutex<[String: AssignedProbe]>
    let probeResults = Mutex<[String: ProbeResult]>([:])
    /// Apps whose probe runs next (just installed); and a count of installs, so a probe that ran
    /// across one is not believed.
    let probesDue = Mutex<Set<String>>([])
    let installs = Atomic<Int>(0)
    /// The execution being run, for the heartbeat: the server does not give the device other
    /// work while it resumes one the server had given up on.
    let executing = Mutex<String?>(nil)
    let interval: Atomic<Int>
    let stopped = Atomic<Bool>(false)
    let heartbeatNow = Atomic<Bool>(false)
    /// A heartbeat of this run was acknowledged: the server heard this agent, at its version.
    let heardBack = Atomic<Bool>(false)
    /// The server's last heartbeat answer said the project allows remote commands.
    let remoteAllowed = Atomic<Bool>(false)
    /// Remote commands being run now, by id: one the server sends again is not run twice.
    let remoteRunning = Mutex<Set<String>>([])
    let fault: String?

    var root: String { configuration.dataDirectory }
    var identityPath: String { configuration.identityPath }
    var secretPath: String { root + "/device-secret" }
    var appsPath: String { root + "/apps.json" }
    var journalPath: String { root + "/journal.json" }
    var finishedPath: String { root + "/finished.json" }
    var probesPath: String { root + "/probes.json" }

    public init(configuration: AgentConfiguration, executor: any StepExecutor & Sendable,
                fault: String? = nil) throws(AgentError) {
        self.configuration = configuration
        self.executor = executor
        self.fault = fault
        try Files.makeDirectories(configuration.dataDirectory)
        chmod(configuration.dataDirectory, 0o700)
        for directory in [configuration.dataDirectory, configuration.dataDirectory + "/outbox"] {
            let removed = Files.removeLeftovers(in: directory)
            if removed > 0 { Log.info("removed \(removed) files an interrupted write left in \(directory)") }
        }
        outbox = try Outbox(directory: configuration.dataDirectory + "/outbox", limit: configuration.outboxLimit)
        apps = Mutex(try Self.readMap(configuration.dataDirectory + "/apps.json") as [String: InstalledApp])
        probes = Mutex(Self.loadProbes(configuration.dataDirectory + "/probes.json"))
        interval = Atomic(configuration.heartbeatIntervalSeconds)
    }

    /// Runs until the device is deleted (or a setting makes running impossible).
    public func run() throws(Stop) {
        HTTPClient.initialize()
        let identity = try enroll()
        Log.info("device \(identity.deviceID) in project \(identity.project); heartbeat every \(interval.load(ordering: .relaxed)) s")
        let heartbeatThread = Worker.start { [self] in heartbeatLoop(identity) }
        let probeThread = Worker.start { [self] in probeLoop() }
        let remoteThread = Worker.start { [self] in remoteLoop(identity) }
        workLoop(identity)
        heartbeatThread.join()
        probeThread.join()
        remoteThread.join()
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
                // A file written with CRLF, or anything else odd in it, is not sent as a control character.
                let value = String(line.dropFirst("PRETTY_NAME=".count)).unicodeScalars.filter { !StepRules.isControl($0) }
                attributes["os"] = String(String.UnicodeScalarView(value)).trimmingQuotes
            }
        }
        return attributes
    }

    func makeAPI(token: String?) -> AgentAPI {
        AgentAPI(server: configuration.server ?? "", caFile: configuration.caFile, deviceToken: token)
    }

}
