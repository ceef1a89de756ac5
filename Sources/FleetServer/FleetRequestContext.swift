public import Hummingbird
import FleetStore
import Foundation

/// The request context of every route: who the request was authenticated as, set once by the
/// middleware of its route group, so no handler can forget to authenticate or do it differently.
public struct FleetRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// Set by `OperatorAuthMiddleware` on every `/api/v1` route that needs an operator.
    var authenticatedOperator: AccessTokenRecord?

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    /// The operator token the request was authenticated with. Routes of the operator group
    /// always have one; elsewhere asking for it is a programming error answered 401.
    func operatorToken() throws -> AccessTokenRecord {
        guard let authenticatedOperator else { throw APIError.unauthorized("an operator token is required (Authorization: Bearer …)") }
        return authenticatedOperator
    }
}

/// Authenticates every request of the operator API before its handler runs: an operator token,
/// of this server's store, not revoked or expired, nor made by a revoked token.
struct OperatorAuthMiddleware: RouterMiddleware {
    typealias Context = FleetRequestContext
    let store: any FleetStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        let token = try await OperatorAuth.authenticate(request, store: store)
        try OperatorAccessRules.check(token, method: request.method.rawValue, path: request.uri.path)
        context.authenticatedOperator = token
        return try await next(request, context)
    }
}
