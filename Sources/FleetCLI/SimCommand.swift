import ArgumentParser
import AsyncHTTPClient
import FleetProtocol
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import UnixSignals

/// `flotilla sim`: many simulated devices in one process. Each is the agent's own protocol over
/// real HTTP — enrollment, heartbeats, long-polled assignments, per-step reports — and the
/// agent's own execution state machine, with steps that take a random time and fail at a given
/// rate instead of running commands.
struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Simulate a fleet of devices against a server.",
        discussion: """
            Devices are named sim-<seed>-<n>; the same seed enrolls the same devices again. Tags are drawn \
            per device from weighted values (--tag hw=rpi4:6,rpi3:3,gateway:1); the defaults match \
            fleet-repo-template's groups. Stops on SIGINT or SIGTERM, or after --duration seconds.
            """
    )

    @Option(help: "The server's base URL.")
    var server: String = "http://127.0.0.1:8080"

    @Option(help: "An enrollment token (or FLOTILLA_ENROLLMENT_TOKEN).")
    var token: String?

    @Option(help: "How many devices.")
    var devices: Int = 50

    @Option(help: "The chance that a step fails, 0 to 1.")
    var failRate: Double = 0.05

    @Option(help: ArgumentHelp("A bad release: executions of VERSION fail at the last step that can fail them, VERSION[:CHANCE] (repeatable; CHANCE 0 to 1, default 1).",
                               valueName: "version"))
    var failVersion: [String] = []

    @Option(help: "The share of devices that start offline, 0 to 1; they come online after --offline-seconds.")
    var offlineRate: Double = 0.1

    @Option(help: "How long offline devices stay away.")
    var offlineSeconds: Double = 60

    @Option(help: "Seed for names, tags, timings and failures.")
    var seed: UInt64 = 1

    @Option(help: "How long a step takes, min-max seconds.")
    var stepSeconds: String = "0.2-1.0"

    @Option(help: "Weighted tag values, KEY=VALUE[:WEIGHT],… (repeatable; replaces that key's default).")
    var tag: [String] = []

    @Option(help: "Stop after this many seconds (0: run until stopped).")
    var duration: Double = 0

    @Option(help: "Seconds between progress lines.")
    var statusEvery: Double = 5

    @Option(help: "Devices enrolling at once.")
    var enrollConcurrency: Int = 32

    func validate() throws {
        guard (1...100_000).contains(devices) else { throw ValidationError("--devices must be from 1 to 100000") }
        guard (0...1).contains(failRate) else { throw ValidationError("--fail-rate must be from 0 to 1") }
        guard (0...1).contains(offlineRate) else { throw ValidationError("--offline-rate must be from 0 to 1") }
        guard parsedStepSeconds != nil else { throw ValidationError("--step-seconds must be MIN-MAX, e.g. 0.2-1.0") }
        _ = try tagTemplate()
        _ = try failingVersions()
        guard resolvedToken != nil else { throw ValidationError("an enrollment token is needed: --token or FLOTILLA_ENROLLMENT_TOKEN") }
        guard server.hasPrefix("http://") || server.hasPrefix("https://") else { throw ValidationError("--server must be an http(s) URL") }
    }

    var resolvedToken: String? { token ?? ProcessInfo.processInfo.environment["FLOTILLA_ENROLLMENT_TOKEN"] }

    var parsedStepSeconds: ClosedRange<Double>? {
        let parts = stepSeconds.split(separator: "-").compactMap { Double($0) }
        guard parts.count == 2, parts[0] >= 0, parts[0] <= parts[1] else { return nil }
        return parts[0]...parts[1]
    }

    static let defaultTags: [(String, [(String, Double)])] = [
        ("hw", [("rpi4", 6), ("rpi3", 3), ("gateway", 1)]),
        ("site", [("berlin", 4), ("paris", 3), ("madrid", 2), ("lisbon", 1)]),
        ("ring", [("canary", 1), ("stable", 19)]),
    ]

    func failingVersions() throws -> [String: Double] {
        var versions: [String: Double] = [:]
        for text in failVersion {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard let version = parts.first, !version.isEmpty, parts.count <= 2,
                  let chance = parts.count == 2 ? Double(parts[1]) : 1, (0...1).contains(chance) else {
                throw ValidationError("--fail-version '\(text)': expected VERSION or VERSION:CHANCE with CHANCE from 0 to 1")
            }
            versions[String(version)] = chance
        }
        return versions
    }

    func tagTemplate() throws -> [(String, [(String, Double)])] {
        var template = Self.defaultTags
        for text in tag {
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                throw ValidationError("--tag '\(text)': expected KEY=VALUE[:WEIGHT],…")
            }
            let key = String(text[..<equals])
            var values: [(String, Double)] = []
            for item in text[text.index(after: equals)...].split(separator: ",") {
                let parts = item.split(separator: ":")
                guard let value = parts.first, !value.isEmpty, parts.count <= 2, let weight = parts.count == 2 ? Double(parts[1]) : 1,
                      weight > 0 else {
                    throw ValidationError("--tag '\(text)': '\(item)' is not VALUE or VALUE:WEIGHT with a positive weight")
                }
                values.append((String(value), weight))
            }
            guard !values.isEmpty else { throw ValidationError("--tag '\(text)': no values") }
            template.removeAll { $0.0 == key }
            template.append((key, values))
        }
        return template
    }

    func run() async throws {
        raiseOpenFileLimit()
        let simulation = Simulation(
            server: server.hasSuffix("/") ? String(server.dropLast()) : server, token: resolvedToken!, count: devices, failRate: failRate,
            failingVersions: try failingVersions(),
            offlineRate: offlineRate, offlineSeconds: offlineSeconds, seed: seed, stepSeconds: parsedStepSeconds!,
            tags: try tagTemplate(), enrollConcurrency: max(1, enrollConcurrency))
        try await simulation.run(duration: duration, statusEvery: statusEvery)
    }
}

