import Foundation
import Synchronization

/// Request latencies in buckets 10 % apart (from 0.1 ms to about 2 minutes), so a percentile is
/// known to within 10 % whatever the number of requests, in constant memory: what `flotilla sim`
/// says of its heartbeats, per status line and for the whole run.
struct LatencyHistogram: Sendable, Equatable {
    static let smallest = 0.1  // milliseconds
    static let factor = 1.1
    static let bucketCount = 150

    private(set) var counts = [Int](repeating: 0, count: bucketCount)
    private(set) var count = 0
    private(set) var maximum = 0.0

    static func bucket(milliseconds: Double) -> Int {
        guard milliseconds > smallest else { return 0 }
        return min(bucketCount - 1, Int((log(milliseconds / smallest) / log(factor)).rounded(.up)))
    }

    /// The upper bound of bucket `index`, in milliseconds.
    static func upperBound(_ index: Int) -> Double { smallest * pow(factor, Double(index)) }

    mutating func record(milliseconds: Double) {
        counts[Self.bucket(milliseconds: milliseconds)] += 1
        count += 1
        maximum = max(maximum, milliseconds)
    }

    mutating func add(_ other: LatencyHistogram) {
        for index in counts.indices { counts[index] += other.counts[index] }
        count += other.count
        maximum = max(maximum, other.maximum)
    }

    /// The latency under which `fraction` of the requests came back (the bucket's upper bound,
    /// never above the slowest seen); nil before any.
    func percentile(_ fraction: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = max(1, Int((fraction * Double(count)).rounded(.up)))
        var seen = 0
        for (index, bucketCount) in counts.enumerated() {
            seen += bucketCount
            if seen >= rank { return min(Self.upperBound(index), maximum) }
        }
        return maximum
    }

    /// "p50 3.1 ms, p99 41 ms, max 120 ms over 1234"
    var summary: String {
        guard let p50 = percentile(0.5), let p99 = percentile(0.99) else { return "none yet" }
        func format(_ value: Double) -> String {
            value < 10 ? String(Double(Int(value * 10)) / 10) : String(Int(value.rounded()))
        }
        return "p50 \(format(p50)) ms, p99 \(format(p99)) ms, max \(format(maximum)) ms over \(count)"
    }
}

/// A histogram for the current status line and one for the whole run.
final class HeartbeatLatencies: Sendable {
    private let state = Mutex((window: LatencyHistogram(), total: LatencyHistogram()))

    func record(milliseconds: Double) {
        state.withLock {
            $0.window.record(milliseconds: milliseconds)
            $0.total.record(milliseconds: milliseconds)
        }
    }

    /// The window's histogram, starting a new window.
    func takeWindow() -> LatencyHistogram {
        state.withLock { state in
            defer { state.window = LatencyHistogram() }
            return state.window
        }
    }

    var total: LatencyHistogram { state.withLock { $0.total } }
}
