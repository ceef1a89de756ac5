/// The keys of one YAML mapping, checked against the keys a kind of object knows.
///
/// Unknown keys are reported with a "did you mean" hint, a missing required key is reported
/// at the mapping, and the rest of the loader reads values through it.
struct Fields {
    let node: YAMLNode
    /// What the mapping is, for messages: "App 'thermostat'", "step 'health'".
    let owner: String
    private let entries: [String: (key: YAMLNode, value: YAMLNode)]
    private let sink: DiagnosticSink
    /// Whether a key was misspelled, so that follow-on "missing" errors can be left out.
    let hasUnknownKeys: Bool

    /// Reads `node` as a mapping; reports and returns nil when it is something else.
    init?(_ node: YAMLNode, owner: String, known: [String], sink: DiagnosticSink) {
        guard case .mapping(let pairs) = node.value else {
            sink.error(node.location, "expected a mapping for \(owner), found \(node.kindDescription)")
            return nil
        }
        var entries: [String: (key: YAMLNode, value: YAMLNode)] = [:]
        var hasUnknownKeys = false
        for pair in pairs {
            guard case .scalar(let name, _) = pair.key.value else {
                sink.error(pair.key.location, "keys in \(owner) must be plain names")
                continue
            }
            guard known.contains(name) else {
                hasUnknownKeys = true
                sink.error(pair.key.location,
                           "unknown key '\(name)' in \(owner)" + Suggestion.hint(for: name, in: known))
                continue
            }
            entries[name] = pair
        }
        self.node = node
        self.owner = owner
        self.entries = entries
        self.sink = sink
        self.hasUnknownKeys = hasUnknownKeys
    }

    /// The value of `key`, or nil when absent or null.
    subscript(_ key: String) -> YAMLNode? {
        guard let value = entries[key]?.value, !value.isNull else { return nil }
        return value
    }

    /// Where `key` itself is written.
    func keyLocation(_ key: String) -> SourceLocation? { entries[key]?.key.location }

    /// The value of `key`; reports it as missing when absent.
    func required(_ key: String) -> YAMLNode? {
        if let value = self[key] { return value }
        if hasUnknownKeys, entries[key] == nil { return nil }
        sink.error(entries[key]?.key.location ?? node.location, "missing required key '\(key)' in \(owner)")
        return nil
    }

    func string(_ key: String) -> Located<String>? { self[key].flatMap { Scalars.string($0, key, sink) } }
    func requiredString(_ key: String) -> Located<String>? { required(key).flatMap { Scalars.string($0, key, sink) } }
    func bool(_ key: String) -> Bool? { self[key].flatMap { Scalars.bool($0, key, sink) } }
    func int(_ key: String, in range: ClosedRange<Int>) -> Int? {
        self[key].flatMap { Scalars.int($0, key, range: range, sink) }
    }
    func duration(_ key: String) -> Duration? { self[key].flatMap { Scalars.duration($0, key, sink) } }

    /// A list of strings, each with its place.
    func strings(_ key: String) -> [Located<String>]? {
        guard let node = self[key] else { return nil }
        guard case .sequence(let items) = node.value else {
            sink.error(node.location, "expected a list for '\(key)', found \(node.kindDescription)")
            return nil
        }
        return items.compactMap { Scalars.string($0, key, sink) }
    }

    /// A mapping of names to nodes, in file order.
    func mapping(_ key: String) -> [(key: Located<String>, value: YAMLNode)]? {
        guard let node = self[key] else { return nil }
        return Scalars.mapping(node, key, sink)
    }

    /// A list of nodes.
    func sequence(_ key: String) -> [YAMLNode]? {
        guard let node = self[key] else { return nil }
        guard case .sequence(let items) = node.value else {
            sink.error(node.location, "expected a list for '\(key)', found \(node.kindDescription)")
            return nil
        }
        return items
    }
}

/// A value and where it was written.
public struct Located<Value: Sendable>: Sendable {
    public var value: Value
    public var location: SourceLocation

    public init(_ value: Value, at location: SourceLocation) {
        self.value = value
        self.location = location
    }
}

extension Located: Equatable where Value: Equatable {}
extension Located: Hashable where Value: Hashable {}

/// Reading scalars as the types fields need, reporting what does not fit.
enum Scalars {
    static func string(_ node: YAMLNode, _ key: String, _ sink: DiagnosticSink) -> Located<String>? {
        guard case .scalar(let text, _) = node.value, !node.isNull else {
            sink.error(node.location, "expected a string for '\(key)', found \(node.kindDescription)")
            return nil
        }
        return Located(text, at: node.location)
    }

    static func bool(_ node: YAMLNode, _ key: String, _ sink: DiagnosticSink) -> Bool? {
        guard case .scalar(let text, _) = node.value, let value = parseBool(text) else {
            sink.error(node.location, "expected true or false for '\(key)', found \(describe(node))")
            return nil
        }
        return value
    }

    static func int(_ node: YAMLNode, _ key: String, range: ClosedRange<Int>, _ sink: DiagnosticSink) -> Int? {
        guard case .scalar(let text, _) = node.value, let value = Int(text) else {
            sink.error(node.location, "expected a whole number for '\(key)', found \(describe(node))")
            return nil
        }
        guard range.contains(value) else {
            sink.error(node.location, "'\(key)' must be between \(range.lowerBound) and \(range.upperBound), found \(value)")
            return nil
        }
        return value
    }

    static func duration(_ node: YAMLNode, _ key: String, _ sink: DiagnosticSink) -> Duration? {
        guard case .scalar(let text, _) = node.value else {
            sink.error(node.location, "expected a duration such as 30s, 5m or 2h for '\(key)', found \(node.kindDescription)")
            return nil
        }
        switch DurationText.parse(text) {
        case .success(let duration): return duration
        case .failure(let problem):
            sink.error(node.location, "invalid duration '\(text)' for '\(key)': \(problem.reason)")
            return nil
        }
    }

    static func mapping(_ node: YAMLNode, _ key: String, _ sink: DiagnosticSink) -> [(key: Located<String>, value: YAMLNode)]? {
        guard case .mapping(let pairs) = node.value else {
            sink.error(node.location, "expected a mapping for '\(key)', found \(node.kindDescription)")
            return nil
        }
        return pairs.compactMap { pair in
            guard case .scalar(let name, _) = pair.key.value else {
                sink.error(pair.key.location, "keys in '\(key)' must be plain names")
                return nil
            }
            return (Located(name, at: pair.key.location), pair.value)
        }
    }

    static func parseBool(_ text: String) -> Bool? {
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    /// A short quote of a scalar, or the kind of a collection.
    static func describe(_ node: YAMLNode) -> String {
        if case .scalar(let text, _) = node.value, !node.isNull {
            return "'\(text.count > 40 ? String(text.prefix(40)) + "…" : text)'"
        }
        return node.kindDescription
    }
}
