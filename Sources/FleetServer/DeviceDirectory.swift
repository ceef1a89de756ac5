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
        var entries: [String: Entry] = [:]
        var lastHeard: [String: ContinuousClock.Instant] = [:]
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

    /// Drops what is cached of `devices` (of every device with nil).
    func forget(_ devices: [String]?) {
        state.withLock { state in
            guard let devices else { return state.entries.removeAll() }
            for device in devices { state.entries[device] = nil }
        }
    }

    /// An operator deleted the device or reset its identity: every replica reads it again.
    func revoked(_ record: DeviceRecord) async {
        remember(record)
        await events.changed([record.id])
    }

    func entry(for device: String) async throws -> Entry? {
        if let entry = state.withLock({ $0.entries[device] }) { return entry }
        guard let record = try await store.device(id: device) else { return nil }
        let entry = Entry(record)
        // A deletion noted while the store was read wins over what was read.
        return state.withLock { state in
            if let known = state.entries[device] { return known }
            state.entries[device] = entry
            return entry
        }
    }

    func remember(_ record: DeviceRecord) {
        state.withLock { $0.entries[record.id] = Entry(record) }
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
