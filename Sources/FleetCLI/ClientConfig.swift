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

    static func resolve(server flag: String?, context name: String?,
                        environment: [String: String] = ProcessInfo.processInfo.environment) throws -> ClientSettings {
        let path = ClientConfigFile.path(environment: environment)
        let file = try ClientConfigFile.load(path: path)
        var explicit: ClientConfigFile.Context?
        var current: ClientConfigFile.Context?
        if let name {
            guard let file else { throw ValidationError("--context \(name): there is no \(path) to read contexts from") }
            guard let context = file.contexts[name] else {
                let known = file.contexts.keys.sorted()
                throw ValidationError("--context \(name): \(path) has no such context"
                                      + (known.isEmpty ? "" : " (it has \(known.joined(separator: ", ")))"))
            }
            explicit = context
        } else if let file, let name = file.currentContext {
            guard let context = file.contexts[name] else {
                throw ValidationError("\(path): current-context '\(name)' is not one of its contexts")
            }
            current = context
        }
        let environmentServer = environment["FLOTILLA_SERVER"].flatMap { $0.isEmpty ? nil : $0 }
        let environmentToken = environment["FLOTILLA_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        let server = flag ?? explicit?.server ?? environmentServer ?? current?.server ?? defaultServer
        let token = try explicit?.token(home: environment["HOME"]) ?? environmentToken ?? current?.token(home: environment["HOME"])
        return ClientSettings(server: server, token: token)
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

        func token(home: String?) throws -> String? {
            if let inlineToken { return inlineToken }
            guard let tokenFile else { return nil }
            let path = tokenFile.hasPrefix("~/") ? (home ?? NSHomeDirectory()) + tokenFile.dropFirst() : tokenFile
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ValidationError("\(location): token-file '\(tokenFile)' cannot be read")
            }
            let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !token.isEmpty else { throw ValidationError("\(location): token-file '\(tokenFile)' is empty") }
            return token
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
            throw ValidationError("\(path): not YAML: \(error)")
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

/// How a listing prints: an aligned table by default, like kubectl's `-o`.
enum OutputStyle: String, ExpressibleByArgument, CaseIterable {
    case table, wide, json, yaml
}

/// Colour for a terminal only, and never with NO_COLOR set (https://no-color.org).
enum Terminal {
    static func colours(environment: [String: String] = ProcessInfo.processInfo.environment, isTerminal: Bool = isatty(1) == 1) -> Bool {
        isTerminal && environment["NO_COLOR"].map(\.isEmpty) ?? true && environment["TERM"] != "dumb"
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
        var widths = header.map(\.count)
        for row in rows {
            for (column, cell) in row.enumerated() where column < widths.count { widths[column] = max(widths[column], cell.count) }
        }
        func line(_ cells: [String], row: Int?) -> String {
            cells.enumerated().map { column, cell in
                let padded = column == cells.count - 1 ? cell : cell.padding(toLength: widths[column], withPad: " ", startingAt: 0)
                return row.map { paint($0, column, padded) } ?? padded
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
