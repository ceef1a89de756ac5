// Plans a generated fleet of a million devices × 3 apps and prints the time as a ratio to a
// baseline measured in the same run: one pass over the same inventory hashing each device's
// id and tags. Run through hack/bench.sh (release build).
import FleetCore
import Foundation

let deviceCount = CommandLine.arguments.dropFirst().first.flatMap(Int.init) ?? 1_000_000
let rounds = 3

let sites = ["berlin", "paris", "madrid", "oslo", "rome", "lisbon", "vienna", "prague"]
let rings = ["canary", "beta", "prod", "prod", "prod", "prod", "prod", "prod", "prod", "prod"]
let hardware = ["rpi3", "rpi4", "gateway", "rpi4"]
let versions = ["2.3.9", "2.4.0", "2.4.1", "2.5.0"]

func fleetFiles() -> FleetTree {
    var files: [String: String] = [
        "fleet.yaml": """
            kind: Fleet
            project: bench
            artifacts: {allow: ["https://cdn.example.com/"]}
            """,
        "groups/groups.yaml": """
            kind: Group
            name: canary
            selector: ring=canary
            ---
            kind: Group
            name: beta-south
            selector: ring=beta,site in (madrid,rome,lisbon)
            ---
            kind: Group
            name: europe
            selector: site in (berlin,paris,madrid,rome,lisbon,vienna,prague),ring notin (canary),!retired
            ---
            kind: Group
            name: gateways
            selector: hw=gateway,!retired
            ---
            kind: Group
            name: everyone
            selector: "!retired"
            """,
        "flows/flow.yaml": """
            kind: UpdateFlow
            name: flow
            parameters: {url: {type: url, required: true}}
            steps:
              - {name: fetch, download: {url: "${url}", sha256: "0000000000000000000000000000000000000000000000000000000000000000", destination: /tmp/x}}
              - {name: start, run: "start ${app} ${version}"}
            """,
    ]
    for app in ["thermostat", "telemetry", "display"] {
        files["apps/\(app).yaml"] = """
            kind: App
            name: \(app)
            flow: flow
            parameters: {url: "https://cdn.example.com/\(app).tgz"}
            targets:
              - {group: canary, version: "2.5.0"}
              - {group: beta-south, version: "2.4.1"}
              - {group: \(app == "telemetry" ? "gateways" : "europe"), version: "2.4.1"}
              - {group: everyone, version: "2.4.0"}
            """
    }
    var tree = FleetTree()
    for (path, text) in files { tree.addFile(path, bytes: Array(text.utf8)) }
    return tree
}

/// A cheap deterministic mix, so every device's tags are reproducible without storing them twice.
@inline(__always) func mix(_ value: Int) -> Int {
    var x = UInt64(truncatingIfNeeded: value) &* 0x9E37_79B9_7F4A_7C15
    x ^= x >> 29
    return Int(truncatingIfNeeded: x & 0x7fff_ffff)
}

func tags(of index: Int) -> [(String, String)] {
    let h = mix(index)
    var tags = [("site", sites[h % sites.count]), ("ring", rings[(h >> 4) % rings.count]), ("hw", hardware[(h >> 8) % hardware.count])]
    if (h >> 12) % 50 == 0 { tags.append(("retired", "yes")) }
    return tags
}

func residentPeakMB() -> Double {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
          let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "")
    else { return -1 }
    return kilobytes / 1024
}

func seconds(_ body: () throws -> Void) rethrows -> Double {
    let start = ContinuousClock.now
    try body()
    let elapsed = ContinuousClock.now - start
    return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
}

let fleet = try FleetLoader.load(fleetFiles())
var inventory = DeviceInventory()
inventory.reserveCapacity(devices: deviceCount, tagsPerDevice: 3, appsPerDevice: 2)
let generation = seconds {
    for index in 0..<deviceCount {
        let h = mix(index &+ 17)
        var apps: [(name: String, version: String, digest: String?)] = [("thermostat", versions[h % versions.count], nil)]
        if h % 3 == 0 { apps.append(("display", versions[(h >> 3) % versions.count], nil)) }
        inventory.append(id: "dev-\(String(index, radix: 16))", tags: tags(of: index), apps: apps, online: h % 10 != 0)
    }
}
// Hexadecimal ids are not in string order, so each plan also pays for sorting them.
print(String(format: "generated %d devices in %.2f s", deviceCount, generation))

var baselineBest = Double.infinity, planBest = Double.infinity
var checksum = 0, changes = 0
for _ in 0..<rounds {
    baselineBest = min(baselineBest, seconds {
        var hasher = Hasher()
        for index in 0..<inventory.count {
            hasher.combine(inventory.ids[index])
            for (key, value) in tags(of: index) {
                hasher.combine(key)
                hasher.combine(value)
            }
        }
        checksum &+= hasher.finalize()
    })
    planBest = min(planBest, try seconds {
        let plan = try Planner.plan(fleet, inventory: inventory)
        changes = plan.changeCount
    })
}

print(String(format: "baseline  (hash every device's id and tags):  %.3f s", baselineBest))
print(String(format: "plan      (%d devices × %d apps, %d changes): %.3f s", deviceCount, fleet.apps.count, changes, planBest))
print(String(format: "ratio     plan / baseline: %.2f×", planBest / baselineBest))
print(String(format: "peak resident memory: %.0f MB (process total, inventory included)", residentPeakMB()))
if checksum == 42 { print("") }  // keeps the baseline's work observable
