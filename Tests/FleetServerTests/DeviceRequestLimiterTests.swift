@testable import FleetServer
import HTTPTypes
import Synchronization
import Testing

/// A device's allowance of writing requests: the bucket as a table of moments, the limiter with
/// a clock the test moves.
struct DeviceRequestLimiterTests {
    /// Each row: requests at these moments (seconds), against burst 3 at 1 a second; what each
    /// is told (nil: let through; else the seconds to wait).
    @Test(arguments: [
        // A full bucket lets the burst through at once, then the rate.
        ([0, 0, 0, 0], [nil, nil, nil, 1.0]),
        // A refusal takes nothing: asked again when told, it goes through.
        ([0, 0, 0, 0, 1, 1], [nil, nil, nil, 1.0, nil, 1.0]),
        // Half a second refills half a token: told the other half.
        ([0, 0, 0, 0.5], [nil, nil, nil, 0.5]),
        // Quiet for long refills to the burst, never beyond it.
        ([0, 0, 0, 100, 100, 100, 100], [nil, nil, nil, nil, nil, nil, 1.0]),
        // A clock read earlier than the last (another thread's) refills nothing and breaks nothing.
        ([5, 5, 5, 4, 5.25], [nil, nil, nil, 1.0, 0.75]),
        // Steady at the rate, never refused.
        ([0, 1, 2, 3, 4, 5, 6, 7], [nil, nil, nil, nil, nil, nil, nil, nil]),
    ] as [([Double], [Double?])])
    func aBucketLetsTheBurstThroughThenTheRate(moments: [Double], told: [Double?]) {
        let allowance = DeviceRequestAllowance(perSecond: 1, burst: 3)
        var bucket = RequestBucket(full: allowance, at: moments[0])
        let answers = moments.map { bucket.take(at: $0, allowance) }
        #expect(answers.count == told.count)
        for (answer, expected) in zip(answers, told) {
            switch (answer, expected) {
            case (nil, nil): break
            case (let answer?, let expected?): #expect(abs(answer - expected) < 1e-9, "told \(answer), expected \(expected)")
            default: Issue.record("at \(moments): told \(answers), expected \(told)")
            }
        }
    }

    @Test func aSlowRateIsToldInSecondsToCome() {
        let allowance = DeviceRequestAllowance(perSecond: 0.1, burst: 1)
        var bucket = RequestBucket(full: allowance, at: 0)
        #expect(bucket.take(at: 0, allowance) == nil)
        #expect(bucket.take(at: 2, allowance).map { ($0 * 1_000).rounded() / 1_000 } == 8)
        #expect(!bucket.isFull(at: 9, allowance))
        #expect(bucket.isFull(at: 10, allowance))
    }

    final class FakeClock: Sendable {
        let now = Mutex(0.0)
        func advance(_ seconds: Double) { now.withLock { $0 += seconds } }
    }

    static func device(_ id: String, generation: Int = 0) -> DeviceTokens.Subject {
        DeviceTokens.Subject(device: id, project: "acme", generation: generation)
    }

    @Test func aDevicePastItsAllowanceIsToldWhenAndOthersAreNot() throws {
        let clock = FakeClock()
        let limiter = DeviceRequestLimiter(DeviceRequestAllowance(perSecond: 0.5, burst: 2), clock: { clock.now.withLock { $0 } })
        let d1 = Self.device("d-1")
        try limiter.take(d1, .reports)
        try limiter.take(d1, .reports)
        do {
            try limiter.take(d1, .reports)
            Issue.record("a third request at once went through")
        } catch let error as APIError {
            #expect(error.status == .tooManyRequests)
            #expect(error.code == "rate_limited")
            #expect(error.retryAfter == 2)
            #expect(error.message == "this device sent more than its allowance of heartbeats and execution reports (2 at once, then one every 2 s); ask again in 2 s")
        }
        // Another device has allowances of its own; so has each kind of request.
        try limiter.take(Self.device("d-2"), .reports)
        try limiter.take(Self.device("d-2"), .reports)
        try limiter.take(d1, .remote)
        try limiter.take(d1, .polls)
        #expect(limiter.refused == 1)
        clock.advance(2)
        try limiter.take(d1, .reports)
        #expect(throws: APIError.self) { try limiter.take(d1, .reports) }
        #expect(limiter.refused == 2)
    }

    /// A token revoked by an identity reset keeps the device id: whoever holds it cannot use up
    /// the allowance of the device's new token.
    @Test func aRevokedTokensRequestsDoNotCountAgainstTheNewOne() throws {
        let limiter = DeviceRequestLimiter(DeviceRequestAllowance(perSecond: 0.001, burst: 1), clock: { 0 })
        try limiter.take(Self.device("d-1", generation: 0), .reports)
        #expect(throws: APIError.self) { try limiter.take(Self.device("d-1", generation: 0), .reports) }
        try limiter.take(Self.device("d-1", generation: 1), .reports)
    }

