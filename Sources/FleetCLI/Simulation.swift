import ArgumentParser
import AsyncHTTPClient
import FleetCore
import FleetProtocol
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
import UnixSignals

/// Counters the progress line reads.
/// Report ids of heartbeats the server acknowledged, one per line (`flotilla sim --acknowledged-log`).
final class AcknowledgementLog: Sendable {
    private let handle: Mutex<FileHandle>

    init(_ handle: FileHandle) {
        self.handle = Mutex(handle)
    }

    func note(_ reportID: String) {
        handle.withLock { $0.write(Data((reportID + "\n").utf8)) }
    }
}

final class SimulationStats: Sendable {
    /// Where acknowledged heartbeats are noted, when asked.
    let acknowledged: AcknowledgementLog?

    init(acknowledged: AcknowledgementLog? = nil) {
        self.acknowledged = acknowledged
    }

    let enrolled = Atomic<Int>(0)
    let online = Atomic<Int>(0)
    let heartbeats = Atomic<Int>(0)
    let running = Atomic<Int>(0)
    let succeeded = Atomic<Int>(0)
    let failed = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    /// Polls for assignments the server did not hold (it held its limit of long-polls).
    let deferred = Atomic<Int>(0)
    /// Heartbeats' round trips, acknowledged ones only.
    let heartbeatLatency = HeartbeatLatencies()

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
            + (deferred.load(ordering: .relaxed) > 0 ? "; \(deferred.load(ordering: .relaxed)) polls deferred" : "")
    }

    /// The progress line with the heartbeats' latency since the previous one.
    func lineWithLatency(devices: Int) -> String {
        let latency: String = heartbeatLatency.takeWindow().summary
        return line(devices: devices) + "; heartbeat latency since the last line: " + latency
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
    /// Versions that install fine and then hurt the device: CPU up by 45 points, or the app's
    /// process down. Health checks catch them; step results do not.
    var unhealthyVersions: [String: UnhealthyVersion] = [:]

    enum UnhealthyVersion: String, Sendable { case cpu, crash }
    var offlineRate: Double
    var offlineSeconds: Double
    var seed: UInt64
    var stepSeconds: ClosedRange<Double>
    var tags: [(String, [(String, Double)])]
    var enrollConcurrency: Int

    func run(duration: Double, statusEvery: Double, acknowledged: AcknowledgementLog? = nil) async throws {
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
        let stats = SimulationStats(acknowledged: acknowledged)
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
                    if !Task.isCancelled { say(stats.lineWithLatency(devices: count)) }
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
        say("sim: heartbeat latency over the run: \(stats.heartbeatLatency.total.summary)")
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
