import ArgumentParser
import Foundation
import Yams

/// The server and operator token a command calls, from (first that has it) its flags, the
/// environment, or a context of the client configuration file — kubeconfig's idea, small:
///
/// ```yaml
/// # ~/.config/flotilla/config.yaml  (or $FLOTILLA_CONFIG, or $XDG_CONFIG_HOME/flotilla/config.yaml)
/// current-context: lab
/// contexts:
///   lab:
///     server: http://127.0.0.1:8080
///     token-file: ~/.config/flotilla/lab.token   # or token: …, kept out of shell history
///   production:
///     server: https://fleet.acme.example
///     token-file: /run/secrets/flotilla-token
/// ```
///
/// `--context NAME` picks a context for one command; what it names wins over the environment.
/// Without it, `FLOTILLA_SERVER` and `FLOTILLA_TOKEN` win over the current context.
struct ClientSettings: Equatable {
    var server: String
    var token: String?

    static let defaultServer = "http://127.0.0.1:8080"

    /// Server and token come as a pair, so a token never goes to a server it was not given for:
    /// a context's token only to that context's server, `FLOTILLA_TOKEN` only with
    /// `FLOTILLA_SERVER`, `--server` or the default.
    static func resolve(server flag: String?, context name: String?,
                        environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ClientSettings {
        let path = ClientConfigFile.path(environment: environment)
        let home = environment["HOME"]
        let environmentServer = environment["FLOTILLA_SERVER"].flatMap { $0.isEmpty ? nil : $0 }
        let environmentToken = try environment["FLOTILLA_TOKEN"].flatMap { $0.isEmpty ? nil : try checkedToken($0, from: "FLOTILLA_TOKEN") }
        if let name {
            guard let file = try ClientConfigFile.load(path: path) else {
                throw ValidationError("--context \(name): there is no \(path) to read contexts from")
            }
            guard let context = file.contexts[name] else {
                let known = file.contexts.keys.sorted()
                throw ValidationError("--context \(name): \(path) has no such context"
                                      + (known.isEmpty ? "" : " (it has \(known.joined(separator: ", ")))"))
            }
            return try context.settings(name: name, flag: flag, home: home)
        }
        if environmentServer != nil || environmentToken != nil || flag != nil {
            // The environment or the flag chose the server; a context's token does not follow it there.
            if environmentToken == nil, let file = try ClientConfigFile.load(path: path), let current = file.currentContext,
               let context = file.contexts[current], let server = flag ?? environmentServer, context.server == server {
                return try context.settings(name: current, flag: flag, home: home)
            }
            return ClientSettings(server: flag ?? environmentServer ?? defaultServer, token: environmentToken)
        }
        if let file = try ClientConfigFile.load(path: path), let current = file.currentContext {
            guard let context = file.contexts[current] else {
                throw ValidationError("\(path): current-context '\(current)' is not one of its contexts")
            }
            return try context.settings(name: current, flag: nil, home: home)
        }
        return ClientSettings(server: defaultServer, token: nil)
    }

    /// A token as given, less surrounding whitespace (a file's or a pasted CRLF); anything else
    /// that a header cannot carry is refused without printing it.
    static func checkedToken(_ text: String, from source: String) throws -> String {
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty, token.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else {
            throw ValidationError("\(source): the token holds spaces, control or non-ASCII characters; a token is printable ASCII")
        }
        return token
    }
}

/// The client configuration file: contexts, each a server and where its token is.
struct ClientConfigFile: Equatable {
    struct Context: Equatable {
        var server: String?
        var inlineToken: String?
        var tokenFile: String?
        /// Where the context was written, for errors about it.
        var location: String

        /// This context's server with its token; with `--server` elsewhere, no token.
        func settings(name: String, flag: String?, home: String?) throws -> ClientSettings {
            guard let server = server ?? flag else {
                throw ValidationError("\(location): context '\(name)' has no server")
            }
            if let flag, let own = self.server, flag != own {
                throw ValidationError("--server \(flag): context '\(name)' is for \(own); its token goes only there "
                                      + "(set FLOTILLA_TOKEN for another server)")
            }
            return ClientSettings(server: server, token: try token(home: home))
        }