/// Lets a process hold as many sockets as the system allows it (each simulated device keeps a
/// long-poll open).
func raiseOpenFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
    limit.rlim_cur = limit.rlim_max
    _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
}

/// A small, fast, seedable generator (SplitMix64): the same seed gives the same fleet.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Counters the progress line reads.
final class SimulationStats: Sendable {
    let enrolled = Atomic<Int>(0)
    let online = Atomic<Int>(0)
    let heartbeats = Atomic<Int>(0)
    let running = Atomic<Int>(0)
    let succeeded = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let errors = Atomic<Int>(0)

    /// The first few request errors are said in full; the rest are counted.
    private let said = Atomic<Int>(0)

    func noteError(_ text: String) {
        if said.add(1, ordering: .relaxed).newValue <= 5 { say("sim: request error: \(text)") }
    }

    func line(devices: Int) -> String {
        "sim: \(enrolled.load(ordering: .relaxed))/\(devices) enrolled, \(online.load(ordering: .relaxed)) online, "
            + "\(heartbeats.load(ordering: .relaxed)) heartbeats; executions: \(running.load(ordering: .relaxed)) running, "
            + "\(succeeded.load(ordering: .relaxed)) succeeded, \(failed.load(ordering: .relaxed)) failed"
            + (errors.load(ordering: .relaxed) > 0 ? "; \(errors.load(ordering: .relaxed)) request errors" : "")
    }
}

struct Simulation: Sendable {
    static let shard = 256
    var server: String
    var token: String
    var count: Int
    var failRate: Double
    /// Versions whose executions fail, with the chance that they do.
    var failingVersions: [String: Double] = [:]
    var offlineRate: Double
    var offlineSeconds: Double
    var seed: UInt64
    var stepSeconds: ClosedRange<Double>
    var tags: [(String, [(String, Double)])]
    var enrollConcurrency: Int

