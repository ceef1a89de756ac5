public import FoundationEssentials

/// What the commit in force says of alerts: its rules (`alerts/*.yaml`) and where firing and
/// resolved alerts go (`alerts:` in fleet.yaml). The controller hands it to the server, which
/// evaluates the rules as heartbeats arrive; a standby replica reads it from the leader's snapshot.
public struct AlertingSettings: Hashable, Sendable, Codable {
    public var rules: [AlertRuleSpec]
    public var receivers: AlertReceivers

    public init(rules: [AlertRuleSpec] = [], receivers: AlertReceivers = AlertReceivers()) {
        self.rules = rules
        self.receivers = receivers
    }
}

/// One `kind: AlertRule`, as validated text: the server parses its condition again with the
/// same parser (`AlertRule(spec:)` in FleetCore), which cannot fail on what validation passed.
public struct AlertRuleSpec: Hashable, Sendable, Codable {
    public var name: String
    /// The group it watches; nil with no selector either: every device of the project.
    public var group: String?
    /// A label selector in its canonical form.
    public var selector: String?
    /// `cpu > 90%`, `process.thermostat == down`, `custom.errors >= 5`, or `offline`.
    public var condition: String
    /// How long the condition must hold (for `offline`: how long the device is silent) before it fires.
    public var forSeconds: Double
    public var severity: AlertSeverity
    public var summary: String?

    public init(name: String, group: String? = nil, selector: String? = nil, condition: String, forSeconds: Double,
                severity: AlertSeverity, summary: String? = nil) {
        self.name = name
        self.group = group
        self.selector = selector
        self.condition = condition
        self.forSeconds = forSeconds
        self.severity = severity
        self.summary = summary
    }
}

public enum AlertSeverity: String, Hashable, Sendable, Codable, CaseIterable {
    case info, warning, critical
}

/// Where alerts are sent. Each is optional; with none, alerts still show in `flotilla status`,
/// STATUS.md, the API and `/metrics`.
public struct AlertReceivers: Hashable, Sendable, Codable {
    /// A generic JSON webhook; the body is signed with HMAC-SHA256 under the project secret
    /// named `secret` (`X-Flotilla-Signature: sha256=…`).
    public var webhook: Webhook?
    /// A Slack-compatible incoming webhook; its URL is itself a secret, so git names the project
    /// secret that holds it.
    public var slackURLSecret: String?
    /// Prometheus Alertmanager's base URL; alerts go to its API v2 (`POST /api/v2/alerts`).
    public var alertmanager: String?

    public struct Webhook: Hashable, Sendable, Codable {
        public var url: String
        public var secret: String?

        public init(url: String, secret: String? = nil) {
            self.url = url
            self.secret = secret
        }
    }

    public init(webhook: Webhook? = nil, slackURLSecret: String? = nil, alertmanager: String? = nil) {
        self.webhook = webhook
        self.slackURLSecret = slackURLSecret
        self.alertmanager = alertmanager
    }

    public var isEmpty: Bool { webhook == nil && slackURLSecret == nil && alertmanager == nil }
}

/// An alert of one rule on one device, as the server keeps it: pending (the condition holds, not
/// yet for long enough), firing, or resolved. `version` moves on with every change, so replicas
/// change it only from what they last read.
public struct AlertRecord: Hashable, Sendable, Codable {
    public enum State: String, Hashable, Sendable, Codable {
        case pending, firing, resolved
    }

    public var project: String
    public var rule: String
    public var device: String
    public var state: State
    public var severity: AlertSeverity
    /// When the condition began to hold (for `offline`: when the device was last heard from).
    public var since: Date
    public var firingAt: Date?
    public var resolvedAt: Date?
    /// What was observed, in words: "cpu 97", "process.thermostat is down", "silent since …".
    public var observed: String
    public var summary: String?
    public var version: Int

    public init(project: String, rule: String, device: String, state: State, severity: AlertSeverity, since: Date,
                firingAt: Date? = nil, resolvedAt: Date? = nil, observed: String, summary: String? = nil, version: Int = 0) {
        self.project = project
        self.rule = rule
        self.device = device
        self.state = state
        self.severity = severity
        self.since = since
        self.firingAt = firingAt
        self.resolvedAt = resolvedAt
        self.observed = observed
        self.summary = summary
        self.version = version
    }
}
