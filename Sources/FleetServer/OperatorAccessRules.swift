import FleetStore
import HTTPTypes

/// What each operator route needs of the token (or console session) that calls it. A decision
/// on the method and path alone, made once for every route by `OperatorAuthMiddleware` before
/// any handler runs, so no handler can forget it; a route not named here that changes anything
/// needs `admin`, so a route added later is closed until it is given a lower level.
enum OperatorAccessRules {
    /// The level `method` on `path` (`/api/v1/…`, or a console form's path) needs.
    static func required(method: String, path: String) -> OperatorAccess {
        var segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        if segments.starts(with: ["api", "v1"]) { segments.removeFirst(2) }
        if method == "GET" {
            // Remote commands' output may be any file of a device; a route not named is closed.
            guard let first = segments.first, readable.contains(first) else { return .admin }
            return .read
        }
        switch (method, segments.count) {
        // Steering the rollouts the repository asks for. (A deployment made through the API
        // runs whatever steps its body names, as root, with any of the project's secrets: admin.)
        case ("POST", 1) where segments == ["reconcile"]:
            return .rollout
        case ("POST", 3) where segments[0] == "deployments" && segments[2] == "abort":
            return .rollout
        case ("POST", 3) where segments[0] == "apps" && ["suspend", "resume"].contains(segments[2]):
            return .rollout
        case ("POST", 5) where segments[0] == "apps" && segments[2] == "targets" && segments[4] == "approve":
            return .rollout
        // The console's forms: the same actions, and signing out (anyone signed in).
        case ("POST", 1) where segments == ["sign-out"]:
            return .read
        case ("POST", 4) where segments[0] == "rollouts" && ["abort", "approve"].contains(segments[3]):
            return .rollout
        default:
            return .admin
        }
    }

    /// What `read` may GET under `/api/v1`. (The console's pages show what these do, to any session.)
    static let readable: Set<String> = ["projects", "devices", "deployments", "tokens", "audit", "alerts", "status", "secrets"]

    /// An audit entry as a token of `access` may read it: a remote command's words (which may
    /// hold a password typed into one) and a fetched path are for those who may run commands.
    static func shown(_ entry: AuditRecord, to access: OperatorAccess) -> AuditRecord {
        guard access < .admin, entry.action.hasPrefix("remote.") else { return entry }
        var shown = entry
        shown.detail = "(shown to admin tokens only)"
        return shown
    }

    /// Refuses a token whose access is below what the route needs, saying what it would take.
    static func check(_ token: AccessTokenRecord, method: String, path: String) throws {
        let needed = required(method: method, path: path)
        guard token.grants < needed else { return }
        throw APIError(.forbidden, "access_denied",
                       "this token's access is '\(token.grants.rawValue)'; \(method) \(path) needs '\(needed.rawValue)' "
                       + "(an operator token made with --access \(needed.rawValue))")
    }
}
