public import AsyncHTTPClient
import Crypto
import FleetCore
public import FleetProtocol
public import FleetStore
public import Foundation
public import Logging
import NIOCore
import NIOHTTP1
import Synchronization

/// Sends alerts to a project's receivers, in the order they changed, one at a time: a generic
/// JSON webhook signed with HMAC-SHA256, a Slack-compatible incoming webhook, and Prometheus
/// Alertmanager's API v2. A receiver that fails is tried again (three times, backing off); what
/// still fails is logged and counted, never retried forever: the alert stays in the store, the
/// API and STATUS.md, and Alertmanager hears of firing alerts again each minute.
///
/// `deliver` never waits for a receiver: deliveries queue (the oldest kept when 10,000 wait)
/// and one worker sends them, so a firing is never overtaken by its own resolution.
public final class AlertNotifier: AlertNotifying, Sendable {
    /// What was sent, for tests and `/metrics`.
    public struct Counts: Sendable, Equatable {
        public var sent = 0
        public var failed = 0
        public var dropped = 0

        public init(sent: Int = 0, failed: Int = 0, dropped: Int = 0) {
            self.sent = sent
            self.failed = failed
            self.dropped = dropped
        }
    }

    private let client: HTTPClient
    private let logger: Logger
    private let backoff: Duration
    private let continuation: AsyncStream<AlertDelivery>.Continuation
    private let worker: Mutex<Task<Void, Never>?> = Mutex(nil)
    private let counts = Mutex(Counts())

    public init(client: HTTPClient = .shared, logger: Logger = Logger(label: "flotilla.alerts"), backoff: Duration = .seconds(1),
                queue: Int = 10_000) {
        self.client = client
        self.logger = logger
        self.backoff = backoff
        let (stream, continuation) = AsyncStream.makeStream(of: AlertDelivery.self, bufferingPolicy: .bufferingOldest(queue))
        self.continuation = continuation
        worker.withLock { task in
            task = Task { [self] in
                for await delivery in stream { await send(delivery) }
            }
        }
    }

    public func deliver(_ delivery: AlertDelivery) async {
        if case .dropped = continuation.yield(delivery) {
            counts.withLock { $0.dropped += 1 }
            logger.warning("alerts not sent: too many waiting", metadata: ["alerts": "\(delivery.alerts.count)",
                                                                          "project": "\(delivery.alerts.first?.project ?? "")"])
        }
    }

    /// Sends what is queued, then stops.
    public func finish() async {
        continuation.finish()
        await worker.withLock { $0 }?.value
    }

    public var sent: Counts { counts.withLock { $0 } }

    private func send(_ delivery: AlertDelivery) async {
        let receivers = delivery.receivers
        var requests: [(name: String, request: HTTPClientRequest)] = []
        if !delivery.isResend {
            for alert in delivery.alerts {
                if let url = receivers.webhookURL { requests.append(("webhook", Self.webhookRequest(alert, key: receivers.webhookKey, url: url, now: Date()))) }
                if let url = receivers.slackURL { requests.append(("slack", Self.slackRequest(alert, url: url))) }
            }
        }
        if let url = receivers.alertmanagerURL {
            // Alertmanager takes a list: a project's alerts go in a few requests, not one each.
            for start in stride(from: 0, to: delivery.alerts.count, by: 500) {
                let chunk = Array(delivery.alerts[start..<min(start + 500, delivery.alerts.count)])
                requests.append(("alertmanager", Self.alertmanagerRequest(chunk, base: url, holdSeconds: receivers.alertmanagerHoldSeconds, now: Date())))
            }
        }
        for (name, request) in requests {
            let ok = await attempt(request, receiver: name)
            counts.withLock { ok ? ($0.sent += 1) : ($0.failed += 1) }
            if !ok {
                logger.error("alert not delivered", metadata: ["receiver": "\(name)", "project": "\(delivery.alerts.first?.project ?? "")"])
            }
        }
    }

    /// Up to three tries; a refusal the receiver means (4xx but 408 and 429) is not tried again.
    /// The URL is never logged: a Slack webhook's URL is its secret.
    private func attempt(_ request: HTTPClientRequest, receiver: String) async -> Bool {
        for attempt in 1...3 {
            do {
                let response = try await client.execute(request, timeout: .seconds(10))
                _ = try? await response.body.collect(upTo: 64 * 1024)
                let code = Int(response.status.code)
                if (200..<300).contains(code) { return true }
                logger.warning("alert receiver refused", metadata: ["receiver": "\(receiver)", "status": "\(code)", "attempt": "\(attempt)"])
                if (400..<500).contains(code), code != 408, code != 429 { return false }
            } catch {
                logger.warning("alert receiver unreachable", metadata: ["receiver": "\(receiver)", "error": "\(type(of: error))",
                                                                        "attempt": "\(attempt)"])
            }
            if attempt < 3 { try? await Task.sleep(for: backoff * (1 << (attempt - 1))) }
        }
        return false
    }

