/// A label selector over device tags, with Kubernetes' grammar, validity rules and meaning.
///
/// Requirements are joined by commas, and all must hold:
/// `site in (berlin,paris),ring!=canary,!decommissioned`.
///
/// | form | holds when |
/// |---|---|
/// | `key` | the device has the tag |
/// | `!key` | the device does not have the tag |
/// | `key=value`, `key==value` | the tag has that value (`key=` : the tag is empty) |
/// | `key!=value` | the tag is absent or has another value |
/// | `key in (a,b)` | the tag has one of the values (`()` and `(a,)` hold the empty value) |
/// | `key notin (a,b)` | the tag is absent or has none of the values |
/// | `key>5`, `key<5` | the tag is a whole number above (below) 5; absent or not a number: no |
///
/// An empty selector selects every device, as in kubectl. Requirements are kept in key order
/// (stable), as Kubernetes keeps them, so `description` is its canonical string.
public struct LabelSelector: Hashable, Sendable, CustomStringConvertible {
    public enum Operator: String, Hashable, Sendable {
        case exists, doesNotExist, equals, doubleEquals, notEquals, `in`, notIn, greaterThan, lessThan
    }

    public struct Requirement: Hashable, Sendable {
        public var key: String
        public var op: Operator
        /// Sorted, without duplicates; empty for `exists` and `doesNotExist`; one whole number
        /// for `greaterThan` and `lessThan`.
        public var values: [String]
    }

    public var requirements: [Requirement]

    /// A syntax error, with the column (from 0) inside the selector text where it was found.
    public struct ParseError: Error, Sendable, Equatable {
        public var offset: Int
        public var reason: String

        public init(offset: Int, reason: String) {
            self.offset = offset
            self.reason = reason
        }
    }

    /// The most different requirements one selector holds (a repeated one counts once): more
    /// than any grouping of devices needs, few enough that checking every device stays cheap.
    public static let maximumRequirements = 64

    /// Parses selector text; fails with the offset of the first problem.
    public init(parsing text: String) throws(ParseError) {
        var parser = SelectorParser(text)
        requirements = try parser.parseRequirements().sorted { $0.key < $1.key }
    }

    /// Whether a device with these tags is selected.
    public func matches(_ tags: [String: String]) -> Bool {
        requirements.allSatisfy { $0.matches(tags[$0.key]) }
    }

    public var description: String {
        requirements.map(\.description).joined(separator: ",")
    }
}

extension LabelSelector.Requirement: CustomStringConvertible {
    /// Whether a device whose value for `key` is `value` (nil when absent) meets this requirement.
    public func matches(_ value: String?) -> Bool {
        switch op {
        case .exists: return value != nil
        case .doesNotExist: return value == nil
        case .equals, .doubleEquals: return value == values[0]
        case .notEquals: return value != values[0]
        case .in: return value.map(holds) ?? false
        case .notIn: return value.map { !holds($0) } ?? true
        case .greaterThan, .lessThan:
            guard let value, let number = Int64(value), let bound = Int64(values[0]) else { return false }
            return op == .greaterThan ? number > bound : number < bound
        }
    }

    /// Whether `value` is one of `values` (sorted): a binary search, as a list may be long.
    private func holds(_ value: String) -> Bool {
        var low = 0, high = values.count
        while low < high {
            let middle = (low + high) / 2
            if values[middle] < value { low = middle + 1 } else { high = middle }
        }
        return low < values.count && values[low] == value
    }

    public var description: String {
        switch op {
        case .exists: return key
        case .doesNotExist: return "!" + key
        case .equals: return "\(key)=\(values[0])"
        case .doubleEquals: return "\(key)==\(values[0])"
        case .notEquals: return "\(key)!=\(values[0])"
        case .greaterThan: return "\(key)>\(values[0])"
        case .lessThan: return "\(key)<\(values[0])"
        case .in: return "\(key) in (\(values.joined(separator: ",")))"
        case .notIn: return "\(key) notin (\(values.joined(separator: ",")))"
        }
    }
}
