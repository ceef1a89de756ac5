import FleetStore
import Foundation
import Synchronization

/// What the hot path needs to know about a device, kept in memory: its project, whether an
/// operator deleted it, and when it was last heard from. Filled from the store on first use.
///
/// A lock rather than an actor: every heartbeat reads it twice, and a lookup under an
/// uncontended mutex costs far less than a hop to an actor's executor.
final class DeviceDirectory: Sendable {
    struct Entry: Sendable {
        var project: String
        var deleted: Bool
        /// Tokens of an older generation were revoked by an identity reset.
        var tokenGeneration: Int
    }

    private struct State {
        var entries: [String: (entry: Entry, at: ContinuousClock.Instant)] = [:]
        var lastHeard: [String: ContinuousClock.Instant] = [:]
        /// Moves on whenever something is forgotten: a read of the store that began before
        /// is not cached (it may be what was just revoked).
        var forgetting = 0
    }

    private let store: any FleetStore
    private let state = Mutex(State())
    private let events: RegistryEvents

    /// `events` carries deletions and identity resets between replicas: what another replica
    /// changed is forgotten here and read again from the store on next use.
    init(store: any FleetStore, events: RegistryEvents = RegistryEvents()) {
        self.store = store
        self.events = events
        events.onChange { [weak self] devices in self?.forget(devices) }
    }

    /// Drops what is cached of `devices` (of every device with nil). A device named here was
    /// deleted or had its identity reset: its old tokens no longer work, so it no longer counts
    /// as online either, until it is heard from again.
    func forget(_ devices: [String]?) {
        state.withLock { state in
            state.forgetting += 1
            guard let devices else { return state.entries.removeAll() }
            for device in devices {
                state.entries[device] = nil
                state.lastHeard[device] = nil
            }
        }
    }

    /// An operator deleted the device or reset its identity. (Other replicas hear it from the
    /// store, which announces the change as it commits.)
    func revoked(_ record: DeviceRecord) {
        events.changed([record.id])
        remember(record)
    }

    func entry(for device: String) async throws -> Entry? {
        let now = ContinuousClock.now
        let trusted = events.isConnected
        let lifetime = events.cacheLifetime
        let (cached, forgetting) = state.withLock { state in
            (state.entries[device].flatMap { cached in lifetime.map { now - cached.at < $0 } ?? true ? cached.entry : nil },
             state.forgetting)
        }
        if trusted, let cached { return cached }
        guard let record = try await store.device(id: device) else { return nil }
        let entry = Entry(record)
        // A deletion noted while the store was read wins over what was read.
        return state.withLock { state in
            guard state.forgetting == forgetting else { return entry }
            if let known = state.entries[device], trusted, lifetime.map({ now - known.at < $0 }) ?? true { return known.entry }
            state.entries[device] = (entry, now)
            return entry
        }
    }

    /// Where forgetting stands: taken before a read of the store whose record is then
    /// `remember`ed, so a deletion or reset noted in between wins over what was read.
    var mark: Int { state.withLock { $0.forgetting } }

    /// Caches `record`, unless something was forgotten since `mark` (the record may be what was
    /// revoked), or what is cached already is later: what an operator did stays done — a
    /// device deleted stays deleted, and a token generation never goes back — whatever order
    /// an enrollment read before it and the revocation reach this cache in.
    func remember(_ record: DeviceRecord, readSince mark: Int? = nil) {
        let now = ContinuousClock.now
        let entry = Entry(record)
        state.withLock { state in
            if let mark, state.forgetting != mark { return }
            if let known = state.entries[record.id]?.entry,
               known.tokenGeneration > entry.tokenGeneration || (known.deleted && !entry.deleted) { return }
            state.entries[record.id] = (entry, now)
        }
    }

    /// Notes that `device` was heard from now.
    func heard(_ device: String) {
        let now = ContinuousClock.now
        state.withLock { $0.lastHeard[device] = now }
    }

    /// Devices heard from within `window`.
    func onlineCount(within window: Duration) -> Int {
        let cutoff = ContinuousClock.now - window
        return state.withLock { state in
            state.lastHeard = state.lastHeard.filter { $0.value >= cutoff }
            return state.lastHeard.count
        }
    }
}

extension DeviceDirectory.Entry {
    init(_ record: DeviceRecord) {
        self.init(project: record.project, deleted: record.deleted, tokenGeneration: record.tokenGeneration)
    }
}
