import FleetProtocol
import Glibc
import Synchronization
/// Exponential back-off with full jitter: 1 s, 2 s, 4 s … up to 5 minutes, each drawn from the
/// upper half of its range so a fleet that lost its server does not return in step.
struct Backoff {
    var attempt = 0
    var base = 1.0
    var cap = 300.0

    /// The most a server's `Retry-After` holds the agent back: an answer of years (or one that
    /// does not fit an Int once printed) from a proxy must not stop heartbeats for good.
    static let longestRetryAfter = 3_600

    /// How long to wait before asking again after a long-poll the server did not hold.
    static func deferral(_ askAgainIn: Int?) -> Double? {
        LongPollDeferral.pause(retryAfter: askAgainIn).map(Double.init)
    }

    mutating func next(retryAfter: Int? = nil) -> Double {
        defer { attempt += 1 }
        let ceiling = min(cap, base * Double(1 << min(attempt, 16)))
        let delay = Double.random(in: ceiling / 2...ceiling)
        return max(delay, Double(min(max(retryAfter ?? 0, 0), Self.longestRetryAfter)))
    }

    mutating func reset() { attempt = 0 }
}

extension AgentAPI.Failure {
    var retryAfter: Int? {
        if case .unavailable(_, let seconds) = self { return seconds }
        return nil
    }
}

extension String {
    var trimmingQuotes: String {
        var text = Substring(self)
        if text.hasPrefix("\"") { text = text.dropFirst() }
        if text.hasSuffix("\"") { text = text.dropLast() }
        return String(text)
    }
}

/// A thread of its own (the agent links no Dispatch and no concurrency runtime).
final class Worker {
    private var thread = pthread_t()

    private init() {}

    static func start(_ body: @escaping @Sendable () -> Void) -> Worker {
        let worker = Worker()
        let box = Unmanaged.passRetained(Box(body))
        let status = pthread_create(&worker.thread, nil, { context in
            let box = Unmanaged<Box>.fromOpaque(context!).takeRetainedValue()
            box.body()
            return nil
        }, box.toOpaque())
        precondition(status == 0, "cannot start a thread")
        return worker
    }

    func join() { pthread_join(thread, nil) }

    /// A thread nobody joins: its resources go when it ends.
    static func detached(_ body: @escaping @Sendable () -> Void) {
        pthread_detach(start(body).thread)
    }

    private final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
}
