import Foundation
import HTTPTypes
import Logging
import Synchronization

/// How many writing requests (heartbeats, execution reports, remote commands' output and
/// results) one device may send: `burst` at once, then `perSecond` on average.
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

/// Every device's bucket, on this server (replicas count apart: a device spread over three is
/// held to three allowances). A device past its allowance is answered 429 with Retry-After,
/// before its body is read; the agent keeps what it was sending and sends it again then.
final class DeviceRequestLimiter: Sendable {
    let allowance: DeviceRequestAllowance?
    private let clock: @Sendable () -> Double
    private let logger: Logger

    private struct State {
        var buckets: [String: (bucket: RequestBucket, warnedAt: Double?)] = [:]
        var refused = 0
        /// Full buckets are dropped when the table has grown past this since the last sweep.
        var sweepAt = 4_096
    }

    private let state = Mutex(State())

    /// nil `allowance`: no limit.
    init(_ allowance: DeviceRequestAllowance?, logger: Logger = Logger(label: "flotilla.server"),
         clock: @escaping @Sendable () -> Double = DeviceRequestLimiter.monotonicSeconds) {
        self.allowance = allowance
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

    /// Counts one request of `device`'s; past its allowance, throws 429 with when to ask again.
    func take(_ device: String) throws {
        guard let allowance else { return }
        let now = clock()
        let (wait, warn) = state.withLock { state -> (Double?, Bool) in
            var entry = state.buckets[device] ?? (RequestBucket(full: allowance, at: now), nil)
            let wait = entry.bucket.take(at: now, allowance)
            var warn = false
            if wait != nil {
                state.refused += 1
                // Said once a minute per device, not once per refusal: a flood must not flood the log too.
                if entry.warnedAt.map({ now - $0 >= 60 }) ?? true {
                    entry.warnedAt = now
                    warn = true
                }
            }
            state.buckets[device] = entry
            if state.buckets.count >= state.sweepAt {
                state.buckets = state.buckets.filter { !$0.value.bucket.isFull(at: now, allowance) }
                state.sweepAt = max(4_096, state.buckets.count * 2)
            }
            return (wait, warn)
        }
        guard let wait else { return }
        if warn {
            logger.warning("a device sends more than its allowance of requests; refusing until it slows down",
                           metadata: ["device": "\(device)", "burst": "\(Int(allowance.burst))", "perSecond": "\(allowance.perSecond)"])
        }
        var error = APIError(.tooManyRequests, "rate_limited",
                             "this device sent more than its allowance of requests (\(Int(allowance.burst)) at once, then \(Self.rate(allowance.perSecond))); ask again in \(Self.seconds(wait)) s")
        error.retryAfter = Self.seconds(wait)
        throw error
    }

    /// Devices with a bucket kept (the others are as good as new).
    var tracked: Int { state.withLock { $0.buckets.count } }

    static func seconds(_ wait: Double) -> Int { max(1, Int(wait.rounded(.up))) }

    static func rate(_ perSecond: Double) -> String {
        func shown(_ value: Double) -> String {
            value == value.rounded() && value < 1e9 ? String(Int(value)) : String(format: "%.2f", value)
        }
        return perSecond >= 1 ? "\(shown(perSecond)) a second" : "one every \(shown(1 / perSecond)) s"
    }
}
