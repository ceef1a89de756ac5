import FleetStore
import Foundation
import Prometheus
import ServiceLifecycle

/// The heartbeat hot path, as a group commit: when no commit is running, waiting reports are
/// committed at once; while one runs, new reports gather and go together in the next, up to
/// `batchSize` per transaction. Latency stays one commit when the server is idle, and the commit
/// rate stays flat as the fleet grows. Each report is acknowledged only once it is durable.
///
/// `interval` bounds how long a report may wait behind a slow commit before its own starts
/// alongside (SQLite still serialises the writes).
actor HeartbeatIngest: Service {
    private let store: any FleetStore
    private let metrics: ServerMetrics?
    private let batchSize: Int
    private let interval: Duration
    private var pending: [(record: HeartbeatRecord, reply: CheckedContinuation<Bool, any Error>)] = []
    private var committing = false
    private var timerArmed = false
    private(set) var committedBatches = 0
    private(set) var committedReports = 0

    /// Reports waiting for the next commit.
    var waiting: Int { pending.count }

    init(store: any FleetStore, batchSize: Int, interval: Duration, metrics: ServerMetrics? = nil) {
        self.store = store
        self.metrics = metrics
        self.batchSize = batchSize
        self.interval = interval
    }

    /// Waits until `record` is durable; true when it was new, false for a repeated report id.
    func submit(_ record: HeartbeatRecord) async throws -> Bool {
        try await withCheckedThrowingContinuation { reply in
            pending.append((record, reply))
            if !committing {
                Task { await self.commitWaiting() }
            } else if !timerArmed {
                timerArmed = true
                Task {
                    try? await Task.sleep(for: self.interval)
                    await self.commitOverdue()
                }
            }
        }
    }

    /// Commits what is waiting, then whatever gathered meanwhile, until nothing waits.
    private func commitWaiting() async {
        guard !committing else { return }
        committing = true
        while !pending.isEmpty {
            let count = min(batchSize, pending.count)
            let batch = Array(pending.prefix(count))
            pending.removeFirst(count)
            await commit(batch)
        }
        committing = false
    }

    /// Reports that waited a whole interval behind a slow commit go in a commit of their own.
    private func commitOverdue() async {
        timerArmed = false
        guard committing, !pending.isEmpty else { return }
        let count = min(batchSize, pending.count)
        let batch = Array(pending.prefix(count))
        pending.removeFirst(count)
        await commit(batch)
    }

    private func commit(_ batch: [(record: HeartbeatRecord, reply: CheckedContinuation<Bool, any Error>)]) async {
        do {
            let accepted = try await store.recordHeartbeats(batch.map(\.record))
            committedBatches += 1
            committedReports += batch.count
            metrics?.batches.increment()
            metrics?.batchSize.record(Double(batch.count))
            let stored = accepted.filter { $0 }.count
            metrics?.heartbeats.increment(by: Int64(stored))
            metrics?.duplicateHeartbeats.increment(by: Int64(batch.count - stored))
            for (entry, isNew) in zip(batch, accepted) { entry.reply.resume(returning: isNew) }
        } catch {
            for entry in batch { entry.reply.resume(throwing: error) }
        }
    }

    /// Commits whatever is waiting, now.
    func flush() async {
        while !pending.isEmpty {
            let count = min(batchSize, pending.count)
            let batch = Array(pending.prefix(count))
            pending.removeFirst(count)
            await commit(batch)
        }
    }

    /// Runs until shutdown, then commits what is still waiting, so nothing acknowledged is lost
    /// and nothing waiting is dropped.
    func run() async throws {
        try? await gracefulShutdown()
        await flush()
    }
}
