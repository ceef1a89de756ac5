// fleet-simulator: runs seeded scenarios of the deterministic fleet simulator and checks the
// rollout engine's invariants in each.
//
//   fleet-simulator --scenarios 10000 [--first-seed 0]   many scenarios; exit 1 on a violation
//   fleet-simulator --seed 1234                          one scenario, with its step-by-step trace
import FleetSimulation
#if canImport(Glibc)
import Glibc
#endif

func usage() -> Never {
    print("usage: fleet-simulator --scenarios N [--first-seed S] | --seed S")
    exit(2)
}

var arguments = Array(CommandLine.arguments.dropFirst())
var scenarios: Int?
var firstSeed: UInt64 = 0
var replay: UInt64?
while !arguments.isEmpty {
    let flag = arguments.removeFirst()
    guard let value = arguments.first else { usage() }
    arguments.removeFirst()
    switch flag {
    case "--scenarios": scenarios = Int(value) ?? { usage() }()
    case "--first-seed": firstSeed = UInt64(value) ?? { usage() }()
    case "--seed": replay = UInt64(value) ?? { usage() }()
    default: usage()
    }
}

if let replay {
    do {
        let simulator = try FleetSimulator(seed: replay) { print($0) }
        let violations = simulator.run()
        print(violations.isEmpty ? "seed \(replay): every invariant held (\(simulator.decisions) decisions)" : "seed \(replay): \(violations.count) violation(s)")
        exit(violations.isEmpty ? 0 : 1)
    } catch {
        print("seed \(replay): the scenario does not load: \(error)")
        exit(1)
    }
}

guard let scenarios, scenarios > 0 else { usage() }
var failed: [(UInt64, Violation)] = []
var decisions = 0
var dropped = 0
var clock = timespec()
clock_gettime(CLOCK_MONOTONIC, &clock)
let started = Double(clock.tv_sec) + Double(clock.tv_nsec) / 1e9
for seed in firstSeed..<firstSeed + UInt64(scenarios) {
    do {
        let simulator = try FleetSimulator(seed: seed)
        if let first = simulator.run().first { failed.append((seed, first)) }
        decisions += simulator.decisions
        dropped += simulator.historyDropped
    } catch {
        print("seed \(seed): the scenario does not load: \(error)")
        exit(1)
    }
    if (seed - firstSeed + 1) % 2_000 == 0 { print("  \(seed - firstSeed + 1) scenarios…") }
}
clock_gettime(CLOCK_MONOTONIC, &clock)
let elapsed = Double(clock.tv_sec) + Double(clock.tv_nsec) / 1e9 - started
for (seed, violation) in failed.prefix(10) {
    print("seed \(seed): \(violation)\n  replay: swift run -c release fleet-simulator --seed \(seed)")
}
print("simulator: \(scenarios) scenarios, \(decisions) decisions in \(Int(elapsed)) s (\(Int(Double(scenarios) / max(elapsed, 0.001))) scenarios/s)")
print("history: \(dropped) executions left out of decisions' snapshots, each decision checked against the whole history")
print("\(scenarios - failed.count) passed, \(failed.count) failed")
exit(failed.isEmpty ? 0 : 1)
