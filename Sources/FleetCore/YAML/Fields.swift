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
    /// Text. A plain scalar that YAML reads as a number or as true/false is refused, though its
    /// text is at hand: an editor's schema check, yq or a script sees `name: 0` as the number 0 and
    /// `version: 2.10` as 2.1, so the file says one thing to Flotilla and another to every other tool.
    static func string(_ node: YAMLNode, _ key: String, _ sink: DiagnosticSink) -> Located<String>? {
        guard let text = scalar(node, key, sink) else { return nil }
        if let kind = CoreSchema.nonText(node) {
            sink.error(node.location, "expected text for '\(key)', found \(kind) \(text.value); quote it (\"\(text.value)\") "
                       + "so that every YAML reader sees the same text")
            return nil
        }
        return text
    }

    /// Text, or a number taken as written (`version: 2.6`, `default: 10`); true/false are refused.
    static func textOrNumber(_ node: YAMLNode, _ key: String, _ sink: DiagnosticSink) -> Located<String>? {
        guard let text = scalar(node, key, sink) else { return nil }
        if CoreSchema.nonText(node) == CoreSchema.boolean {
            sink.error(node.location, "expected text or a number for '\(key)', found true or false; quote it (\"\(text.value)\") "
                       + "if it is meant as text")
            return nil
        }
        return text
    }

    /// Any scalar's text: a string, a number or true/false, as written.
    static func scalar(_ node: YAMLNode, _ key: String, _ sink: DiagnosticSink) -> Located<String>? {
        guard case .scalar(let text, _) = node.value, !node.isNull else {
            sink.error(node.location, "expected a string for '\(key)', found \(node.kindDescription)")
            return nil
        }
        return Located(text, at: node.location)
    }

    /// `true` or `false` written as YAML's booleans; quoted "true" is text, as every other reader takes it.
    static func bool(_ node: YAMLNode, _ key: String, _ sink: DiagnosticSink) -> Bool? {
        guard case .scalar(let text, let plain) = node.value, let value = parseBool(text) else {
            sink.error(node.location, "expected true or false for '\(key)', found \(describe(node))")
            return nil
        }
        guard plain else {
            sink.error(node.location, "expected true or false for '\(key)', found the text \"\(text)\"; write it without quotes")
            return nil
        }
        return value
    }

    static func int(_ node: YAMLNode, _ key: String, range: ClosedRange<Int>, _ sink: DiagnosticSink) -> Int? {
        guard case .scalar(let text, let plain) = node.value, let value = Int(text) else {
            sink.error(node.location, "expected a whole number for '\(key)', found \(describe(node))")
            return nil
        }
        guard plain else {
            sink.error(node.location, "expected a whole number for '\(key)', found the text \"\(text)\"; write it without quotes")
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

/// How YAML 1.2's core schema (the one yaml-language-server and most current readers use)
/// types a plain scalar: the loader keeps text as written, and uses this only to refuse text that
/// other readers would take for a number or a boolean.
enum CoreSchema {
    static let number = "the number"
    static let boolean = "the boolean"

    /// "the number" or "the boolean" when `node` is a plain scalar YAML reads as one; nil for text.
    static func nonText(_ node: YAMLNode) -> String? {
        guard case .scalar(let text, plain: true) = node.value, !node.isNull else { return nil }
        if Scalars.parseBool(text) != nil { return boolean }
        return isNumber(text) ? number : nil
    }

    /// `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`, decimal fractions with an optional exponent,
    /// `[-+]?.inf` and `.nan`, in their spellings.
    static func isNumber(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        func all(_ slice: ArraySlice<UInt8>, _ allowed: (UInt8) -> Bool) -> Bool { !slice.isEmpty && slice.allSatisfy(allowed) }
        let digit: (UInt8) -> Bool = { $0 >= 0x30 && $0 <= 0x39 }
        if bytes.count > 2, bytes[0] == 0x30, bytes[1] == UInt8(ascii: "o") { return all(bytes[2...]) { $0 >= 0x30 && $0 <= 0x37 } }
        if bytes.count > 2, bytes[0] == 0x30, bytes[1] == UInt8(ascii: "x") {
            return all(bytes[2...]) { digit($0) || ($0 | 0x20 >= UInt8(ascii: "a") && $0 | 0x20 <= UInt8(ascii: "f")) }
        }
        if [".nan", ".NaN", ".NAN"].contains(text) { return true }
        var rest = bytes[...]
        if let sign = rest.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { rest = rest.dropFirst() }
        if [".inf", ".Inf", ".INF"].contains(String(decoding: rest, as: UTF8.self)) { return true }
        // Mantissa: digits, digits '.' digits?, or '.' digits; then an optional exponent.
        let whole = rest.prefix(while: digit)
        rest = rest.dropFirst(whole.count)
        var fraction: ArraySlice<UInt8> = []
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst()
            fraction = rest.prefix(while: digit)
            rest = rest.dropFirst(fraction.count)
        }
        guard !whole.isEmpty || !fraction.isEmpty else { return false }
        if rest.isEmpty { return true }
        guard rest.first == UInt8(ascii: "e") || rest.first == UInt8(ascii: "E") else { return false }
        rest = rest.dropFirst()
        if let sign = rest.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") { rest = rest.dropFirst() }
        return all(rest, digit)
    }
}
