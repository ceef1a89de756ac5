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
        // Remote commands run as root on devices, and what they bring back may be any file there.
        if let first = segments.first, ["exec", "fetch", "remote"].contains(first) { return .admin }
        if method == "GET" || method == "HEAD" { return .read }
        switch (method, segments.count) {
        case ("POST", 1) where segments == ["deployments"] || segments == ["reconcile"]:
            return .deploy
        case ("POST", 3) where segments[0] == "deployments" && segments[2] == "abort":
            return .deploy
        case ("POST", 3) where segments[0] == "apps" && ["suspend", "resume"].contains(segments[2]):
            return .deploy
        case ("POST", 5) where segments[0] == "apps" && segments[2] == "targets" && segments[4] == "approve":
            return .deploy
        // The console's forms: the same actions, and signing out (anyone signed in).
        case ("POST", 1) where segments == ["sign-out"]:
            return .read
        case ("POST", 4) where segments[0] == "rollouts" && ["abort", "approve"].contains(segments[3]):
            return .deploy
        default:
            return .admin
        }
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
