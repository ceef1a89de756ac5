/// The files of a fleet repository, handed in as bytes, so that a directory on disk and a
/// git tree read without checkout feed the same loader.
public struct FleetTree: Sendable {
    /// What is at one path.
    public enum Content: Sendable {
        case file([UInt8])
        /// A symbolic link; the loader does not follow links.
        case symlink(target: String)
        /// A file over `maximumFileSize`, whose bytes were not read.
        case tooLarge(size: Int)
        /// A submodule (a gitlink) where a fleet file is expected; the loader does not follow it.
        case submodule(commit: String)
    }

    /// Files larger than this are refused rather than read.
    public static let maximumFileSize = 1 << 20
    /// At most this many fleet files, and this many bytes of them in all, are read: a git tree
    /// can name one blob a million times in a few kilobytes.
    public static let maximumFiles = 10_000
    public static let maximumTotalBytes = 64 << 20
    /// Readers visit at most this many entries (folders and files the loader skips included).
    public static let maximumEntriesVisited = 100_000

    /// Why the reader stopped, at which path, when the tree was over a limit: what was read is
    /// not the whole repository, and the loader refuses it.
    public private(set) var overflow: (path: String, reason: String)?
    /// Bytes of the files read.
    public private(set) var totalBytes = 0

    /// The folders whose YAML files hold each kind of document.
    public static let folders: [(folder: String, kind: DocumentKind)] = [
        ("groups", .group), ("devices", .devices), ("flows", .updateFlow), ("apps", .app), ("alerts", .alertRule),
    ]

    /// Entries by path relative to the root, with `/` separators.
    public private(set) var entries: [String: Content] = [:]

    public init() {}

    public mutating func add(_ path: String, _ content: Content) {
        let size = switch content {
        case .file(let bytes): bytes.count
        case .symlink(let target): target.utf8.count
        case .tooLarge, .submodule: 0
        }
        guard admits(size: size, at: path) else { return }
        totalBytes += size
        entries[path] = content
    }

    /// Adds a file's bytes, or a `tooLarge` marker when they exceed the limit.
    public mutating func addFile(_ path: String, bytes: [UInt8]) {
        add(path, bytes.count > Self.maximumFileSize ? .tooLarge(size: bytes.count) : .file(bytes))
    }

    /// Whether a file of `size` bytes at `path` may be added. When it may not, the tree is over
    /// its limits from then on (`overflow`) and takes nothing more: a reader asks before it reads
    /// the bytes, and stops when told no.
    public mutating func admits(size: Int, at path: String) -> Bool {
        guard overflow == nil else { return false }
        if entries[path] == nil, entries.count >= Self.maximumFiles {
            overflow = (path, "the repository has more than \(Self.maximumFiles) fleet files")
        } else if size <= Self.maximumFileSize, totalBytes + size > Self.maximumTotalBytes {
            overflow = (path, "the repository's fleet files are more than \(Self.maximumTotalBytes >> 20) MiB in all")
        }
        return overflow == nil
    }

    /// Stops the tree at `path` for a reason of the reader's (too many entries visited).
    public mutating func stop(at path: String, _ reason: String) {
        if overflow == nil { overflow = (path, reason) }
    }

    /// Whether the loader reads this path: `fleet.yaml` at the root, and `.yaml`/`.yml` files
    /// anywhere under groups/, devices/, flows/, apps/ and alerts/. Readers use it to skip the rest.
    public static func isFleetFile(_ path: String) -> Bool {
        expectedKind(for: path) != nil
    }

    /// Names starting with '.' (editor backups, `.shadow.yaml`) are never read, at any depth: a
    /// checkout read by `flotilla validate` and a git tree read by the controller load the same files.
    public static func isHidden(_ name: some StringProtocol) -> Bool { name.hasPrefix(".") }

    /// The kind of document a path must hold, or nil when the loader ignores the path.
    public static func expectedKind(for path: String) -> DocumentKind? {
        if path == "fleet.yaml" || path == "fleet.yml" { return .fleet }
        guard !path.split(separator: "/").contains(where: isHidden) else { return nil }
        guard path.hasSuffix(".yaml") || path.hasSuffix(".yml") else { return nil }
        guard let slash = path.firstIndex(of: "/") else { return nil }
        let top = path[..<slash]
        return folders.first { $0.folder == top }?.kind
    }
}

/// The kinds of YAML document in a fleet repository.
public enum DocumentKind: String, Sendable, CaseIterable {
    case fleet = "Fleet"
    case group = "Group"
    case devices = "Devices"
    case updateFlow = "UpdateFlow"
    case app = "App"
    case alertRule = "AlertRule"

    /// Where documents of this kind live.
    public var home: String {
        switch self {
        case .fleet: "fleet.yaml"
        case .group: "groups/"
        case .devices: "devices/"
        case .updateFlow: "flows/"
        case .app: "apps/"
        case .alertRule: "alerts/"
        }
    }
}
