public import FleetCore
import FleetProtocol

/// Where the forge token may be sent. fleet.yaml is edited by anyone with write access to the
/// repository, so it cannot choose the token's destination: its `status.apiURL` is honoured only
/// on the forge host the operator configured (`--forge-api-url`, or the public GitHub and GitLab),
/// and the token travels over https unless the operator allowed plain http for a local forge.
public enum ForgeEndpoint {
    public struct Resolution: Sendable, Equatable {
        /// The API root to post to; nil when statuses cannot be posted safely.
        public var root: String?
        /// Why the repository's setting was not followed, or why nothing is posted: for the log.
        public var warning: String?
    }

    /// The forge's public API root, where it has one.
    static func publicRoot(_ forge: StatusSettings.Forge) -> String? {
        switch forge {
        case .github: "https://api.github.com"
        case .gitlab: "https://gitlab.com/api/v4"
        case .gitea, .none: nil
        }
    }

    /// - Parameters:
    ///   - operatorURL: `--forge-api-url`, from the server's configuration.
    ///   - repositoryURL: fleet.yaml's `status.apiURL`.
    public static func resolve(forge: StatusSettings.Forge, operatorURL: String?, repositoryURL: String?,
                               allowPlainHTTP: Bool) -> Resolution {
        func trimmed(_ url: String) -> String { url.hasSuffix("/") ? String(url.dropLast()) : url }
        guard forge != .none else { return Resolution(root: nil, warning: nil) }
        guard let configured = (operatorURL ?? publicRoot(forge)).map(trimmed) else {
            return Resolution(root: nil, warning: "\(forge.rawValue) has no public API: the server's operator names it with "
                              + "--forge-api-url (fleet.yaml cannot choose where the forge token goes); no statuses are posted")
        }
        guard case .success(let origin) = WebURL.parse(configured) else {
            return Resolution(root: nil, warning: "the configured forge API URL is not an http(s) URL; no statuses are posted")
        }
        var root = configured
        var warning: String?
        if let wanted = repositoryURL.map(trimmed), wanted != configured {
            if case .success(let url) = WebURL.parse(wanted), url.scheme == origin.scheme, url.host == origin.host, url.port == origin.port {
                root = wanted
            } else {
                warning = "fleet.yaml status.apiURL '\(DisplayText.safe(wanted, limit: 120))' is not on the configured forge host "
                    + "\(origin.host); statuses go to \(configured)"
            }
        }
        guard origin.scheme == "https" || allowPlainHTTP else {
            return Resolution(root: nil, warning: "the forge token is not sent over plain http (\(configured)); "
                              + "--forge-allow-http allows it for a forge on a trusted network")
        }
        return Resolution(root: root, warning: warning)
    }
}
