import FleetProtocol
internal import Yams

/// Turns a file's bytes into YAML documents with source locations, refusing what would
/// hurt the process: bytes that are not UTF-8, deep nesting, and alias expansion bombs.
enum YAMLReader {
    /// How many nodes one file may expand to once aliases are followed.
    static let nodeBudget = 200_000
    /// How many bytes of text one file may expand to once aliases are followed: four times the
    /// largest file, so only aliases can reach it, and what follows (hashing names, quoting them
    /// in errors) works on at most this much.
    static let textBudget = 4 * FleetTree.maximumFileSize
    /// The core schema: what a plain or quoted value resolves to. Anything else came from an
    /// explicit tag (`!custom`, `!!python/object`, `!!binary`) and is refused.
    static let allowedTags: Set<String> = Set(["str", "int", "float", "bool", "null", "map", "seq", "timestamp", "merge"]
        .map { "tag:yaml.org,2002:" + $0 } + [untaggedPlain])
    /// Untagged plain scalars get a tag of their own, so an explicit `!!str 42` (text, though
    /// plain) is told from `42`.
    static let untaggedPlain = "tag:flotilla.dev,2026:plain"
    static let textResolver = Resolver.basic.appending(.merge).appending(try! Resolver.Rule(Tag.Name(rawValue: untaggedPlain), "^"))
    /// How deep flow collections (`[`, `{`) may nest.
    static let maximumNesting = 256

    /// The documents of one file, or the first problem that stopped reading it.
    static func documents(in bytes: [UInt8], path: String) -> Result<[YAMLNode], Diagnostic> {
        let text: String
        switch decodeUTF8(bytes, path: path) {
        case .success(let decoded): text = decoded
        case .failure(let problem): return .failure(problem)
        }
        if let problem = checkNesting(text, path: path) { return .failure(problem) }
        do {
            // Merge keys only: scalars stay text (the fields decide what they accept), so Yams'
            // implicit typing, a regular expression per rule tried on every plain scalar, is not run.
            let parser = try Parser(yaml: text, resolver: textResolver)
            var documents: [YAMLNode] = []
            var budget = (nodes: nodeBudget, text: textBudget)
            while let root = try parser.nextRoot() {
                documents.append(try convert(root, path: path, budget: &budget))
            }
            return .success(documents)
        } catch let problem as Diagnostic {
            return .failure(problem)
        } catch let error as YamlError {
            return .failure(diagnostic(for: error, text: text, path: path))
        } catch {
            return .failure(Diagnostic(SourceLocation(path: path, line: 1, column: 1), "invalid YAML"))
        }
    }

    private static func decodeUTF8(_ bytes: [UInt8], path: String) -> Result<String, Diagnostic> {
        var iterator = bytes.makeIterator()
        var decoder = UTF8()
        var line = 1, column = 1
        while true {
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar):
                if scalar == "\n" { line += 1; column = 1 } else { column += 1 }
            case .emptyInput:
                return .success(String(decoding: bytes, as: UTF8.self))
            case .error:
                return .failure(Diagnostic(
                    SourceLocation(path: path, line: line, column: column),
                    "file is not valid UTF-8 text; save it as UTF-8"))
            }
        }
    }

    /// Flow collections nest by brackets alone; a file of a million `[` must not exhaust the stack.
    private static func checkNesting(_ text: String, path: String) -> Diagnostic? {
        var depth = 0, line = 1, column = 0
        for byte in text.utf8 {
            column += 1
            switch byte {
            case UInt8(ascii: "\n"): line += 1; column = 0
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > maximumNesting {
                    return Diagnostic(SourceLocation(path: path, line: line, column: column),
                                      "collections nest deeper than \(maximumNesting) levels")
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): depth = max(0, depth - 1)
            default: break
            }
        }
        return nil
    }

    private static func convert(_ node: Node, path: String, budget: inout (nodes: Int, text: Int)) throws -> YAMLNode {
        let location = SourceLocation(path: path, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1)
        budget.nodes -= 1
        if budget.nodes < 0 {
            throw Diagnostic(location, "document expands to more than \(nodeBudget) nodes; "
                             + "YAML aliases (*name) may not be used to multiply content")
        }
        if case .alias = node {} else if case let tag = node.tag.rawValue, !allowedTags.contains(tag) {
            throw Diagnostic(location, "YAML tag '\(DisplayText.safe(tag, limit: 60))' is not allowed; fleet files hold plain "
                             + "strings, numbers, booleans, lists and mappings")
        }
        switch node {
        case .scalar(let scalar):
            budget.text -= scalar.string.utf8.count
            if budget.text < 0 {
                throw Diagnostic(location, "document expands to more than \(textBudget >> 20) MiB of text; "
                                 + "YAML aliases (*name) may not be used to multiply content")
            }
            // Plain and not explicitly `!!str`: YAML may read it as a number or a boolean.
            let plain = scalar.style == .plain && scalar.tag.rawValue != "tag:yaml.org,2002:str"
            return YAMLNode(value: .scalar(scalar.string, plain: plain), location: location)
        case .mapping(let mapping):
            var pairs: [(key: YAMLNode, value: YAMLNode)] = []
            pairs.reserveCapacity(mapping.count)
            for (key, value) in mapping {
                pairs.append((try convert(key, path: path, budget: &budget),
                              try convert(value, path: path, budget: &budget)))
            }
            return YAMLNode(value: .mapping(pairs), location: location)
        case .sequence(let sequence):
            var items: [YAMLNode] = []
            items.reserveCapacity(sequence.count)
            for item in sequence {
                items.append(try convert(item, path: path, budget: &budget))
            }
            return YAMLNode(value: .sequence(items), location: location)
        case .alias:
            throw Diagnostic(location, "unresolved YAML alias")
        }
    }

    private static func diagnostic(for error: YamlError, text: String, path: String) -> Diagnostic {
        func at(_ mark: Mark) -> SourceLocation {
            SourceLocation(path: path, line: mark.line, column: mark.column)
        }
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            if character(in: text, at: mark) == "\t" {
                return Diagnostic(at(mark), "tab character in indentation; YAML indents with spaces only")
            }
            let because = context.map { " (\($0.text) at line \($0.mark.line), column \($0.mark.column))" } ?? ""
            return Diagnostic(at(mark), "invalid YAML: \(problem)\(because)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            let names = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return Diagnostic(at(context.mark), "key \(names) appears more than once in this mapping (first here)")
        case .reader(let problem, _, _, _):
            return Diagnostic(SourceLocation(path: path, line: 1, column: 1), "unreadable YAML: \(problem)")
        default:
            return Diagnostic(SourceLocation(path: path, line: 1, column: 1), "invalid YAML")
        }
    }

    private static func character(in text: String, at mark: Mark) -> Character? {
        var line = 1
        var lineStart = text.unicodeScalars.startIndex
        let scalars = text.unicodeScalars
        var index = scalars.startIndex
        while line < mark.line, index < scalars.endIndex {
            if scalars[index] == "\n" { line += 1; lineStart = scalars.index(after: index) }
            index = scalars.index(after: index)
        }
        guard line == mark.line,
              let position = scalars.index(lineStart, offsetBy: mark.column - 1, limitedBy: scalars.endIndex),
              position < scalars.endIndex
        else { return nil }
        return Character(scalars[position])
    }
}
