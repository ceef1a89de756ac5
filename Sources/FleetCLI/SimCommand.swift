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

    @Option(help: ArgumentHelp("A release that installs fine and then hurts the device, VERSION[:cpu|crash] (repeatable): CPU up by 45 points, "
                               + "or its app's process down (default crash). For health checks to catch.", valueName: "version"))
    var unhealthy: [String] = []

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

    @Option(help: ArgumentHelp("Append the report id of every heartbeat the server acknowledged to this file, one per line.",
                               discussion: "What a test checks against the database: an acknowledged heartbeat is stored.",
                               valueName: "file"))
    var acknowledgedLog: String?

    func validate() throws {
        guard (1...100_000).contains(devices) else { throw ValidationError("--devices must be from 1 to 100000") }
        guard (0...1).contains(failRate) else { throw ValidationError("--fail-rate must be from 0 to 1") }
        guard (0...1).contains(offlineRate) else { throw ValidationError("--offline-rate must be from 0 to 1") }
        guard parsedStepSeconds != nil else { throw ValidationError("--step-seconds must be MIN-MAX, e.g. 0.2-1.0") }
        _ = try tagTemplate()
        _ = try failingVersions()
        _ = try unhealthyVersions()
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

    func unhealthyVersions() throws -> [String: Simulation.UnhealthyVersion] {
        var versions: [String: Simulation.UnhealthyVersion] = [:]
        for text in unhealthy {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard let version = parts.first, !version.isEmpty, parts.count <= 2,
                  let kind = parts.count == 2 ? Simulation.UnhealthyVersion(rawValue: String(parts[1])) : .crash else {
                throw ValidationError("--unhealthy '\(text)': expected VERSION, VERSION:cpu or VERSION:crash")
            }
            versions[String(version)] = kind
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
            failingVersions: try failingVersions(), unhealthyVersions: try unhealthyVersions(),
            offlineRate: offlineRate, offlineSeconds: offlineSeconds, seed: seed, stepSeconds: parsedStepSeconds!,
            tags: try tagTemplate(), enrollConcurrency: max(1, enrollConcurrency))
        let log = try acknowledgedLog.map { path in
            guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
                throw CLIError("--acknowledged-log: cannot create \(path)")
            }
            return AcknowledgementLog(handle)
        }
        try await simulation.run(duration: duration, statusEvery: statusEvery, acknowledged: log)
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


/// A line on standard output, written at once: progress reaches a log file as it is made, not
/// when a buffer fills.
func say(_ text: String) {
    FileHandle.standardOutput.write(Data((text + "\n").utf8))
}
