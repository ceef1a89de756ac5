public import FleetProtocol

/// `fleet.yaml`: the settings that hold for the whole fleet.
public struct Fleet: Sendable {
    /// The project on the fleet server that these devices belong to.
    public var project: String
    /// Rollout settings for apps that do not set their own.
    public var rolloutDefaults: RolloutPolicy
    /// Maintenance windows for targets whose app and target set none.
    public var windowDefaults: MaintenanceWindows?
    /// Where `download` steps may fetch from. Empty means no downloads are allowed.
    public var artifactSources: [ArtifactSource]
    /// How the controller reports back.
    public var status: StatusSettings
    /// What operators may do on the devices over the agent's link (`remote:`); nothing by default.
    public var remote: RemoteAccess = RemoteAccess()
    /// Where alerts are sent (`alerts:`); nowhere by default.
    public var alertReceivers: AlertReceivers = AlertReceivers()
    public var location: SourceLocation
}

/// An allowed artifact source: a URL prefix such as `https://artifacts.example.com/releases/`.
public struct ArtifactSource: Hashable, Sendable, CustomStringConvertible {
    public var url: WebURL
    public var location: SourceLocation

    /// Whether `candidate` is under this source: same scheme, host and port, and a path that
    /// starts with this one at a segment boundary.
    public func allows(_ candidate: WebURL) -> Bool { url.contains(candidate) }

    public var description: String { url.description }
}

/// Where and how the controller reports status.
public struct StatusSettings: Hashable, Sendable {
    public enum Forge: String, Hashable, Sendable, CaseIterable {
        case none, github, gitlab, gitea
    }

    /// Which forge's commit-status API to post to.
    public var forge: Forge = .none
    /// The repository on the forge: `owner/name` (GitHub, Gitea) or a project id or path (GitLab).
    public var repository: String? = nil
    /// The API base URL, for self-hosted forges.
    public var apiURL: String? = nil
    /// The first part of each status context: `<prefix>/<app>`.
    public var contextPrefix: String = "flotilla"
    /// Whether to write a note on each reconciled commit under `refs/notes/flotilla`.
    public var notes: Bool = true
    /// The branch that holds STATUS.md and status.json.
    public var branch: String = "flotilla/status"

    public init() {}

    /// What `repository` may be: a project id (digits, GitLab), or a path of two or more parts
    /// of letters, digits, '.', '_' and '-', none of them dots only. It goes into the forge's API
    /// paths and web links, so nothing in it may reach past the repository (`..`, `?`, `#`).
    public static let repositoryPattern = #"^(?:[0-9]+|(?!\.+(?:/|$))[A-Za-z0-9._-]+(?:/(?!\.+(?:/|$))[A-Za-z0-9._-]+)+)$"#

    /// Why `repository` is not one `repositoryPattern` allows, or nil.
    public static func repositoryProblem(_ repository: String) -> String? {
        if !repository.isEmpty, repository.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }) { return nil }
        let parts = repository.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2 else { return "expected owner/name (or a GitLab project id or path)" }
        for part in parts {
            guard !part.isEmpty, !part.allSatisfy({ $0 == "." }),
                  part.unicodeScalars.allSatisfy({ ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "._-".unicodeScalars.contains($0) })
            else { return "each part of owner/name is letters, digits, '.', '_' and '-' (not dots only)" }
        }
        return nil
    }
}
