// The metrics history's size on disk: N devices (default 10,000) × one day of heartbeats at a
// 25 s cycle, written through the SQLite store on a virtual clock in the batches the server
// commits, then rolled up into the ten-minute history as the retention check does. Against a
// baseline measured in the same run: the heartbeats' own JSON bytes. Run through
// `./hack/bench.sh metrics [N]` (release).
import FleetProtocol
import FleetStore
import FleetStoreSQLite
import Foundation
import GRDB

let deviceCount = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 10_000
let interval = 25.0
let beatsPerDevice = Int(86_400 / interval)
let start = Date(timeIntervalSince1970: 1_800_000_000)
let directory = NSTemporaryDirectory() + "flotilla-metrics-bench-\(UUID().uuidString)"
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }
let path = directory + "/flotilla.sqlite"
let store = try SQLiteFleetStore(path: path)

/// Bytes the database's pages hold (free pages not counted), read on a connection of its own.
func liveBytes() throws -> Int64 {
    let queue = try DatabaseQueue(path: path)
    return try queue.read { db in
        let pages = try Int64.fetchOne(db, sql: "PRAGMA page_count") ?? 0
        let free = try Int64.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
        let size = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 0
        return (pages - free) * size
    }
}

func megabytes(_ bytes: Int64) -> String { String(format: "%.1f MB", Double(bytes) / 1_000_000) }

let clock = ContinuousClock()
let began = clock.now
try await store.ensureProject("bench", at: start)
let ids = (0..<deviceCount).map { String(format: "d-%012x", $0) }
for (number, id) in ids.enumerated() {
    _ = try await store.enroll(DeviceRecord(id: id, project: "bench", name: "device-\(number)", hardwareID: "hw-\(number)",
                                            secretHash: String(repeating: "0", count: 64), reportedTags: ["ring": "prod", "site": "berlin"],
                                            enrolledAt: start))
}
let emptyBytes = try liveBytes()

// What a real agent sends: system metrics, two mounts, two watched processes, two apps.
func report(device: Int, beat: Int) -> Heartbeat {
    var generator = SystemRandomNumberGenerator()
    let id = "h-" + String(UInt64.random(in: 0...UInt64.max, using: &generator), radix: 16)
    return Heartbeat(reportID: id, sentAtMilliseconds: Int64(start.timeIntervalSince1970 * 1_000) + Int64(beat) * 25_000,
                     cpuPercent: Double(Int.random(in: 0...1_000, using: &generator)) / 10,
                     memory: .init(usedBytes: Int64.random(in: 200_000_000...900_000_000, using: &generator), totalBytes: 1_000_000_000),
                     disks: [.init(mount: "/", usedBytes: 3_000_000_000 + Int64(beat) * 1_000, totalBytes: 16_000_000_000),
                             .init(mount: "/data", usedBytes: 10_000_000_000, totalBytes: 64_000_000_000)],
                     uptimeSeconds: Int64(beat) * 25, load: [0.42, 0.37, 0.30],
                     processes: [.init(name: "thermostat", running: true), .init(name: "mosquitto", running: true)],
                     apps: ["thermostat": InstalledApp(version: "2.5.0", digest: String(repeating: "a", count: 64)),
                            "sensor-agent": InstalledApp(version: "1.2.3", digest: String(repeating: "b", count: 64))],
                     agentVersion: "0.1.0")
}

// A day, tick by tick: every device once per 25 s, committed a thousand heartbeats at a time.
var payload: Int64 = 0
var written = 0
for beat in 0..<beatsPerDevice {
    var batch: [HeartbeatRecord] = []
    batch.reserveCapacity(1_000)
    for (number, id) in ids.enumerated() {
        let heartbeat = report(device: number, beat: beat)
        payload += Int64(heartbeat.wireJSON().utf8.count)
        let offset = Double(beat) * interval + Double(number % 25)
        batch.append(HeartbeatRecord(deviceID: id, receivedAt: start.addingTimeInterval(offset), report: heartbeat))
        if batch.count == 1_000 {
            _ = try await store.recordHeartbeats(batch)
            written += batch.count
            batch.removeAll(keepingCapacity: true)
        }
    }
    if !batch.isEmpty {
        _ = try await store.recordHeartbeats(batch)
        written += batch.count
    }
    if beat % 576 == 575 { print("  \(beat + 1) of \(beatsPerDevice) heartbeats per device written (\(clock.now - began))") }
}
let rawBytes = try liveBytes() - emptyBytes

// The retention check at the end of the day: everything into the history.
let rolledBegan = clock.now
let rolled = try await store.rollUpHeartbeats(before: start.addingTimeInterval(86_400 + 600), bucketSeconds: MetricHistory.bucketSeconds)
let rollUpTime = clock.now - rolledBegan
let historyBytes = try liveBytes() - emptyBytes

print("""
    metrics history on SQLite: \(deviceCount) devices × 1 day at a \(Int(interval)) s cycle = \(written) heartbeats
      their JSON (the baseline)         \(megabytes(payload))
      a day of raw heartbeats stored    \(megabytes(rawBytes))  (\(String(format: "%.2f", Double(rawBytes) / Double(payload)))× the JSON; \(rawBytes / Int64(deviceCount)) bytes per device)
      the same day as history           \(megabytes(historyBytes))  (\(String(format: "%.4f", Double(historyBytes) / Double(payload)))× the JSON; \(historyBytes / Int64(deviceCount)) bytes per device, 144 buckets)
      rolled up \(rolled) heartbeats in \(rollUpTime)
      kept at steady state (a day raw + 7 days of history): \(megabytes(rawBytes + 7 * historyBytes))
    """)
