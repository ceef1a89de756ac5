import FleetCore
import FleetProtocol
import FleetStatus
import FleetStore
import FleetTesting
import Foundation
import Hummingbird
import Synchronization
import Testing

/// Alerts as each receiver documents its requests: a local server records what arrives and the
/// test checks it (the webhook's signature with an HMAC of its own); Alertmanager is the real one.
struct AlertNotifierTests {
    struct Received: Sendable {
        var path: String
        var headers: [String: String]
        var body: [UInt8]
    }

    final class Log: Sendable {
        let received = Mutex<[Received]>([])
        /// Statuses to answer with, in turn; 200 once they run out.
        let answers = Mutex<[Int]>([])
    }

    final class Receiver: Sendable {
        let log = Log()
        let port: Int
        let task: Task<Void, any Error>

        init() async throws {
            let router = Router()
            let log = log
            router.post("**") { request, _ -> Response in
                let buffer = try await request.body.collect(upTo: 1 << 20)
                var headers: [String: String] = [:]
                for field in request.headers { headers[field.name.canonicalName] = field.value }
                log.received.withLock { $0.append(Received(path: request.uri.path, headers: headers, body: Array(buffer.readableBytesView))) }
                let status = log.answers.withLock { $0.isEmpty ? 200 : $0.removeFirst() }
                return Response(status: .init(code: status), body: .init(byteBuffer: ByteBuffer(string: status == 200 ? "ok" : "no")))
            }
            (port, task) = await LocalServer.start(router)
        }

        var url: String { "http://127.0.0.1:\(port)" }

        func json(_ index: Int) throws -> [String: Any] {
            let body = log.received.withLock { $0[index].body }
            return try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        }

        deinit { task.cancel() }
    }

    static let t0 = Date(timeIntervalSince1970: 1_800_000_000)

    static func alert(_ state: AlertRecord.State = .firing, device: String = "d-1", observed: String = "cpu 97") -> AlertRecord {
        AlertRecord(project: "acme", rule: "hot", device: device, state: state, severity: .critical, since: t0,
                    firingAt: t0.addingTimeInterval(60), resolvedAt: state == .resolved ? t0.addingTimeInterval(120) : nil,
                    observed: observed, summary: "The CPU is pegged.")
    }

