@testable import FleetCLI
import Testing

/// The simulator's heartbeat latencies: percentiles within 10 % in constant memory.
struct LatencyHistogramTests {
    @Test func percentilesAreWithinABucketOfTheTruth() {
        var histogram = LatencyHistogram()
        // 1 … 1000 ms, once each: the true p50 is 500 ms, p99 990 ms.
        for millisecond in 1...1_000 { histogram.record(milliseconds: Double(millisecond)) }
        let p50 = histogram.percentile(0.5)!, p99 = histogram.percentile(0.99)!
        #expect(p50 >= 500 && p50 <= 550)
        #expect(p99 >= 990 && p99 <= 1_000)
        #expect(histogram.percentile(1) == 1_000)
        #expect(histogram.count == 1_000)
    }

    @Test func aSlowTailShowsInP99AndNotInP50() {
        var histogram = LatencyHistogram()
        for _ in 0..<980 { histogram.record(milliseconds: 2) }
        for _ in 0..<20 { histogram.record(milliseconds: 3_000) }
        #expect(histogram.percentile(0.5)! <= 2.2)
        #expect(histogram.percentile(0.99)! >= 2_700)
        #expect(histogram.summary.hasPrefix("p50 2."))
        #expect(histogram.summary.hasSuffix("max 3000 ms over 1000"))
    }

    @Test func extremesLandInTheEndBuckets() {
        #expect(LatencyHistogram.bucket(milliseconds: 0) == 0)
        #expect(LatencyHistogram.bucket(milliseconds: 0.05) == 0)
        #expect(LatencyHistogram.bucket(milliseconds: 10_000_000) == LatencyHistogram.bucketCount - 1)
        #expect(LatencyHistogram().percentile(0.99) == nil)
        #expect(LatencyHistogram().summary == "none yet")
    }

    @Test func aWindowStartsAfreshAndTheTotalKeepsAll() {
        let latencies = HeartbeatLatencies()
        latencies.record(milliseconds: 5)
        latencies.record(milliseconds: 7)
        #expect(latencies.takeWindow().count == 2)
        latencies.record(milliseconds: 9)
        #expect(latencies.takeWindow().count == 1)
        #expect(latencies.takeWindow().count == 0)
        #expect(latencies.total.count == 3)
    }
}
