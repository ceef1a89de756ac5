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
}
