import FleetStore
import Foundation
import ServiceLifecycle

/// Keeps the metrics history bounded: heartbeats older than `retention` are forgotten, checked
/// every `every`. The latest state of each device lives on its device row, not in history.
struct HeartbeatRetention: Service {
    let store: any FleetStore
    let retention: Duration
    let every: Duration

    func run() async throws {
        // A graceful shutdown (or cancellation) ends the wait between checks.
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: every)
                let cutoff = Date().addingTimeInterval(-Double(retention.components.seconds))
                try? await store.pruneHeartbeats(before: cutoff)
            }
        }
    }
}
