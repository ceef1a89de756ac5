import FleetProtocol

extension DocumentDecoder {
    static let flowKeys = ["name", "description", "parameters", "steps", "rollback", "probe"]
    static let probeKeys = ["run", "timeout", "interval"]
    static let parameterKeys = ["type", "required", "default", "description", "values"]
    static let stepKeys = ["name"] + Step.Action.keys + ["timeout", "retries", "onFailure", "idempotent"]
    static let downloadKeys = ["url", "sha256", "destination"]
    static let composeKeys = ["project", "file", "action"]

    func decodeFlow(_ node: YAMLNode) -> UpdateFlow? {
        guard let fields = fields(node, kind: .updateFlow, known: Self.flowKeys) else { return nil }
        let name = name(fields, kind: .updateFlow)
        let parameters = (fields.mapping("parameters") ?? []).compactMap(decodeParameter)
        let owner = "UpdateFlow '\(name?.value ?? "")'"
        let known = Set(parameters.map(\.name)).union(Template.builtIns)
        let steps = (fields.required("steps").flatMap { decodeSteps($0, key: "steps", owner: owner, known: known) }) ?? []
        let rollback = fields["rollback"].flatMap { decodeSteps($0, key: "rollback", owner: owner, known: known) } ?? []
        let secrets = Set(parameters.filter { $0.kind == .secret }.map(\.name))
        checkSecretUses(steps + rollback, secrets: secrets)
        let probe = fields["probe"].flatMap { decodeProbe($0, owner: owner, known: known, secrets: secrets) }
        var seen: [String: SourceLocation] = [:]
        for step in steps + rollback {
            if let first = seen[step.name] {
                sink.error(step.location, "step name '\(step.name)' is used twice in \(owner); first at line \(first.line)")
            }
            seen[step.name] = step.location
        }
        guard let name else { return nil }
        return UpdateFlow(name: name.value, parameters: parameters, steps: steps, rollback: rollback, probe: probe, location: node.location)
    }

    /// `probe: {run, timeout, interval}`. A secret never goes into a probe: the device keeps the
    /// probe's command for as long as the app is installed, long after the execution that
    /// brought the secret ended.
    private func decodeProbe(_ node: YAMLNode, owner: String, known: Set<String>, secrets: Set<String>) -> Probe? {
        guard let fields = Fields(node, owner: "probe of \(owner)", known: Self.probeKeys, sink: sink),
              let runNode = fields.required("run") else { return nil }
        let text = TemplateField(sink: sink, known: known, step: "probe")
        guard let command = text.read(runNode, "run") else { return nil }
        if command.allSatisfy(\.isWhitespace) {
            sink.error(runNode.location, "the probe of \(owner) has an empty command")
        }
        let used = Set((Template.references(in: command).value ?? []).map(\.name))
        for name in used.intersection(secrets).sorted() {
            sink.error(runNode.location, "the probe of \(owner) uses secret parameter '\(name)'; a probe runs long after the install "
                       + "and its command is kept on the device, so it may not hold a secret")
        }
        /// The duration under `key`, or its default; nil when it is out of range (said here).
        func seconds(_ key: String, _ range: ClosedRange<Int>, default value: Int, _ what: String) -> Duration? {
            guard let duration = fields.duration(key) else { return fields[key] == nil ? .seconds(value) : nil }
            if duration < .seconds(range.lowerBound) || duration > .seconds(range.upperBound), let location = fields[key]?.location {
                sink.error(location, "the probe's '\(key)' must be from \(range.lowerBound)s to \(what)")
                return nil
            }
            return duration
        }
        let timeout = seconds("timeout", StepRules.probeTimeoutSeconds, default: StepRules.probeDefaultTimeoutSeconds, "1h")
        let interval = seconds("interval", StepRules.probeIntervalSeconds, default: StepRules.probeDefaultIntervalSeconds, "1d")
        guard let timeout, let interval else { return nil }
        if timeout >= interval, let location = fields["timeout"]?.location ?? fields["interval"]?.location {
            sink.error(location, "the probe's timeout must be shorter than its interval")
        }
        return Probe(command: command, timeout: timeout, interval: interval, location: node.location)
    }

