import ArgumentParser
import FleetController
import FleetCore
import FleetGit
import FleetServer
import FleetStatus
import FleetStore
import FleetStorePostgres
import FleetStoreSQLite
#if canImport(Glibc)
// `stat`'s fields: in a release build the type is found through CoreFoundation's module map,
// whose members must then be imported from it.
import CoreFoundation
import Glibc
#endif
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import UnixSignals

/// `flotilla serve`: the fleet server, with an embedded SQLite database.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the fleet server: device registry, enrollment, heartbeats, the operator API.",
        discussion: "Stops gracefully on SIGTERM or SIGINT, committing heartbeats still waiting."
    )

    @OptionGroup var data: DataOptions

    @Option(help: ArgumentHelp("The key secret flow parameters are sealed with (made on first start; default <data>/secret-key).",
                               discussion: "Keep it apart from the database's backups: the database alone opens no secret. Losing it loses every secret; set them again."))
    var secretKeyFile: String?

    @Option(help: ArgumentHelp("The file device tokens are signed with (made on first start; default <data>/device-signing-key.pem).",
                               discussion: "Every replica on one database needs the same file.", valueName: "file"))
    var signingKeyFile: String?

    @Option(help: ArgumentHelp("This server's name among the replicas on one database (default HOST:PORT).", valueName: "name"))
    var replicaName: String?

    @Option(help: "Address to listen on, host:port.")
    var listen: String = "127.0.0.1:8080"

    @Option(help: "Seconds between device heartbeats.")
    var heartbeatInterval: Int = 25

    @Option(help: "Missed heartbeats after which a device is offline.")
    var offlineAfter: Int = 3

    @Option(help: ArgumentHelp("How long each heartbeat is kept whole: 1h to 7d.",
                               discussion: "Then it is summed up into the metrics history. Health checks read whole heartbeats: keep this longer than the longest 'observe' of any app (at most 24h). A day of whole heartbeats is most of the database: about 3 MB per device at a 25 s cycle."))
    var heartbeatRetention: String = "24h"

    @Option(help: ArgumentHelp("How long each device's metrics history is kept: 1d to 400d, such as 30d.",
                               discussion: "Heartbeats are kept a day, then summed up per device and ten minutes into the history (GET /api/v1/devices/{id}/metrics)."))
    var metricsRetention: String = "7d"

    @Option(help: ArgumentHelp("Seconds a connection may send nothing before it is closed.",
                               discussion: "Between requests and within one's headers and body; a long-poll waiting for its answer is not idle."))
    var idleTimeout: Int = 30

    @Option(help: ArgumentHelp("Seconds a request's body may take to arrive in full, from its head on.",
                               discussion: "A client that drips its body slower is disconnected; a long-poll waiting for its answer is not affected."))
    var requestTimeout: Int = 60

    @Option(help: ArgumentHelp("Connections accepted at once; more wait in the backlog.",
                               discussion: "Defaults to the open-file limit less 256 descriptors kept for the database and the git mirror."))
    var maxConnections: Int?

    @Option(help: ArgumentHelp("Devices' long-polls held open at once; agents past it ask again 15-30 s later.",
                               discussion: "Each held long-poll keeps a connection and about 25 kB. Past the limit an agent is answered at once and asks again in 15-30 s on a new connection, so it sees new work up to that much later; agents too old to be told so are still held. Defaults to seven eighths of --max-connections."))
    var maxLongPolls: Int?

    @Option(help: ArgumentHelp("Requests a second each device may send on average, of each kind (heartbeats and reports; remote output; polls); 0 for no limit.",
                               discussion: "A device past an allowance is answered 429 with Retry-After, and its agent sends again then, losing nothing. Bounds what a compromised device can make the server store and do. Counted per replica."))
    var deviceRequestRate: Double = DeviceRequestAllowance.standard.perSecond

    @Option(help: ArgumentHelp("Requests each device may send at once before --device-request-rate applies.",
                               discussion: "Room for an agent sending what it queued during an outage (its outbox keeps 1,000 entries by default)."))
    var deviceRequestBurst: Int = Int(DeviceRequestAllowance.standard.burst)

    @Option(help: ArgumentHelp("Devices a second each enrollment token may enroll on average; 0 for no limit.",
                               discussion: "The enrollment token is on every device: this bounds how fast whoever took one makes devices of their own. Past it, agents are told when to ask again."))
    var enrollmentRate: Double = DeviceRequestAllowance.enrollments.perSecond

    @Option(help: ArgumentHelp("Devices each enrollment token may enroll at once before --enrollment-rate applies.",
                               discussion: "Room for a fleet coming up at once on its first boot."))
    var enrollmentBurst: Int = Int(DeviceRequestAllowance.enrollments.burst)

    @Flag(help: ArgumentHelp("Always mark the web console's session cookie Secure: browsers reach this server over https through a proxy.",
                             discussion: "Without it the cookie is Secure when the proxy says https in X-Forwarded-Proto."))
    var secureCookies = false

    @Option(name: .customLong("alert-receiver-allow"),
            help: ArgumentHelp("A URL prefix alert receivers must be under (repeatable), such as http://alertmanager:9093/.",
                               discussion: "Whoever writes a fleet repository chooses where its alerts are posted (fleet.yaml's alerts:); with this, only under these prefixes. Without it, any http(s) URL."))
    var alertReceiverAllow: [String] = []

    @Option(help: ArgumentHelp("Run the projects this file lists, each with its own fleet repository (see docs/SERVER-CONFIG.md).",
                               discussion: "Each project's controller runs apart: one project's invalid commit or unreachable remote never holds another back. Instead of --repo and its flags."))
    var config: String?

    @Option(help: ArgumentHelp("Watch this fleet repository and roll it out: a path, file://, git://, https:// or ssh:// URL.",
                               discussion: "An HTTPS token is read from FLOTILLA_GIT_TOKEN."))
    var repo: String?

    @Option(help: ArgumentHelp("The project the repository is reconciled as, with --repo.",
                               discussion: "A head whose fleet.yaml names another project is refused like an invalid commit. Without it, the repository's own fleet.yaml names the project."))
    var project: String?

    @Option(help: "The branch to reconcile, with --repo.")
    var branch: String = "main"

    @Option(help: "Seconds between polls of the repository, with --repo (or each project of --config without its own pollInterval).")
    var pollInterval: Double = 15

    @Option(help: "Seconds between reconcile passes, with --repo.")
    var reconcileInterval: Double = 2

    @Option(help: ArgumentHelp("Least seconds between two writes of a rollout's changing counts, with --repo.",
                               discussion: "To the note, the status branch and the forge; a change of state is written at once."))
    var statusInterval: Double = 10

    @Option(help: ArgumentHelp("The forge whose commit-status API gets statuses: github, gitlab, gitea or none.",
                               discussion: "Overrides fleet.yaml status.forge, as do the other --forge-* and --status-context-prefix flags."))
    var forge: String?

    @Option(help: "The repository on the forge: owner/name (GitHub, Gitea) or a project id or path (GitLab).")
    var forgeRepository: String?

    @Option(help: ArgumentHelp("The forge's API base URL, for a self-hosted forge.",
                               discussion: "fleet.yaml's status.apiURL is followed only on this host (or the public GitHub and GitLab): the repository cannot send the forge token elsewhere."))
    var forgeApiURL: String?

    @Flag(help: "Allow the forge token over plain http, for a forge on a trusted local network.")
    var forgeAllowHttp = false

    @Option(help: ArgumentHelp("Roll out only commits signed by a key in this OpenSSH allowed-signers file, with --repo.",
                               discussion: "An unsigned or badly signed head is treated like an invalid commit: nothing is deployed, the last good state stays, and the note and the forge say who signed it and why it was refused. The repository cannot vouch for itself: the file is the server's."))
    var allowedSigners: String?

    @Option(help: "Roll out only commits signed by a key in this OpenPGP keyring (gpg --export), with --repo.")
    var trustedGpgKeyring: String?

    @Option(help: ArgumentHelp("Commit statuses are <prefix>/<app>; the default is fleet.yaml's (flotilla).",
                               discussion: "Two controllers reading one repository need two prefixes, so neither overwrites the other: with this flag, notes go under refs/notes/<prefix> and the status branch is <prefix>/status."))
    var statusContextPrefix: String?

    var statusOverrides: StatusOverrides {
        StatusOverrides(forge: forge.flatMap(StatusSettings.Forge.init(rawValue:)), repository: forgeRepository, apiURL: forgeApiURL,
                        contextPrefix: statusContextPrefix)
    }

    @Option(help: ArgumentHelp("A file holding the token for the forge's commit-status API (fleet.yaml status.forge).",
                               discussion: "Or FLOTILLA_FORGE_TOKEN in the environment. The token is never logged."))
    var forgeTokenFile: String?

    @Option(help: ArgumentHelp("A file holding the secret push webhooks at /hooks/git are signed with.",
                               discussion: "Or FLOTILLA_WEBHOOK_SECRET. GitHub and Gitea sign with HMAC-SHA256; GitLab sends the secret as X-Gitlab-Token."))
    var webhookSecretFile: String?

    /// A secret from the file a flag names (trimmed), else from the environment; never logged.
    static func secret(file: String?, flag: String, variable: String, _ environment: [String: String]) throws -> String? {
        guard let file else { return environment[variable] }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ValidationError("\(flag): cannot read \(file)") }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Flag(help: "Do not write notes and the status branch into the repository.")
    var noRepositoryStatus = false

    func validate() throws {
        if repo == nil, branch != "main" { throw ValidationError("--branch goes with --repo") }
        if let project {
            guard repo != nil else { throw ValidationError("--project goes with --repo") }
            if let problem = FleetNames.problem(project) { throw ValidationError("--project: \(problem)") }
        }
        guard pollInterval > 0, reconcileInterval > 0 else { throw ValidationError("--poll-interval and --reconcile-interval must be positive") }
        guard statusInterval >= 0 else { throw ValidationError("--status-interval must not be negative") }
        if let forge, StatusSettings.Forge(rawValue: forge) == nil {
            throw ValidationError("--forge must be one of \(StatusSettings.Forge.allCases.map(\.rawValue).joined(separator: ", ")), not '\(forge)'")
        }
        if let forgeApiURL, !(forgeApiURL.hasPrefix("https://") || forgeApiURL.hasPrefix("http://")) || forgeApiURL.contains(" ") {
            throw ValidationError("--forge-api-url must be an http(s) URL, not '\(forgeApiURL)'")
        }
        if let forgeRepository, let problem = StatusSettings.repositoryProblem(forgeRepository) {
            throw ValidationError("--forge-repository: \(problem)")
        }
        if let prefix = statusContextPrefix, let problem = StatusSettings.contextPrefixProblem(prefix) {
            throw ValidationError("--status-context-prefix \(problem)")
        }
        if config != nil {
            let perRepository = [("--repo", repo != nil), ("--branch", branch != "main"), ("--forge", forge != nil),
                                 ("--forge-repository", forgeRepository != nil), ("--forge-api-url", forgeApiURL != nil),
                                 ("--forge-allow-http", forgeAllowHttp), ("--forge-token-file", forgeTokenFile != nil),
                                 ("--webhook-secret-file", webhookSecretFile != nil), ("--allowed-signers", allowedSigners != nil),
                                 ("--trusted-gpg-keyring", trustedGpgKeyring != nil), ("--status-context-prefix", statusContextPrefix != nil),
                                 ("--no-repository-status", noRepositoryStatus)]
            if let flag = perRepository.first(where: { $0.1 })?.0 {
                throw ValidationError("\(flag) is a project's setting: with --config, set it on the project in the file")
            }
        }
        for (flag, file) in [("--allowed-signers", allowedSigners), ("--trusted-gpg-keyring", trustedGpgKeyring)] {
            guard let file else { continue }
            guard repo != nil else { throw ValidationError("\(flag) goes with --repo") }
            guard FileManager.default.isReadableFile(atPath: file) else { throw ValidationError("\(flag): cannot read '\(file)'") }
        }
        if repo == nil, forge != nil || forgeRepository != nil || forgeApiURL != nil || statusContextPrefix != nil {
            throw ValidationError("--forge, --forge-repository, --forge-api-url and --status-context-prefix go with --repo")
        }
        guard Self.split(listen) != nil else { throw ValidationError("--listen must be host:port, e.g. 127.0.0.1:8080") }
        guard heartbeatInterval > 0 else { throw ValidationError("--heartbeat-interval must be positive") }
        guard offlineAfter > 0 else { throw ValidationError("--offline-after must be positive") }
        _ = try retentions()
        guard (1...3_600).contains(idleTimeout) else { throw ValidationError("--idle-timeout must be from 1 to 3600 seconds") }
        guard (1...3_600).contains(requestTimeout) else { throw ValidationError("--request-timeout must be from 1 to 3600 seconds") }
        if let maxConnections {
            let ceiling = ServerConfiguration.connectionsWithinDescriptorLimit()
            guard (1...ceiling).contains(maxConnections) else {
                throw ValidationError("--max-connections must be from 1 to \(ceiling) (the open-file limit less \(ServerConfiguration.reservedDescriptors))")
            }
        }
        if let maxLongPolls, maxLongPolls < 1 {
            throw ValidationError("--max-long-polls must be at least 1")
        }
        _ = try Self.allowance(rate: deviceRequestRate, burst: deviceRequestBurst, flags: "--device-request", of: "requests")
        _ = try Self.allowance(rate: enrollmentRate, burst: enrollmentBurst, flags: "--enrollment", of: "enrollments")
    }

    /// An allowance from its `FLAGS-rate` and `FLAGS-burst`, checked; nil for a rate of 0 (no limit).
    static func allowance(rate: Double, burst: Int, flags: String, of what: String) throws -> DeviceRequestAllowance? {
        guard rate == 0 || (rate.isFinite && rate >= DeviceRequestAllowance.slowest && rate <= 1_000_000) else {
            throw ValidationError("\(flags)-rate must be 0 (no limit) or from 0.001 to 1000000 \(what) a second")
        }
        guard (1...1_000_000).contains(burst) else { throw ValidationError("\(flags)-burst must be from 1 to 1000000") }
        return rate == 0 ? nil : DeviceRequestAllowance(perSecond: rate, burst: Double(burst))
    }

    /// `--heartbeat-retention` and `--metrics-retention`, read and checked.
    func retentions() throws -> (heartbeats: Duration, metrics: Duration) {
        func duration(_ text: String, _ flag: String, _ range: ClosedRange<Int>, _ bounds: String) throws -> Duration {
            switch DurationText.parse(text) {
            case .failure(let problem):
                throw ValidationError("\(flag) '\(text)' is not a duration (\(problem.reason)); use one such as 7d or 12h")
            case .success(let duration):
                guard duration >= .seconds(range.lowerBound), duration <= .seconds(range.upperBound) else {
                    throw ValidationError("\(flag) must be from \(bounds)")
                }
                return duration
            }
        }
        let heartbeats = try duration(heartbeatRetention, "--heartbeat-retention", 3_600...(7 * 86_400), "1h to 7d")
        let metrics = try duration(metricsRetention, "--metrics-retention", 86_400...(400 * 86_400), "1d to 400d")
        // Heartbeats go into the history when they leave: a shorter history would lose them at once.
        guard metrics >= heartbeats else {
            throw ValidationError("--metrics-retention (\(metricsRetention)) must be at least --heartbeat-retention (\(heartbeatRetention))")
        }
        return (heartbeats, metrics)
    }

    static func split(_ address: String) -> (host: String, port: Int)? {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (0...65_535).contains(port), colon > address.startIndex
        else { return nil }
        return (String(address[..<colon]), port)
    }

    func run() async throws {
        let (host, port) = Self.split(listen)!
        // Every device may hold a long-poll open.
        raiseOpenFileLimit()
        var logger = Logger(label: "flotilla")
        logger.logLevel = .info
        let store = try await data.openStore(logger: logger)
        let signingKeyFile = self.signingKeyFile ?? data.directory + "/device-signing-key.pem"
        let tokens = try await DeviceTokens.load(keyFile: signingKeyFile)
        let secrets: SecretBox
        let keyFile = secretKeyFile ?? data.directory + "/secret-key"
        // A missing key with secrets stored is a key lost or mistyped, not a first start: a new
        // key would leave every secret unopenable.
        if !FileManager.default.fileExists(atPath: keyFile) {
            for project in try await store.projects() where try await !store.secrets(project: project.name).isEmpty {
                throw CLIError("\(keyFile) does not exist, but project \(project.name) has secrets sealed with it; restore the key file "
                               + "(or point --secret-key-file at it). Only if it is lost for good: delete the secrets and set them again.")
            }
        }
        do {
            secrets = try SecretBox.load(keyFile: keyFile)
        } catch {
            throw CLIError("--secret-key-file: \(error)")
        }
        // Replicas on one database must sign device tokens and seal secrets with the same keys.
        let shared = store as? PostgresFleetStore
        if let shared {
            for (name, file, flag) in [("device-signing-key", signingKeyFile, "--signing-key-file"), ("secret-key", keyFile, "--secret-key-file")] {
                try await pin(name, file: file, flag: flag, in: shared)
            }
        }
        var configuration = ServerConfiguration(host: host, port: port, dataDirectory: data.directory,
                                                heartbeatIntervalSeconds: heartbeatInterval, missedHeartbeatsBeforeOffline: offlineAfter)
        configuration.idleTimeoutSeconds = idleTimeout
        (configuration.heartbeatRetention, configuration.metricsRetention) = try retentions()
        configuration.requestTimeoutSeconds = requestTimeout
        if let maxConnections { configuration.maximumConnections = maxConnections }
        configuration.maximumLongPolls = maxLongPolls
        configuration.deviceRequests = try Self.allowance(rate: deviceRequestRate, burst: deviceRequestBurst, flags: "--device-request", of: "requests")
        configuration.enrollments = try Self.allowance(rate: enrollmentRate, burst: enrollmentBurst, flags: "--enrollment", of: "enrollments")
        configuration.secureCookies = secureCookies
        configuration.alertReceiverAllow = try alertReceiverAllow.map { prefix in
            switch WebURL.parse(prefix) {
            case .success(let url): return url
            case .failure(let problem): throw ValidationError("--alert-receiver-allow '\(prefix)': \(problem.reason)")
            }
        }
        // Replicas trust what they cached of a device for 15 s at most, even with every revocation
        // announced (see RegistryEvents).
        let board = AssignmentBoard(), registry = RegistryEvents(cacheLifetime: shared == nil ? nil : .seconds(15))
        var services: [any Service] = []
        var entries: [ControllerSet.Entry] = []
        // On a shared database, one replica (the lease holder) runs the controllers, and what they
        // write is fenced by its lease; every replica hears of work queued by any other.
        let lease = shared.map { LeaderLease(store: $0, holder: replicaName ?? "\(ProcessInfo.processInfo.hostName):\(port)") }
        let controllerStore: any FleetStore = lease.map { shared!.fenced(by: $0) } ?? store
        let leadership = lease.map { ControllerLeadership(election: $0, logger: logger) }
        // Standbys answer for their controllers from the leader's snapshots, and pass requests on.
        let requests = ControllerRequests()
        var controllers: [any Service] = []
        for plan in try controllerPlans(offlineAfterSeconds: configuration.offlineAfterSeconds) {
            let controller = FleetController(configuration: plan.configuration, store: controllerStore,
                                             deployer: Deployer(store: controllerStore, board: board), logger: logger)
            if let leadership, let shared {
                let replicated = ReplicatedController(controller, role: leadership, relay: PostgresControllerRelay(store: shared, logger: logger),
                                                      requests: requests, store: store, logger: logger)
                controllers.append(replicated)
                entries.append(ControllerSet.Entry(replicated, hookSecret: plan.hookSecret))
            } else {
                controllers.append(controller)
                entries.append(ControllerSet.Entry(controller, hookSecret: plan.hookSecret))
            }
            logger.info("reconciling", metadata: ["project": "\(plan.configuration.project ?? "(from fleet.yaml)")",
                                                  "repository": "\(RemoteURL.redact(plan.configuration.repository))",
                                                  "branch": "\(plan.configuration.branch)"])
        }
        if let leadership, let shared {
            leadership.manage(controllers)
            configuration.leadership = leadership
            services += [WakeRelay(store: shared, board: board, registry: registry, requests: requests, logger: logger), leadership]
        } else {
            services += controllers
        }
        let app = FleetServer.buildApplication(configuration: configuration, store: store, tokens: tokens, board: board,
                                               services: services, controllers: ControllerSet(entries), secrets: secrets, registry: registry,
                                               alertNotifier: AlertNotifier(logger: Logger(label: "flotilla.alerts")), logger: logger)
        logger.info("flotilla serving", metadata: ["address": "\(listen)", "data": "\(data.directory)",
                                                   "database": "\(shared.map { "\($0.url)" } ?? "sqlite")"])
        let group = ServiceGroup(configuration: .init(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}

extension ServeCommand {
    /// Records the fingerprint of key `name` in the shared database the first time, and refuses
    /// to start when this replica's key differs from it: devices enrolled through one replica
    /// would be refused by another, and secrets sealed by one unopenable by the next.
    func pin(_ name: String, file: String, flag: String, in store: PostgresFleetStore) async throws {
        guard let bytes = FileManager.default.contents(atPath: file) else { throw CLIError("\(flag): cannot read \(file)") }
        let fingerprint = SHA256.hex(Array(bytes))
        let pinned = try await store.pinKey(name, fingerprint: fingerprint)
        guard pinned == fingerprint else {
            throw CLIError("\(file) is not the \(name) the other servers on this database use (its SHA-256 is \(fingerprint.prefix(12))…, "
                           + "theirs \(pinned.prefix(12))…): give every replica the same file with \(flag)")
        }
    }

    /// A controller to start, and the secret its webhooks are signed with.
    struct ControllerPlan {
        var configuration: ControllerConfiguration
        var hookSecret: String?
    }

    /// The controllers the flags ask for: one for --repo, one per project of --config, none otherwise.
    func controllerPlans(offlineAfterSeconds: Double, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [ControllerPlan] {
        if let config { return try ServerConfigFile.plans(path: config, dataDirectory: data.directory, defaults: self, offlineAfterSeconds: offlineAfterSeconds,
                                                                 environment: environment) }
        guard let repo else { return [] }
        var configuration = ControllerConfiguration(
            repository: repo, branch: branch, cacheDirectory: data.directory + "/git", pollInterval: .milliseconds(Int(pollInterval * 1_000)),
            reconcileInterval: .milliseconds(Int(reconcileInterval * 1_000)), offlineAfterSeconds: offlineAfterSeconds,
            writeStatus: !noRepositoryStatus,
            credentials: GitCredentials(token: environment["FLOTILLA_GIT_TOKEN"], username: environment["FLOTILLA_GIT_USER"]),
            forgeToken: try Self.secret(file: forgeTokenFile, flag: "--forge-token-file", variable: "FLOTILLA_FORGE_TOKEN", environment))
        configuration.statusInterval = .milliseconds(Int(statusInterval * 1_000))
        configuration.statusOverrides = statusOverrides
        configuration.allowPlainHTTPForge = forgeAllowHttp
        configuration.project = project
        if allowedSigners != nil || trustedGpgKeyring != nil {
            configuration.trustedSigners = TrustedKeys(sshAllowedSigners: allowedSigners, gpgKeyring: trustedGpgKeyring)
        }
        let hookSecret = try Self.secret(file: webhookSecretFile, flag: "--webhook-secret-file", variable: "FLOTILLA_WEBHOOK_SECRET", environment)
        return [ControllerPlan(configuration: configuration, hookSecret: hookSecret)]
    }
}

/// The server's data directory and database, shared by the commands that open its database.
struct DataOptions: ParsableArguments {
    @Option(name: .customLong("data"), help: "The data directory (database, signing key).")
    var directory: String = "./flotilla-data"

    @Option(help: ArgumentHelp("A PostgreSQL database several servers share: postgres://USER@HOST[:PORT]/DATABASE[?sslmode=…]. Also FLOTILLA_DATABASE_URL.",
                               discussion: "Without it, the server keeps an SQLite database in its data directory."))
    var database: String?

    @Option(help: ArgumentHelp("A file holding the database's password (else FLOTILLA_DATABASE_PASSWORD, else the URL's).",
                               valueName: "file"))
    var databasePasswordFile: String?

    /// The PostgreSQL database the flags and environment name, if any.
    func databaseURL(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> DatabaseURL? {
        guard let text = database ?? environment["FLOTILLA_DATABASE_URL"].flatMap({ $0.isEmpty ? nil : $0 }) else { return nil }
        var url: DatabaseURL
        do {
            url = try DatabaseURL(parsing: text)
        } catch {
            throw CLIError("--database: \(error)")
        }
        if let file = databasePasswordFile {
            guard let password = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw CLIError("--database-password-file: cannot read \(file)")
            }
            url.password = password.trimmingCharacters(in: .whitespacesAndNewlines)
        } else if let password = environment["FLOTILLA_DATABASE_PASSWORD"], !password.isEmpty {
            url.password = password
        }
        return url
    }

    /// The store: PostgreSQL when a database is named, SQLite in the data directory otherwise.
    func openStore(logger: Logger = Logger(label: "flotilla")) async throws -> any FleetStore {
        try makePrivate()
        do {
            if let url = try databaseURL() {
                // Child processes (git, ssh-keygen, gpg) never see where the database is or its password.
                unsetenv("FLOTILLA_DATABASE_PASSWORD")
                unsetenv("FLOTILLA_DATABASE_URL")
                return try await PostgresFleetStore.open(url, logger: logger)
            }
            return try SQLiteFleetStore(path: directory + "/flotilla.sqlite")
        } catch let error as CLIError {
            throw error
        } catch {
            throw CLIError("\(error)")
        }
    }

    /// The database, its WAL, the signing key and the git mirror are the server's alone, even
    /// when the directory was made before by someone else's rules: the directory becomes 0700 and
    /// what is in it 0600 (files) or 0700 (directories), and whatever the process creates from
    /// now on is private too (umask 077).
    func makePrivate() throws {
        umask(0o077)
        let manager = FileManager.default
        do {
            try manager.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw CLIError("\(directory): cannot create the data directory: \(error.localizedDescription)")
        }
        func restrict(_ path: String, directory isDirectory: Bool) throws {
            guard chmod(path, isDirectory ? 0o700 : 0o600) == 0 else {
                throw CLIError("\(path): cannot make it private to the server's user (\(String(cString: strerror(errno)))); "
                               + "run the server as the owner of its data directory")
            }
        }
        // Whatever someone else could have planted while the directory was open to them is
        // refused rather than trusted: a link to their key, a file they own, a hard link to theirs.
        func check(_ path: String) throws -> Bool {
            var status = stat()
            guard lstat(path, &status) == 0 else { throw CLIError("\(path): cannot be inspected (\(String(cString: strerror(errno))))") }
            let type = status.st_mode & S_IFMT
            guard type != S_IFLNK else {
                throw CLIError("\(path) is a symbolic link; the data directory holds only the server's own files (remove it)")
            }
            guard status.st_uid == geteuid() else {
                throw CLIError("\(path) belongs to user \(status.st_uid), not to the server's user \(geteuid()); the server trusts only its own files")
            }
            guard type == S_IFDIR || status.st_nlink == 1 else {
                throw CLIError("\(path) has \(status.st_nlink) hard links; the server trusts only files that are its alone")
            }
            return type == S_IFDIR
        }
        try restrict(directory, directory: try check(directory))
        for name in (try? manager.contentsOfDirectory(atPath: directory)) ?? [] {
            let path = directory + "/" + name
            try restrict(path, directory: try check(path))
        }
    }
}
