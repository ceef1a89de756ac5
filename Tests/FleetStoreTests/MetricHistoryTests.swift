import FleetProtocol
import FleetStore
import Foundation
import Testing

/// Heartbeats summed up into buckets, and buckets into coarser ones: pure, in milliseconds.
struct MetricHistoryTests {
    static let t0 = Date(timeIntervalSince1970: 1_800_000_000) // a multiple of ten minutes

    static func beat(_ device: String, at offset: Double, cpu: Double?, used: Int64 = 1, total: Int64 = 4,
                     disks: [(Int64, Int64)] = [], load: Double? = nil) -> HeartbeatRecord {
        HeartbeatRecord(deviceID: device, receivedAt: t0.addingTimeInterval(offset),
                        report: Heartbeat(reportID: "r\(device)\(offset)", cpuPercent: cpu, memory: .init(usedBytes: used, totalBytes: total),
                                          disks: disks.map { .init(mount: "/m\($0.0)", usedBytes: $0.0, totalBytes: $0.1) },
                                          load: load.map { [$0, 0, 0] }))
    }

    @Test func heartbeatsBecomeBucketsPerDeviceAndTenMinutes() {
        let buckets = MetricHistory.buckets([
            Self.beat("b", at: 30, cpu: 80),
            Self.beat("a", at: 0, cpu: 10, disks: [(1, 10), (9, 10)], load: 0.5),
            Self.beat("a", at: 599, cpu: 30, used: 3, disks: [(5, 10)], load: 1.5),
            Self.beat("a", at: 600, cpu: nil),
        ])
        #expect(buckets.map { "\($0.deviceID)@\(Int($0.start.timeIntervalSince(Self.t0)))x\($0.samples)" } == ["a@0x2", "a@600x1", "b@0x1"])
        let first = buckets[0]
        #expect(first.seconds == 600)
        #expect(first.cpu == .init(count: 2, mean: 20, max: 30))
        #expect(first.memory == .init(count: 2, mean: 50, max: 75))
        // The fullest mount of each heartbeat: 90%, then 50%.
        #expect(first.disk == .init(count: 2, mean: 70, max: 90))
        #expect(first.load == .init(count: 2, mean: 1, max: 1.5))
        // A heartbeat without a measure does not count for it.
        #expect(buckets[1].cpu == nil && buckets[1].memory?.count == 1 && buckets[1].disk == nil)
    }

    @Test func mergingIsWeightedByHowManyCarriedEachMeasure() {
        let early = MetricHistory.buckets([Self.beat("a", at: 0, cpu: 10), Self.beat("a", at: 10, cpu: 20), Self.beat("a", at: 20, cpu: 30)])[0]
        let late = MetricHistory.buckets([Self.beat("a", at: 30, cpu: 90)])[0]
        let merged = early.merged(with: late)
        #expect(merged.samples == 4)
        #expect(merged.cpu == .init(count: 4, mean: 37.5, max: 90))
        // The same as summing all four at once.
        let all = MetricHistory.buckets([Self.beat("a", at: 0, cpu: 10), Self.beat("a", at: 10, cpu: 20), Self.beat("a", at: 20, cpu: 30),
                                         Self.beat("a", at: 30, cpu: 90)])[0]
        #expect(all == merged)
    }

    @Test func downsamplingMergesIntoWiderBucketsAndLeavesGapsOut() {
        let beats = [0.0, 600, 1_200, 3_600, 4_200].map { Self.beat("a", at: $0, cpu: $0 / 100) }
        let hourly = MetricHistory.downsample(MetricHistory.buckets(beats), seconds: 3_600)
        #expect(hourly.map { Int($0.start.timeIntervalSince(Self.t0)) } == [0, 3_600])
        #expect(hourly.map(\.samples) == [3, 2])
        #expect(hourly[0].cpu == .init(count: 3, mean: 6, max: 12))
        #expect(hourly.allSatisfy { $0.seconds == 3_600 })
    }

    @Test(arguments: [
        // (span in seconds, at most this many points, the width)
        (3_600.0, 300, 60), (86_400.0, 300, 300), (86_400.0, 100, 1_200), (7 * 86_400.0, 300, 2_400), (600.0, 1_000, 60),
    ])
    func theWidthFitsTheSpanInThePoints(span: Double, points: Int, width: Int) {
        #expect(MetricHistory.width(span: span, points: points) == width)
        #expect(span / Double(width) <= Double(points))
    }

    /// What a hostile device sends is bounded before it is summed up or stored: nothing traps.
    @Test func extremeValuesAreBoundedNeverATrap() {
        let buckets = MetricHistory.buckets([Self.beat("a", at: 0, cpu: .nan, load: 1e300), Self.beat("a", at: 1, cpu: 1e9, load: .infinity)])
        #expect(buckets[0].cpu == .init(count: 1, mean: 100, max: 100))
        #expect(buckets[0].load == .init(count: 1, mean: MetricBucket.Statistic.limit, max: MetricBucket.Statistic.limit))
        #expect(buckets[0].load?.hundredths.max == 1_000_000_000)
        #expect(MetricBucket.Statistic(count: 1, mean: -.greatestFiniteMagnitude, max: .nan).hundredths == (-1_000_000_000, 0))
        // What the stores keep in 32-bit columns.
        #expect(1_000_000_000 <= Int(Int32.max))
    }