    /// A secret goes only into the text of a `run` or `script` step: a URL, a digest, a path, a
    /// compose project or a package name is shown in plans, logs and the step's own messages.
    private func checkSecretUses(_ steps: [Step], secrets: Set<String>) {
        guard !secrets.isEmpty else { return }
        for step in steps {
            switch step.action {
            case .run, .script: continue
            case .download, .compose, .install, .agentUpdate: break
            }
            let used = step.action.templates.flatMap { (Template.references(in: $0).value ?? []).map(\.name) }
            for name in Set(used).intersection(secrets).sorted() {
                sink.error(step.location, "step '\(step.name)' uses secret parameter '\(name)' outside a run or script step; "
                           + "a secret goes only into a command, where it is never shown")
            }
        }
    }

    private func decodeParameter(_ name: Located<String>, _ node: YAMLNode) -> ParameterSpec? {
        guard Template.isName(name.value) else {
            sink.error(name.location, "invalid parameter name '\(name.value)'; use letters, digits and '_', starting with a letter")
            return nil
        }
        guard !Template.builtIns.contains(name.value) else {
            sink.error(name.location, "'\(name.value)' is built in; choose another parameter name")
            return nil
        }
        guard let fields = Fields(node, owner: "parameter '\(name.value)'", known: Self.parameterKeys, sink: sink),
              let typeName = fields.requiredString("type")
        else { return nil }
        let kind: ParameterSpec.Kind
        switch typeName.value {
        case "string": kind = .string
        case "int": kind = .int
        case "bool": kind = .bool
        case "url": kind = .url
        case "sha256": kind = .sha256
        case "duration": kind = .duration
        case "secret": kind = .secret
        case "enum":
            guard let values = fields.strings("values"), !values.isEmpty else {
                sink.error(fields.keyLocation("type") ?? node.location, "parameter '\(name.value)' of type enum needs 'values'")
                return nil
            }
            kind = .oneOf(values.map(\.value))
        default:
            sink.error(typeName.location, "unknown parameter type '\(typeName.value)'; expected one of "
                       + ParameterSpec.Kind.names.joined(separator: ", ") + Suggestion.hint(for: typeName.value, in: ParameterSpec.Kind.names))
            return nil
        }
        if kind.name != "enum", let values = fields["values"] {
            sink.error(values.location, "'values' applies only to parameters of type enum")
        }
        var spec = ParameterSpec(name: name.value, kind: kind, required: fields.bool("required") ?? false,
                                 defaultValue: nil, description: fields.string("description")?.value, location: name.location)
        if let value = fields["default"].flatMap({ Scalars.scalar($0, "default", sink) }) {
            if let problem = spec.problem(with: value.value) {
                sink.error(value.location, "default '\(value.value)' of parameter '\(name.value)' is not a valid \(kind.name): \(problem)")
            } else {
                spec.defaultValue = value.value
            }
        }
        return spec
    }

    private func decodeSteps(_ node: YAMLNode, key: String, owner: String, known: Set<String>) -> [Step]? {
        guard case .sequence(let items) = node.value else {
            sink.error(node.location, "expected a list of steps for '\(key)' in \(owner), found \(node.kindDescription)")
            return nil
        }
        if items.isEmpty, key == "steps" {
            sink.error(node.location, "\(owner) has no steps")
        }
        // A device reports each step by its number, and the server takes numbers below this.
        if items.count > StepResult.maximumCount {
            sink.error(node.location, "\(owner) has \(items.count) \(key == "steps" ? "steps" : "rollback steps"); at most \(StepResult.maximumCount)")
            return nil
        }
        return items.enumerated().compactMap { decodeStep($1, number: $0 + 1, list: key, known: known) }
    }

