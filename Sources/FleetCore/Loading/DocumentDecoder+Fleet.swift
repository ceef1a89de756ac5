import FleetProtocol
/// Rollout settings as one file wrote them; unset fields come from the level above.
struct RolloutOverrides {
    var batchSize: Quantity?
    var maxUnavailable: Quantity?
    var maxFailures: Quantity?
    var onAbort: RolloutPolicy.OnAbort?
    var executionTimeout: Duration?

    static let keys = ["batchSize", "maxUnavailable", "maxFailures", "onAbort", "executionTimeout"]

    func applied(over base: RolloutPolicy) -> RolloutPolicy {
        RolloutPolicy(batchSize: batchSize ?? base.batchSize,
                      maxUnavailable: maxUnavailable ?? base.maxUnavailable,
                      maxFailures: maxFailures ?? base.maxFailures,
                      onAbort: onAbort ?? base.onAbort,
                      executionTimeout: executionTimeout ?? base.executionTimeout)
    }
}

extension DocumentDecoder {
    static let fleetKeys = ["project", "description", "defaults", "artifacts", "status", "remote", "alerts"]
    static let statusKeys = ["forge", "repository", "apiURL", "contextPrefix", "notes", "branch"]

    func decodeFleet(_ node: YAMLNode) -> Fleet? {
        guard let fields = fields(node, kind: .fleet, known: Self.fleetKeys) else { return nil }
        let project = fields.requiredString("project")
        if let project, let problem = Self.nameProblem(project.value) {
            sink.error(project.location, "invalid project name '\(project.value)': \(problem)")
        }
        var defaults = RolloutPolicy.builtIn
        var windows: MaintenanceWindows?
        if let node = fields["defaults"], let section = Fields(node, owner: "defaults", known: ["rollout", "windows"], sink: sink) {
            if let rollout = section["rollout"] { defaults = decodeRollout(rollout).applied(over: defaults) }
            windows = section["windows"].flatMap(decodeWindows)
        }
        var sources: [ArtifactSource] = []
        if let node = fields["artifacts"], let section = Fields(node, owner: "artifacts", known: ["allow"], sink: sink) {
            for entry in section.strings("allow") ?? [] {
                switch WebURL.parse(entry.value) {
                case .success(let url): sources.append(ArtifactSource(url: url, location: entry.location))
                case .failure(let problem):
                    sink.error(entry.location, "invalid artifact source '\(entry.value)': \(problem.reason)")
                }
            }
        }
        let status = fields["status"].map(decodeStatus) ?? StatusSettings()
        let remote = fields["remote"].map(decodeRemote) ?? RemoteAccess()
        let receivers = fields["alerts"].map(decodeAlertReceivers) ?? AlertReceivers()
        guard let project else { return nil }
        return Fleet(project: project.value, rolloutDefaults: defaults, windowDefaults: windows, artifactSources: sources,
                     status: status, remote: remote, alertReceivers: receivers, location: node.location)
    }

    func decodeRemote(_ node: YAMLNode) -> RemoteAccess {
        var remote = RemoteAccess()
        guard let fields = Fields(node, owner: "remote", known: ["exec", "fetchPaths"], sink: sink) else { return remote }
        remote.exec = fields.bool("exec") ?? false
        for entry in fields.strings("fetchPaths") ?? [] {
            if let problem = RemoteAccess.pathProblem(entry.value) {
                sink.error(entry.location, "invalid fetch path: \(problem)")
            } else if entry.value == "/" {
                sink.error(entry.location, "invalid fetch path: '/' would allow every file, the agent's own credentials among them; name directories")
            } else if remote.fetchPaths.contains(entry.value) {
                sink.error(entry.location, "'\(entry.value)' is listed twice in 'fetchPaths'")
            } else {
                remote.fetchPaths.append(entry.value)
            }
        }
        return remote
    }