        func token(home: String?) throws -> String? {
            if let inlineToken { return try ClientSettings.checkedToken(inlineToken, from: "\(location): token") }
            guard let tokenFile else { return nil }
            let path = tokenFile.hasPrefix("~/") ? (home ?? NSHomeDirectory()) + tokenFile.dropFirst() : tokenFile
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("\(location): token-file '\(tokenFile)' cannot be read")
            }
            guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ValidationError("\(location): token-file '\(tokenFile)' is empty")
            }
            return try ClientSettings.checkedToken(text, from: "\(location): token-file '\(tokenFile)'")
        }
    }

    var currentContext: String?
    var contexts: [String: Context]

    static func path(environment: [String: String]) -> String {
        if let path = environment["FLOTILLA_CONFIG"], !path.isEmpty { return path }
        if let base = environment["XDG_CONFIG_HOME"], !base.isEmpty { return base + "/flotilla/config.yaml" }
        return (environment["HOME"] ?? NSHomeDirectory()) + "/.config/flotilla/config.yaml"
    }

    /// The file at `path`, nil when there is none; a file that is there but wrong is an error
    /// naming its line and column.
    static func load(path: String) throws -> ClientConfigFile? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("\(path): cannot be read")
        }
        return try parse(text, path: path)
    }

    static func parse(_ text: String, path: String) throws -> ClientConfigFile {
        func at(_ node: Node?) -> String {
            guard let mark = node?.mark else { return path }
            return "\(path):\(mark.line):\(mark.column)"
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw ValidationError(yamlProblem(error, path: path))
        }
        guard let root else { return ClientConfigFile(currentContext: nil, contexts: [:]) }
        guard let mapping = root.mapping else { throw ValidationError("\(at(root)): expected a mapping (current-context, contexts)") }
        var file = ClientConfigFile(currentContext: nil, contexts: [:])
        for (key, value) in mapping {
            switch key.string {
            case "current-context":
                guard let name = value.scalar?.string, !name.isEmpty else { throw ValidationError("\(at(value)): current-context is a context's name") }
                file.currentContext = name
            case "contexts":
                guard let contexts = value.mapping else { throw ValidationError("\(at(value)): contexts is a mapping of names to contexts") }
                for (name, body) in contexts {
                    guard let name = name.string, !name.isEmpty else { throw ValidationError("\(at(body)): a context needs a name") }
                    guard let fields = body.mapping else { throw ValidationError("\(at(body)): context '\(name)' is a mapping (server, token-file)") }
                    var context = Context(location: "\(at(body)) (context \(name))")
                    for (field, setting) in fields {
                        guard let text = setting.scalar?.string else {
                            throw ValidationError("\(at(setting)): '\(field.string ?? "?")' of context '\(name)' must be text")
                        }
                        switch field.string {
                        case "server":
                            guard text.hasPrefix("http://") || text.hasPrefix("https://") else {
                                throw ValidationError("\(at(setting)): server of context '\(name)' must be an http(s) URL, not '\(text)'")
                            }
                            context.server = text
                        case "token": context.inlineToken = text
                        case "token-file": context.tokenFile = text
                        default:
                            throw ValidationError("\(at(field)): unknown key '\(field.string ?? "?")' in context '\(name)' (server, token, token-file)")
                        }
                    }
                    if context.inlineToken != nil, context.tokenFile != nil {
                        throw ValidationError("\(at(body)): context '\(name)' has both token and token-file; keep one")
                    }
                    file.contexts[name] = context
                }
            default:
                throw ValidationError("\(at(key)): unknown key '\(key.string ?? "?")' (current-context, contexts)")
            }
        }
        return file
    }
}

