import FleetStore
import Foundation

/// The devices of a project as the console's pages read them: one read of the store shared by
/// every page and every console for a few seconds, so a page over 100,000 devices filters memory
/// instead of decoding the whole registry again.
///
/// A snapshot lasts its lifetime: `freshness` (a second), or ten times as long as reading it took
/// when that is longer, so the reads never take more than a tenth of a core however many consoles
/// are open. Up to twice its lifetime it is still served at once while one refresh runs behind it
/// (stale while revalidating); older, a page waits for the fresh one. Each page says how old its
/// list is. A project no console asked about for `keep` is dropped.
actor ConsoleDeviceCache {
    struct Snapshot: Sendable {
        /// When the store was read.
        var at: Date
        /// The project's devices that are not deleted, in id order.
        var devices: [DeviceRecord]
        /// Every app any of them runs, in name order.
        var apps: [String]
    }

    private struct Entry {
        var snapshot: Snapshot
        var readSeconds: Double
        var lastUsed: Date
    }

    private let store: any FleetStore
    private let freshness: TimeInterval
    /// How many times its read's cost a list lasts at least.
    private let readCostFactor: Double
    private let keep: TimeInterval
    private var entries: [String: Entry] = [:]
    private var refreshing: [String: Task<Entry, any Error>] = [:]
    /// Reads of the store so far, for the tests.
    private(set) var reads = 0

    init(store: any FleetStore, freshness: TimeInterval = 1, readCostFactor: Double = 10, keep: TimeInterval = 300) {
        self.store = store
        self.freshness = freshness
        self.readCostFactor = readCostFactor
        self.keep = keep
    }

    func snapshot(project: String, now: Date = Date()) async throws -> Snapshot {
        entries = entries.filter { now.timeIntervalSince($0.value.lastUsed) < keep }
        if var entry = entries[project] {
            entry.lastUsed = now
            entries[project] = entry
            let lifetime = max(freshness, entry.readSeconds * readCostFactor)
            let age = now.timeIntervalSince(entry.snapshot.at)
            if age < lifetime { return entry.snapshot }
            if refreshing[project] == nil { refreshing[project] = read(project) }
            // Just past its lifetime, the list is served while the refresh runs behind it; one
            // long unread is not shown at all: the page waits for the fresh one.
            guard age < 2 * lifetime else { return try await finish(project).snapshot }
            Task { _ = try? await self.finish(project) }
            return entry.snapshot
        }
        if refreshing[project] == nil { refreshing[project] = read(project) }
        return try await finish(project).snapshot
    }

    private func read(_ project: String) -> Task<Entry, any Error> {
        reads += 1
        let store = self.store
        return Task {
            let started = ContinuousClock.now, at = Date()
            let devices = try await store.devices(project: project).filter { !$0.deleted }.sorted { $0.id < $1.id }
            let apps = Set(devices.lazy.flatMap(\.apps.keys)).sorted()
            let (seconds, attoseconds) = (ContinuousClock.now - started).components
            return Entry(snapshot: Snapshot(at: at, devices: devices, apps: apps),
                         readSeconds: Double(seconds) + Double(attoseconds) / 1e18, lastUsed: at)
        }
    }

    private func finish(_ project: String) async throws -> Entry {
        guard let task = refreshing[project] else { return entries[project]! }
        do {
            let entry = try await task.value
            if refreshing[project] == task { refreshing[project] = nil }
            var kept = entry
            kept.lastUsed = max(entries[project]?.lastUsed ?? entry.lastUsed, entry.lastUsed)
            entries[project] = kept
            return kept
        } catch {
            if refreshing[project] == task { refreshing[project] = nil }
            throw error
        }
    }

    /// Something an operator did changed the devices (deleted one, say): the next page reads anew.
    func forget(project: String) {
        entries[project] = nil
    }
}
