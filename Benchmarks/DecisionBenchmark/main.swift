// One rollout decision for N devices (default 100,000) × 3 apps, mid-rollout (every device has
// a finished execution per app, a wave is running), against a baseline measured in the same
// run: one pass over the same snapshot that touches every device and execution once. Then the
// simulator's speed in scenarios per second. Run through `./hack/bench.sh decide` (release).
import FleetCore
import FleetProtocol
import FleetSimulation
import Foundation

let deviceCount = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 100_000
let rounds = 5
let now = Date(timeIntervalSinceReferenceDate: 800_000_000)

var tree = FleetTree()
let files = [
    "fleet.yaml": "kind: Fleet\nproject: bench\n",
    "groups/groups.yaml": "kind: Group\nname: canary\nselector: ring=canary\n---\nkind: Group\nname: rest\nselector: ring\n",
    "flows/f.yaml": "kind: UpdateFlow\nname: f\nsteps:\n  - {name: s, run: \"install ${version}\"}\n",
] .merging(["a", "b", "c"].map { app in
    ("apps/\(app).yaml", "kind: App\nname: \(app)\nflow: f\ntargets:\n  - {group: canary, version: \"2.0\"}\n  - {group: rest, version: \"2.0\"}\n"
        + "rollout: {batchSize: 5%, maxUnavailable: 5%, maxFailures: 5%}\n")
}) { first, _ in first }
for (path, text) in files { tree.addFile(path, bytes: Array(text.utf8)) }
let fleet = try FleetLoader.load(tree)

var devices: [FleetSnapshot.Device] = []
var deployments: [FleetSnapshot.Deployment] = []
var executions: [FleetSnapshot.Execution] = []
for app in fleet.apps {
    deployments.append(.init(id: "old-\(app.name)", app: app.name, version: "1.0", digest: "old", purpose: .rollout, createdAt: now.addingTimeInterval(-86_400)))
    for target in app.targets {
        deployments.append(.init(id: "w-\(app.name)-\(target.group)", app: app.name, version: "2.0", digest: target.digest, purpose: .rollout,
                                 group: target.group, createdAt: now.addingTimeInterval(-60)))
    }
}
for number in 0..<deviceCount {
    let id = "device-\(number)"
    let ring = number % 20 == 0 ? "canary" : "prod"
    // A tenth of the rest have the new version; a few are running it now.
    let updated = number % 10 == 1
    devices.append(.init(id: id, tags: [("ring", ring), ("site", "s\(number % 8)")],
                         apps: fleet.apps.map { app in (name: app.name, version: updated ? "2.0" : "1.0",
                                                        digest: updated ? app.targets[ring == "canary" ? 0 : 1].digest : "old") },
                         lastHeard: now.addingTimeInterval(number % 50 == 0 ? -3_600 : -5)))
    for app in fleet.apps {
        executions.append(.init(id: "e-\(app.name)-\(number)", deploymentID: "old-\(app.name)", deviceID: id, state: .succeeded,
                                updatedAt: now.addingTimeInterval(-80_000), takenAt: now.addingTimeInterval(-80_000)))
        if updated || number % 10 == 2 {
            executions.append(.init(id: "n-\(app.name)-\(number)", deploymentID: "w-\(app.name)-\(ring == "canary" ? "canary" : "rest")",
                                    deviceID: id, state: updated ? .succeeded : .running, updatedAt: now.addingTimeInterval(-10),
                                    takenAt: now.addingTimeInterval(-30)))
        }
    }
}
let snapshot = FleetSnapshot(commit: "c", fleet: fleet, devices: devices, deployments: deployments, executions: executions, now: now)

func seconds(_ work: () throws -> Void) rethrows -> Double {
    let start = DispatchTime.now().uptimeNanoseconds
    try work()
    return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
}

var baseline = Double.infinity
var decision = Double.infinity
var actions = 0
for _ in 0..<rounds {
    baseline = min(baseline, seconds {
        var hasher = Hasher()
        for device in snapshot.inventory.ids { hasher.combine(device) }
        for execution in snapshot.executions { hasher.combine(execution.deviceID); hasher.combine(execution.state) }
        _ = hasher.finalize()
    })
    decision = min(decision, try seconds { actions = try RolloutDecision.decide(snapshot).actions.count })
}
print("decision: \(deviceCount) devices × 3 apps, \(executions.count) executions: \(String(format: "%.1f", decision * 1_000)) ms "
      + "(\(actions) actions); baseline one pass \(String(format: "%.1f", baseline * 1_000)) ms; ratio \(String(format: "%.1f", decision / baseline))×")