    @Test func storedHundredthsRoundTrip() {
        let statistic = MetricBucket.Statistic(count: 3, mean: 12.345, max: 99.999)
        let back = MetricBucket.Statistic(count: 3, meanHundredths: statistic.hundredths.mean, maxHundredths: statistic.hundredths.max)
        #expect(back == .init(count: 3, mean: 12.35, max: 100))
    }
}

extension StoreConformanceTests {
    /// The history is bounded: heartbeats a day old are summed up into buckets once, in one
    /// transaction with forgetting them, merged with what a bucket already holds; and the
    /// buckets themselves are forgotten past their retention.
    @Test(arguments: Kind.allCases)
    func heartbeatsRollUpIntoTheMetricsHistoryOnce(_ kind: Kind) async throws {
        let store = try await kind.make()
        _ = try await store.enroll(device("d1", hardware: "serial-1"))
        _ = try await store.enroll(device("d2", hardware: "serial-2"))
        let beat = MetricHistoryTests.beat
        #expect(try await store.recordHeartbeats([
            beat("d1", 0, 10, 1, 4, [], nil), beat("d1", 300, 30, 3, 4, [(1, 4)], 2), beat("d1", 650, 50, 1, 4, [], nil),
            beat("d2", 100, 70, 1, 4, [], nil),
        ]) == [true, true, true, true])
        #expect(try await store.rollUpHeartbeats(before: now.addingTimeInterval(600), bucketSeconds: 600) == 3)
        // What was rolled up is forgotten; the rest stays.
        #expect(try await store.heartbeats(deviceID: "d1", since: now, until: now.addingTimeInterval(3_600), limit: 100,
                                               maximumBytes: .max).records.map(\.receivedAt)
                == [now.addingTimeInterval(650)])
        var history = try await store.metrics(deviceID: "d1", since: now.addingTimeInterval(-600), until: now.addingTimeInterval(3_600))
        #expect(history == [MetricBucket(deviceID: "d1", start: now, seconds: 600, samples: 2, cpu: .init(count: 2, mean: 20, max: 30),
                                         memory: .init(count: 2, mean: 50, max: 75), disk: .init(count: 1, mean: 25, max: 25),
                                         load: .init(count: 1, mean: 2, max: 2))])
        #expect(try await store.metrics(deviceID: "d2", since: now, until: now.addingTimeInterval(600)).map(\.samples) == [1])
        // Rolling up again finds nothing new before the same time.
        #expect(try await store.rollUpHeartbeats(before: now.addingTimeInterval(600), bucketSeconds: 600) == 0)

        // A heartbeat of a bucket already rolled up (a late one) is merged into it, not put beside it.
        #expect(try await store.recordHeartbeats([beat("d1", 200, 80, 1, 4, [], nil)]) == [true])
        #expect(try await store.rollUpHeartbeats(before: now.addingTimeInterval(1_200), bucketSeconds: 600) == 2)
        history = try await store.metrics(deviceID: "d1", since: now, until: now.addingTimeInterval(3_600))
        #expect(history.map(\.samples) == [3, 1])
        #expect(history.first?.cpu == .init(count: 3, mean: 40, max: 80))
        #expect(history.first?.disk == .init(count: 1, mean: 25, max: 25))
        #expect(try await store.heartbeats(deviceID: "d1", limit: 10).isEmpty)

        // The range is by bucket start; past the retention buckets are forgotten.
        #expect(try await store.metrics(deviceID: "d1", since: now.addingTimeInterval(600), until: now.addingTimeInterval(601)).count == 1)
        try await store.pruneMetrics(before: now.addingTimeInterval(600))
        #expect(try await store.metrics(deviceID: "d1", since: now, until: now.addingTimeInterval(3_600)).map(\.start) == [now.addingTimeInterval(600)])
        #expect(try await store.metrics(deviceID: "d2", since: now, until: now.addingTimeInterval(3_600)).isEmpty)
    }
}

extension StoreConformanceTests {
    /// A device that sent far more heartbeats than it should is rolled up in bounded batches,
    /// each merged into the buckets the last one left: none counted twice, none left behind.
    @Test(arguments: Kind.allCases)
    func aFloodOfHeartbeatsRollsUpInBatches(_ kind: Kind) async throws {
        let store = try await kind.make()
        _ = try await store.enroll(device("d1", hardware: "serial-1"))
        for first in stride(from: 0, to: 12_000, by: 1_000) {
            let batch = (first..<first + 1_000).map { second in
                HeartbeatRecord(deviceID: "d1", receivedAt: now.addingTimeInterval(Double(second) / 4),
                                report: Heartbeat(reportID: "r\(second)", cpuPercent: Double(second % 100)))
            }
            _ = try await store.recordHeartbeats(batch)
        }
        #expect(try await store.rollUpHeartbeats(before: now.addingTimeInterval(3_600), bucketSeconds: 600) == 12_000)
        let history = try await store.metrics(deviceID: "d1", since: now, until: now.addingTimeInterval(3_600))
        #expect(history.map(\.samples) == [2_400, 2_400, 2_400, 2_400, 2_400])
        #expect(history.allSatisfy { $0.cpu?.count == 2_400 && $0.cpu?.max == 99 && abs(($0.cpu?.mean ?? 0) - 49.5) < 0.01 })
        #expect(try await store.heartbeats(deviceID: "d1", limit: 10).isEmpty)
    }
}