    private func decodeStep(_ node: YAMLNode, number: Int, list: String, known: Set<String>) -> Step? {
        guard let fields = Fields(node, owner: "\(list) step \(number)", known: Self.stepKeys, sink: sink) else { return nil }
        let name = fields.string("name")?.value ?? "\(list)-\(number)"
        if let problem = StepRules.nameProblem(name), let location = fields["name"]?.location {
            sink.error(location, "the name of step \(number) of '\(list)' \(problem)")
        }
        let present = Step.Action.keys.filter { fields[$0] != nil }
        guard present.count == 1, let actionKey = present.first, let actionNode = fields[actionKey] else {
            let found = present.isEmpty ? "none" : present.joined(separator: " and ")
            sink.error(node.location, "step '\(name)' needs exactly one of \(Step.Action.keys.joined(separator: ", ")); found \(found)")
            return nil
        }
        let text = TemplateField(sink: sink, known: known, step: name)
        guard let action = decodeAction(actionKey, actionNode, step: name, text: text) else { return nil }
        let timeout = fields.duration("timeout") ?? Step.defaultTimeout
        if timeout < .seconds(StepRules.timeoutSeconds.lowerBound) || timeout > .seconds(StepRules.timeoutSeconds.upperBound),
           let location = fields["timeout"]?.location {
            sink.error(location, "'timeout' must be from 1s to 7d")
        }
        return Step(name: name, action: action, timeout: timeout,
                    retries: fields.int("retries", in: StepRules.retries) ?? 0,
                    onFailure: choice(fields, "onFailure") ?? .rollback,
                    idempotent: fields.bool("idempotent") ?? false,
                    location: node.location)
    }

    private func decodeAction(_ key: String, _ node: YAMLNode, step: String, text: TemplateField) -> Step.Action? {
        switch key {
        case "run": return text.read(node, key).map { .run(command: $0) }
        case "script": return text.read(node, key).map { .script($0) }
        case "install": return text.read(node, key).map { .install(package: $0) }
        case "agentUpdate":
            guard let fields = Fields(node, owner: "agentUpdate of step '\(step)'", known: ["url", "sha256"], sink: sink),
                  let url = fields.required("url").flatMap({ text.read($0, "url") }),
                  let sha256 = fields.required("sha256").flatMap({ text.read($0, "sha256") })
            else { return nil }
            return .agentUpdate(url: url, sha256: sha256)
        case "download":
            guard let fields = Fields(node, owner: "download of step '\(step)'", known: Self.downloadKeys, sink: sink),
                  let url = fields.required("url").flatMap({ text.read($0, "url") }),
                  let sha256 = fields.required("sha256").flatMap({ text.read($0, "sha256") }),
                  let destinationNode = fields.required("destination"),
                  let destination = text.read(destinationNode, "destination")
            else { return nil }
            if let problem = StepRules.pathProblem(destination) {
                sink.error(destinationNode.location, "the destination of step '\(step)' \(problem)")
            }
            return .download(url: url, sha256: sha256, destination: destination)
        default:
            guard let fields = Fields(node, owner: "compose of step '\(step)'", known: Self.composeKeys, sink: sink),
                  let project = fields.required("project").flatMap({ text.read($0, "project") }),
                  let file = fields.required("file").flatMap({ text.read($0, "file") })
            else { return nil }
            let action: Step.ComposeAction = choice(fields, "action") ?? .up
            return .compose(project: project, file: file, action: action)
        }
    }
}

/// Reads a step's text field and checks its `${…}` references, pointing at the exact column.
struct TemplateField {
    let sink: DiagnosticSink
    let known: Set<String>
    let step: String

    func read(_ node: YAMLNode, _ key: String) -> String? {
        guard let text = Scalars.string(node, key, sink) else { return nil }
        func location(_ offset: Int) -> SourceLocation {
            // Columns inside a single-line scalar are exact; a block scalar is reported where it starts.
            text.value.contains("\n") ? node.location : node.location.advanced(byColumns: node.contentColumnOffset + offset)
        }
        switch Template.unknownReferences(in: text.value, known: known) {
        case .failure(let problem):
            sink.error(location(problem.offset), "in step '\(step)': \(problem.reason)")
        case .success(let unknown):
            for reference in unknown {
                sink.error(location(reference.offset), "step '\(step)' uses '${\(reference.name)}', which is neither a declared parameter "
                           + "nor one of \(Template.builtIns.joined(separator: ", "))" + Suggestion.hint(for: reference.name, in: known.sorted()))
            }
        }
        return text.value
    }
}