    /// An enrollment token is counted apart from the devices it enrolls, by an allowance of its
    /// own, and says so.
    @Test func anEnrollmentTokenHasAnAllowanceOfItsOwn() throws {
        let limiter = DeviceRequestLimiter(DeviceRequestAllowance(perSecond: 0.001, burst: 1),
                                           enrollments: DeviceRequestAllowance(perSecond: 1, burst: 1), clock: { 0 })
        try limiter.take(enrollmentToken: "tok-1")
        try limiter.take(Self.device("tok-1"), .reports)
        do {
            try limiter.take(enrollmentToken: "tok-1")
            Issue.record("a second enrollment at once went through")
        } catch let error as APIError {
            #expect(error.message == "this enrollment token was used for more than its allowance of enrollments (1 at once, then 1 a second); ask again in 1 s")
        }
        try limiter.take(enrollmentToken: "tok-2")
        // Without an allowance for enrollments, only devices are limited.
        let devicesOnly = DeviceRequestLimiter(DeviceRequestAllowance(perSecond: 1, burst: 1), clock: { 0 })
        for _ in 0..<100 { try devicesOnly.take(enrollmentToken: "tok-1") }
    }

    /// What is told to wait is whole seconds an agent heeds: at least one, at most an hour.
    @Test(arguments: [(0.2, 1), (1.0, 1), (1.01, 2), (5_000.0, 3_600), (Double.infinity, 3_600), (Double.nan, 3_600)])
    func waitsAreWholeSecondsAnAgentHeeds(wait: Double, told: Int) {
        #expect(DeviceRequestLimiter.seconds(wait) == told)
    }

    @Test(arguments: [
        (DeviceRequestAllowance.standard, true), (DeviceRequestAllowance(perSecond: 0.001, burst: 1), true),
        (DeviceRequestAllowance(perSecond: 0, burst: 10), false), (DeviceRequestAllowance(perSecond: 1e-300, burst: 10), false),
        (DeviceRequestAllowance(perSecond: .nan, burst: 10), false), (DeviceRequestAllowance(perSecond: 1, burst: 0.5), false),
    ])
    func onlyAllowancesTheServerCanWorkWithAreUsable(allowance: DeviceRequestAllowance, usable: Bool) {
        #expect(allowance.isUsable == usable)
    }

    @Test func withoutAnAllowanceNothingIsCountedOrKept() throws {
        let limiter = DeviceRequestLimiter(nil)
        for _ in 0..<10_000 { try limiter.take(Self.device("d-1"), .reports) }
        #expect(limiter.refused == 0)
        #expect(limiter.tracked == 0)
    }

    /// Buckets as good as new are dropped as the table grows, so a fleet's worth of devices
    /// heard once does not stay in memory; a device still limited keeps its bucket.
    @Test func fullBucketsAreDroppedAndLimitedOnesKept() throws {
        let clock = FakeClock()
        let limiter = DeviceRequestLimiter(DeviceRequestAllowance(perSecond: 1, burst: 1), clock: { clock.now.withLock { $0 } })
        let busy = Self.device("busy")
        try limiter.take(busy, .reports)
        #expect(throws: APIError.self) { try limiter.take(busy, .reports) }
        for device in 0..<4_000 { try limiter.take(Self.device("d-\(device)"), .reports) }
        clock.advance(0.5)
        // The table reaches its first sweep half a second on: no bucket is full yet, none goes.
        for device in 4_000..<4_100 { try limiter.take(Self.device("d-\(device)"), .reports) }
        #expect(limiter.tracked == 4_101)
        clock.advance(1)
        #expect(throws: APIError.self) { try limiter.take(busy, .reports); try limiter.take(busy, .reports) }
        // Past the next sweep (twice the table), the full ones go; the busy device stays refused.
        for device in 4_100..<8_300 { try limiter.take(Self.device("d-\(device)"), .reports) }
        #expect(limiter.tracked < 4_300)
        #expect(throws: APIError.self) { try limiter.take(busy, .reports) }
    }

    /// The sweep judges each bucket by its own kind's allowance: an enrollment token part-used
    /// (not full by its larger burst) is kept when devices' buckets fill the table.
    @Test func theSweepKeepsAPartUsedEnrollmentBucket() throws {
        let limiter = DeviceRequestLimiter(DeviceRequestAllowance(perSecond: 1, burst: 1),
                                           enrollments: DeviceRequestAllowance(perSecond: 0.001, burst: 3), clock: { 0 })
        try limiter.take(enrollmentToken: "tok-1")
        for device in 0..<5_000 { try limiter.take(Self.device("d-\(device)"), .reports) }
        for _ in 0..<2 { try limiter.take(enrollmentToken: "tok-1") }
        #expect(throws: APIError.self) { try limiter.take(enrollmentToken: "tok-1") }
    }

}
