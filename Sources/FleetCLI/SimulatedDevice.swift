import ArgumentParser
import AsyncHTTPClient
import FleetCore
import FleetProtocol
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import UnixSignals

/// One simulated device: the agent's protocol and execution state machine, simulated steps.
struct SimulatedDevice: Sendable {
    let simulation: Simulation
    let index: Int
    let startsOffline: Bool
    let client: AsyncHTTPClient.HTTPClient
    let stats: SimulationStats
    let gate: EnrollmentGate

    var hardwareID: String { "sim-\(simulation.seed)-\(index)" }

    /// The device's usual CPU load, 5 to 25 %.
    var baseCPU: Double { Double(5 + (UInt64(index) &* 7 &+ simulation.seed) % 21) }

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
            // A steady level of its own with a little noise, so health checks against the
            // device's baseline hold; an unhealthy release adds to it or stops its process.
            let unhealthy = apps.compactMap { simulation.unhealthyVersions[$0.value.version] }
            let cpu = baseCPU + state.random(in: -2...2) + (unhealthy.contains(.cpu) ? 45 : 0)
            let processes = apps.keys.sorted().map {
                Heartbeat.MonitoredProcess(name: $0, running: simulation.unhealthyVersions[apps[$0]!.version] != .crash)
            }
            let beat = Heartbeat(reportID: "\(hardwareID)-\(Int(Date().timeIntervalSince1970 * 1000))-\(sent)",
                                 sentAtMilliseconds: Int64(Date().timeIntervalSince1970 * 1000),
                                 cpuPercent: (cpu * 10).rounded() / 10,
                                 memory: .init(usedBytes: Int64(state.random(in: 100...400)) << 20, totalBytes: 1 << 30),
                                 // A root file system filling slowly, as logs do.
                                 disks: [.init(mount: "/", usedBytes: (3 << 30) + Int64(sent % 600) << 20, totalBytes: 8 << 30)],
                                 uptimeSeconds: Int64(ProcessInfo.processInfo.systemUptime), processes: processes, apps: apps,
                                 agentVersion: AgentRelease.version)
            let started = ContinuousClock.now
            switch await send("POST", "/agent/v1/heartbeat", body: beat.wireJSON(), token: token) {
            case .success(let response) where response.status == 200:
                let (seconds, attoseconds) = (ContinuousClock.now - started).components
                stats.heartbeatLatency.record(milliseconds: Double(seconds) * 1_000 + Double(attoseconds) / 1e15)
                stats.heartbeats.add(1, ordering: .relaxed)
                stats.acknowledged?.note(beat.reportID)
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
            var headers = [(LongPollDeferral.header, LongPollDeferral.value)]
            if let entityTag { headers.append(("If-None-Match", entityTag)) }
            switch await send("GET", "/agent/v1/assignments", body: nil, token: token, headers: headers, timeout: 60) {
            case .success(let response) where response.status == 304:
                // Not held (the server holds its limit of long-polls): asked again when it says.
                if let seconds = LongPollDeferral.pause(retryAfter: response.retryAfter) {
                    stats.deferred.add(1, ordering: .relaxed)
                    try? await Task.sleep(for: .seconds(seconds))
                }
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
        var retryAfter: Int?
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
                                   entityTag: response.headers.first(name: "ETag"),
                                   retryAfter: response.headers.first(name: "Retry-After").flatMap { Int($0) }))
        } catch {
            if !Task.isCancelled { stats.noteError("\(method) \(path.split(separator: "/").prefix(3).joined(separator: "/")): \(error)") }
            return .failure(error)
        }
    }
}