    // MARK: - The requests, as each receiver documents them

    /// The generic webhook: one JSON object per change; `X-Flotilla-Signature: sha256=<hex>` is
    /// HMAC-SHA256 of the exact body under the project's secret, when it names one.
    public static func webhookRequest(_ alert: AlertRecord, key: [UInt8]?, url: String, now: Date) -> HTTPClientRequest {
        let body = webhookBody(alert, sentAt: now)
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "flotilla")
        request.headers.add(name: "X-Flotilla-Event", value: "alert")
        if let key {
            request.headers.add(name: "X-Flotilla-Signature", value: "sha256=" + signature(body, key: key))
        }
        request.body = .bytes(ByteBuffer(bytes: body))
        return request
    }

    public static func webhookBody(_ alert: AlertRecord, sentAt: Date) -> [UInt8] {
        var fields: [String: Any] = [
            "rule": alert.rule, "device": alert.device, "state": alert.state.rawValue, "severity": alert.severity.rawValue,
            "since": Timestamp.format(alert.since), "observed": alert.observed,
        ]
        if let at = alert.firingAt { fields["firingAt"] = Timestamp.format(at) }
        if let at = alert.resolvedAt { fields["resolvedAt"] = Timestamp.format(at) }
        if let summary = alert.summary { fields["summary"] = summary }
        return json(["kind": "flotilla.alert", "version": 1, "project": alert.project, "status": alert.state.rawValue,
                     "sentAt": Timestamp.format(sentAt), "alert": fields])
    }

    public static func signature(_ body: [UInt8], key: [UInt8]) -> String {
        HMAC<Crypto.SHA256>.authenticationCode(for: body, using: SymmetricKey(data: key)).map { String(format: "%02x", $0) }.joined()
    }

    /// Slack's incoming webhook: `{"text": …}`, with `&`, `<` and `>` escaped as Slack asks, so
    /// what a device reported cannot become a mention or a link.
    public static func slackRequest(_ alert: AlertRecord, url: String) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: json(["text": slackText(alert)])))
        return request
    }

    public static func slackText(_ alert: AlertRecord) -> String {
        func escaped(_ text: String) -> String {
            text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        let firing = alert.state == .firing
        var text = (firing ? ":rotating_light: *[\(alert.severity.rawValue)] \(escaped(alert.rule))* firing on "
                           : ":white_check_mark: *\(escaped(alert.rule))* resolved on ")
            + "`\(escaped(alert.device))` (\(escaped(alert.project))): \(escaped(alert.observed))"
        if firing, let summary = alert.summary { text += " — " + escaped(summary) }
        return text
    }

    /// Alertmanager's `POST /api/v2/alerts`: postable alerts, each labelled by rule (`alertname`),
    /// project, device and severity. A firing alert ends `holdSeconds` from now unless sent again;
    /// a resolved one ends when it resolved.
    public static func alertmanagerRequest(_ alerts: [AlertRecord], base: String, holdSeconds: Double, now: Date) -> HTTPClientRequest {
        var request = HTTPClientRequest(url: (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/api/v2/alerts")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: json(alerts.map { alertmanagerAlert($0, holdSeconds: holdSeconds, now: now) })))
        return request
    }

    static func alertmanagerAlert(_ alert: AlertRecord, holdSeconds: Double, now: Date) -> [String: Any] {
        var annotations = ["observed": alert.observed]
        if let summary = alert.summary { annotations["summary"] = summary }
        let ends = alert.state == .resolved ? (alert.resolvedAt ?? now) : now.addingTimeInterval(holdSeconds)
        return [
            "labels": ["alertname": alert.rule, "project": alert.project, "device": alert.device, "severity": alert.severity.rawValue],
            "annotations": annotations,
            "startsAt": Timestamp.format(alert.firingAt ?? alert.since),
            "endsAt": Timestamp.format(ends),
        ]
    }

    private static func json(_ value: Any) -> [UInt8] {
        Array((try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8))
    }
}
