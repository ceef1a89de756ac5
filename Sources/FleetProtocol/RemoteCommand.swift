/// Something an operator asked one device for, over the agent's own outbound link: a command
/// to run (`flotilla exec`) or a file to send (`flotilla fetch`). Off unless the project's
/// fleet.yaml turns it on; the device answers with its output (raw bytes, in order, up to
/// `maximumBytes`) and then its result.
public struct RemoteCommand: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable {
        case exec, fetch
    }

    public var id: String
    public var kind: Kind
    /// `exec`: the command's words, run as they are (no shell reads them; `sh -c '…'` is one way
    /// to ask for one). Empty for `fetch`.
    public var command: [String]
    /// `fetch`: the absolute path of the file.
    public var path: String?
    /// `fetch`: the directories the project allows files from. The agent checks the file's real
    /// path (symbolic links followed) against their real paths: a link under `/var/log` to
    /// `/etc/shadow` is refused on the device, where the link is.
    public var allowedPaths: [String]
    /// `exec`: killed with its process group after this long. `fetch`: the reading's limit.
    public var timeoutSeconds: Int
    /// Output past this many bytes is read and dropped, and the result says how much.
    public var maximumBytes: Int

    public init(id: String, kind: Kind, command: [String] = [], path: String? = nil, allowedPaths: [String] = [],
                timeoutSeconds: Int, maximumBytes: Int = RemoteCommand.defaultMaximumBytes) {
        self.id = id
        self.kind = kind
        self.command = command
        self.path = path
        self.allowedPaths = allowedPaths
        self.timeoutSeconds = timeoutSeconds
        self.maximumBytes = maximumBytes
    }

    /// 1 MiB per device.
    public static let defaultMaximumBytes = 1 << 20
    /// The most output one request carries: a device sends more in several.
    public static let pieceBytes = 64 * 1_024
    /// The furthest offset a request may name.
    public static let maximumOffset = 1 << 30
    public static let defaultTimeoutSeconds = 30
    public static let maximumTimeoutSeconds = 3_600
}

/// `GET /agent/v1/commands`: what the device is to run now.
public struct RemoteCommandList: Codable, Sendable, Equatable {
    public var commands: [RemoteCommand]

    public init(commands: [RemoteCommand]) {
        self.commands = commands
    }
}

/// `POST /agent/v1/commands/{id}/result`: how it ended, once all its output was sent.
public struct RemoteCommandResult: Codable, Sendable, Equatable {
    /// The exit status; nil when it timed out, was killed by a signal, or never started.
    public var exitCode: Int?
    public var timedOut: Bool
    /// Output went past the limit: the first `maximumBytes` were sent, `droppedBytes` more were not.
    public var truncated: Bool
    public var droppedBytes: Int64
    /// How many bytes of output were sent: the server ends the command only once it holds them all.
    public var outputBytes: Int
    /// Why it failed, in a sentence: "timed out after 5 s", "not under an allowed path", ….
    public var message: String?

    public init(exitCode: Int?, timedOut: Bool = false, truncated: Bool = false, droppedBytes: Int64 = 0, outputBytes: Int,
                message: String? = nil) {
        self.exitCode = exitCode
        self.timedOut = timedOut
        self.truncated = truncated
        self.droppedBytes = droppedBytes
        self.outputBytes = outputBytes
        self.message = message
    }
}

extension RemoteCommand: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        id = try object.string("id")
        let kindText = try object.string("kind")
        guard let kind = Kind(rawValue: kindText) else { throw WireObject.wrongType(object.child("kind")) }
        self.kind = kind
        command = try object.optionalStrings("command") ?? []
        self.path = try object.optionalString("path")
        allowedPaths = try object.optionalStrings("allowedPaths") ?? []
        timeoutSeconds = try object.int("timeoutSeconds")
        maximumBytes = try object.optionalInt("maximumBytes") ?? Self.defaultMaximumBytes
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("allowedPaths", allowedPaths)
        writer.field("command", command)
        writer.field("id", id)
        writer.field("kind", kind.rawValue)
        writer.field("maximumBytes", maximumBytes)
        writer.field("path", path)
        writer.field("timeoutSeconds", timeoutSeconds)
        writer.endObject()
    }
}

