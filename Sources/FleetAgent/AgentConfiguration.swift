import FleetProtocol
import CLibYAML

/// The agent's settings: a YAML file (`/etc/flotilla/agent.yaml` by default), then flags.
public struct AgentConfiguration: Sendable, Equatable {
    public var server: String?
    public var enrollmentToken: String?
    /// The one-time code from `flotilla devices reset-identity`: a replacement board enrolls
    /// with it to take the place of the device it replaces.
    public var claimCode: String?
    public var dataDirectory = "/var/lib/flotilla"
    public var heartbeatIntervalSeconds = 25
    public var name: String?
    /// Defaults to /etc/machine-id.
    public var hardwareID: String?
    public var tags: [String: String] = [:]
    public var mounts: [String] = ["/"]
    public var processes: [SystemMetrics.Watched] = []
    /// A JSON file or a directory of small files whose values go out with each heartbeat.
    public var custom: String?
    /// Directories downloads may be written under.
    public var allowedRoots: [String] = ["/opt", "/var/lib/flotilla"]
    /// Reports kept on disk while the server cannot be reached.
    public var outboxLimit = 1_000
    /// A CA bundle for a server with a private certificate.
    public var caFile: String?
    public var retryDelaySeconds = 1.0
    /// The most bytes one download may bring (none by default), and the bytes every download
    /// leaves free on its destination's file system.
    public var downloadLimitBytes: Int64?
    public var downloadReserveBytes = SystemStepExecutor.defaultDownloadReserveBytes
    /// The update lock file (`flotilla-agent lock`); nil: `update.lock` in the data directory.
    public var updateLockFile: String?
    public var lockPath: String { updateLockFile ?? dataDirectory + "/update.lock" }
    /// Where the device's identity is kept once it has enrolled.
    public var identityPath: String { dataDirectory + "/identity.json" }
    /// The script that puts the previous agent back when a new one does not take; the agent
    /// replaces itself only where it is installed. Nil: the package's, else install-agent.sh's.
    public var selfUpdateWatchdog: String?
    /// Talk to a server over plain HTTP on another machine: whoever is on the path can then
    /// hand this device commands to run as root. Off; a server on this machine needs no leave.
    public var allowPlainHTTP = false
    /// Tags the server would refuse at enrollment, each as `file:line:column: why`.
    public var tagProblems: [String] = []
    public static let watchdogPaths = ["/usr/lib/flotilla/flotilla-agent-watchdog", "/usr/local/lib/flotilla/flotilla-agent-watchdog"]

    public init() {}

    /// The value of `name` in the agent's environment, taken out of it: the steps the agent runs,
    /// and whatever they start, inherit its environment, and a secret handed to the agent
    /// (`FLOTILLA_ENROLLMENT_TOKEN`, `FLOTILLA_CLAIM_CODE`) is for the agent alone.
    public static func takeFromEnvironment(_ name: String) -> String? {
        guard let value = getenv(name) else { return nil }
        let text = String(cString: value)
        // Overwritten first: unsetenv only drops the entry from `environ`, and the bytes of the
        // environment the agent started with stay readable in /proc/PID/environ.
        memset(value, 0, strlen(value))
        unsetenv(name)
        return text
    }

    static let keys = ["server", "enrollmentToken", "claimCode", "dataDirectory", "heartbeatIntervalSeconds", "name", "hardwareID", "tags",
                       "mounts", "processes", "custom", "allowedRoots", "outboxLimit", "caFile", "retryDelaySeconds",
                       "updateLockFile", "selfUpdateWatchdog", "allowPlainHTTP", "downloadLimitBytes", "downloadReserveBytes"]

