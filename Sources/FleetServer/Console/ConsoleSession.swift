import Crypto
import FleetStore
import Foundation
import HTTPTypes
import Hummingbird

/// A console session: an operator who signed in with an operator token. The session is a token
/// of its own (`fls_…`, kind `session`), made by the operator's token: it lives in the store like
/// any token, so every replica knows it, `flotilla token list` shows it, signing out revokes it,
/// and revoking the operator's token ends it. The browser holds it in an HttpOnly cookie that
/// only this site's own pages send (SameSite=Strict); every form carries a CSRF token derived
/// from it, which another site cannot read or compute.
struct ConsoleSession: Sendable {
    /// The session's token record; `createdBy` is the operator token that signed in.
    var record: AccessTokenRecord
    /// The session token's text, as the cookie carries it.
    var text: String

    static let cookieName = "flotilla_session"
    /// Over TLS the cookie is `__Host-` prefixed: the browser then takes it only from this host,
    /// Secure, for path /, so a sibling subdomain cannot plant one that shadows it.
    static let secureCookieName = "__Host-flotilla_session"
    /// How long a session lasts at most; never past the operator token that made it.
    static let lifetime: TimeInterval = 12 * 3_600
    /// Sessions one operator token holds at once; signing in past it ends the oldest. Each holds
    /// a row and up to four live pages' connections: a token handed to a dashboard that signs
    /// in without end must not fill either.
    static let sessionsPerToken = 16

    var project: String { record.project }
    /// Who acts, in the audit log: the operator token that signed in.
    var actor: String { "operator:\(record.createdBy ?? record.id)" }