extension RemoteCommandList: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        commands = try object.array("commands") { (value, path) throws(WireDecodingError) in try RemoteCommand(wire: value, path: path) }
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("commands", commands)
        writer.endObject()
    }
}

extension RemoteCommandResult: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        exitCode = try object.optionalInt("exitCode")
        timedOut = try object.optionalBool("timedOut") ?? false
        truncated = try object.optionalBool("truncated") ?? false
        droppedBytes = try object.optionalInt64("droppedBytes") ?? 0
        outputBytes = try object.int("outputBytes")
        message = try object.optionalString("message")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("droppedBytes", droppedBytes)
        writer.field("exitCode", exitCode)
        writer.field("message", message)
        writer.field("outputBytes", outputBytes)
        writer.field("timedOut", timedOut)
        writer.field("truncated", truncated)
        writer.endObject()
    }
}

/// `remote:` in fleet.yaml: whether operators may run commands on the project's devices
/// (`flotilla exec`) and which directories they may fetch files from (`flotilla fetch`).
/// Off unless the commit in force turns it on; every use is audited.
public struct RemoteAccess: Hashable, Sendable, Codable {
    public var exec: Bool
    /// Absolute directories (or files); a file is fetched only from under one of them.
    public var fetchPaths: [String]

    public init(exec: Bool = false, fetchPaths: [String] = []) {
        self.exec = exec
        self.fetchPaths = fetchPaths
    }

    public var isEnabled: Bool { exec || !fetchPaths.isEmpty }

    /// Why `path` may not be fetched, nil when it may: it must be absolute and plain (no `.`,
    /// `..` or empty parts) and under an allowed path at a `/` boundary. (The agent checks again
    /// on the device, with symbolic links followed.)
    public func fetchProblem(_ path: String) -> String? {
        if let problem = Self.pathProblem(path) { return problem }
        guard fetchPaths.contains(where: { Self.path(path, isUnder: $0) }) else {
            return fetchPaths.isEmpty
                ? "fetching files is off for this project; allow directories in fleet.yaml: remote: {fetchPaths: [/var/log]}"
                : "'\(path)' is not under a path fleet.yaml allows (\(fetchPaths.joined(separator: ", ")))"
        }
        return nil
    }

    /// Why `path` is not an absolute, plain path; nil when it is.
    public static func pathProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "'\(path)' is not an absolute path" }
        guard path.utf8.count <= 4_096 else { return "the path is longer than 4096 bytes" }
        guard !path.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7F }) else {
            return "the path holds control characters"
        }
        guard path != "/" else { return nil }
        let parts = path.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        if parts.contains(where: { $0.isEmpty }) { return "'\(path)' has an empty part (// or a trailing /)" }
        if parts.contains(where: { $0 == "." || $0 == ".." }) { return "'\(path)' has a . or .. part" }
        return nil
    }

    /// Whether `path` is `base` or under it at a `/` boundary (`/var/log` holds `/var/log/x`, not `/var/logs`).
    public static func path(_ path: String, isUnder base: String) -> Bool {
        path == base || path.hasPrefix(base.hasSuffix("/") ? base : base + "/")
    }
}

/// The server's answer to a device's output or result.
public struct RemoteCommandAcknowledgement: Codable, Sendable, Equatable {
    /// How many output bytes the server holds: the device sends from there.
    public var outputBytes: Int
    /// The command has ended (or expired): the device sends nothing more for it.
    public var ended: Bool

    public init(outputBytes: Int, ended: Bool) {
        self.outputBytes = outputBytes
        self.ended = ended
    }
}

extension RemoteCommandAcknowledgement: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        outputBytes = try object.int("outputBytes")
        // A count the agent slices its output by: a negative one is no count at all.
        guard outputBytes >= 0 else { throw WireDecodingError(field: object.child("outputBytes"), message: "'outputBytes' must not be negative") }
        ended = try object.bool("ended")
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("ended", ended)
        writer.field("outputBytes", outputBytes)
        writer.endObject()
    }
}
