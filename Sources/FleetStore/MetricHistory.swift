import FleetProtocol
public import Foundation

/// A device's metrics over one span of time, summed up from the heartbeats received in it: what
/// the history keeps once the heartbeats themselves are forgotten, so a week of a device fits in
/// a chart and the store stays bounded.
public struct MetricBucket: Codable, Sendable, Equatable {
    public var deviceID: String
    /// When the span starts (a multiple of `seconds` since 1970) and how long it is.
    public var start: Date
    public var seconds: Int
    /// Heartbeats received in it.
    public var samples: Int
    /// CPU use, percent.
    public var cpu: Statistic?
    /// Memory used, percent of the total.
    public var memory: Statistic?
    /// Disk used, percent of the fullest watched mount.
    public var disk: Statistic?
    /// The 1-minute load average.
    public var load: Statistic?

    public init(deviceID: String, start: Date, seconds: Int, samples: Int = 0, cpu: Statistic? = nil, memory: Statistic? = nil,
                disk: Statistic? = nil, load: Statistic? = nil) {
        self.deviceID = deviceID
        self.start = start
        self.seconds = seconds
        self.samples = samples
        self.cpu = cpu
        self.memory = memory
        self.disk = disk
        self.load = load
    }

    /// One measure over a span: how many heartbeats carried it, their mean and their highest.
    public struct Statistic: Codable, Sendable, Equatable {
        public var count: Int
        public var mean: Double
        public var max: Double

        public init(count: Int, mean: Double, max: Double) {
            self.count = count
            self.mean = mean
            self.max = max
        }

        init(_ value: Double) { self.init(count: 1, mean: value, max: value) }

        /// Both spans as one: the mean weighted by count.
        func merged(with other: Statistic) -> Statistic {
            let count = self.count + other.count
            guard count > 0 else { return self }
            return Statistic(count: count, mean: (mean * Double(self.count) + other.mean * Double(other.count)) / Double(count),
                             max: Swift.max(max, other.max))
        }

        /// Stored as whole hundredths: a bucket's row stays a few dozen bytes.
        /// Values are kept within ±`limit`, so the conversion can never trap, whatever a device sent.
        public var hundredths: (mean: Int, max: Int) {
            func whole(_ value: Double) -> Int { value.isNaN ? 0 : Int((Swift.min(Swift.max(value, -Self.limit), Self.limit) * 100).rounded()) }
            return (whole(mean), whole(max))
        }

        /// The largest value kept: far above any real load average or percentage, and small
        /// enough that its hundredths fit the stores' 32-bit columns.
        public static let limit = 1e7

        public init(count: Int, meanHundredths: Int, maxHundredths: Int) {
            self.init(count: count, mean: Double(meanHundredths) / 100, max: Double(maxHundredths) / 100)
        }
    }

    /// This bucket and `other` (of the same device) as one, spanning this bucket's span.
    public func merged(with other: MetricBucket) -> MetricBucket {
        func merge(_ a: Statistic?, _ b: Statistic?) -> Statistic? {
            switch (a, b) {
            case (let a?, let b?): a.merged(with: b)
            case (let a?, nil): a
            case (nil, let b): b
            }
        }
        return MetricBucket(deviceID: deviceID, start: start, seconds: seconds, samples: samples + other.samples,
                            cpu: merge(cpu, other.cpu), memory: merge(memory, other.memory), disk: merge(disk, other.disk),
                            load: merge(load, other.load))
    }
}

/// Heartbeats into buckets, and buckets into coarser ones: pure, shared by every store and the API.
public enum MetricHistory {
    /// The width of the buckets the history keeps: ten minutes (144 a day, 1,008 a week).
    public static let bucketSeconds = 600

    /// The start of the bucket of width `seconds` that holds `date`.
    public static func bucketStart(_ date: Date, seconds: Int) -> Date {
        let epoch = date.timeIntervalSince1970
        return Date(timeIntervalSince1970: (epoch / Double(seconds)).rounded(.down) * Double(seconds))
    }

    /// The heartbeats summed up per device and bucket, ordered by device and start.
    public static func buckets(_ heartbeats: [HeartbeatRecord], seconds: Int = bucketSeconds) -> [MetricBucket] {
        var buckets: [String: [Date: MetricBucket]] = [:]
        for heartbeat in heartbeats {
            let start = bucketStart(heartbeat.receivedAt, seconds: seconds)
            let one = bucket(of: heartbeat, start: start, seconds: seconds)
            buckets[heartbeat.deviceID, default: [:]][start] = buckets[heartbeat.deviceID]?[start].map { $0.merged(with: one) } ?? one
        }
        return buckets.keys.sorted().flatMap { device in buckets[device]!.values.sorted { $0.start < $1.start } }
    }

    /// One heartbeat as a bucket of one sample.
    static func bucket(of heartbeat: HeartbeatRecord, start: Date, seconds: Int) -> MetricBucket {
        let report = heartbeat.report
        // What a device sent, bounded: finite, from 0 to `upTo`.
        func statistic(_ value: Double?, upTo ceiling: Double = 100) -> MetricBucket.Statistic? {
            value.flatMap { $0.isFinite ? MetricBucket.Statistic(min(max($0, 0), ceiling)) : nil }
        }
        return MetricBucket(deviceID: heartbeat.deviceID, start: start, seconds: seconds, samples: 1, cpu: statistic(report.cpuPercent),
                            memory: statistic(report.memoryPercent), disk: statistic(report.fullestDiskPercent),
                            load: statistic(report.load?.first, upTo: MetricBucket.Statistic.limit))
    }

    /// `buckets` (of one device, ordered by start) merged into buckets of `seconds`, a multiple
    /// of theirs; empty spans are left out.
    public static func downsample(_ buckets: [MetricBucket], seconds: Int) -> [MetricBucket] {
        var result: [MetricBucket] = []
        for bucket in buckets {
            let start = bucketStart(bucket.start, seconds: seconds)
            if let last = result.last, last.start == start, last.deviceID == bucket.deviceID {
                result[result.count - 1] = last.merged(with: bucket)
            } else {
                var widened = bucket
                widened.start = start
                widened.seconds = seconds
                result.append(widened)
            }
        }
        return result
    }

    /// The width to show `span` seconds in at most `points` buckets: a multiple of the history's
    /// own width once the span needs it, else the smallest of a few round widths that fits.
    public static func width(span: Double, points: Int) -> Int {
        let wanted = span / Double(max(1, points))
        for candidate in [60, 120, 300, bucketSeconds] where Double(candidate) >= wanted { return candidate }
        let multiple = (wanted / Double(bucketSeconds)).rounded(.up)
        return Int(multiple) * bucketSeconds
    }
}
