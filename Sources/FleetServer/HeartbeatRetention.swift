import FleetStore
import Foundation
import Logging
import ServiceLifecycle

/// Keeps the metrics history bounded. Every `every`, heartbeats older than `retention` are
/// summed up into ten-minute buckets (`MetricHistory`) and forgotten, and buckets older than
/// `metricsRetention` are forgotten. The latest state of each device lives on its device row,
/// not in history. Each replica runs it; the stores make a second run at once find nothing.
struct HeartbeatRetention: Service {
    let store: any FleetStore
    let retention: Duration
    let metricsRetention: Duration
    let every: Duration
    var logger = Logger(label: "flotilla.retention")
    static let commandRetentionSeconds: Double = 86_400

    func run() async throws {
        // A graceful shutdown (or cancellation) ends the wait between checks.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: every)
                do {
                    try await once(now: Date())
                } catch {
                    logger.warning("metrics history not rolled up; trying again at the next check", metadata: ["error": "\(error)"])
                }
            }
        }
    }

    /// One check: roll up whole buckets only (the cut is a bucket boundary), then prune. When
    /// the rollup fails, heartbeats twice the retention old are dropped anyway, so the store stays
    /// bounded whatever went wrong; the history is pruned either way.
    func once(now: Date) async throws {
        let kept = Double(retention.components.seconds)
        let cutoff = MetricHistory.bucketStart(now.addingTimeInterval(-kept), seconds: MetricHistory.bucketSeconds)
        var failure: (any Error)?
        do {
            let rolled = try await store.rollUpHeartbeats(before: cutoff, bucketSeconds: MetricHistory.bucketSeconds)
            if rolled > 0 { logger.debug("heartbeats rolled up into the metrics history", metadata: ["heartbeats": "\(rolled)"]) }
        } catch {
            failure = error
            try await store.pruneHeartbeats(before: cutoff.addingTimeInterval(-kept))
        }
        try await store.pruneMetrics(before: now.addingTimeInterval(-Double(metricsRetention.components.seconds)))
        // Remote commands and their output (up to 1 MiB a device) are kept a day: the audit log
        // keeps who ran what where for longer.
        try await store.pruneCommands(before: now.addingTimeInterval(-Self.commandRetentionSeconds))
        // Resolved alerts are kept a day, for the API and the console; firing ones stay.
        try await store.pruneAlerts(resolvedBefore: now.addingTimeInterval(-Self.commandRetentionSeconds))
        // Ended console sessions: each sign-in stores one, and a sign-in reads its token's.
        let sessions = try await store.pruneSessions(expiredBefore: now)
        if sessions > 0 { logger.debug("ended console sessions forgotten", metadata: ["sessions": "\(sessions)"]) }
        if let failure { throw failure }
    }
}