    @Test func theWebhookIsSignedJSONAndSlackGetsEscapedText() async throws {
        let receiver = try await Receiver()
        let notifier = AlertNotifier(backoff: .milliseconds(1))
        let receivers = ResolvedAlertReceivers(webhookURL: receiver.url + "/hook", webhookKey: Array("k3y".utf8),
                                               slackURL: receiver.url + "/services/T000/B000/XXXX")
        await notifier.deliver(AlertDelivery(alerts: [Self.alert(device: "<!channel> & co")], receivers: receivers))
        await notifier.finish()
        #expect(notifier.sent == AlertNotifier.Counts(sent: 2, failed: 0, dropped: 0))
        let (hook, slack) = try receiver.log.received.withLock { all in (try #require(all.first), try #require(all.last)) }

        #expect(hook.path == "/hook")
        #expect(hook.headers["content-type"] == "application/json")
        #expect(hook.headers["x-flotilla-event"] == "alert")
        // The signature, checked with an HMAC implemented apart from the server's.
        #expect(hook.headers["x-flotilla-signature"] == "sha256=" + SHA256.hmacHex(key: Array("k3y".utf8), message: hook.body))
        let body = try receiver.json(0)
        #expect(body["kind"] as? String == "flotilla.alert")
        #expect(body["project"] as? String == "acme")
        #expect(body["status"] as? String == "firing")
        let alert = try #require(body["alert"] as? [String: Any])
        #expect(alert["rule"] as? String == "hot")
        #expect(alert["severity"] as? String == "critical")
        #expect(alert["observed"] as? String == "cpu 97")
        #expect(alert["since"] as? String == "2027-01-15T08:00:00Z")
        #expect(alert["firingAt"] as? String == "2027-01-15T08:01:00Z")
        #expect(alert["resolvedAt"] == nil)

        #expect(slack.path == "/services/T000/B000/XXXX")
        #expect(try receiver.json(1)["text"] as? String
                == ":rotating_light: *[critical] hot* firing on `&lt;!channel&gt; &amp; co` (acme): cpu 97 — The CPU is pegged.")
    }

    @Test func aFailingReceiverIsTriedAgainButARefusalIsNot() async throws {
        let receiver = try await Receiver()
        receiver.log.answers.withLock { $0 = [503, 500] }
        let notifier = AlertNotifier(backoff: .milliseconds(1))
        await notifier.deliver(AlertDelivery(alerts: [Self.alert()], receivers: ResolvedAlertReceivers(webhookURL: receiver.url + "/hook")))
        await notifier.finish()
        #expect(receiver.log.received.withLock { $0.count } == 3, "two failures, then delivered")
        #expect(notifier.sent.sent == 1)
        #expect(receiver.log.received.withLock { $0[0].headers["x-flotilla-signature"] } == nil, "no secret named: unsigned")

        let refusing = try await Receiver()
        refusing.log.answers.withLock { $0 = [404, 404, 404] }
        let second = AlertNotifier(backoff: .milliseconds(1))
        await second.deliver(AlertDelivery(alerts: [Self.alert()], receivers: ResolvedAlertReceivers(webhookURL: refusing.url + "/gone")))
        await second.finish()
        #expect(refusing.log.received.withLock { $0.count } == 1)
        #expect(second.sent == AlertNotifier.Counts(sent: 0, failed: 1, dropped: 0))
    }

    @Test func webhooksAndSlackHearOfEachChangeOnceAlertmanagerAgain() async throws {
        let receiver = try await Receiver()
        let notifier = AlertNotifier(backoff: .milliseconds(1))
        let receivers = ResolvedAlertReceivers(webhookURL: receiver.url + "/hook", alertmanagerURL: receiver.url + "/am/")
        await notifier.deliver(AlertDelivery(alerts: [Self.alert()], receivers: receivers, isResend: true))
        await notifier.finish()
        #expect(receiver.log.received.withLock { $0.map(\.path) } == ["/am/api/v2/alerts"])
    }

    @Test func alertsReachARealAlertmanagerFiringThenResolved() async throws {
        let manager = try Alertmanager()
        let notifier = AlertNotifier(backoff: .milliseconds(100))
        let receivers = ResolvedAlertReceivers(alertmanagerURL: manager.url, alertmanagerHoldSeconds: 300)
        let firing = AlertRecord(project: "acme", rule: "hot", device: "d-1", state: .firing, severity: .critical, since: Date().addingTimeInterval(-120),
                                 firingAt: Date().addingTimeInterval(-60), observed: "cpu 97", summary: "The CPU is pegged.")
        await notifier.deliver(AlertDelivery(alerts: [firing], receivers: receivers))
        var resolved = firing
        resolved.state = .resolved
        resolved.resolvedAt = Date().addingTimeInterval(-1)
        resolved.observed = "cpu 12"
        await notifier.finish()
        #expect(notifier.sent.sent == 1)

        let held = try await manager.alerts()
        #expect(held.count == 1)
        let alert = try #require(held.first)
        let labels = try #require(alert["labels"] as? [String: String])
        #expect(labels == ["alertname": "hot", "project": "acme", "device": "d-1", "severity": "critical"])
        #expect((alert["annotations"] as? [String: String])?["summary"] == "The CPU is pegged.")
        #expect((alert["status"] as? [String: Any])?["state"] as? String == "active")

        let closing = AlertNotifier(backoff: .milliseconds(100))
        await closing.deliver(AlertDelivery(alerts: [resolved], receivers: receivers))
        await closing.finish()
        #expect(closing.sent.sent == 1)
        // Resolved: Alertmanager no longer lists it among active alerts.
        let after = try await manager.alerts().filter { ($0["labels"] as? [String: String])?["alertname"] == "hot" }
        #expect(after.allSatisfy { ($0["endsAt"] as? String).map { $0 <= Timestamp.format(Date()) } ?? false }, "\(after)")
        let active = after.filter { ($0["status"] as? [String: Any])?["state"] as? String == "active" }
        #expect(active.isEmpty, "\(after)")
    }
}
