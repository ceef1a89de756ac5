import FleetProtocol
public import AsyncHTTPClient
public import FleetCore
import Foundation
import NIOCore
import NIOHTTP1

/// Posts commit statuses to GitHub, GitLab or Gitea/Forgejo, as each documents its API. Posts
/// only when a context's state or description changes; after a 403 or 429 it waits as long as
/// Retry-After says (a minute when it says nothing). The token is sent, never logged.
public actor CommitStatusReporter {
    public enum State: String, Sendable {
        case pending, success, failure
    }

    public struct Settings: Sendable {
        public var forge: StatusSettings.Forge
        /// `owner/name` (GitHub, Gitea) or a project id or path (GitLab).
        public var repository: String
        /// API root; GitHub and GitLab default to their public instances.
        public var apiURL: String?
        public var token: String

        public init(forge: StatusSettings.Forge, repository: String, apiURL: String?, token: String) {
            self.forge = forge
            self.repository = repository
            self.apiURL = apiURL
            self.token = token
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String

        public init(description: String) {
            self.description = description
        }
    }

    private let settings: Settings
    private let client: HTTPClient
    private var posted: [String: String] = [:]
    private var quietUntil: ContinuousClock.Instant?
    public private(set) var requests = 0

    public init(settings: Settings, client: HTTPClient = .shared) {
        self.settings = settings
        self.client = client
    }

    /// The API root for the settings' forge.
    var root: String? {
        let given = settings.apiURL.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        return settings.forge == .none ? nil : given ?? ForgeEndpoint.publicRoot(settings.forge)
    }

    /// Where people read the full report: STATUS.md on the status branch, in the forge's web view.
    /// The web root is the API root without its API path (GitHub's public API lives elsewhere).
    public func reportURL(statusBranch: String) -> String? {
        webPage(github: "blob/\(statusBranch)/STATUS.md", gitlab: "-/blob/\(statusBranch)/STATUS.md",
                gitea: "src/branch/\(statusBranch)/STATUS.md")
    }

    /// The commit's page in the forge's web view; none for a GitLab project named by its id,
    /// whose web pages are named by path.
    public func commitURL(_ commit: String) -> String? {
        if settings.forge == .gitlab, settings.repository.allSatisfy(\.isNumber) { return nil }
        return webPage(github: "commit/\(commit)", gitlab: "-/commit/\(commit)", gitea: "commit/\(commit)")
    }

    /// A page of the repository in the forge's web view, at each forge's own path for it.
    private func webPage(github: String, gitlab: String, gitea: String) -> String? {
        guard let root else { return nil }
        let repository = settings.repository
        switch settings.forge {
        case .github:
            let web = root == "https://api.github.com" ? "https://github.com" : Self.trimming(root, suffix: "/api/v3")
            return "\(web)/\(repository)/\(github)"
        case .gitlab:
            return "\(Self.trimming(root, suffix: "/api/v4"))/\(repository)/\(gitlab)"
        case .gitea:
            return "\(Self.trimming(root, suffix: "/api/v1"))/\(repository)/\(gitea)"
        case .none:
            return nil
        }
    }

    private static func trimming(_ text: String, suffix: String) -> String {
        text.hasSuffix(suffix) ? String(text.dropLast(suffix.count)) : text
    }

    /// Posts `state` for `context` on `commit` unless that exact status was posted already.
    /// Returns whether a request was sent.
    @discardableResult
    public func post(commit: String, context: String, state: State, description: String, targetURL: String? = nil) async throws -> Bool {
        let description = Self.shortened(description)
        let key = commit + " " + context
        let value = state.rawValue + " " + description
        guard posted[key] != value, let root else { return false }
        if let quietUntil, ContinuousClock.now < quietUntil { return false }
        var request = HTTPClientRequest(url: root + path(commit: commit))
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "flotilla")
        var body: [String: String] = ["description": description]
        if let targetURL { body["target_url"] = targetURL }
        switch settings.forge {
        case .github:
            request.headers.add(name: "Authorization", value: "Bearer \(settings.token)")
            request.headers.add(name: "Accept", value: "application/vnd.github+json")
            request.headers.add(name: "X-GitHub-Api-Version", value: "2022-11-28")
            body["state"] = state.rawValue
            body["context"] = context
        case .gitlab:
            request.headers.add(name: "PRIVATE-TOKEN", value: settings.token)
            // GitLab says "failed" and names the context "name".
            body["state"] = state == .failure ? "failed" : state.rawValue
            body["name"] = context
        case .gitea:
            request.headers.add(name: "Authorization", value: "token \(settings.token)")
            body["state"] = state.rawValue
            body["context"] = context
        case .none:
            return false
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        request.body = .bytes(ByteBuffer(bytes: try encoder.encode(body)))
        requests += 1
        let response = try await client.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 64 * 1024))
        switch response.status.code {
        case 200..<300:
            posted[key] = value
            return true
        case 403, 429:
            let wait = response.headers.first(name: "Retry-After").flatMap(Int.init) ?? 60
            quietUntil = .now + .seconds(wait)
            throw Failure(description: "\(settings.forge.rawValue) answered \(response.status.code); waiting \(wait) s before posting again")
        default:
            // A forge (or whatever answers in its place) may echo the request: the token never
            // reaches the log, and the reply is printed as text, never obeyed by a terminal.
            let reply = DisplayText.safe(text.replacingOccurrences(of: settings.token, with: "[token]"), limit: 200)
            throw Failure(description: "\(settings.forge.rawValue) answered \(response.status.code): \(reply)")
        }
    }

    private func path(commit: String) -> String {
        switch settings.forge {
        case .gitlab:
            let project = settings.repository.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~")))
                ?? settings.repository
            return "/projects/\(project)/statuses/\(commit)"
        default:
            return "/repos/\(settings.repository)/statuses/\(commit)"
        }
    }

    /// Forges cut descriptions at 140 characters; ours end with an ellipsis instead.
    static func shortened(_ text: String) -> String {
        text.count <= 140 ? text : String(text.prefix(139)) + "…"
    }
}