    /// Why the agent will not talk to `server`, or nil: https://, or plain http:// to this
    /// machine (localhost, 127.x.y.z, [::1]), or plain HTTP set on purpose (`allowPlainHTTP`).
    /// A server without a scheme is refused: libcurl would guess plain HTTP for it.
    public static func plainHTTPProblem(server: String, allowed: Bool) -> String? {
        let lowered = server.lowercased()
        if lowered.hasPrefix("https://") || allowed && lowered.hasPrefix("http://") { return nil }
        guard lowered.hasPrefix("http://") else { return "server \(server) must start with https:// (or http:// for a server on this machine)" }
        var authority = lowered.dropFirst("http://".count).prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        // The host is what follows any user and password: `http://127.0.0.1:x@elsewhere/` goes elsewhere.
        if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
        let host: Substring
        if authority.hasPrefix("[") {
            host = authority.dropFirst().prefix { $0 != "]" }
        } else {
            host = authority.prefix { $0 != ":" }
        }
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        let loopbackV4 = parts.count == 4 && parts[0] == "127" && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber) && Int(part).map { $0 <= 255 } == true
        }
        if host == "localhost" || host == "::1" || loopbackV4 { return nil }
        return "server \(server) is plain HTTP on another machine: anyone on the way could give this device commands to run as root; "
            + "use https://, or set 'allowPlainHTTP: true' in the configuration if the network is yours alone"
    }

    /// Reads a configuration file; errors say `file:line:column: what`.
    public static func load(path: String) throws(AgentError) -> AgentConfiguration {
        guard let bytes = try Files.read(path, limit: 1 << 20) else { throw AgentError("\(path): no such file") }
        return try parse(bytes, file: path)
    }

    public static func parse(_ bytes: [UInt8], file: String) throws(AgentError) -> AgentConfiguration {
        var configuration = AgentConfiguration()
        let root: YAMLNode
        do {
            guard let document = try YAMLNode.parse(bytes) else { return configuration }
            root = document
        } catch {
            throw AgentError("\(file):\(error.line):\(error.column): \(error.message)")
        }
        func fail(_ node: YAMLNode, _ message: String) -> AgentError {
            AgentError("\(file):\(node.line):\(node.column): \(message)")
        }
        guard case .mapping(let entries) = root.value else { throw fail(root, "expected a mapping of settings") }
        for (key, value) in entries {
            func text() throws(AgentError) -> String {
                guard case .scalar(let text) = value.value else { throw fail(value, "'\(key.text)' must be a single value") }
                return text
            }
            func integer(_ range: ClosedRange<Int>) throws(AgentError) -> Int {
                guard let number = Int(try text()), range.contains(number) else {
                    throw fail(value, "'\(key.text)' must be a whole number from \(range.lowerBound) to \(range.upperBound)")
                }
                return number
            }
            func bytes(atLeast least: Int64) throws(AgentError) -> Int64 {
                guard let number = Int64(try text()), number >= least else {
                    throw fail(value, "'\(key.text)' must be a whole number of bytes, at least \(least)")
                }
                return number
            }
            func list() throws(AgentError) -> [YAMLNode] {
                guard case .sequence(let items) = value.value else { throw fail(value, "'\(key.text)' must be a list") }
                return items
            }
            func strings() throws(AgentError) -> [String] {
                var result: [String] = []
                for item in try list() {
                    guard case .scalar(let text) = item.value else { throw fail(item, "'\(key.text)' must be a list of values") }
                    result.append(text)
                }
                return result
            }
            switch key.text {
            case "server": configuration.server = try text()
            case "allowPlainHTTP":
                switch try text() {
                case "true": configuration.allowPlainHTTP = true
                case "false": configuration.allowPlainHTTP = false
                default: throw fail(value, "'allowPlainHTTP' must be true or false")
                }
            case "enrollmentToken": configuration.enrollmentToken = try text()
            case "claimCode": configuration.claimCode = try text()
            case "dataDirectory": configuration.dataDirectory = try text()
            case "heartbeatIntervalSeconds": configuration.heartbeatIntervalSeconds = try integer(1...3_600)
            case "name": configuration.name = try text()
            case "hardwareID": configuration.hardwareID = try text()
            case "custom": configuration.custom = try text()
            case "caFile": configuration.caFile = try text()
            case "updateLockFile": configuration.updateLockFile = try text()
            case "selfUpdateWatchdog": configuration.selfUpdateWatchdog = try text()
            case "outboxLimit": configuration.outboxLimit = try integer(1...1_000_000)
            case "downloadLimitBytes": configuration.downloadLimitBytes = try bytes(atLeast: 1)
            case "downloadReserveBytes": configuration.downloadReserveBytes = try bytes(atLeast: 0)
            case "retryDelaySeconds":
                guard let seconds = Double(try text()), seconds >= 0, seconds <= 300 else {
                    throw fail(value, "'retryDelaySeconds' must be a number of seconds from 0 to 300")
                }
                configuration.retryDelaySeconds = seconds
            case "mounts": configuration.mounts = try strings()
            case "allowedRoots":
                configuration.allowedRoots = try strings()
                for root in configuration.allowedRoots where !root.hasPrefix("/") || root == "/" {
                    throw fail(value, "'allowedRoots' entries must be absolute directories other than /: '\(root)'")
                }
            case "tags":
                guard case .mapping(let pairs) = value.value else { throw fail(value, "'tags' must be a mapping of tag to value") }
                for (tag, tagValue) in pairs {
                    guard case .scalar(let text) = tagValue.value else { throw fail(tagValue, "tag '\(tag.text)' must have a single value") }
                    // The server refuses to enroll a device with a tag no selector could match:
                    // said here, where it is written (a device enrolled before is only warned).
                    if let problem = TagSyntax.keyProblem(tag.text) { configuration.tagProblems.append(fail(tag, problem).description) }
                    if let problem = TagSyntax.valueProblem(text) { configuration.tagProblems.append(fail(tagValue, problem).description) }
                    configuration.tags[tag.text] = text
                }
            case "processes":
                configuration.processes = []
                for item in try list() {
                    switch item.value {
                    case .scalar(let name):
                        configuration.processes.append(.init(name: name))
                    case .mapping(let pairs):
                        var name: String?, pidfile: String?
                        for (field, fieldValue) in pairs {
                            guard case .scalar(let text) = fieldValue.value else { throw fail(fieldValue, "'\(field.text)' must be a single value") }
                            switch field.text {
                            case "name": name = text
                            case "pidfile": pidfile = text
                            default: throw fail(field, "unknown key '\(field.text)' in a process (name, pidfile)")
                            }
                        }
                        guard let name else { throw fail(item, "a process needs a name") }
                        configuration.processes.append(.init(name: name, pidfile: pidfile))
                    case .sequence:
                        throw fail(item, "a process is a name or a mapping with name and pidfile")
                    }
                }
            default:
                throw fail(key, "unknown setting '\(key.text)' (known: \(keys.joined(separator: ", ")))")
            }
        }
        return configuration
    }
}

