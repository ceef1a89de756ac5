import FleetStore
import Foundation

/// What the hot path needs to know about a device, kept in memory: its project and whether an
/// operator deleted it. Filled from the store on first use.
actor DeviceDirectory {
    struct Entry: Sendable {
        var project: String
        var deleted: Bool
    }

    private let store: any FleetStore
    private var entries: [String: Entry] = [:]

    init(store: any FleetStore) {
        self.store = store
    }

    func entry(for device: String) async throws -> Entry? {
        if let entry = entries[device] { return entry }
        guard let record = try await store.device(id: device) else { return nil }
        let entry = Entry(project: record.project, deleted: record.deleted)
        entries[device] = entry
        return entry
    }

    func remember(_ record: DeviceRecord) {
        entries[record.id] = Entry(project: record.project, deleted: record.deleted)
    }

    func markDeleted(_ device: String) {
        entries[device]?.deleted = true
    }

    private var lastHeard: [String: ContinuousClock.Instant] = [:]

    /// Notes that `device` was heard from now.
    func heard(_ device: String) {
        lastHeard[device] = .now
    }

    /// Devices heard from within `window`.
    func onlineCount(within window: Duration) -> Int {
        let cutoff = ContinuousClock.now - window
        lastHeard = lastHeard.filter { $0.value >= cutoff }
        return lastHeard.count
    }
}
