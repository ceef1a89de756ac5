import FleetProtocol
/// A hand-written scanner and parser for label selectors with Kubernetes' grammar, so every
/// error points at a column:
///
/// ```
/// selector    ::= "" | requirement ("," requirement)*
/// requirement ::= "!" KEY | KEY [ ("in" | "notin") "(" values ")" | ("=" | "==" | "!=" | ">" | "<") [VALUE] ]
/// values      ::= VALUE? ("," VALUE?)*          -- empty values allowed: "()", "(a,)", "(,a)"
/// ```
///
/// Whitespace is space, tab, carriage return and newline. A word is any run of characters that
/// are neither whitespace nor one of `=!(),<>`; `in` and `notin` are operators only where an
/// operator is expected (`in in (a)` selects devices whose tag `in` is `a`).
struct SelectorParser {
    private enum Kind: Equatable {
        case word, bang, notEquals, equals, doubleEquals, greaterThan, lessThan, open, close, comma, end
    }

    private struct Token {
        var kind: Kind
        var text: String
        /// Column (from 0, in Unicode scalars) where the token starts.
        var offset: Int

        var shown: String { kind == .end ? "the end" : "'\(text)'" }
    }

    private let tokens: [Token]
    private var index = 0

    init(_ text: String) {
        tokens = Self.scan(Array(text.unicodeScalars))
    }

    typealias Requirement = LabelSelector.Requirement
    typealias ParseError = LabelSelector.ParseError

    mutating func parseRequirements() throws(ParseError) -> [Requirement] {
        var requirements: [Requirement] = []
        switch peek.kind {
        case .end: return []
        case .word, .bang: break
        default: throw fail(at: peek, "expected a tag name or '!', found \(peek.shown)")
        }
        // The same requirement twice holds when once does: kept once. Past the most a selector
        // may hold, refused: a selector is checked against every device, so its length is work.
        var seen = Set<Requirement>()
        while true {
            let start = peek
            let requirement = try parseRequirement()
            if seen.insert(requirement).inserted {
                guard requirements.count < LabelSelector.maximumRequirements else {
                    throw fail(at: start, "a selector holds at most \(LabelSelector.maximumRequirements) different requirements")
                }
                requirements.append(requirement)
            }
            let next = take()
            switch next.kind {
            case .end:
                return requirements
            case .comma:
                guard peek.kind == .word || peek.kind == .bang else {
                    throw fail(at: peek, "expected a requirement after ','" + (peek.kind == .end ? "" : ", found \(peek.shown)"))
                }
            default:
                throw fail(at: next, "expected ',' between requirements, found \(next.shown)")
            }
        }
    }

    private mutating func parseRequirement() throws(ParseError) -> Requirement {
        var first = take()
        let negated = first.kind == .bang
        if negated { first = take() }
        guard first.kind == .word else {
            throw fail(at: first, "expected a tag name" + (negated ? " after '!'" : "")
                + (first.kind == .end ? "" : ", found \(first.shown)"))
        }
        if let problem = TagSyntax.keyProblem(first.text) { throw fail(at: first, problem) }
        let key = first.text
        // `!key` and `key` stand alone; what follows `!key` other than ',' is the caller's error.
        if negated { return Requirement(key: key, op: .doesNotExist, values: []) }
        if peek.kind == .end || peek.kind == .comma { return Requirement(key: key, op: .exists, values: []) }

        let operation = take()
        let op: LabelSelector.Operator
        switch (operation.kind, operation.text) {
        case (.word, "in"): op = .in
        case (.word, "notin"): op = .notIn
        case (.equals, _): op = .equals
        case (.doubleEquals, _): op = .doubleEquals
        case (.notEquals, _): op = .notEquals
        case (.greaterThan, _): op = .greaterThan
        case (.lessThan, _): op = .lessThan
        default:
            throw fail(at: operation, "expected '=', '==', '!=', 'in', 'notin', '>' or '<' after '\(key)', found \(operation.shown)")
        }

        let values: [(text: String, offset: Int)]
        switch op {
        case .in, .notIn: values = try parseSet()
        default: values = [try parseExactValue(after: operation)]
        }
        if op == .greaterThan || op == .lessThan, Int64(values[0].text) == nil {
            throw ParseError(offset: values[0].offset, reason: values[0].text.isEmpty
                ? "'\(operation.text)' needs a whole number after it"
                : "'\(operation.text)' compares whole numbers, and '\(values[0].text)' is not one")
        }
        for value in values {
            if let problem = TagSyntax.valueProblem(value.text) { throw ParseError(offset: value.offset, reason: problem) }
        }
        return Requirement(key: key, op: op, values: Array(Set(values.map(\.text))).sorted())
    }

