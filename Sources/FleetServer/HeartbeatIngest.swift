import FleetStore
import Foundation
import ServiceLifecycle

/// The heartbeat hot path: reports wait at most `interval` (or until `batchSize` are waiting)
/// and are committed together; each is acknowledged only once its batch is durable.
actor HeartbeatIngest: Service {
    private let store: any FleetStore
    private let batchSize: Int
    private let interval: Duration
    private var pending: [(record: HeartbeatRecord, reply: CheckedContinuation<Bool, any Error>)] = []
    private var flushScheduled = false
    private(set) var committedBatches = 0
    private(set) var committedReports = 0

    init(store: any FleetStore, batchSize: Int, interval: Duration) {
        self.store = store
        self.batchSize = batchSize
        self.interval = interval
    }

    /// Waits until `record` is durable; true when it was new, false for a repeated report id.
    func submit(_ record: HeartbeatRecord) async throws -> Bool {
        try await withCheckedThrowingContinuation { reply in
            pending.append((record, reply))
            if pending.count >= batchSize {
                Task { await self.flush() }
            } else if !flushScheduled {
                flushScheduled = true
                Task {
                    try? await Task.sleep(for: self.interval)
                    await self.flush()
                }
            }
        }
    }

    /// Commits whatever is waiting, in one transaction.
    func flush() async {
        flushScheduled = false
        guard !pending.isEmpty else { return }
        let batch = pending
        pending = []
        do {
            let accepted = try await store.recordHeartbeats(batch.map(\.record))
            committedBatches += 1
            committedReports += batch.count
            for (entry, isNew) in zip(batch, accepted) { entry.reply.resume(returning: isNew) }
        } catch {
            for entry in batch { entry.reply.resume(throwing: error) }
        }
    }

    /// Runs until shutdown, then commits what is still waiting, so nothing acknowledged is lost
    /// and nothing waiting is dropped.
    func run() async throws {
        try? await gracefulShutdown()
        await flush()
    }
}
