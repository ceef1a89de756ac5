// The web console's server time with N devices (default 100,000) in the SQLite store: the
// overview, the device list's first and a later filtered page, and a device's page, each against
// the same devices served as JSON by the API (GET /api/v1/devices) in the same run. Requests go
// through the real router in process (no network), so what is timed is the server's own work.
// Run through `./hack/bench.sh console [N]` (release).
import FleetCore
import FleetProtocol
import FleetServer
import FleetStore
import FleetStoreSQLite
import Foundation
import Hummingbird
import HummingbirdTesting
import HTTPTypes

let deviceCount = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 100_000
let rounds = 15
let directory = NSTemporaryDirectory() + "flotilla-console-bench-\(UUID().uuidString)"
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }
let store = try SQLiteFleetStore(path: directory + "/flotilla.sqlite")

/// A controller whose status covers every device: three targets of one app.
struct Controller: ControllerHandle {
    let status: [UInt8]
    func requestPoll() async {}
    func statusJSON() async -> [UInt8]? { status }
    func setSuspended(_ suspended: Bool, app: String) async throws {}
    var watchedBranch: String { "main" }
    func metrics() async -> ControllerMetrics { ControllerMetrics() }
    func executionEnded() async {}
    func scope() async -> (project: String, apps: [String])? { ("bench", ["thermostat"]) }
    func target(app: String, group: String) async -> (version: String, digest: String, approval: Bool)? { nil }
}

let now = Date()
let sites = ["berlin", "paris", "madrid", "rome", "oslo"]
print("console bench: enrolling \(deviceCount) devices in SQLite…")
let began = ContinuousClock.now
for number in 0..<deviceCount {
    let tags = ["site": sites[number % sites.count], "ring": number % 20 == 0 ? "canary" : "stable", "hw": number % 3 == 0 ? "rpi4" : "rpi5"]
    _ = try await store.enroll(DeviceRecord(id: String(format: "d-%012x", number), project: "bench", name: "device-\(number)",
                                            hardwareID: "hw-\(number)", secretHash: "", reportedTags: tags,
                                            apps: ["thermostat": InstalledApp(version: number % 10 == 0 ? "2.5.0" : "2.4.1")],
                                            enrolledAt: now, lastHeartbeatAt: number % 50 == 0 ? nil : now))
}
print("console bench: enrolled in \(ContinuousClock.now - began)")
let canary = deviceCount / 20, rest = deviceCount - canary
let report = FleetStatusReport(commit: String(repeating: "c", count: 40), head: String(repeating: "c", count: 40), headErrors: [], apps: [
    .init(name: "thermostat", targets: [
        .init(group: "canary", version: "2.5.0", devices: canary, converged: canary / 2, updating: canary / 4, failed: 0, offline: canary / 4,
              state: "updating"),
        .init(group: "stable", version: "2.4.1", devices: rest, converged: rest, updating: 0, failed: 0, offline: 0, state: "converged"),
    ], drifted: []),
])
let encoder = JSONEncoder()
encoder.outputFormatting = .sortedKeys
let controller = Controller(status: Array(try encoder.encode(report)))

let operatorToken = AccessTokens.make(kind: .operator, project: "bench")
try await store.insertToken(operatorToken.record)
let keyFile = directory + "/key.pem"
let app = FleetServer.buildApplication(configuration: ServerConfiguration(), store: store, tokens: try await DeviceTokens.load(keyFile: keyFile),
                                       controllers: ControllerSet([ControllerSet.Entry(controller)]))

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

try await app.test(.router) { client in
    // Sign in as a browser does.
    let signIn = try await client.execute(uri: "/sign-in", method: .post, headers: [.contentType: "application/x-www-form-urlencoded"],
                                          body: ByteBuffer(string: "token=\(operatorToken.text)"))
    let cookie = String(signIn.headers[.setCookie]!.split(separator: ";")[0])
    let clock = ContinuousClock()

    /// The median milliseconds of `rounds` requests, after one more that is not counted.
    func time(_ uri: String, headers: HTTPFields) async throws -> (milliseconds: Double, bytes: Int) {
        var samples: [Double] = []
        var bytes = 0
        for round in 0...rounds {
            let start = clock.now
            let response = try await client.execute(uri: uri, method: .get, headers: headers)
            let elapsed = clock.now - start
            guard response.status == .ok else { fatalError("\(uri): \(response.status)") }
            bytes = response.body.readableBytes
            if round > 0 { samples.append(Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1_000) }
        }
        return (median(samples), bytes)
    }

    let api: HTTPFields = [.authorization: "Bearer \(operatorToken.text)"]
    let browser: HTTPFields = [.cookie: cookie]
    let baseline = try await time("/api/v1/devices", headers: api)
    print(String(format: "baseline: GET /api/v1/devices (all %d devices as JSON): %.1f ms, %d bytes", deviceCount, baseline.milliseconds, baseline.bytes))
    // The first page reads the project's devices from the store; the pages after it share that
    // list (ConsoleDeviceCache) until it is ten times as old as the read took.
    let cold = clock.now
    guard try await client.execute(uri: "/", method: .get, headers: browser).status == .ok else { fatalError("overview") }
    let coldTime = clock.now - cold
    print("first page (reads the device list from the store): "
          + String(format: "%.1f ms (%.3f× the JSON API)", Double(coldTime.components.seconds) * 1_000 + Double(coldTime.components.attoseconds) / 1e15,
                   (Double(coldTime.components.seconds) * 1_000 + Double(coldTime.components.attoseconds) / 1e15) / baseline.milliseconds))
    for (label, uri) in [("overview", "/"), ("device list, first page", "/devices"),
                         ("device list, site=berlin,ring=stable, page 40", "/devices?selector=site%3Dberlin%2Cring%3Dstable&page=40"),
                         ("device list, offline, app thermostat 2.5.0", "/devices?online=false&app=thermostat&version=2.5.0"),
                         ("device page", "/devices/d-000000000007")] {
        let page = try await time(uri, headers: browser)
        print("\(label): " + String(format: "%.1f ms (%.3f× the JSON API), %d bytes", page.milliseconds, page.milliseconds / baseline.milliseconds, page.bytes))
    }
}
