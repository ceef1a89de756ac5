/// Decodes one YAML document into the model, reporting every problem it finds.
struct DocumentDecoder {
    let sink: DiagnosticSink

    static let commonKeys = ["apiVersion", "kind"]

    func decode(_ node: YAMLNode, expected: DocumentKind, into loaded: inout LoadedDocuments) {
        guard case .mapping(let pairs) = node.value else {
            sink.error(node.location, "expected a mapping with 'kind: \(expected.rawValue)', found \(node.kindDescription)")
            return
        }
        guard let kindNode = pairs.first(where: { if case .scalar("kind", _) = $0.key.value { true } else { false } })?.value else {
            sink.error(node.location, "missing required key 'kind'; documents in \(expected.home) are 'kind: \(expected.rawValue)'")
            return
        }
        guard case .scalar(let kindName, _) = kindNode.value else {
            sink.error(kindNode.location, "expected a string for 'kind', found \(kindNode.kindDescription)")
            return
        }
        guard let kind = DocumentKind(rawValue: kindName) else {
            sink.error(kindNode.location, "unknown kind '\(kindName)'" + Suggestion.hint(for: kindName, in: DocumentKind.allCases.map(\.rawValue)))
            return
        }
        guard kind == expected else {
            sink.error(kindNode.location, "kind '\(kind.rawValue)' does not belong in \(expected.home); put it in \(kind.home)")
            return
        }
        switch kind {
        case .fleet: decodeFleet(node).map { loaded.fleets.append($0) }
        case .group: decodeGroup(node).map { loaded.groups.append($0) }
        case .devices: loaded.devices += decodeDevices(node)
        case .updateFlow: decodeFlow(node).map { loaded.flows.append($0) }
        case .app:
            if let (app, overrides) = decodeApp(node) {
                loaded.apps.append(app)
                loaded.appRollouts.append(overrides)
            }
        case .alertRule: decodeAlertRule(node).map { loaded.alertRules.append($0) }
        }
    }

    /// The document's own keys, having checked `apiVersion`.
    func fields(_ node: YAMLNode, kind: DocumentKind, known: [String]) -> Fields? {
        guard let fields = Fields(node, owner: kind.rawValue, known: Self.commonKeys + known, sink: sink) else { return nil }
        if let version = fields.string("apiVersion"), version.value != FleetLoader.apiVersion {
            sink.error(version.location, "unsupported apiVersion '\(version.value)'; this release reads '\(FleetLoader.apiVersion)'")
        }
        _ = fields.string("description")
        return fields
    }

    /// A name of a group, flow or app: lower-case letters, digits and '-', up to 63 characters.
    func name(_ fields: Fields, kind: DocumentKind) -> Located<String>? {
        guard let name = fields.requiredString("name") else { return nil }
        if let problem = Self.nameProblem(name.value) {
            sink.error(name.location, "invalid \(kind.rawValue) name '\(name.value)': \(problem)")
            return nil
        }
        return name
    }

    static func nameProblem(_ name: String) -> String? {
        FleetNames.problem(name)
    }
}

/// The rule for names of projects, groups, flows and apps: lower-case letters, digits and '-',
/// 1 to 63 characters, starting and ending with a letter or digit.
public enum FleetNames {
    /// Why `name` is not a valid name, or nil when it is.
    public static func problem(_ name: String) -> String? {
        let scalars = name.unicodeScalars
        guard !scalars.isEmpty, scalars.count <= 63 else { return "use 1 to 63 characters" }
        let allowed = scalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" }
        guard allowed, scalars.first != "-", scalars.last != "-" else {
            return "use lower-case letters, digits and '-', starting and ending with a letter or digit"
        }
        return nil
    }
}
