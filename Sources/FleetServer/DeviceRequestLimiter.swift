import Foundation
import HTTPTypes
import Logging
import Synchronization

/// How many requests of one kind a device (or an enrollment token) may make: `burst` at once,
/// then `perSecond` on average.
///
/// An agent sends a heartbeat every interval (25 s by default) and a report or two per step;
/// after an outage it sends what its outbox kept (1,000 entries at most, by default) back to
/// back. The default lets all of that through and bounds a compromised device — whatever it
/// sends is stored, for the retention period — to about 25 times what a healthy one costs.
public struct DeviceRequestAllowance: Sendable, Equatable {
    public var perSecond: Double
    public var burst: Double

    public init(perSecond: Double, burst: Double) {
        self.perSecond = perSecond
        self.burst = burst
    }

    public static let standard = DeviceRequestAllowance(perSecond: 1, burst: 1_200)

    /// Each enrollment token's: a fleet of 10,000 coming up at once is enrolled at once, and
    /// more at ten a second (AWS IoT's fleet provisioning allows about as many). The token is
    /// on every device: this bounds how fast whoever took one from a device makes devices.
    public static let enrollments = DeviceRequestAllowance(perSecond: 10, burst: 10_000)

    /// The slowest rate taken: one an hour less a little (a slower one would tell a device to wait
    /// longer than an agent heeds a Retry-After).
    public static let slowest = 0.001

    /// What one operator token may sign in to the console: 30 at once, then one a minute. Each
    /// sign-in stores a session and writes the audit log; a person signs in a few times a day.
    public static let signIns = DeviceRequestAllowance(perSecond: 1.0 / 60, burst: 30)

    /// Whether the server can work with this: a rate from `slowest` on, a burst of at least one.
    public var isUsable: Bool {
        perSecond.isFinite && perSecond >= Self.slowest && perSecond <= 1_000_000 && burst.isFinite && burst >= 1 && burst <= 1_000_000
    }
}

/// A token bucket: full at `burst`, refilled at `perSecond`, one token per request. A decision
/// with no clock of its own: time is given, in seconds on a monotonic clock.
struct RequestBucket: Sendable, Equatable {
    private(set) var tokens: Double
    private(set) var at: Double

    init(full allowance: DeviceRequestAllowance, at now: Double) {
        tokens = allowance.burst
        at = now
    }

    /// Takes one request's worth at `now`: nil when there was one, else the seconds until there
    /// will be. A refused request takes nothing (a device that keeps asking while refused gets
    /// through as soon as a token is there, and no sooner). A clock read earlier than the last
    /// (another thread's) refills nothing.
    mutating func take(at now: Double, _ allowance: DeviceRequestAllowance) -> Double? {
        refill(at: now, allowance)
        if tokens >= 1 {
            tokens -= 1
            return nil
        }
        return (1 - tokens) / allowance.perSecond
    }

    /// Whether the bucket is as good as new at `now`: dropping it changes nothing.
    func isFull(at now: Double, _ allowance: DeviceRequestAllowance) -> Bool {
        var copy = self
        copy.refill(at: now, allowance)
        return copy.tokens >= allowance.burst
    }

    private mutating func refill(at now: Double, _ allowance: DeviceRequestAllowance) {
        guard now > at else { return }
        tokens = min(allowance.burst, tokens + (now - at) * allowance.perSecond)
        at = now
    }
}

/// Every device's buckets, on this server (replicas count apart: a device spread over three is
/// held to three allowances). A device past an allowance is answered 429 with Retry-After,
/// before its body is read; the agent keeps what it was sending and sends it again then.
///
/// A device has one bucket per kind of request, so remote commands' output (sent twice a second
/// while a command runs) never holds back its heartbeats, nor its polls its reports. Buckets
/// are kept per token generation: a token revoked by an identity reset (or a deleted device's)
/// cannot use up the allowance of the device's new token. An enrollment token has a bucket of
/// its own (`enrollments`, larger), for the devices it enrolls: it is on every device, and each
/// device it makes has allowances of its own.
final class DeviceRequestLimiter: Sendable {
    enum Kind: UInt8, Sendable {
        case reports, remote, polls, enrollments, signIns

        var requests: String {
            switch self {
            case .reports: "heartbeats and execution reports"
            case .remote: "remote commands' output and results"
            case .polls: "polls for work"
            case .enrollments: "enrollments"
            case .signIns: "sign-ins to the console"
            }
        }

        /// Who is held to the allowance, in the words of a refusal and of the log.
        var holder: (said: String, field: String) {
            switch self {
            case .reports, .remote, .polls: ("this device sent", "device")
            case .enrollments: ("this enrollment token was used for", "token")
            case .signIns: ("this operator token was used for", "token")
            }
        }
    }

    struct Key: Hashable, Sendable {
        var name: String
        var generation: Int
        var kind: Kind
    }

