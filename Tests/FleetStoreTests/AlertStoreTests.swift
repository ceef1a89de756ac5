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
    func anAlertChangesOnlyFromTheRowRead(_ kind: Kind) async throws {
        let store = try await kind.make()
        let stored = try #require(try await store.saveAlert(pending(), replacing: nil))
        #expect(stored.version == 1)
        #expect(try await store.saveAlert(pending(), replacing: nil) == nil, "a second insert loses")

        var firing = stored
        firing.state = .firing
        firing.firingAt = now.addingTimeInterval(60)
        let fired = try #require(try await store.saveAlert(firing, replacing: stored))
        #expect(fired.version == 2)
        // Another replica that read version 1 decides to clear it: it loses, and reads again.
        #expect(try await store.removeAlert(stored) == false)
        var stale = stored
        stale.state = .resolved
        #expect(try await store.saveAlert(stale, replacing: stored) == nil)
        #expect(try await store.alerts(project: "acme") == [fired])

        var resolved = fired
        resolved.state = .resolved
        resolved.resolvedAt = now.addingTimeInterval(120)
        resolved.observed = "cpu 12"
        let kept = try #require(try await store.saveAlert(resolved, replacing: fired))
        #expect(try await store.alerts(deviceID: "d1") == [kept])
        #expect(kept.observed == "cpu 12" && kept.summary == "The CPU is pegged.")
    }

    /// A pending alert removed and made again is version 1 again: a replica still holding the
    /// old one cannot take the new for it (it would fire before the new one held for `for`).
    @Test(arguments: Kind.allCases)
    func anAlertMadeAgainIsNotTakenForTheOld(_ kind: Kind) async throws {
        let store = try await kind.make()
        let old = try #require(try await store.saveAlert(pending(), replacing: nil))
        #expect(try await store.removeAlert(old))
        var again = pending()
        again.since = now.addingTimeInterval(600)
        let new = try #require(try await store.saveAlert(again, replacing: nil))
        #expect(new.version == old.version, "the same version number")
        var firing = old
        firing.state = .firing
        #expect(try await store.saveAlert(firing, replacing: old) == nil, "decided on the old one: refused")
        #expect(try await store.removeAlert(old) == false)
        #expect(try await store.alerts(project: "acme") == [new])
    }

    @Test(arguments: Kind.allCases)
    func alertsBelongToTheirProjectAndAreRemovedAndPruned(_ kind: Kind) async throws {
        let store = try await kind.make()
        let a = try #require(try await store.saveAlert(pending("hot", device: "d1"), replacing: nil))
        _ = try await store.saveAlert(pending("down", device: "d1"), replacing: nil)
        _ = try await store.saveAlert(pending("hot", device: "d9", project: "other"), replacing: nil)
        #expect(try await store.alerts(project: "acme").map { "\($0.rule)/\($0.device)" } == ["down/d1", "hot/d1"])
        #expect(try await store.alerts(project: "other").map(\.device) == ["d9"])
        #expect(try await store.alerts(project: "nobody").isEmpty)

        var elsewhere = a
        elsewhere.project = "other"
        #expect(try await store.removeAlert(elsewhere) == false, "another project's name")
        #expect(try await store.removeAlert(a))
        #expect(try await store.alerts(project: "acme").map(\.rule) == ["down"])
        // Removed, it starts again.
        #expect(try await store.saveAlert(pending("hot", device: "d1"), replacing: nil)?.version == 1)

        let down = try #require(try await store.alerts(project: "acme").first { $0.rule == "down" })
        var old = down
        old.state = .resolved
        old.resolvedAt = now
        _ = try await store.saveAlert(old, replacing: down)
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
            return try #require(try await store.saveAlert(firing, replacing: nil))
        }()
        let reopened = try SQLiteFleetStore(path: path)
        #expect(try await reopened.alerts(project: "acme") == [stored])
    }
}
