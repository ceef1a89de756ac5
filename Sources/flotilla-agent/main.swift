import FleetAgent
import Glibc

let usage = """
    usage: flotilla-agent [--config FILE] [--server URL] [--token TOKEN] [--data DIR] [--interval SECONDS]
                          [--name NAME] [--hardware-id ID] [--claim-code CODE] [--verbose]
           flotilla-agent lock --reason TEXT [--for DURATION] [--config FILE | --data DIR]
           flotilla-agent unlock [--config FILE | --data DIR]
           flotilla-agent --version

    Enrolls this device with a Flotilla server once, then sends heartbeats and runs the update
    flows the server assigns. Settings come from FILE (default /etc/flotilla/agent.yaml, when it
    exists), then from flags. FLOTILLA_ENROLLMENT_TOKEN is read when no token is given (and
    kept from the steps the agent runs); a --token is visible to every user of this machine
    in its process list, so prefer the file or the environment.
    A board that replaces an enrolled device enrolls with the claim code that
    `flotilla devices reset-identity` printed (--claim-code, or FLOTILLA_CLAIM_CODE).

    lock makes the device refuse updates while it is busy (DURATION like 30m or 2h; without it,
    until unlock): the server skips it, never failing it, and lists it with the reason. An
    application can write the same file itself (updateLockFile, default DATA/update.lock).

    """

func fail(_ message: String, code: Int32 = 2) -> Never {
    _ = "flotilla-agent: \(message)\n".utf8CString.withUnsafeBufferPointer { write(2, $0.baseAddress, $0.count - 1) }
    exit(code)
}

// A parent may hand down blocked or ignored stop signals; the agent must stop on them (its
// journal makes any stop safe), so they get their default actions back.
var stopSignals = sigset_t()
sigemptyset(&stopSignals)
for stop in [SIGTERM, SIGINT, SIGHUP] {
    sigaddset(&stopSignals, stop)
    signal(stop, SIG_DFL)
}
pthread_sigmask(SIG_UNBLOCK, &stopSignals, nil)

var arguments = Array(CommandLine.arguments.dropFirst())
let lockCommand = arguments.first.flatMap { ["lock", "unlock"].contains($0) ? $0 : nil }
if lockCommand != nil { arguments.removeFirst() }
var flags: [String: String] = [:]
var configPath: String?
while !arguments.isEmpty {
    let flag = arguments.removeFirst()
    switch flag {
    case "--version":
        print("flotilla-agent \(Agent.version)")
        exit(0)
    case "--help", "-h":
        print(usage, terminator: "")
        exit(0)
    case "--verbose":
        Log.verbose = true
    case "--reason", "--for" where lockCommand == "lock":
        guard !arguments.isEmpty else { fail("\(flag) needs a value") }
        flags[flag] = arguments.removeFirst()
    case "--config", "--server", "--token", "--data", "--interval", "--name", "--hardware-id", "--claim-code":
        guard !arguments.isEmpty else { fail("\(flag) needs a value") }
        let value = arguments.removeFirst()
        if flag == "--config" { configPath = value } else { flags[flag] = value }
    default:
        fail("unknown option '\(flag)'\n\(usage)")
    }
}

var configuration = AgentConfiguration()
do {
    if let configPath {
        configuration = try AgentConfiguration.load(path: configPath)
    } else if access("/etc/flotilla/agent.yaml", R_OK) == 0 {
        configuration = try AgentConfiguration.load(path: "/etc/flotilla/agent.yaml")
    }
} catch {
    fail(error.description)
}
// Taken out of the environment whether used or not: every step inherits what is left.
let environmentToken = AgentConfiguration.takeFromEnvironment("FLOTILLA_ENROLLMENT_TOKEN")
let environmentClaimCode = AgentConfiguration.takeFromEnvironment("FLOTILLA_CLAIM_CODE")
if let value = flags["--server"] { configuration.server = value }
if let value = flags["--token"] { configuration.enrollmentToken = value }
if configuration.enrollmentToken == nil { configuration.enrollmentToken = environmentToken }
if let value = flags["--claim-code"] { configuration.claimCode = value }
if configuration.claimCode == nil { configuration.claimCode = environmentClaimCode }
if let value = flags["--data"] { configuration.dataDirectory = value }
if let value = flags["--name"] { configuration.name = value }
if let value = flags["--hardware-id"] { configuration.hardwareID = value }
if let value = flags["--interval"] {
    guard let seconds = Int(value), (1...3_600).contains(seconds) else { fail("--interval must be a whole number of seconds from 1 to 3600") }
    configuration.heartbeatIntervalSeconds = seconds
}
if let lockCommand {
    let path = configuration.lockPath
    if lockCommand == "unlock" {
        UpdateLockFile.remove(path)
        print("updates unlocked")
        exit(0)
    }
    guard let reason = flags["--reason"], !reason.isEmpty else { fail("lock needs --reason TEXT: say why, for whoever looks at the fleet") }
    var until: Int64?
    if let text = flags["--for"] {
        guard let milliseconds = LockDuration.milliseconds(text) else { fail("--for must be a duration like 30m, 2h or 1h30m, not '\(text)'") }
        until = Clock.epochMilliseconds() + milliseconds
    }
    do {
        try UpdateLockFile.write(path, reason: reason, untilMilliseconds: until)
    } catch {
        fail(error.description, code: 1)
    }
    print("updates locked: \(reason)" + (flags["--for"].map { " (for \($0))" } ?? ""))
    exit(0)
}
guard let server = configuration.server else { fail("no server: set 'server' in \(configPath ?? "/etc/flotilla/agent.yaml") or pass --server URL") }
// A device not enrolled yet is refused what the server would refuse, or what would hand it to
// whoever is on the way; one enrolled before these checks keeps running, warned at every start.
let enrolled = Files.exists(configuration.identityPath)
for problem in configuration.tagProblems {
    if enrolled { Log.warning(problem + " (sent only at enrollment: fix it before this device enrolls again)") } else { fail(problem) }
}
if let problem = AgentConfiguration.plainHTTPProblem(server: server, allowed: configuration.allowPlainHTTP) {
    if enrolled { Log.error(problem) } else { fail(problem) }
}

let executor = SystemStepExecutor(allowedRoots: configuration.allowedRoots, retryDelaySeconds: configuration.retryDelaySeconds,
                                  caFile: configuration.caFile, downloadLimitBytes: configuration.downloadLimitBytes,
                                  downloadReserveBytes: configuration.downloadReserveBytes)
let fault = getenv("FLOTILLA_AGENT_FAULT").map { String(cString: $0) }
do {
    let agent = try Agent(configuration: configuration, executor: executor, fault: fault)
    try agent.run()
} catch let stop as Agent.Stop {
    if case .deleted = stop { fail(stop.description, code: 3) }
    fail(stop.description)
} catch {
    fail("\(error)")
}
