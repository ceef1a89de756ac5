public import FleetProtocol

/// Where the server sends an alert that fired or resolved. The server decides and keeps alerts;
/// what speaks HTTP to receivers is wired in by `flotilla serve` (FleetStatus's `AlertNotifier`),
/// so the server needs no HTTP client of its own.
public protocol AlertNotifying: Sendable {
    /// Sends `delivery` to its receivers; retries and failures are the notifier's to count and log.
    func deliver(_ delivery: AlertDelivery) async
}

/// Alerts' changes (one, or a project's firing alerts sent again), with their project's
/// receivers resolved: secrets opened, ready to send.
public struct AlertDelivery: Sendable, Equatable {
    public var alerts: [AlertRecord]
    public var receivers: ResolvedAlertReceivers
    /// Whether this is Alertmanager's periodic resend of firing alerts (sent to Alertmanager
    /// only, in one request: webhooks and Slack hear of each change once).
    public var isResend: Bool

    public init(alerts: [AlertRecord], receivers: ResolvedAlertReceivers, isResend: Bool = false) {
        self.alerts = alerts
        self.receivers = receivers
        self.isResend = isResend
    }
}

/// `AlertReceivers` with the secrets they name opened. A receiver whose secret is missing is
/// nil here (and the server says why in its log).
public struct ResolvedAlertReceivers: Sendable, Equatable {
    public var webhookURL: String?
    /// The HMAC-SHA256 key the webhook's body is signed with; nil: unsigned.
    public var webhookKey: [UInt8]?
    public var slackURL: String?
    public var alertmanagerURL: String?
    /// How long a firing alert stays active in Alertmanager without being sent again.
    public var alertmanagerHoldSeconds: Double

    public init(webhookURL: String? = nil, webhookKey: [UInt8]? = nil, slackURL: String? = nil, alertmanagerURL: String? = nil,
                alertmanagerHoldSeconds: Double = 300) {
        self.webhookURL = webhookURL
        self.webhookKey = webhookKey
        self.slackURL = slackURL
        self.alertmanagerURL = alertmanagerURL
        self.alertmanagerHoldSeconds = alertmanagerHoldSeconds
    }

    public var isEmpty: Bool { webhookURL == nil && slackURL == nil && alertmanagerURL == nil }
}
