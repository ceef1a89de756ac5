// What a controller pass reads of a long history from the SQLite store: N devices (default
// 10,000) × 30 releases of one app, each execution finished with four step results, read as the
// controller reads them (`executionSummaries`, 50 deployments at a time). Against a baseline
// measured in the same run: the same rows' key columns (id, deployment, device, state) read by
// one plain SELECT per 50 deployments — what any read of these rows costs. Run through
// `./hack/bench.sh history [N]` (release).
import FleetProtocol
import FleetStore
import FleetStoreSQLite
import Foundation
import GRDB

let deviceCount = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 10_000
let releases = 30, rounds = 3
let start = Date(timeIntervalSince1970: 1_800_000_000)
let directory = NSTemporaryDirectory() + "flotilla-history-bench-\(UUID().uuidString)"
try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: directory) }
let path = directory + "/flotilla.sqlite"
let store = try SQLiteFleetStore(path: path)
try await store.ensureProject("bench", at: start)

let clock = ContinuousClock()
func seconds(_ duration: Duration) -> Double { Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18 }

let written = clock.now
let steps = ["download", "verify", "install", "restart"]
var deploymentIDs: [String] = []
for release in 0..<releases {
    let created = start.addingTimeInterval(Double(release) * 86_400)
    let id = "dep-\(release)"
    deploymentIDs.append(id)
    let record = DeploymentRecord(id: id, project: "bench", app: "thermostat", version: "1.\(release)", flow: "install", digest: "digest-\(release)",
                                  parameters: ["channel": "stable"], steps: [], rollback: [], artifactAllowlist: [], createdAt: created,
                                  createdBy: "controller", purpose: .rollout, group: "all")
    try await store.createDeployment(record, executions: (0..<deviceCount).map { number in
        ExecutionRecord(id: "\(id)-\(number)", deploymentID: id, deviceID: String(format: "d-%012x", number), state: .succeeded,
                        results: steps.enumerated().map { index, name in
                            StepResult(index: index, name: name, status: .succeeded, exitCode: 0,
                                       outputTail: "\(name) thermostat 1.\(release): done in \(index + 1).\(number % 10) s")
                        },
                        updatedAt: created.addingTimeInterval(120), takenAt: created.addingTimeInterval(30))
    })
}
print("history: \(deviceCount) devices × \(releases) releases = \(deviceCount * releases) executions written in "
      + String(format: "%.1f s", seconds(clock.now - written)))

let queue = try DatabaseQueue(path: path)
var baseline = Double.infinity, summaries = Double.infinity
var rows = 0
for _ in 0..<rounds {
    let plain = clock.now
    var count = 0
    for chunk in stride(from: 0, to: deploymentIDs.count, by: 50).map({ Array(deploymentIDs[$0..<min($0 + 50, deploymentIDs.count)]) }) {
        try await queue.read { db in
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ",")
            let cursor = try Row.fetchCursor(db, sql: "SELECT seq, id, deployment_id, device_id, state FROM execution WHERE deployment_id IN (\(marks))",
                                             arguments: StatementArguments(chunk))
            while let row = try cursor.next() {
                let id: String = row["id"], device: String = row["device_id"]
                count += id.utf8.count > 0 && device.utf8.count > 0 ? 1 : 0
            }
        }
    }
    baseline = min(baseline, seconds(clock.now - plain))
    let read = clock.now
    rows = 0
    for chunk in stride(from: 0, to: deploymentIDs.count, by: 50).map({ Array(deploymentIDs[$0..<min($0 + 50, deploymentIDs.count)]) }) {
        rows += try await store.executionSummaries(deploymentIDs: chunk).count
    }
    summaries = min(summaries, seconds(clock.now - read))
    precondition(rows == count, "read \(rows) summaries of \(count) rows")
}
print("read: \(rows) execution summaries in \(String(format: "%.0f ms", summaries * 1_000)) (\(String(format: "%.2f", summaries / Double(rows) * 1e6)) µs each); "
      + "baseline, their key columns: \(String(format: "%.0f ms", baseline * 1_000)); ratio \(String(format: "%.2f", summaries / baseline))×")