    func run(duration: Double, statusEvery: Double) async throws {
        // One HTTP client per shard of devices: a connection pool's request queue is searched
        // linearly, so one pool for ten thousand devices spends its time searching.
        var configuration = AsyncHTTPClient.HTTPClient.Configuration()
        // Connections outlive the heartbeat interval, as an agent's keep-alive does: closing them
        // between heartbeats makes a connection per request, and ten thousand devices then run
        // a loopback out of ephemeral ports (each closed one waits a minute in TIME_WAIT).
        configuration.connectionPool = .init(idleTimeout: .seconds(120), concurrentHTTP1ConnectionsPerHostSoftLimit: Self.shard * 3 + 16)
        configuration.timeout = .init(connect: .seconds(10), read: .seconds(60))
        let clients = (0..<(count + Self.shard - 1) / Self.shard).map { _ in
            AsyncHTTPClient.HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        }
        let stats = SimulationStats()
        let gate = EnrollmentGate(slots: enrollConcurrency)
        var generator = SeededGenerator(seed: seed)
        let offline = Set((0..<count).shuffled(using: &generator).prefix(Int((Double(count) * offlineRate).rounded())))
        say("sim: \(count) devices against \(server) (seed \(seed), fail rate \(failRate), \(offline.count) offline for \(Int(offlineSeconds)) s)")
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                let signals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
                for await _ in signals { return }
            }
            if duration > 0 { group.addTask { try? await Task.sleep(for: .seconds(duration)) } }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(statusEvery))
                    if !Task.isCancelled { say(stats.line(devices: count)) }
                }
            }
            group.addTask {
                await withTaskGroup(of: Void.self) { devices in
                    for index in 0..<count {
                        let device = SimulatedDevice(simulation: self, index: index, startsOffline: offline.contains(index),
                                                     client: clients[index / Self.shard],
                                                     stats: stats, gate: gate)
                        devices.addTask { await device.run() }
                    }
                }
            }
            // The first of: a signal, the duration, or every device giving up.
            await group.next()
            group.cancelAll()
        }
        say(stats.line(devices: count))
        for client in clients { try await client.shutdown() }
    }
}

/// Bounds how many devices enroll at once, so a large fleet does not stampede the server.
actor EnrollmentGate {
    private var free: Int
    private var waiting: [CheckedContinuation<Void, Never>] = []

    init(slots: Int) { free = slots }

    func enter() async {
        if free > 0 { free -= 1; return }
        await withCheckedContinuation { waiting.append($0) }
    }

    func leave() {
        if waiting.isEmpty { free += 1 } else { waiting.removeFirst().resume() }
    }
}

/// One simulated device: the agent's protocol and execution state machine, simulated steps.
struct SimulatedDevice: Sendable {
    let simulation: Simulation
    let index: Int
    let startsOffline: Bool
    let client: AsyncHTTPClient.HTTPClient
    let stats: SimulationStats
    let gate: EnrollmentGate

    var hardwareID: String { "sim-\(simulation.seed)-\(index)" }

    /// What the heartbeat loop and the assignment loop of one device share.
    final class State: Sendable {
        private struct Fields {
            var apps: [String: InstalledApp] = [:]
            var interval = 25.0
            var generator: SeededGenerator
        }

        private let fields: Mutex<Fields>

        init(seed: UInt64) { fields = Mutex(Fields(generator: SeededGenerator(seed: seed))) }

        var apps: [String: InstalledApp] { fields.withLock { $0.apps } }

        func install(_ app: String, _ installed: InstalledApp) { fields.withLock { $0.apps[app] = installed } }

        var interval: Double {
            get { fields.withLock { $0.interval } }
            set { fields.withLock { $0.interval = newValue } }
        }

        func random(in range: ClosedRange<Double>) -> Double { fields.withLock { Double.random(in: range, using: &$0.generator) } }
    }