/// A YAML document as plain nodes with their positions, read with libyaml's event parser.
struct YAMLNode {
    indirect enum Value {
        case scalar(String)
        case sequence([YAMLNode])
        case mapping([(key: YAMLNode, value: YAMLNode)])
    }

    struct Problem: Error {
        var line: Int
        var column: Int
        var message: String
    }

    var value: Value
    var line: Int
    var column: Int

    var text: String {
        if case .scalar(let text) = value { return text }
        return ""
    }

    /// The first document, or nil for an empty file. Anchors and aliases are refused.
    static func parse(_ bytes: [UInt8]) throws(Problem) -> YAMLNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) != 0 else { throw Problem(line: 1, column: 1, message: "cannot start the YAML parser") }
        defer { yaml_parser_delete(&parser) }
        return try bytes.withUnsafeBufferPointer { (buffer) throws(Problem) -> YAMLNode? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var reader = EventReader(parser: &parser)
            return try reader.document()
        }
    }

    private struct EventReader {
        var parser: UnsafeMutablePointer<yaml_parser_t>

        init(parser: UnsafeMutablePointer<yaml_parser_t>) { self.parser = parser }

        mutating func next() throws(Problem) -> yaml_event_t {
            var event = yaml_event_t()
            guard yaml_parser_parse(parser, &event) != 0 else {
                let mark = parser.pointee.problem_mark
                let message = parser.pointee.problem.map { String(cString: $0) } ?? "invalid YAML"
                throw Problem(line: Int(mark.line) + 1, column: Int(mark.column) + 1, message: message)
            }
            return event
        }

        mutating func document() throws(Problem) -> YAMLNode? {
            while true {
                var event = try next()
                defer { yaml_event_delete(&event) }
                switch event.type {
                case YAML_STREAM_START_EVENT, YAML_DOCUMENT_START_EVENT: continue
                case YAML_STREAM_END_EVENT, YAML_DOCUMENT_END_EVENT: return nil
                default: return try node(from: &event)
                }
            }
        }

        /// How deep collections may nest: a configuration needs three levels; a file of thousands
        /// of '[' must end in an error, not in a stack overflow (found by fuzz-agent-config).
        static let maximumDepth = 32

        mutating func node(from event: inout yaml_event_t, depth: Int = 0) throws(Problem) -> YAMLNode {
            let line = Int(event.start_mark.line) + 1, column = Int(event.start_mark.column) + 1
            if depth >= Self.maximumDepth, event.type == YAML_SEQUENCE_START_EVENT || event.type == YAML_MAPPING_START_EVENT {
                throw Problem(line: line, column: column, message: "settings nest deeper than \(Self.maximumDepth) levels")
            }
            switch event.type {
            case YAML_SCALAR_EVENT:
                let scalar = event.data.scalar
                let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
                return YAMLNode(value: .scalar(text), line: line, column: column)
            case YAML_SEQUENCE_START_EVENT:
                var items: [YAMLNode] = []
                while true {
                    var inner = try next()
                    defer { yaml_event_delete(&inner) }
                    if inner.type == YAML_SEQUENCE_END_EVENT { break }
                    items.append(try node(from: &inner, depth: depth + 1))
                }
                return YAMLNode(value: .sequence(items), line: line, column: column)
            case YAML_MAPPING_START_EVENT:
                var pairs: [(key: YAMLNode, value: YAMLNode)] = []
                while true {
                    var keyEvent = try next()
                    defer { yaml_event_delete(&keyEvent) }
                    if keyEvent.type == YAML_MAPPING_END_EVENT { break }
                    let key = try node(from: &keyEvent, depth: depth + 1)
                    guard case .scalar = key.value else { throw Problem(line: key.line, column: key.column, message: "keys must be plain values") }
                    if pairs.contains(where: { $0.key.text == key.text }) {
                        throw Problem(line: key.line, column: key.column, message: "'\(key.text)' is set twice")
                    }
                    var valueEvent = try next()
                    defer { yaml_event_delete(&valueEvent) }
                    pairs.append((key, try node(from: &valueEvent, depth: depth + 1)))
                }
                return YAMLNode(value: .mapping(pairs), line: line, column: column)
            case YAML_ALIAS_EVENT:
                throw Problem(line: line, column: column, message: "aliases are not supported in the agent's configuration")
            default:
                throw Problem(line: line, column: column, message: "unexpected YAML structure")
            }
        }
    }
}