let scenarios = 500
var decisions = 0
let simulated = try seconds {
    for seed in UInt64(0)..<UInt64(scenarios) {
        let simulator = try FleetSimulator(seed: seed)
        simulator.run()
        decisions += simulator.decisions
    }
}
print("simulator: \(scenarios) scenarios, \(decisions) decisions in \(String(format: "%.1f", simulated)) s: "
      + "\(Int(Double(scenarios) / simulated)) scenarios/s")
var planOnly = Double.infinity
for _ in 0..<rounds { planOnly = min(planOnly, try seconds { _ = try Planner.plan(fleet, inventory: snapshot.inventory) }) }
print("of which planning: \(String(format: "%.1f", planOnly * 1_000)) ms")
var lookups = Double.infinity
for _ in 0..<rounds {
    lookups = min(lookups, seconds {
        var index: [String: Int32] = [:]
        index.reserveCapacity(snapshot.inventory.count)
        for (number, id) in snapshot.inventory.ids.enumerated() { index[id] = Int32(number) }
        var sum = 0
        for execution in snapshot.executions { sum &+= Int(index[execution.deviceID] ?? 0) }
        precondition(sum != -1)
    })
}
print("of which string lookups: \(String(format: "%.1f", lookups * 1_000)) ms")

// A long-lived fleet: 10,000 devices × 3 apps with 30 releases of each rolled out before the one
// wanted now (900,000 executions). The decision over the whole history is the baseline; against
// it, cutting the history to what the decision reads (`ExecutionHistory`, as the controller does
// while it reads) and deciding over that.
let historyDevices = 10_000, releases = 30
var longDeployments = deployments
var longExecutions: [FleetSnapshot.Execution] = []
for release in 0..<releases {
    for app in fleet.apps {
        let id = "r\(release)-\(app.name)"
        longDeployments.append(.init(id: id, app: app.name, version: "1.\(release)", digest: "d\(release)", purpose: .rollout,
                                     createdAt: now.addingTimeInterval(Double(-90 * 86_400 + release * 86_400))))
        for number in 0..<historyDevices {
            longExecutions.append(.init(id: "\(id)-\(number)", deploymentID: id, deviceID: "device-\(number)",
                                        state: number % 97 == release % 97 ? .failed : .succeeded,
                                        updatedAt: now.addingTimeInterval(Double(-90 * 86_400 + release * 86_400 + 60))))
        }
    }
}
longExecutions += executions.filter { $0.deploymentID.hasPrefix("w-") && Int($0.deviceID.dropFirst(7))! < historyDevices }
let longSnapshot = FleetSnapshot(commit: "c", fleet: fleet, devices: Array(devices.prefix(historyDevices)), deployments: longDeployments,
                                 executions: longExecutions, now: now)
var whole = Double.infinity, cutting = Double.infinity, overCut = Double.infinity
var kept: [FleetSnapshot.Execution] = []
for _ in 0..<rounds {
    whole = min(whole, try seconds { _ = try RolloutDecision.decide(longSnapshot) })
    cutting = min(cutting, seconds { kept = ExecutionHistory.kept(in: longSnapshot) })
    var cut = longSnapshot
    cut.executions = kept
    overCut = min(overCut, try seconds { _ = try RolloutDecision.decide(cut) })
}
print("history: \(historyDevices) devices × 3 apps, \(releases) releases before: decision over all \(longExecutions.count) executions "
      + "\(String(format: "%.1f", whole * 1_000)) ms (baseline); kept \(kept.count) in \(String(format: "%.1f", cutting * 1_000)) ms, "
      + "decision over them \(String(format: "%.1f", overCut * 1_000)) ms; ratio \(String(format: "%.2f", overCut / whole))× "
      + "(\(String(format: "%.2f", (cutting + overCut) / whole))× with the cut)")
