import FleetProtocol
/// Cross-checks the documents of a repository and resolves each app target.
struct FleetCompiler {
    let documents: LoadedDocuments
    let sink: DiagnosticSink

    init(documents: LoadedDocuments, sink: DiagnosticSink) {
        self.documents = documents
        self.sink = sink
    }

    func compile() -> CompiledFleet? {
        guard let fleet = checkFleet() else { return nil }
        let groups = unique(documents.groups, kind: "Group", name: \.name, location: \.location)
        let devices = unique(documents.devices, kind: "device", name: \.id, location: \.location)
        let flows = unique(documents.flows, kind: "UpdateFlow", name: \.name, location: \.location)
        var rollouts: [String: RolloutOverrides] = [:]
        for (app, overrides) in zip(documents.apps, documents.appRollouts) where rollouts[app.name] == nil {
            rollouts[app.name] = overrides
        }
        let apps = unique(documents.apps, kind: "App", name: \.name, location: \.location)

        let deviceIDs = Set(devices.map(\.id))
        for group in groups {
            for id in group.deviceIDs where !deviceIDs.contains(id.value) && !documents.incomplete.contains(.devices) {
                sink.error(id.location, "device '\(id.value)' is not declared in devices/" + Suggestion.hint(for: id.value, in: deviceIDs))
            }
        }
        let flowsByName = Dictionary(flows.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let groupNames = Set(groups.map(\.name))
        let compiledApps: [CompiledApp] = apps.compactMap { app in
            var app = app
            app.rollout = (rollouts[app.name] ?? RolloutOverrides()).applied(over: fleet.rolloutDefaults)
            return compileApp(app, fleet: fleet, flows: flowsByName, groups: groupNames)
        }
        checkZoneTags(devices, apps: compiledApps)
        let rules = unique(documents.alertRules, kind: "AlertRule", name: \.rule.spec.name, location: \.location)
        for rule in rules {
            guard let group = rule.group, !groupNames.contains(group.value), !documents.incomplete.contains(.group) else { continue }
            sink.error(group.location, "unknown group '\(group.value)'" + Suggestion.hint(for: group.value, in: groupNames))
        }
        return CompiledFleet(fleet: fleet, groups: groups, devices: devices, flows: flows, apps: compiledApps,
                             alertRules: rules.map(\.rule))
    }

    /// A declared device's zone tag names a zone the rules know.
    private func checkZoneTags(_ devices: [DeviceDeclaration], apps: [CompiledApp]) {
        let zoneTags = Set(apps.flatMap { $0.targets.compactMap { $0.windows?.zoneTag } })
        guard !zoneTags.isEmpty else { return }
        for device in devices {
            for tag in zoneTags.sorted() {
                guard let value = device.tags[tag] else { continue }
                let zone = MaintenanceWindows.zoneName(tagValue: value)
                if MaintenanceWindows.zone(named: zone) == nil {
                    sink.error(device.location, "device '\(device.id)': tag '\(tag): \(value)' names no known time zone ('\(zone)'); "
                               + "write an IANA name with '.' for '/', such as Europe.Berlin")
                }
            }
        }
    }

    private func checkFleet() -> Fleet? {
        if documents.fleetFiles.isEmpty {
            sink.error(SourceLocation(path: "fleet.yaml"),
                       "not found; a fleet repository has a fleet.yaml (kind: Fleet) at its root")
            return nil
        }
        if documents.fleetFiles.count > 1 {
            sink.error(SourceLocation(path: documents.fleetFiles[1]), "both fleet.yaml and fleet.yml exist; keep one")
        }
        if documents.fleets.count > 1 {
            sink.error(documents.fleets[1].location, "fleet.yaml declares more than one Fleet")
        }
        if documents.fleets.isEmpty, sink.isEmpty {
            sink.error(SourceLocation(path: documents.fleetFiles[0], line: 1, column: 1), "fleet.yaml has no 'kind: Fleet' document")
        }
        return documents.fleets.first
    }

    /// The items with distinct names, sorted; a repeated name is reported at its second place.
    private func unique<Item>(_ items: [Item], kind: String, name: KeyPath<Item, String>,
                              location: KeyPath<Item, SourceLocation>) -> [Item] {
        var seen: [String: SourceLocation] = [:]
        var kept: [Item] = []
        for item in items {
            if let first = seen[item[keyPath: name]] {
                sink.error(item[keyPath: location], "duplicate \(kind) '\(item[keyPath: name])'; first declared at \(first)")
                continue
            }
            seen[item[keyPath: name]] = item[keyPath: location]
            kept.append(item)
        }
        return kept.sorted { $0[keyPath: name] < $1[keyPath: name] }
    }

    private func compileApp(_ app: App, fleet: Fleet, flows: [String: UpdateFlow], groups: Set<String>) -> CompiledApp? {
        guard let flow = flows[app.flow.value] else {
            if documents.incomplete.contains(.updateFlow) { return nil }
            sink.error(app.flow.location, "App '\(app.name)' uses flow '\(app.flow.value)', which is not declared in flows/"
                       + Suggestion.hint(for: app.flow.value, in: flows.keys))
            return nil
        }
        checkDeclared(app.parameters, in: flow, owner: "App '\(app.name)'")
        var targets: [DesiredTarget] = []
        var seenGroups: [String: SourceLocation] = [:]
        // Each template read once for the app, measured for each target by its values.
        let measures = TemplateMeasures(app: app, flow: flow)
        for target in app.targets {
            guard groups.contains(target.group.value) else {
                if documents.incomplete.contains(.group) { continue }
                sink.error(target.group.location, "unknown group '\(target.group.value)'" + Suggestion.hint(for: target.group.value, in: groups))
                continue
            }
            if let first = seenGroups[target.group.value] {
                sink.error(target.group.location, "group '\(target.group.value)' is already targeted at line \(first.line); "
                           + "this target would never apply because the first match wins")
                continue
            }
            if let after = target.after {
                if after.value == target.group.value {
                    sink.error(after.location, "a target cannot come after itself")
                } else if seenGroups[after.value] == nil {
                    let position = app.targets.firstIndex { $0.group.value == after.value }
                    let here = app.targets.firstIndex { $0.group.value == target.group.value } ?? 0
                    // Listed before but refused (its group is unknown): that was reported there.
                    let refusedBefore = position.map { $0 < here } ?? false
                    let later = position != nil
                    if !refusedBefore { sink.error(after.location, later
                               ? "'after: \(after.value)' names a target listed after this one; list '\(after.value)' first, as targets are promoted in order"
                               : "'after: \(after.value)' names no target of app '\(app.name)' listed before this one"
                                 + Suggestion.hint(for: after.value, in: Array(seenGroups.keys).sorted())) }
                }
            }
            seenGroups[target.group.value] = target.group.location
            checkDeclared(target.parameters, in: flow, owner: "the target for group '\(target.group.value)'")
            guard let resolved = resolve(app: app, target: target, flow: flow),
                  checkRenderedLengths(app: app, target: target, flow: flow, parameters: resolved, measures: measures) else { continue }
            checkDownloads(app: app, target: target, flow: flow, parameters: resolved, fleet: fleet)
            let secretNames = Set(flow.parameters.filter { $0.kind == .secret }.map(\.name))
            var desired = DesiredTarget(app: app.name, group: target.group.value, version: target.version.value, flow: flow.name,
                                        parameters: resolved.filter { !secretNames.contains($0.key) },
                                        secrets: resolved.filter { secretNames.contains($0.key) })
            let starts = [app.notBefore?.value, target.notBefore?.value].compactMap { $0 }
            desired.gate = TargetGate(notBefore: starts.max(), after: target.after?.value, bakeSeconds: target.bake?.seconds ?? 0,
                                      approval: target.approval)
            desired.windows = target.windows ?? app.windows ?? fleet.windowDefaults
            desired.health = health(app, target: target, parameters: resolved, flow: flow, report: targets.isEmpty)
            targets.append(desired)
        }
        return CompiledApp(app: app, flow: flow, targets: targets)
    }

    /// The app's checks for one target: text values such as `${version}` filled in from the
    /// target's version and parameters. Unknown names are reported once, for the first target.
    private func health(_ app: App, target: App.Target, parameters: [String: String], flow: UpdateFlow, report: Bool) -> HealthPolicy? {
        guard var health = app.health else { return nil }
        let known = Set(Template.builtIns + flow.parameters.filter { $0.kind != .secret }.map(\.name))
        for (index, check) in health.checks.enumerated() {
            guard case .text(let text) = check.operand, text.contains("$") else { continue }
            if report, case .success(let unknown) = Template.unknownReferences(in: text, known: known), let first = unknown.first {
                sink.error(app.healthLocations[index], "health check '\(check.text)' uses '${\(first.name)}', which is not \(Template.builtIns.joined(separator: ", ")) "
                           + "or a parameter of flow '\(flow.name)'" + Suggestion.hint(for: first.name, in: known))
            }
            let values = parameters.merging(["version": target.version.value, "app": app.name]) { $1 }
            let filled = Template.render(text) { values[$0] }
            health.checks[index].operand = .text(filled)
            health.checks[index].text = "\(check.subject.name) \(check.comparison.rawValue) \(filled)"
        }
        return health
    }

    private func checkDeclared(_ values: [String: Located<String>], in flow: UpdateFlow, owner: String) {
        for (name, value) in values.sorted(by: { $0.value.location < $1.value.location }) {
            guard let spec = flow.parameter(named: name) else {
                sink.error(value.location, "\(owner) sets parameter '\(name)', which flow '\(flow.name)' does not declare"
                           + Suggestion.hint(for: name, in: flow.parameters.map(\.name)))
                continue
            }
            if let problem = spec.problem(with: value.value) {
                sink.error(value.location, "parameter '\(name)' (\(spec.kind.name)): \(problem), found '\(value.value)'")
            }
        }
    }

    /// Target over app over flow default; reports required parameters left without a value.
    private func resolve(app: App, target: App.Target, flow: UpdateFlow) -> [String: String]? {
        var resolved: [String: String] = [:]
        var complete = true
        for spec in flow.parameters {
            if let value = target.parameters[spec.name] ?? app.parameters[spec.name] {
                resolved[spec.name] = value.value
            } else if let value = spec.defaultValue {
                resolved[spec.name] = value
            } else if spec.required {
                sink.error(target.location, "required parameter '\(spec.name)' of flow '\(flow.name)' has no value "
                           + "for group '\(target.group.value)'; set it in the App's or the target's parameters")
                complete = false
            }
        }
        return complete ? resolved : nil
    }

    /// Every `${…}` of the flow's steps and the app's health checks, filled in with this target's
    /// values, must leave a text a step may hold (the agent refuses a longer one). Measured, never
    /// built: a value referenced thousands of times would otherwise be expanded here, and again
    /// for every device it is handed to. A secret's value is not known here; it is counted as the
    /// reference itself. False when some text is too long (reported): the target is not compiled.
    private func checkRenderedLengths(app: App, target: App.Target, flow: UpdateFlow, parameters: [String: String],
                                      measures: TemplateMeasures) -> Bool {
        let secrets = Set(flow.parameters.filter { $0.kind == .secret }.map(\.name))
        // A device's id is the server's (a few dozen bytes); 256 bounds it.
        let builtIns = ["version": target.version.value.utf8.count, "app": app.name.utf8.count, "device": 256]
        func length(_ measure: Template.Measure) -> Int {
            measure.renderedLength { name in secrets.contains(name) ? nil : parameters[name]?.utf8.count ?? builtIns[name] }
        }
        let most = StepRules.maximumTextLength
        var fits = true
        for (step, measure) in measures.steps {
            let filled = length(measure)
            guard filled > most else { continue }
            sink.error(step.location, "step '\(step.name)' of flow '\(flow.name)', filled in for group '\(target.group.value)', "
                       + "would be \(filled) bytes, over the \(most) a step's text may hold")
            fits = false
        }
        for (index, measure) in measures.health {
            let filled = length(measure)
            guard filled > most else { continue }
            sink.error(app.healthLocations[index], "a health check, filled in for group '\(target.group.value)', would be \(filled) bytes, over the \(most) it may hold")
            fits = false
        }
        return fits
    }

    /// Download URLs, once parameters are filled in, must lie under an allowed artifact source.
    private func checkDownloads(app: App, target: App.Target, flow: UpdateFlow, parameters: [String: String], fleet: Fleet) {
        let builtIns = ["version": target.version.value, "app": app.name, "device": "DEVICE"]
        for step in flow.steps + flow.rollback {
            let template: String
            switch step.action {
            case .download(let url, _, _), .agentUpdate(let url, _): template = url
            default: continue
            }
            let url = Template.render(template) { parameters[$0] ?? builtIns[$0] }
            // Blame the value the URL came from: the target's parameter, the app's, or the flow itself.
            let source = Template.references(in: template).map { $0.map(\.name) }.value ?? []
            let location = source.lazy.compactMap { target.parameters[$0]?.location ?? app.parameters[$0]?.location }.first
                ?? step.location
            // A url parameter whose own value is invalid was reported already.
            let invalidSource = source.contains { name in
                guard let spec = flow.parameter(named: name), let value = parameters[name] else { return false }
                return spec.problem(with: value) != nil
            }
            switch WebURL.parse(url) {
            case .failure where invalidSource:
                continue
            case .failure(let problem):
                sink.error(location, "download URL '\(url)' of step '\(step.name)' for group '\(target.group.value)' is invalid: \(problem.reason)")
            case .success(let parsed):
                guard !fleet.artifactSources.contains(where: { $0.allows(parsed) }) else { continue }
                let allowed = fleet.artifactSources.isEmpty ? "none are allowed yet" : fleet.artifactSources.map(\.description).joined(separator: ", ")
                sink.error(location, "download URL '\(url)' of step '\(step.name)' is outside the artifact allowlist "
                           + "(fleet.yaml artifacts.allow: \(allowed))")
            }
        }
    }
}

extension Result {
    var value: Success? {
        if case .success(let value) = self { return value }
        return nil
    }
}

/// Every template of an app's flow steps and health checks, each read once.
struct TemplateMeasures {
    var steps: [(step: Step, measure: Template.Measure)] = []
    var health: [(index: Int, measure: Template.Measure)] = []

    init(app: App, flow: UpdateFlow) {
        for step in flow.steps + flow.rollback {
            for template in step.action.templates { steps.append((step, Template.Measure(template))) }
        }
        for (index, check) in (app.health?.checks ?? []).enumerated() {
            if case .text(let text) = check.operand { health.append((index, Template.Measure(text))) }
        }
    }
}
