/// A YAML node with the place it was written, as the loader works on it.
///
/// Scalars keep their text untouched (`2.10` stays "2.10", not a number), so each
/// field decides what it accepts and says so when the text does not fit.
struct YAMLNode: Sendable {
    enum Value: Sendable {
        /// A scalar's text; `plain` is false when it was quoted or a block scalar.
        case scalar(String, plain: Bool)
        case mapping([(key: YAMLNode, value: YAMLNode)])
        case sequence([YAMLNode])
    }

    var value: Value
    var location: SourceLocation

    /// True for `~`, `null` and an empty plain scalar: a key written with no value.
    var isNull: Bool {
        guard case .scalar(let text, plain: true) = value else { return false }
        return text.isEmpty || text == "~" || text == "null" || text == "Null" || text == "NULL"
    }

    /// What this node is, for messages such as "expected a string, found a sequence".
    var kindDescription: String {
        switch value {
        case .scalar where isNull: return "nothing (null)"
        case .scalar: return "a scalar"
        case .mapping: return "a mapping"
        case .sequence: return "a sequence"
        }
    }

    /// Column offset of a scalar's first character of content: quoted scalars start one column in.
    var contentColumnOffset: Int {
        if case .scalar(_, plain: false) = value { return 1 }
        return 0
    }
}
