import FleetProtocol
import Testing

/// How long a device waits after a deferred long-poll: what the server asked, within 1 to 300 s,
/// and not at all when the poll was held (no `Retry-After`).
@Suite struct LongPollDeferralPauseTests {
    @Test(arguments: [(nil, nil), (0, 1), (-5, 1), (22, 22), (300, 300), (301, 300), (Int.max, 300)] as [(Int?, Int?)])
    func thePauseIsWhatTheServerAskedWithinBounds(retryAfter: Int?, pause: Int?) {
        #expect(LongPollDeferral.pause(retryAfter: retryAfter) == pause)
    }
}
