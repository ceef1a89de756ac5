public import FleetStore
import FleetProtocol
import Foundation
import HTTPTypes
import Hummingbird

/// What the server needs of a controller running beside it: a way to ask for a poll now, and its
/// last status. The server knows nothing of git; `flotilla serve --repo` wires one in.
public protocol ControllerHandle: Sendable {
    func requestPoll() async
    /// The last status report as JSON, nil before the first reconcile.
    func statusJSON() async -> [UInt8]?
    /// Holds (or releases) new waves, heals and rollbacks of `app`; what runs, runs on.
    func setSuspended(_ suspended: Bool, app: String) async throws
    /// The branch it reconciles; a push webhook for another ref is acknowledged and ignored.
    var watchedBranch: String { get }
    /// Its reconcile passes so far, for `/metrics`.
    func metrics() async -> ControllerMetrics
    /// A device's execution reached a final state: the rollout it belongs to may move on.
    func executionEnded() async
}

/// How much work the controller's reconcile passes are.
public struct ControllerMetrics: Sendable, Equatable {
    public var passes = 0
    public var passSeconds = 0.0
    public var lastPassSeconds = 0.0

    public init() {}

    /// The Prometheus text exposition of these numbers.
    public var exposition: String {
        """
        # HELP flotilla_controller_passes_total Reconcile passes of the fleet repository's desired state.
        # TYPE flotilla_controller_passes_total counter
        flotilla_controller_passes_total \(passes)
        # HELP flotilla_controller_pass_seconds_total Time spent in reconcile passes.
        # TYPE flotilla_controller_pass_seconds_total counter
        flotilla_controller_pass_seconds_total \(passSeconds)
        # HELP flotilla_controller_last_pass_seconds How long the last reconcile pass took.
        # TYPE flotilla_controller_last_pass_seconds gauge
        flotilla_controller_last_pass_seconds \(lastPassSeconds)

        """
    }
}

/// Push webhooks from GitHub, GitLab and Gitea/Forgejo at `/hooks/git`, verified before anything
/// is fetched; `POST /api/v1/reconcile` and `GET /api/v1/status` for operators.
struct ControllerRoutes: Sendable {
    let controller: (any ControllerHandle)?
    let hookSecret: String?
    let store: any FleetStore

    func addRoutes(to router: Router<BasicRequestContext>) {
        router.post("hooks/git") { request, _ in try await hook(request) }
        let api = router.group("api/v1")
        api.post("reconcile") { request, _ in
            _ = try await OperatorAuth.authenticate(request, store: store)
            guard let controller else { throw APIError.notFound("no controller runs here (start flotilla serve with --repo)") }
            await controller.requestPoll()
            return try JSONBody.response(["reconcile": "requested"], status: .accepted)
        }
        for (verb, suspended) in [("suspend", true), ("resume", false)] {
            api.post("apps/:app/\(verb)") { request, context in
                let token = try await OperatorAuth.authenticate(request, store: store)
                guard let controller else { throw APIError.notFound("no controller runs here (start flotilla serve with --repo)") }
                let app = try context.parameters.require("app")
                try Validate.text(app, field: "app", maximum: 63)
                try await controller.setSuspended(suspended, app: app)
                try await store.appendAudit(AuditRecord(at: Date(), project: token.project, actor: "operator:\(token.id)",
                                                        action: "app.\(verb)", subject: app, detail: ""))
                return try JSONBody.response(["app": app, "state": suspended ? "suspended" : "resumed"])
            }
        }
        api.get("status") { request, _ in
            _ = try await OperatorAuth.authenticate(request, store: store)
            guard let controller else { throw APIError.notFound("no controller runs here (start flotilla serve with --repo)") }
            guard let json = await controller.statusJSON() else {
                throw APIError(.serviceUnavailable, "not_reconciled", "the controller has not reconciled a commit yet")
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(byteBuffer: ByteBuffer(bytes: json)))
        }
    }

    /// Which forge sent it decides how it is signed: GitHub `X-Hub-Signature-256: sha256=<hmac>`,
    /// Gitea and Forgejo `X-Gitea-Signature` / `X-Forgejo-Signature: <hmac>` (HMAC-SHA256 of the
    /// body under the secret), GitLab `X-Gitlab-Token: <secret>`.
    private func hook(_ request: Request) async throws -> Response {
        guard let controller, let hookSecret, !hookSecret.isEmpty else {
            throw APIError.notFound("webhooks are not enabled (flotilla serve --repo … --webhook-secret-file …)")
        }
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: 5 << 20)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "a push event is limited to 5 MiB")
        }
        let body = Array(buffer.readableBytesView)
        let expected = SHA256.hmacHex(key: Array(hookSecret.utf8), message: body)
        let header = { (name: String) in HTTPField.Name(name).flatMap { request.headers[$0] } }
        let verified: Bool
        if let signature = header("X-Hub-Signature-256") {
            verified = SHA256.constantTimeEquals(signature, "sha256=" + expected)
        } else if let signature = header("X-Gitea-Signature") ?? header("X-Forgejo-Signature") {
            verified = SHA256.constantTimeEquals(signature, expected)
        } else if let token = header("X-Gitlab-Token") {
            verified = SHA256.constantTimeEquals(token, hookSecret)
        } else {
            throw APIError.unauthorized("a signed push event is required (X-Hub-Signature-256, X-Gitea-Signature or X-Gitlab-Token)")
        }
        guard verified else { throw APIError.unauthorized("the webhook signature does not match") }
        let event = header("X-GitHub-Event") ?? header("X-Gitea-Event") ?? header("X-Forgejo-Event") ?? header("X-Gitlab-Event")
        switch PushEvent.classify(event: event, body: body, branch: controller.watchedBranch) {
        case .ping:
            return try JSONBody.response(["pong": "verified"])
        case .ignored(let reason):
            return try JSONBody.response(["reconcile": "ignored", "reason": reason], status: .accepted)
        case .poll:
            await controller.requestPoll()
            return try JSONBody.response(["reconcile": "requested"], status: .accepted)
        }
    }
}