    /// The token every form of this session carries: HMAC-SHA256 of a fixed label under the
    /// session's own secret. It is not stored; it is computed again to check.
    var csrfToken: String {
        let mac = HMAC<Crypto.SHA256>.authenticationCode(for: Array("flotilla console csrf".utf8),
                                                          using: SymmetricKey(data: Array(text.utf8)))
        return mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Revokes a session; one already gone (the retention pass deletes ended sessions) is ended.
    static func end(_ id: String, store: any FleetStore) async throws {
        do {
            try await store.revokeToken(id: id)
        } catch let error as StoreError where error.code == .notFound {
            return
        }
    }

    /// Whether `presented` is this session's CSRF token, compared in constant time.
    func acceptsCSRF(_ presented: String?) -> Bool {
        guard let presented, let mac = ControllerRoutes.bytes(hex: Substring(presented)) else { return false }
        return HMAC<Crypto.SHA256>.isValidAuthenticationCode(mac, authenticating: Array("flotilla console csrf".utf8),
                                                             using: SymmetricKey(data: Array(text.utf8)))
    }

    /// Signs in: the operator token must be valid now, and `admit` must let it (its allowance
    /// of sign-ins); the session it makes expires in `lifetime`, or with the token if that
    /// comes first.
    static func signIn(operatorToken text: String, store: any FleetStore, now: Date,
                       admit: (AccessTokenRecord) throws -> Void = { _ in }) async throws -> ConsoleSession {
        let token = try await AccessTokens.verify(text.trimmingCharacters(in: .whitespacesAndNewlines), kind: .operator, store: store, now: now)
        try admit(token)
        var expiry = now.addingTimeInterval(lifetime)
        if let limit = token.expiresAt { expiry = min(expiry, limit) }
        let live = try await store.tokens(project: token.project)
            .filter { $0.kind == .session && $0.createdBy == token.id && !$0.revoked && ($0.expiresAt.map { $0 > now } ?? true) }
            .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
        for oldest in live.prefix(max(0, live.count - (sessionsPerToken - 1))) {
            try await end(oldest.id, store: store)
            try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "operator:\(token.id)",
                                                    action: "console.session.ended", subject: oldest.id,
                                                    detail: "the token signed in a \(sessionsPerToken + 1)th time"))
        }
        var made = AccessTokens.make(kind: .session, project: token.project, expiresAt: expiry, now: now)
        made.record.createdBy = token.id
        // The session may do what its token may, no more.
        made.record.access = token.access
        try await store.insertToken(made.record)
        try await store.appendAudit(AuditRecord(at: now, project: token.project, actor: "operator:\(token.id)",
                                                action: "console.sign-in", subject: made.record.id,
                                                detail: "until \(expiry.ISO8601Format())"))
        return ConsoleSession(record: made.record, text: made.text)
    }

    /// The session a request's cookie names, when it is one that holds now. Every cookie of the
    /// session's names is tried (at most a few): one planted beside the real one cannot shadow it.
    /// Over TLS only the `__Host-` cookie counts: the plain name is one a sibling subdomain, or a
    /// response injected into plain HTTP, can set — with a longer path, so the browser sends it
    /// first — and the operator's forms would then act in the planter's project.
    static func from(_ request: Request, overTLS: Bool, store: any FleetStore, now: Date) async throws -> ConsoleSession? {
        for text in cookies(overTLS ? [secureCookieName] : [secureCookieName, cookieName], in: request.headers).prefix(4) {
            if let record = try? await AccessTokens.verify(text, kind: .session, store: store, now: now) {
                return ConsoleSession(record: record, text: text)
            }
        }
        return nil
    }

    /// The values of the cookies called one of `names` in the request's `Cookie` fields, in order.
    static func cookies(_ names: [String], in headers: HTTPFields) -> [String] {
        var values: [String] = []
        for field in headers[values: .cookie] {
            for pair in field.split(separator: ";") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, names.contains(parts[0].trimmingCharacters(in: .whitespaces)) else { continue }
                values.append(parts[1].trimmingCharacters(in: .whitespaces))
            }
        }
        return values
    }

    /// The cookie that holds the session: HttpOnly (no script reads it), SameSite=Strict (no other
    /// site's page sends it), Secure when the request came over TLS (directly or through a proxy
    /// that says so).
    func setCookie(secure: Bool, now: Date) -> String {
        let seconds = max(0, Int(record.expiresAt?.timeIntervalSince(now) ?? Self.lifetime))
        return "\(secure ? Self.secureCookieName : Self.cookieName)=\(text); Path=/; Max-Age=\(seconds); HttpOnly; SameSite=Strict"
            + (secure ? "; Secure" : "")
    }

    static func clearCookie(secure: Bool) -> String {
        "\(secure ? secureCookieName : cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "")
    }

    /// Whether the browser reaches the server over TLS: always when the server is configured so
    /// (`serve --secure-cookies`, for a proxy that terminates TLS), else when a proxy in front
    /// says so in `X-Forwarded-Proto` — any of its hops (a client lying about it only makes its
    /// own cookie stricter).
    static func overTLS(_ request: Request, configuration: ServerConfiguration) -> Bool {
        if configuration.secureCookies { return true }
        guard let name = HTTPField.Name("X-Forwarded-Proto") else { return false }
        return request.headers[values: name].contains { value in
            value.lowercased().split(separator: ",").contains { $0.trimmingCharacters(in: .whitespaces) == "https" }
        }
    }

    /// Whether a form came from a page of this site: a browser says where a request came from
    /// (`Sec-Fetch-Site`, `Origin`), and another site's page cannot forge either. A client that
    /// sends neither (not a browser) is not refused for it.
    static func sameSite(_ request: Request) -> Bool {
        if let name = HTTPField.Name("Sec-Fetch-Site"), let site = request.headers[name] {
            return site == "same-origin" || site == "none"
        }
        if let name = HTTPField.Name("Origin"), let origin = request.headers[name] {
            guard let host = request.head.authority else { return false }
            let bare = origin.split(separator: "/", omittingEmptySubsequences: true).dropFirst().first.map(String.init)
            return origin != "null" && bare == host
        }
        return true
    }
}

/// `application/x-www-form-urlencoded`, as browsers send forms.
enum FormBody {
    /// The most a console form may send: a token, a few fields.
    static let limit = 16 << 10

    static func read(_ request: Request) async throws -> [String: String] {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch {
            throw APIError(.contentTooLarge, "body_too_large", "a form is limited to \(limit / 1024) KiB")
        }
        return parse(String(decoding: buffer.readableBytesView, as: UTF8.self))
    }

    /// Fields by name; the first of a repeated name wins, a field that does not decode is dropped.
    static func parse(_ text: String) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in text.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            func decode(_ part: Substring) -> String? { part.replacingOccurrences(of: "+", with: " ").removingPercentEncoding }
            guard let name = decode(parts[0]), fields[name] == nil else { continue }
            fields[name] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return fields
    }
}