    /// The one value after `=`, `==`, `!=`, `>` or `<`; none (at the end or before ',') is the
    /// empty value.
    private mutating func parseExactValue(after operation: Token) throws(ParseError) -> (text: String, offset: Int) {
        if peek.kind == .end || peek.kind == .comma { return ("", peek.offset) }
        let value = take()
        guard value.kind == .word else {
            throw fail(at: value, "expected a value after '\(operation.text)', found \(value.shown)")
        }
        return (value.text, value.offset)
    }

    /// `( values )`, where a value may be empty: `()` and `(a,)` hold the empty value.
    private mutating func parseSet() throws(ParseError) -> [(text: String, offset: Int)] {
        let open = take()
        guard open.kind == .open else {
            throw fail(at: open, "expected '(' to open the list of values" + (open.kind == .end ? "" : ", found \(open.shown)"))
        }
        switch peek.kind {
        case .close:
            let close = take()
            return [("", close.offset)]
        case .word, .comma:
            break
        case .end:
            throw fail(at: peek, "expected ')' to close the list of values")
        default:
            throw fail(at: peek, "expected a value, ',' or ')' in the list of values, found \(peek.shown)")
        }
        var values: [(text: String, offset: Int)] = []
        while true {
            let token = take()
            switch token.kind {
            case .word:
                values.append((token.text, token.offset))
                switch peek.kind {
                case .comma: continue
                case .close:
                    take()
                    return values
                case .end: throw fail(at: peek, "expected ')' to close the list of values")
                default: throw fail(at: peek, "expected ',' or ')' in the list of values, found \(peek.shown)")
                }
            case .comma:
                // An empty value before this comma (at the start), or after it (before ')' or
                // another ','), as Kubernetes reads them.
                if values.isEmpty { values.append(("", token.offset)) }
                if peek.kind == .close {
                    values.append(("", peek.offset))
                    take()
                    return values
                }
                if peek.kind == .comma {
                    take()
                    values.append(("", token.offset + 1))
                }
            case .end:
                throw fail(at: token, "expected ')' to close the list of values")
            default:
                throw fail(at: token, "expected a value or ',' in the list of values, found \(token.shown)")
            }
        }
    }

    private var peek: Token { tokens[index] }

    @discardableResult
    private mutating func take() -> Token {
        let token = tokens[index]
        if token.kind != .end { index += 1 }
        return token
    }

    private func fail(at token: Token, _ reason: String) -> ParseError {
        ParseError(offset: token.offset, reason: reason)
    }

    private static func isWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == " " || scalar == "\t" || scalar == "\r" || scalar == "\n"
    }

    private static func isSymbol(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar {
        case "=", "!", "(", ")", ",", ">", "<": return true
        default: return false
        }
    }

    /// The tokens of `scalars`, always ending with `.end`. Symbols take the longest match: `!=`
    /// and `==` before `!` and `=`.
    private static func scan(_ scalars: [Unicode.Scalar]) -> [Token] {
        var tokens: [Token] = []
        var position = 0
        while true {
            while position < scalars.count, isWhitespace(scalars[position]) { position += 1 }
            guard position < scalars.count else {
                tokens.append(Token(kind: .end, text: "", offset: position))
                return tokens
            }
            let start = position
            let next: Unicode.Scalar? = position + 1 < scalars.count ? scalars[position + 1] : nil
            let kind: Kind
            switch scalars[position] {
            case "!" where next == "=": kind = .notEquals; position += 2
            case "!": kind = .bang; position += 1
            case "=" where next == "=": kind = .doubleEquals; position += 2
            case "=": kind = .equals; position += 1
            case "(": kind = .open; position += 1
            case ")": kind = .close; position += 1
            case ",": kind = .comma; position += 1
            case ">": kind = .greaterThan; position += 1
            case "<": kind = .lessThan; position += 1
            default:
                kind = .word
                while position < scalars.count, !isWhitespace(scalars[position]), !isSymbol(scalars[position]) { position += 1 }
            }
            var text = String.UnicodeScalarView()
            text.append(contentsOf: scalars[start..<position])
            tokens.append(Token(kind: kind, text: String(text), offset: start))
        }
    }
}
