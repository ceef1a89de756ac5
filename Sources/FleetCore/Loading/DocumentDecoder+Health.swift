extension DocumentDecoder {
    static let healthKeys = ["observe", "checks", "custom"]

    /// `health:` on an app: `observe`, the `custom` values its devices publish, and `checks`.
    func decodeHealth(_ node: YAMLNode) -> (HealthPolicy, [SourceLocation])? {
        guard let fields = Fields(node, owner: "health", known: Self.healthKeys, sink: sink) else { return nil }
        var valid = true
        var custom: [String: HealthCheck.ValueKind] = [:]
        for (name, value) in fields.mapping("custom") ?? [] {
            guard case .scalar(let text, _) = value.value, let kind = HealthCheck.ValueKind(rawValue: text) else {
                sink.error(value.location, "custom value '\(name.value)' is a number or text, not \(Scalars.describe(value))")
                valid = false
                continue
            }
            custom[name.value] = kind
        }
        let observe = fields.duration("observe")
        if let observe, observe < .zero || observe > .seconds(86_400), let location = fields["observe"]?.location {
            sink.error(location, "'observe' must be from 0s to 24h (heartbeats are kept a day)")
            valid = false
        }
        var checks: [HealthCheck] = []
        var locations: [SourceLocation] = []
        for entry in fields.required("checks") == nil ? [] : fields.strings("checks") ?? [] {
            switch HealthCheck.parse(entry.value, custom: custom) {
            case .success(let check):
                if check.usesBaseline, (observe ?? .zero) <= .zero {
                    sink.error(entry.location, "'\(entry.value)' compares with the baseline, which needs 'observe': how long to watch after the update")
                    valid = false
                }
                checks.append(check)
                locations.append(entry.location)
            case .failure(let problem):
                sink.error(entry.location, "invalid health check '\(entry.value)': \(problem.reason)")
                valid = false
            }
        }
        if valid, checks.isEmpty, fields["checks"] != nil {
            sink.error(fields["checks"]!.location, "'checks' is empty; list what the devices must keep showing, such as 'process.app == up'")
            valid = false
        }
        guard valid, !checks.isEmpty else { return nil }
        return (HealthPolicy(observeSeconds: observe?.seconds ?? 0, checks: checks, custom: custom), locations)
    }
}
