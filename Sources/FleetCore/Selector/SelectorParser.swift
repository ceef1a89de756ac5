/// A hand-written scanner for label selectors, so every error points at a column.
struct SelectorParser {
    private let scalars: [Unicode.Scalar]
    private var position = 0

    init(_ text: String) {
        scalars = Array(text.unicodeScalars)
    }

    typealias Requirement = LabelSelector.Requirement
    typealias ParseError = LabelSelector.ParseError

    mutating func parseRequirements() throws(ParseError) -> [Requirement] {
        skipSpaces()
        if position == scalars.count { return [] }
        var requirements: [Requirement] = []
        while true {
            requirements.append(try parseRequirement())
            skipSpaces()
            if position == scalars.count { return requirements }
            guard scalars[position] == "," else {
                throw fail("expected ',' between requirements, found '\(scalars[position])'")
            }
            position += 1
            skipSpaces()
            if position == scalars.count { throw fail("expected a requirement after ','") }
        }
    }

    private mutating func parseRequirement() throws(ParseError) -> Requirement {
        if peek() == "!" {
            position += 1
            skipSpaces()
            let key = try parseKey()
            return Requirement(key: key, op: .doesNotExist, values: [])
        }
        let key = try parseKey()
        skipSpaces()
        switch peek() {
        case nil, ",":
            return Requirement(key: key, op: .exists, values: [])
        case "=":
            position += 1
            if peek() == "=" { position += 1 }
            return Requirement(key: key, op: .equals, values: [try parseValue()])
        case "!":
            position += 1
            guard peek() == "=" else { throw fail("expected '!=' after '\(key)'") }
            position += 1
            return Requirement(key: key, op: .notEquals, values: [try parseValue()])
        default:
            let start = position
            let word = scanWord()
            switch word {
            case "in": return Requirement(key: key, op: .in, values: try parseSet())
            case "notin": return Requirement(key: key, op: .notIn, values: try parseSet())
            default:
                position = start
                throw fail("expected '=', '!=', 'in' or 'notin' after '\(key)'" + (word.isEmpty ? "" : ", found '\(word)'"))
            }
        }
    }

    private mutating func parseKey() throws(ParseError) -> String {
        let start = position
        let key = scanWord()
        guard !key.isEmpty else {
            throw fail(position < scalars.count ? "expected a tag name, found '\(scalars[position])'" : "expected a tag name")
        }
        if let problem = TagSyntax.keyProblem(key) {
            position = start
            throw fail(problem)
        }
        return key
    }

    private mutating func parseValue() throws(ParseError) -> String {
        skipSpaces()
        let start = position
        let value = scanWord()
        if let problem = TagSyntax.valueProblem(value) {
            position = start
            throw fail(problem)
        }
        return value
    }

    private mutating func parseSet() throws(ParseError) -> [String] {
        skipSpaces()
        guard peek() == "(" else { throw fail("expected '(' to open the list of values") }
        position += 1
        var values: [String] = []
        while true {
            let value = try parseValue()
            guard !value.isEmpty else { throw fail("expected a value in the list") }
            values.append(value)
            skipSpaces()
            switch peek() {
            case ",": position += 1
            case ")":
                position += 1
                return Array(Set(values)).sorted()
            case nil: throw fail("expected ')' to close the list of values")
            case let other?: throw fail("expected ',' or ')' in the list of values, found '\(other)'")
            }
        }
    }

    /// Characters that may appear in a tag name or value; anything else ends the word.
    private mutating func scanWord() -> String {
        var word = String.UnicodeScalarView()
        while let scalar = peek(), !" ,=!()".unicodeScalars.contains(scalar) {
            word.append(scalar)
            position += 1
        }
        return String(word)
    }

    private func peek() -> Unicode.Scalar? {
        position < scalars.count ? scalars[position] : nil
    }

    private mutating func skipSpaces() {
        while peek() == " " || peek() == "\t" { position += 1 }
    }

    private func fail(_ reason: String) -> ParseError {
        ParseError(offset: position, reason: reason)
    }
}
