import FleetCore
import FleetProtocol
import FleetSimulation
import Foundation
import Testing

/// The rollout engine against the deterministic simulator. CI runs 10,000 seeds through the
/// release build (`hack/test.sh`); these run a few hundred in the test build, and check that the
/// simulator itself catches what it must.
struct SimulatorTests {
    @Test func seededScenariosKeepEveryInvariant() throws {
        var failures: [String] = []
        var dropped = 0
        for seed in UInt64(0)..<150 {
            let simulator = try FleetSimulator(seed: seed)
            if let violation = simulator.run().first {
                failures.append("seed \(seed): \(violation) — replay: swift run -c release fleet-simulator --seed \(seed)")
            }
            dropped += simulator.historyDropped
        }
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
        // The history cut is checked only where it cuts something.
        #expect(dropped > 1_000)
    }

    @Test func aSeedReplaysExactly() throws {
        var first: [String] = []
        var second: [String] = []
        _ = try FleetSimulator(seed: 42) { first.append($0) }.run()
        _ = try FleetSimulator(seed: 42) { second.append($0) }.run()
        #expect(first.count > 10)
        #expect(first == second)
    }
}

