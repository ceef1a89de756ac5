import FleetProtocol
import FoundationEssentials

extension DocumentDecoder {
    static let appKeys = ["name", "description", "flow", "parameters", "targets", "rollout", "selfHeal", "notBefore", "windows", "health"]
    static let targetKeys = ["group", "version", "parameters", "notBefore", "after", "bake", "approval", "windows"]

    func decodeApp(_ node: YAMLNode) -> (App, RolloutOverrides)? {
        guard let fields = fields(node, kind: .app, known: Self.appKeys) else { return nil }
        let name = name(fields, kind: .app)
        let flow = fields.requiredString("flow")
        let parameters = fields["parameters"].map { parameterValues($0) } ?? [:]
        var targets: [App.Target] = []
        if let list = fields.required("targets") {
            if case .sequence(let items) = list.value {
                if items.isEmpty { sink.error(list.location, "App '\(name?.value ?? "")' has no targets") }
                targets = items.compactMap(decodeTarget)
            } else {
                sink.error(list.location, "expected a list for 'targets', found \(list.kindDescription)")
            }
        }
        let rollout = fields["rollout"].map(decodeRollout) ?? RolloutOverrides()
        let selfHeal = fields.bool("selfHeal") ?? false
        let notBefore = timestamp(fields, "notBefore")
        let windows = fields["windows"].flatMap(decodeWindows)
        let health = fields["health"].flatMap(decodeHealth)
        guard let name, let flow else { return nil }
        let app = App(name: name.value, flow: flow, parameters: parameters, targets: targets,
                      rollout: .builtIn, selfHeal: selfHeal, notBefore: notBefore, windows: windows, health: health?.0,
                      healthLocations: health?.1 ?? [], location: node.location)
        return (app, rollout)
    }

    private func decodeTarget(_ node: YAMLNode) -> App.Target? {
        guard let fields = Fields(node, owner: "target", known: Self.targetKeys, sink: sink) else { return nil }
        let group = fields.requiredString("group")
        let version = fields.required("version").flatMap { Scalars.textOrNumber($0, "version", sink) }
        if let version, let problem = Self.versionProblem(version.value) {
            sink.error(version.location, "invalid version '\(version.value)': \(problem)")
        }
        let parameters = fields["parameters"].map { parameterValues($0) } ?? [:]
        let after = fields.string("after")
        let bake = fields.duration("bake")
        if let bake, let location = fields["bake"]?.location {
            if bake <= .zero {
                sink.error(location, "'bake' must be longer than 0s")
            } else if after == nil {
                sink.error(location, "'bake' needs 'after': it is how long the target named by 'after' must stay converged before this one starts")
            }
        }
        var approval = false
        if let text = fields.string("approval") {
            switch text.value {
            case "required": approval = true
            case "none": approval = false
            default: sink.error(text.location, "'approval' must be required or none, not '\(text.value)'")
            }
        }
        let notBefore = timestamp(fields, "notBefore")
        let windows = fields["windows"].flatMap(decodeWindows)
        guard let group, let version else { return nil }
        return App.Target(group: group, version: version, parameters: parameters, notBefore: notBefore, after: after, bake: bake,
                          approval: approval, windows: windows, location: node.location)
    }

    /// An RFC 3339 instant with a zone.
    private func timestamp(_ fields: Fields, _ key: String) -> Located<Date>? {
        guard let text = fields.string(key) else { return nil }
        switch Timestamp.parse(text.value) {
        case .success(let date): return Located(date, at: text.location)
        case .failure(let problem):
            sink.error(text.location, "invalid time '\(text.value)' for '\(key)': \(problem.reason)")
            return nil
        }
    }

    /// Parameter values are scalars; their types are checked against the flow once it is known.
    private func parameterValues(_ node: YAMLNode) -> [String: Located<String>] {
        var values: [String: Located<String>] = [:]
        for (name, value) in Scalars.mapping(node, "parameters", sink) ?? [] {
            guard case .scalar(let text, _) = value.value, !value.isNull else {
                sink.error(value.location, "expected a single value for parameter '\(name.value)', found \(value.kindDescription)")
                continue
            }
            values[name.value] = Located(text, at: value.location)
        }
        return values
    }

    /// Versions are what agents report (`StepRules.versionProblem`).
    static func versionProblem(_ version: String) -> String? { StepRules.versionProblem(version) }
}