    func decodeRollout(_ node: YAMLNode) -> RolloutOverrides {
        var overrides = RolloutOverrides()
        guard let fields = Fields(node, owner: "rollout", known: RolloutOverrides.keys, sink: sink) else { return overrides }
        overrides.batchSize = quantity(fields, "batchSize", minimumCount: 1)
        overrides.maxUnavailable = quantity(fields, "maxUnavailable", minimumCount: 1)
        overrides.maxFailures = quantity(fields, "maxFailures", minimumCount: 0)
        overrides.onAbort = choice(fields, "onAbort")
        overrides.executionTimeout = fields.duration("executionTimeout")
        if let timeout = overrides.executionTimeout, timeout <= .zero, let location = fields["executionTimeout"]?.location {
            sink.error(location, "'executionTimeout' must be longer than 0s")
        }
        return overrides
    }

    /// A count (at least `minimumCount`) or a percentage (over 0%, or from 0% when zero is allowed, up to 100%).
    func quantity(_ fields: Fields, _ key: String, minimumCount: Int) -> Quantity? {
        guard let node = fields[key] else { return nil }
        guard case .scalar(let text, _) = node.value, let quantity = Quantity.parse(text) else {
            sink.error(node.location, "expected a count such as 5 or a percentage such as 10% for '\(key)', found \(Scalars.describe(node))")
            return nil
        }
        switch quantity {
        case .count(let count) where count < minimumCount:
            sink.error(node.location, "'\(key)' must be at least \(minimumCount), found \(count)")
            return nil
        case .percent(let percent) where percent > 100:
            sink.error(node.location, "'\(key)' is \(text), over 100%")
            return nil
        case .percent(let percent) where percent < 0 || (percent == 0 && minimumCount > 0):
            sink.error(node.location, "'\(key)' must be more than \(minimumCount > 0 ? "0%" : "or equal to 0%"), found \(text)")
            return nil
        default:
            return quantity
        }
    }

    /// One of an enumeration's raw values, with a hint when misspelled.
    func choice<Choice: RawRepresentable & CaseIterable>(_ fields: Fields, _ key: String) -> Choice? where Choice.RawValue == String {
        guard let text = fields.string(key) else { return nil }
        if let value = Choice(rawValue: text.value) { return value }
        let names = Choice.allCases.map(\.rawValue)
        sink.error(text.location, "invalid value '\(text.value)' for '\(key)'; expected one of \(names.joined(separator: ", "))"
                   + Suggestion.hint(for: text.value, in: names))
        return nil
    }

    private func decodeStatus(_ node: YAMLNode) -> StatusSettings {
        var status = StatusSettings()
        guard let fields = Fields(node, owner: "status", known: Self.statusKeys, sink: sink) else { return status }
        status.forge = choice(fields, "forge") ?? .none
        if let repository = fields.string("repository") {
            if let problem = StatusSettings.repositoryProblem(repository.value) {
                sink.error(repository.location, "invalid 'repository' '\(DisplayText.safe(repository.value, limit: 80))': \(problem)")
            }
            status.repository = repository.value
        }
        if let api = fields.string("apiURL") {
            if case .failure(let problem) = WebURL.parse(api.value) {
                sink.error(api.location, "invalid 'apiURL': \(problem.reason)")
            }
            status.apiURL = api.value
        }
        if let prefix = fields.string("contextPrefix") {
            if prefix.value.isEmpty || prefix.value.contains(" ") {
                sink.error(prefix.location, "'contextPrefix' must be a non-empty word without spaces")
            }
            status.contextPrefix = prefix.value
        }
        status.notes = fields.bool("notes") ?? true
        status.branch = fields.string("branch")?.value ?? status.branch
        if status.forge != .none, status.repository == nil {
            sink.error(fields.keyLocation("forge") ?? node.location,
                       "status.forge is '\(status.forge.rawValue)' but status.repository is not set")
        }
        return status
    }
}
