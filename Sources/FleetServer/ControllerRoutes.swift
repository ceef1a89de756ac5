import FleetStore
import Crypto
import FleetProtocol
import Foundation
import HTTPTypes
import Hummingbird

/// Push webhooks from GitHub, GitLab and Gitea/Forgejo at `/hooks/git/<project>` (or
/// `/hooks/git` where one project is reconciled), verified with that project's secret before
/// anything is fetched; `POST /api/v1/reconcile` and `GET /api/v1/status` for operators.
struct ControllerRoutes: Sendable {
    let controllers: ControllerSet
    let store: any FleetStore
    /// Among replicas: this one (its name goes on the status, with the leader's).
    var replica: (any ReplicaRole)? = nil

    func addRoutes(to router: Router<FleetRequestContext>, operators api: RouterGroup<FleetRequestContext>) {
        router.post("hooks/git") { request, _ in
            guard controllers.entries.count <= 1 else {
                throw APIError.notFound("this server reconciles several projects: send each project's push webhooks to /hooks/git/<project>")
            }
            return try await hook(request, to: controllers.entries.first)
        }
        router.post("hooks/git/:project") { request, context in
            let project = try PathParameter.require(context, "project")
            try Validate.text(project, field: "project", maximum: 63)
            // A project that does not exist, or has no webhook secret, is checked against a key
            // nobody has: the caller hears 401 as for a wrong signature, and cannot tell which
            // projects run here.
            guard let entry = await controllers.entry(for: project), let secret = entry.hookSecret, !secret.isEmpty else {
                return try await hook(request, to: ControllerSet.Entry(Self.nobody, hookSecret: Self.unguessable))
            }
            return try await hook(request, to: entry)
        }
        api.post("reconcile") { _, context in
            let (controller, _) = try await scoped(context)
            await controller.requestPoll()
            return try JSONBody.response(["reconcile": "requested"], status: .accepted)
        }
        for (verb, suspended) in [("suspend", true), ("resume", false)] {
            api.post("apps/:app/\(verb)") { _, context in
                let (controller, token) = try await scoped(context)
                let app = try PathParameter.require(context, "app")
                try await Self.setSuspended(suspended, app: app, controller: controller, project: token.project,
                                            actor: "operator:\(token.id)", store: store)
                return try JSONBody.response(["app": app, "state": suspended ? "suspended" : "resumed"])
            }
        }
        api.post("apps/:app/targets/:group/approve") { _, context in
            let (controller, token) = try await scoped(context)
            let app = try PathParameter.require(context, "app"), group = try PathParameter.require(context, "group")
            return try JSONBody.response(try await Self.approve(app: app, group: group, controller: controller, project: token.project,
                                                                actor: "operator:\(token.id)", store: store))
        }
        api.get("status") { _, context in
            let (controller, _) = try await scoped(context)
            guard let json = await controller.statusJSON() else {
                throw APIError(.serviceUnavailable, "not_reconciled", "the controller has not reconciled a commit yet")
            }
            var headers: HTTPFields = [.contentType: "application/json"]
            if let replica {
                headers[.flotillaReplica] = replica.holder
                if let leader = await controller.leader() { headers[.flotillaLeader] = leader }
            }
            return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: json)))
        }
    }

    /// Suspends or resumes `app`, audited as `actor`'s; for the API and the console alike.
    static func setSuspended(_ suspended: Bool, app: String, controller: any ControllerHandle, project: String, actor: String,
                             store: any FleetStore) async throws {
        try Validate.text(app, field: "app", maximum: 63)
        guard await controller.scope()?.apps.contains(app) == true else {
            throw APIError.notFound("no app '\(app)' in project \(project)")
        }
        try await controller.setSuspended(suspended, app: app)
        try await store.appendAudit(AuditRecord(at: Date(), project: project, actor: actor,
                                                action: suspended ? "app.suspend" : "app.resume", subject: app, detail: ""))
    }

    /// Approves the digest the commit in force gives `group`'s target of `app`, audited as `actor`'s.
    static func approve(app: String, group: String, controller: any ControllerHandle, project: String, actor: String,
                        store: any FleetStore) async throws -> ApprovalView {
        try Validate.text(app, field: "app", maximum: 63)
        try Validate.text(group, field: "group", maximum: 63)
        guard let target = await controller.target(app: app, group: group) else {
            throw APIError.notFound("no target '\(group)' of app '\(app)' in the desired state of project \(project)")
        }
        let kept = try await store.approve(ApprovalRecord(project: project, app: app, group: group, digest: target.digest,
                                                          approvedBy: actor, approvedAt: Date()))
        try await store.appendAudit(AuditRecord(at: Date(), project: project, actor: actor, action: "target.approve",
                                                subject: "\(app)/\(group)", detail: "\(target.version) (\(target.digest.prefix(12)))"))
        await controller.requestPoll()
        return ApprovalView(app: app, group: group, version: target.version, digest: target.digest,
                            required: target.approval, approvedBy: kept.approvedBy, approvedAt: kept.approvedAt)
    }

    /// The controller of `project`, once it has reconciled a commit.
    static func controller(of project: String, in controllers: ControllerSet) async throws -> any ControllerHandle {
        guard let controller = await controllers.entry(for: project)?.handle else {
            throw APIError.notFound("no controller reconciles project \(project) here, or it has not read its repository yet "
                                    + "(flotilla serve --repo, or the project in serve --config)")
        }
        guard await controller.scope() != nil else {
            throw APIError(.serviceUnavailable, "not_reconciled", "the controller has not reconciled a commit yet")
        }
        return controller
    }

    /// An approval as the API shows it.
    struct ApprovalView: Codable {
        var app: String
        var group: String
        var version: String
        var digest: String
        /// Whether the target asks for approval (an approval of a target that does not is kept,
        /// and counts if it ever does, for this digest).
        var required: Bool
        var approvedBy: String
        var approvedAt: Date
    }

    /// The operator's token, and the controller when it reconciles the token's project. Another
    /// project's token learns nothing of it: the answer is the one it gets where none runs.
    private func scoped(_ context: FleetRequestContext) async throws -> (any ControllerHandle, AccessTokenRecord) {
        let token = try context.operatorToken()
        return (try await Self.controller(of: token.project, in: controllers), token)
    }

    /// Which forge sent it decides how it is signed: GitHub `X-Hub-Signature-256: sha256=<hmac>`,
    /// Gitea and Forgejo `X-Gitea-Signature` / `X-Forgejo-Signature: <hmac>` (HMAC-SHA256 of the
    /// body under the secret), GitLab `X-Gitlab-Token: <secret>`.
    private func hook(_ request: Request, to entry: ControllerSet.Entry?) async throws -> Response {
        // One answer for a project that does not exist and one without a webhook secret: an
        // unauthenticated caller cannot tell which projects a server runs.
        guard let entry, let hookSecret = entry.hookSecret, !hookSecret.isEmpty else {
            throw APIError.notFound("webhooks are not enabled here (a --webhook-secret-file, or webhookSecretFile in serve --config)")
        }
        let controller = entry.handle
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: 5 << 20)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "a push event is limited to 5 MiB")
        }
        let body = Array(buffer.readableBytesView)
        let key = SymmetricKey(data: Array(hookSecret.utf8))
        // swift-crypto's HMAC and its constant-time check, over the hexadecimal MAC the forge sent.
        func validMAC(_ hex: Substring) -> Bool {
            guard let mac = Self.bytes(hex: hex) else { return false }
            return HMAC<Crypto.SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: key)
        }
        let header = { (name: String) in HTTPField.Name(name).flatMap { request.headers[$0] } }
        let verified: Bool
        if let signature = header("X-Hub-Signature-256") {
            verified = signature.hasPrefix("sha256=") && validMAC(signature.dropFirst("sha256=".count))
        } else if let signature = header("X-Gitea-Signature") ?? header("X-Forgejo-Signature") {
            verified = validMAC(Substring(signature))
        } else if let token = header("X-Gitlab-Token") {
            // GitLab sends the secret itself: compared as the MACs of both under a one-off key,
            // so the comparison takes the same time wherever they differ.
            let once = SymmetricKey(size: .bits256)
            verified = HMAC<Crypto.SHA256>.isValidAuthenticationCode(HMAC<Crypto.SHA256>.authenticationCode(for: Array(token.utf8), using: once),
                                                                     authenticating: Array(hookSecret.utf8), using: once)
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

    /// The secret of a webhook that does not exist: random for each process, never stored.
    static let unguessable = Deployer.randomHex(bytes: 32)
    static let nobody = NoController()

    /// What stands behind a webhook that does not exist; never reached, since no signature
    /// made without the key above verifies.
    struct NoController: ControllerHandle {
        func target(app: String, group: String) -> (version: String, digest: String, approval: Bool)? { nil }
        func requestPoll() async {}
        func statusJSON() async -> [UInt8]? { nil }
        func setSuspended(_ suspended: Bool, app: String) async throws {}
        var watchedBranch: String { "" }
        func metrics() async -> ControllerMetrics { ControllerMetrics() }
        func executionEnded() async {}
        func scope() async -> (project: String, apps: [String])? { nil }
    }

    /// The bytes a hexadecimal string spells, or nil when it is not one.
    static func bytes(hex: Substring) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }
}

extension HTTPField.Name {
    /// On a status served by one of several replicas: which one, and which leads the controllers.
    static let flotillaReplica = HTTPField.Name("Flotilla-Replica")!
    static let flotillaLeader = HTTPField.Name("Flotilla-Leader")!
    /// A device that heeds a deferred long-poll's `Retry-After` (`LongPollDeferral`).
    static let flotillaPoll = HTTPField.Name(LongPollDeferral.header)!
}