    let allowance: DeviceRequestAllowance?
    let enrollmentAllowance: DeviceRequestAllowance?
    /// Always counted, whatever the devices' allowances are.
    let signInAllowance: DeviceRequestAllowance
    private let clock: @Sendable () -> Double
    private let logger: Logger

    private struct State {
        var buckets: [Key: (bucket: RequestBucket, warnedAt: Double?)] = [:]
        var refused = 0
        /// Full buckets are dropped when the table has grown past this since the last sweep.
        var sweepAt = 4_096
    }

    private let state = Mutex(State())

    /// nil `allowance` (or `enrollments`): no limit.
    init(_ allowance: DeviceRequestAllowance?, enrollments: DeviceRequestAllowance? = nil, signIns: DeviceRequestAllowance = .signIns,
         logger: Logger = Logger(label: "flotilla.server"), clock: @escaping @Sendable () -> Double = DeviceRequestLimiter.monotonicSeconds) {
        for given in [allowance, enrollments, signIns] {
            precondition(given?.isUsable ?? true, "an allowance needs a rate of at least \(DeviceRequestAllowance.slowest) a second and a burst of at least 1")
        }
        self.allowance = allowance
        self.enrollmentAllowance = enrollments
        self.signInAllowance = signIns
        self.clock = clock
        self.logger = logger
    }

    static let started = ContinuousClock.now

    @Sendable static func monotonicSeconds() -> Double {
        let elapsed = ContinuousClock.now - started
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    /// Requests refused since the server started.
    var refused: Int { state.withLock { $0.refused } }

    /// Buckets kept (the others are as good as new).
    var tracked: Int { state.withLock { $0.buckets.count } }

    /// Counts one request of `kind` by the device (and token generation) `subject` names;
    /// past its allowance, throws 429 with when to ask again.
    func take(_ subject: DeviceTokens.Subject, _ kind: Kind) throws {
        try take(Key(name: subject.device, generation: subject.generation, kind: kind))
    }

    /// Counts one enrollment with the enrollment token `id`.
    func take(enrollmentToken id: String) throws {
        try take(Key(name: id, generation: 0, kind: .enrollments))
    }

    /// Counts one console sign-in with the operator token `id` (one already verified: a sign-in
    /// with a wrong secret must not use up the allowance of the token it names).
    func take(signInWith id: String) throws {
        try take(Key(name: id, generation: 0, kind: .signIns))
    }

    private func allowance(of kind: Kind) -> DeviceRequestAllowance? {
        switch kind {
        case .enrollments: enrollmentAllowance
        case .signIns: signInAllowance
        case .reports, .remote, .polls: allowance
        }
    }

    func take(_ key: Key) throws {
        guard let allowance = allowance(of: key.kind) else { return }
        let now = clock()
        let (wait, warn) = state.withLock { state -> (Double?, Bool) in
            var entry = state.buckets[key] ?? (RequestBucket(full: allowance, at: now), nil)
            let wait = entry.bucket.take(at: now, allowance)
            var warn = false
            if wait != nil {
                state.refused += 1
                // Said once a minute per bucket, not once per refusal: a flood must not flood the log too.
                if entry.warnedAt.map({ now - $0 >= 60 }) ?? true {
                    entry.warnedAt = now
                    warn = true
                }
            }
            state.buckets[key] = entry
            if state.buckets.count >= state.sweepAt {
                // Each bucket judged by its own kind's allowance: an enrollment token's is larger.
                state.buckets = state.buckets.filter { key, entry in
                    self.allowance(of: key.kind).map { !entry.bucket.isFull(at: now, $0) } ?? false
                }
                state.sweepAt = max(4_096, state.buckets.count * 2)
            }
            return (wait, warn)
        }
        guard let wait else { return }
        let holder = key.kind.holder
        if warn {
            logger.warning("past an allowance of \(key.kind.requests); refusing until it slows down",
                           metadata: [holder.field: "\(key.name)", "burst": "\(Int(allowance.burst))", "perSecond": "\(allowance.perSecond)"])
        }
        let seconds = Self.seconds(wait)
        var error = APIError(.tooManyRequests, "rate_limited",
                             "\(holder.said) more than its allowance of \(key.kind.requests) (\(Int(allowance.burst)) at once, then \(Self.rate(allowance.perSecond))); ask again in \(seconds) s")
        error.retryAfter = seconds
        throw error
    }

    /// Whole seconds to wait, at least one, at most an hour (what an agent heeds).
    static func seconds(_ wait: Double) -> Int {
        guard wait.isFinite else { return 3_600 }
        return Int(min(3_600, max(1, wait.rounded(.up))))
    }

    static func rate(_ perSecond: Double) -> String {
        func shown(_ value: Double) -> String {
            value == value.rounded() && value < 1e9 ? String(Int(value)) : String(format: "%.2f", value)
        }
        return perSecond >= 1 ? "\(shown(perSecond)) a second" : "one every \(shown(1 / perSecond)) s"
    }
}
