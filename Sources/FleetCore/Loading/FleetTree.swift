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
    }

    /// Files larger than this are refused rather than read.
    public static let maximumFileSize = 1 << 20

    /// The folders whose YAML files hold each kind of document.
    public static let folders: [(folder: String, kind: DocumentKind)] = [
        ("groups", .group), ("devices", .devices), ("flows", .updateFlow), ("apps", .app), ("alerts", .alertRule),
    ]

    /// Entries by path relative to the root, with `/` separators.
    public private(set) var entries: [String: Content] = [:]

    public init() {}

    public mutating func add(_ path: String, _ content: Content) {
        entries[path] = content
    }

    /// Adds a file's bytes, or a `tooLarge` marker when they exceed the limit.
    public mutating func addFile(_ path: String, bytes: [UInt8]) {
        entries[path] = bytes.count > Self.maximumFileSize ? .tooLarge(size: bytes.count) : .file(bytes)
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
