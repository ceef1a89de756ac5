import FleetProtocol
import FleetStore
import FleetStoreSQLite
import Foundation
import Testing

/// Alerts in every store: changed only from the version read (two replicas deciding on the same
/// alert: one wins, the other reads again), scoped to the project, kept across a reopen, pruned.
struct AlertStoreTests {
    typealias Kind = StoreConformanceTests.Kind
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func pending(_ rule: String = "hot", device: String = "d1", project: String = "acme") -> AlertRecord {
        AlertRecord(project: project, rule: rule, device: device, state: .pending, severity: .critical, since: now,
                    observed: "cpu 97", summary: "The CPU is pegged.")
    }

    @Test(arguments: Kind.allCases)
    func anAlertChangesOnlyFromTheVersionRead(_ kind: Kind) async throws {
        let store = try await kind.make()
        let stored = try #require(try await store.saveAlert(pending()))
        #expect(stored.version == 1)
        #expect(try await store.saveAlert(pending()) == nil, "a second insert from version 0 loses")

        var firing = stored
        firing.state = .firing
        firing.firingAt = now.addingTimeInterval(60)
        let fired = try #require(try await store.saveAlert(firing))
        #expect(fired.version == 2)
        // Another replica that read version 1 decides to clear it: it loses, and reads again.
        #expect(try await store.removeAlert(project: "acme", rule: "hot", device: "d1", version: 1) == false)
        var stale = stored
        stale.state = .resolved
        #expect(try await store.saveAlert(stale) == nil)
        #expect(try await store.alerts(project: "acme") == [fired])

        var resolved = fired
        resolved.state = .resolved
        resolved.resolvedAt = now.addingTimeInterval(120)
        resolved.observed = "cpu 12"
        let kept = try #require(try await store.saveAlert(resolved))
        #expect(try await store.alerts(deviceID: "d1") == [kept])
        #expect(kept.observed == "cpu 12" && kept.summary == "The CPU is pegged.")
    }

    @Test(arguments: Kind.allCases)
    func alertsBelongToTheirProjectAndAreRemovedAndPruned(_ kind: Kind) async throws {
        let store = try await kind.make()
        let a = try #require(try await store.saveAlert(pending("hot", device: "d1")))
        _ = try await store.saveAlert(pending("down", device: "d1"))
        _ = try await store.saveAlert(pending("hot", device: "d9", project: "other"))
        #expect(try await store.alerts(project: "acme").map { "\($0.rule)/\($0.device)" } == ["down/d1", "hot/d1"])
        #expect(try await store.alerts(project: "other").map(\.device) == ["d9"])
        #expect(try await store.alerts(project: "nobody").isEmpty)

        #expect(try await store.removeAlert(project: "other", rule: "hot", device: "d1", version: 1) == false, "another project's name")
        #expect(try await store.removeAlert(project: "acme", rule: "hot", device: "d1", version: a.version))
        #expect(try await store.alerts(project: "acme").map(\.rule) == ["down"])
        // Removed, it starts again from version 0.
        #expect(try await store.saveAlert(pending("hot", device: "d1"))?.version == 1)

        var old = try #require(try await store.alerts(project: "acme").first { $0.rule == "down" })
        old.state = .resolved
        old.resolvedAt = now
        _ = try await store.saveAlert(old)
        try await store.pruneAlerts(resolvedBefore: now.addingTimeInterval(1))
        #expect(try await store.alerts(project: "acme").map(\.rule) == ["hot"], "the resolved one is pruned, the pending one stays")
    }

    @Test func firingAlertsOutliveARestart() async throws {
        let path = NSTemporaryDirectory() + "flotilla-alerts-\(UUID().uuidString).sqlite"
        var firing = pending()
        firing.state = .firing
        firing.firingAt = now
        let stored = try await {
            let store = try SQLiteFleetStore(path: path)
            return try #require(try await store.saveAlert(firing))
        }()
        let reopened = try SQLiteFleetStore(path: path)
        #expect(try await reopened.alerts(project: "acme") == [stored])
    }
}
