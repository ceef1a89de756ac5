import FleetProtocol

/// An alert rule as a file declared it, with the places its references are checked at.
struct DeclaredAlertRule {
    var rule: AlertRule
    var location: SourceLocation
    var group: Located<String>?
}

extension DocumentDecoder {
    static let alertRuleKeys = ["name", "group", "selector", "condition", "for", "severity", "summary"]
    static let alertReceiverKeys = ["webhook", "slack", "alertmanager"]

    /// `kind: AlertRule`.
    func decodeAlertRule(_ node: YAMLNode) -> DeclaredAlertRule? {
        guard let fields = fields(node, kind: .alertRule, known: Self.alertRuleKeys) else { return nil }
        let name = name(fields, kind: .alertRule)
        var valid = true
        let group = fields.string("group")
        if let group, let problem = Self.nameProblem(group.value) {
            sink.error(group.location, "invalid group name '\(group.value)': \(problem)")
            valid = false
        }
        var selector: LabelSelector?
        if let selectorNode = fields["selector"], let text = Scalars.string(selectorNode, "selector", sink) {
            do throws(LabelSelector.ParseError) {
                guard !text.value.allSatisfy(\.isWhitespace) else {
                    throw LabelSelector.ParseError(offset: 0, reason: "an empty selector; leave 'selector' out to watch every device of the project")
                }
                selector = try LabelSelector(parsing: text.value)
            } catch {
                sink.error(text.location.advanced(byColumns: selectorNode.contentColumnOffset + error.offset), "invalid selector: \(error.reason)")
                valid = false
            }
        }
        if group != nil, fields["selector"] != nil, let location = fields.keyLocation("selector") {
            sink.error(location, "give an AlertRule a 'group' or a 'selector', not both")
            valid = false
        }
        var condition: AlertRule.Condition?
        if let text = fields.requiredString("condition") {
            switch AlertRule.parseCondition(text.value) {
            case .success(let parsed): condition = parsed
            case .failure(let problem):
                sink.error(text.location, "invalid condition '\(DisplayText.safe(text.value, limit: 80))': \(problem.reason)")
            }
        }
        let duration = fields.duration("for") ?? .zero
        if duration < .zero || duration > .seconds(7 * 86_400), let location = fields["for"]?.location {
            sink.error(location, "'for' must be from 0s to 7d")
            valid = false
        }
        if condition == .offline, duration < .seconds(60) {
            sink.error(fields["for"]?.location ?? fields.keyLocation("condition") ?? node.location,
                       "an 'offline' rule needs 'for' of at least 1m: how long a device must be silent before it fires "
                       + "(shorter than a heartbeat's interval, it would fire between every two)")
            valid = false
        }
        let severity: AlertSeverity? = fields["severity"] == nil ? .warning : choice(fields, "severity")
        let summary = fields.string("summary")
        if let summary, summary.value.utf8.count > 512 || summary.value.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" }) {
            sink.error(summary.location, "'summary' must be up to 512 bytes without control characters")
            valid = false
        }
        guard valid, let name, let condition, let severity else { return nil }
        let spec = AlertRuleSpec(name: name.value, group: group?.value, selector: selector?.description, condition: condition.text,
                                 forSeconds: duration.seconds, severity: severity, summary: summary?.value)
        return DeclaredAlertRule(rule: AlertRule(spec: spec, condition: condition, selector: selector), location: node.location, group: group)
    }

    /// `alerts:` in fleet.yaml: where alerts are sent.
    func decodeAlertReceivers(_ node: YAMLNode) -> AlertReceivers {
        var receivers = AlertReceivers()
        guard let fields = Fields(node, owner: "alerts", known: Self.alertReceiverKeys, sink: sink) else { return receivers }
        func url(_ located: Located<String>, _ what: String) -> String? {
            if case .failure(let problem) = WebURL.parse(located.value) {
                sink.error(located.location, "invalid \(what) URL: \(problem.reason)")
                return nil
            }
            return located.value
        }
        func secretName(_ located: Located<String>) -> String? {
            if let problem = FleetNames.problem(located.value) {
                sink.error(located.location, "invalid secret name '\(DisplayText.safe(located.value, limit: 64))': \(problem)")
                return nil
            }
            return located.value
        }
        if let hook = fields["webhook"], let webhook = Fields(hook, owner: "webhook", known: ["url", "secret"], sink: sink),
           let address = webhook.requiredString("url").flatMap({ url($0, "webhook") }) {
            receivers.webhook = AlertReceivers.Webhook(url: address, secret: webhook.string("secret").flatMap(secretName))
        }
        if let node = fields["slack"], let slack = Fields(node, owner: "slack", known: ["urlSecret"], sink: sink) {
            receivers.slackURLSecret = slack.requiredString("urlSecret").flatMap(secretName)
        }
        if let node = fields["alertmanager"], let manager = Fields(node, owner: "alertmanager", known: ["url"], sink: sink) {
            receivers.alertmanager = manager.requiredString("url").flatMap { url($0, "Alertmanager") }
        }
        return receivers
    }
}

extension AlertRule {
    /// A rule as FleetCore just parsed it.
    init(spec: AlertRuleSpec, condition: Condition, selector: LabelSelector?) {
        self.spec = spec
        self.condition = condition
        self.selector = selector
    }
}

extension AlertRule.Condition {
    /// The condition as the server parses it again.
    var text: String {
        switch self {
        case .offline: "offline"
        case .check(let check): check.text
        }
    }
}
