@testable import FleetServer
import Testing

/// Which verified webhook deliveries bring a poll: pushes to the watched branch, as each forge
/// names its events.
struct PushEventTests {
    static func body(_ ref: String) -> [UInt8] { Array(#"{"ref":"\#(ref)","after":"0123abcd"}"#.utf8) }

    @Test(arguments: [
        // GitHub, Gitea/Forgejo and GitLab name a push each their own way.
        ("push", "refs/heads/main", PushEvent.poll),
        ("Push Hook", "refs/heads/main", .poll),
        ("push", "refs/heads/feature", .ignored("a push to refs/heads/feature; this controller watches refs/heads/main")),
        // The controller's own status branch must not wake it.
        ("push", "refs/heads/flotilla/status", .ignored("a push to refs/heads/flotilla/status; this controller watches refs/heads/main")),
        ("push", "refs/tags/v1", .ignored("a push to refs/tags/v1; this controller watches refs/heads/main")),
        ("Tag Push Hook", "refs/tags/v1", .ignored("a Tag Push Hook event does not move refs/heads/main")),
        ("pull_request", "refs/heads/main", .ignored("a pull_request event is not a push")),
        ("ping", "", .ping),
    ])
    func eventsAndRefs(event: String, ref: String, expected: PushEvent) {
        #expect(PushEvent.classify(event: event, body: Self.body(ref), branch: "main") == expected)
    }

    @Test func aDeliveryThatSaysNothingIsTakenAsAPush() {
        #expect(PushEvent.classify(event: nil, body: [], branch: "main") == .poll)
        #expect(PushEvent.classify(event: nil, body: Array("not json".utf8), branch: "main") == .poll)
        #expect(PushEvent.classify(event: nil, body: Array(#"{"after":"abc"}"#.utf8), branch: "main") == .poll)
        #expect(PushEvent.classify(event: nil, body: Self.body("refs/heads/release"), branch: "release") == .poll)
        #expect(PushEvent.classify(event: nil, body: Self.body("refs/heads/main"), branch: "release")
            == .ignored("a push to refs/heads/main; this controller watches refs/heads/release"))
    }
}

/// A forge's hexadecimal MAC as bytes, before swift-crypto checks it.
struct WebhookMACTests {
    @Test(arguments: [("00ff10Ab", [0x00, 0xff, 0x10, 0xab] as [UInt8]?), ("abc", nil), ("zz", nil), ("", [])])
    func hexadecimalMACs(_ text: String, _ bytes: [UInt8]?) {
        #expect(ControllerRoutes.bytes(hex: Substring(text)) == bytes)
    }
}