/// A YAML error as a place and a problem, never with the text around it: the file holds tokens.
func yamlProblem(_ error: YamlError, path: String) -> String {
    switch error {
    case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
        return "\(path):\(mark.line):\(mark.column): not valid YAML: \(problem)"
    case .duplicatedKeysInMapping(let duplicates, let context):
        return "\(path):\(context.mark.line):\(context.mark.column): a key is given twice: \(duplicates.sorted().joined(separator: ", "))"
    case .reader(let problem, _, _, _):
        return "\(path): not readable as YAML: \(problem)"
    default:
        return "\(path): not valid YAML"
    }
}

/// `--watch` for listings: the text again whenever it changes (every 2 s), until interrupted.
enum Listing {
    static func show(watch: Bool, _ render: () async throws -> String) async throws {
        var last: String?
        repeat {
            let text = try await render()
            if text != last {
                print(text)
                last = text
            }
            if watch { try await Task.sleep(for: .seconds(2)) }
        } while watch
    }
}

/// How a listing prints: an aligned table by default, like kubectl's `-o`.
enum OutputStyle: String, ExpressibleByArgument, CaseIterable {
    case table, wide, json, yaml
}

/// Colour for a terminal only, and never with NO_COLOR set (https://no-color.org).
enum Terminal {
    static func colours(environment: [String: String] = ProcessInfo.processInfo.environment, isTerminal: Bool = isatty(1) == 1) -> Bool {
        isTerminal && environment["NO_COLOR"].map(\.isEmpty) ?? true && environment["TERM"] != "dumb"
    }

    /// `text` with control characters (a device's name could hold an escape sequence meant for
    /// the operator's terminal) shown as `\u{…}` instead of sent to it.
    static func printable(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: isControl) else { return text }
        var shown = ""
        for scalar in text.unicodeScalars {
            if isControl(scalar) { shown += "\\u{\(String(scalar.value, radix: 16))}" } else { shown.unicodeScalars.append(scalar) }
        }
        return shown
    }

    private static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        // C0 and C1 controls (ESC among them), and the bidirectional overrides that reorder a line.
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || (0x202A...0x202E).contains(scalar.value)
            || (0x2066...0x2069).contains(scalar.value)
    }

    static func paint(_ text: String, _ code: String, when colours: Bool) -> String {
        colours ? "\u{1B}[\(code)m\(text)\u{1B}[0m" : text
    }
}

/// Rows in columns as wide as their widest cell, three spaces apart, headers in capitals.
struct TextTable {
    var header: [String]
    var rows: [[String]] = []

    /// `paint` may colour a cell (row, column, text) after it is padded, so colour codes never
    /// count towards a column's width.
    func render(paint: (Int, Int, String) -> String = { _, _, text in text }) -> String {
        let rows = rows.map { $0.map(Terminal.printable) }
        var widths = header.map(\.count)
        for row in rows {
            for (column, cell) in row.enumerated() {
                if column < widths.count { widths[column] = max(widths[column], cell.count) } else { widths.append(cell.count) }
            }
        }
        func line(_ cells: [String], row: Int?) -> String {
            cells.enumerated().map { index, cell in
                let padded = index == cells.count - 1 ? cell : cell.column(widths[index])
                return row.map { paint($0, index, padded) } ?? padded
            }.joined(separator: "   ")
        }
        return ([line(header, row: nil)] + rows.enumerated().map { line($1, row: $0) }).joined(separator: "\n")
    }
}

/// `-o json` and `-o yaml` of an API answer's typed value: keys sorted, dates in ISO 8601.
enum Rendered {
    static func json<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    static func yaml<T: Encodable>(_ value: T) throws -> String {
        let encoder = YAMLEncoder()
        encoder.options.sortKeys = true
        return try encoder.encode(value).trimmingCharacters(in: .newlines)
    }

    /// When `date` was, as a person reads it in a table: 12s, 5m, 3h, 2d ago.
    static func age(_ date: Date?, now: Date = Date()) -> String {
        guard let date else { return "never" }
        let seconds = max(0, Int(now.timeIntervalSince(date)))
        switch seconds {
        case ..<60: return "\(seconds)s"
        case ..<3_600: return "\(seconds / 60)m"
        case ..<86_400: return "\(seconds / 3_600)h"
        default: return "\(seconds / 86_400)d"
        }
    }
}