    func run() async {
        let state = State(seed: simulation.seed &* 0x1000_0000_01B3 ^ UInt64(index))
        var tagGenerator = SeededGenerator(seed: simulation.seed ^ (UInt64(index) &* 0x9E37_79B9))
        var tags: [String: String] = [:]
        for (key, values) in simulation.tags {
            let total = values.reduce(0) { $0 + $1.1 }
            var pick = Double.random(in: 0..<total, using: &tagGenerator)
            for (value, weight) in values {
                if pick < weight { tags[key] = value; break }
                pick -= weight
            }
        }
        if startsOffline {
            try? await Task.sleep(for: .seconds(simulation.offlineSeconds))
        }
        guard let deviceToken = await enroll(tags: tags, state: state) else { return }
        stats.online.add(1, ordering: .relaxed)
        defer { stats.online.subtract(1, ordering: .relaxed) }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await heartbeats(token: deviceToken, state: state) }
            group.addTask { await work(token: deviceToken, state: state) }
        }
    }

    private func enroll(tags: [String: String], state: State) async -> String? {
        await gate.enter()
        defer { Task { await gate.leave() } }
        // A secret fixed by the seed: a restarted simulation is the same devices again.
        let secret = SHA256.hex(Array("sim-secret-\(simulation.seed)-\(index)".utf8))
        let request = EnrollmentRequest(token: simulation.token, hardwareID: hardwareID, deviceSecret: secret, name: hardwareID, tags: tags,
                                        attributes: ["arch": "sim", "agentVersion": AgentRelease.version, "os": "flotilla sim"])
        var delay = 0.5
        while !Task.isCancelled {
            switch await send("POST", "/agent/v1/enroll", body: request.wireJSON(), token: nil) {
            case .success(let response) where response.status == 200 || response.status == 201:
                guard let enrolled = try? EnrollmentResponse.decode(wire: response.body) else { return nil }
                state.interval = Double(enrolled.heartbeatIntervalSeconds)
                stats.enrolled.add(1, ordering: .relaxed)
                return enrolled.deviceToken
            case .success(let response) where response.status < 500 && response.status != 429:
                say("sim: \(hardwareID) cannot enroll: HTTP \(response.status) \(String(decoding: response.body, as: UTF8.self))")
                return nil
            default:
                stats.errors.add(1, ordering: .relaxed)
                try? await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 30)
            }
        }
        return nil
    }

    private func heartbeats(token: String, state: State) async {
        // Spread over the first interval so a fleet does not beat in step.
        try? await Task.sleep(for: .seconds(state.random(in: 0...state.interval)))
        var sent = 0
        while !Task.isCancelled {
            sent += 1
            let apps = state.apps
            let beat = Heartbeat(reportID: "\(hardwareID)-\(Int(Date().timeIntervalSince1970 * 1000))-\(sent)",
                                 sentAtMilliseconds: Int64(Date().timeIntervalSince1970 * 1000),
                                 cpuPercent: (state.random(in: 1...60) * 10).rounded() / 10,
                                 memory: .init(usedBytes: Int64(state.random(in: 100...400)) << 20, totalBytes: 1 << 30),
                                 uptimeSeconds: Int64(ProcessInfo.processInfo.systemUptime), apps: apps, agentVersion: AgentRelease.version)
            switch await send("POST", "/agent/v1/heartbeat", body: beat.wireJSON(), token: token) {
            case .success(let response) where response.status == 200:
                stats.heartbeats.add(1, ordering: .relaxed)
                if let ack = try? HeartbeatAcknowledgement.decode(wire: response.body) { state.interval = Double(ack.heartbeatIntervalSeconds) }
            case .success(let response) where response.status == 410:
                return
            default:
                if !Task.isCancelled { stats.errors.add(1, ordering: .relaxed) }
            }
            try? await Task.sleep(for: .seconds(state.interval * state.random(in: 0.9...1.1)))
        }
    }

    private func work(token: String, state: State) async {
        var entityTag: String?
        var finished: [String] = []
        while !Task.isCancelled {
            var headers: [(String, String)] = []
            if let entityTag { headers.append(("If-None-Match", entityTag)) }
            switch await send("GET", "/agent/v1/assignments", body: nil, token: token, headers: headers, timeout: 60) {
            case .success(let response) where response.status == 304:
                continue
            case .success(let response) where response.status == 200:
                entityTag = response.entityTag
                guard let list = try? AssignmentList.decode(wire: response.body),
                      let assignment = list.assignments.first(where: { !finished.contains($0.executionID) }) else { continue }
                await execute(assignment, token: token, state: state)
                finished.append(assignment.executionID)
                if finished.count > 64 { finished.removeFirst() }
                entityTag = nil
            case .success(let response) where response.status == 410:
                return
            default:
                if Task.isCancelled { return }
                stats.errors.add(1, ordering: .relaxed)
                try? await Task.sleep(for: .seconds(state.random(in: 1...3)))
            }
        }
    }

    /// The agent's state machine with simulated steps; the version changes only on success.
    private func execute(_ assignment: Assignment, token: String, state: State) async {
        stats.running.add(1, ordering: .relaxed)
        defer { stats.running.subtract(1, ordering: .relaxed) }
        var progress = ExecutionProgress(assignment: assignment)
        let doomed = simulation.failingVersions[assignment.version].map { $0 >= 1 || state.random(in: 0...1) < $0 } ?? false
        // A bad release fails where it would show: the last step whose failure fails the flow.
        let failing = assignment.steps.lastIndex { $0.onFailure != "continue" } ?? assignment.steps.count - 1
        while let current = progress.current, !Task.isCancelled {
            progress.begin()
            try? await Task.sleep(for: .seconds(state.random(in: simulation.stepSeconds)))
            let bad = doomed && !current.rollback && current.index == failing
            let succeeded = !bad && state.random(in: 0...1) >= simulation.failRate
            let result = progress.complete(succeeded: succeeded, exitCode: succeeded ? 0 : 1,
                                           output: succeeded ? "ok\n" : "simulated failure\n", reason: succeeded ? nil : "simulated failure")
            await report(progress.report(for: result), execution: assignment.executionID, token: token)
        }
        guard let final = progress.finalReport else { return }
        if final.state == .succeeded {
            state.install(assignment.app, InstalledApp(version: assignment.version, digest: assignment.digest))
            stats.succeeded.add(1, ordering: .relaxed)
        } else {
            stats.failed.add(1, ordering: .relaxed)
        }
        await report(final, execution: assignment.executionID, token: token)
    }

    /// Sends a report until the server has it (its id makes a resend harmless).
    private func report(_ report: ExecutionReport, execution: String, token: String) async {
        var delay = 0.5
        while !Task.isCancelled {
            switch await send("POST", "/agent/v1/executions/\(execution)/report", body: report.wireJSON(), token: token) {
            case .success(let response) where response.status < 500 && response.status != 429:
                return
            default:
                stats.errors.add(1, ordering: .relaxed)
                try? await Task.sleep(for: .seconds(delay))
                delay = min(delay * 2, 30)
            }
        }
    }

    struct Answer {
        var status: Int
        var body: [UInt8]
        var entityTag: String?
    }

    private func send(_ method: String, _ path: String, body: String?, token: String?, headers: [(String, String)] = [],
                      timeout: Int64 = 30) async -> Result<Answer, any Error> {
        var request = HTTPClientRequest(url: simulation.server + path)
        request.method = .init(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        do {
            let response = try await client.execute(request, timeout: .seconds(timeout))
            let bytes = try await response.body.collect(upTo: 4 << 20)
            return .success(Answer(status: Int(response.status.code), body: Array(bytes.readableBytesView),
                                   entityTag: response.headers.first(name: "ETag")))
        } catch {
            if !Task.isCancelled { stats.noteError("\(method) \(path.split(separator: "/").prefix(3).joined(separator: "/")): \(error)") }
            return .failure(error)
        }
    }
}

/// A line on standard output, written at once: progress reaches a log file as it is made, not
/// when a buffer fills.
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
