import Crypto
import Hummingbird
import FleetCore
public import FleetStore
public import Foundation

/// Enrollment, operator and console-session tokens: `fle_<id>_<secret>`, `flo_<id>_<secret>` and `fls_<id>_<secret>`. The id finds
/// the record; only a hash of the secret is stored, so a database leak leaks no token.
public enum AccessTokens {
    /// A new token: its record for the store, and the text to hand to the person, once.
    public static func make(kind: AccessTokenRecord.Kind, project: String, group: String? = nil,
                            expiresAt: Date? = nil, access: OperatorAccess? = nil, now: Date = Date()) -> (record: AccessTokenRecord, text: String) {
        let id = randomHex(bytes: 6), secret = randomHex(bytes: 16)
        let record = AccessTokenRecord(id: id, kind: kind, project: project, group: group, secretHash: hash(secret),
                                       createdAt: now, expiresAt: expiresAt, access: access)
        return (record, "\(prefix(kind))_\(id)_\(secret)")
    }

    /// The id and secret of a token's text, when it has the shape of one of `kind`: both in
    /// lowercase hex, as `make` writes them. Nothing else reaches the store (a NUL in an id is an
    /// error in PostgreSQL, a 500 for a request no one signed).
    static func parse(_ text: String, kind: AccessTokenRecord.Kind) -> (id: String, secret: String)? {
        let parts = text.split(separator: "_", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == prefix(kind), parts[1].utf8.count == 12, parts[2].utf8.count == 32,
              parts[1].utf8.allSatisfy(isHexDigit), parts[2].utf8.allSatisfy(isHexDigit) else { return nil }
        return (String(parts[1]), String(parts[2]))
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) || (0x61...0x66).contains(byte) }

    /// Checks a presented token against the store: exists, of this kind, not revoked, not expired, secret matches.
    static func verify(_ text: String, kind: AccessTokenRecord.Kind, store: any FleetStore, now: Date) async throws -> AccessTokenRecord {
        let name = describe(kind)
        guard let (id, secret) = parse(text, kind: kind) else {
            throw APIError.unauthorized("not a valid \(name)")
        }
        guard let record = try await store.token(id: id), record.kind == kind, matches(secret, hash: record.secretHash) else {
            throw APIError.unauthorized("unknown \(name)")
        }
        try await checkLine(from: record, of: record, store: store, now: now)
        return record
    }

    /// Checks a token found earlier still holds, read afresh. Handlers call it after reading a
    /// body, which a client may send slowly while the token is revoked.
    static func confirm(_ record: AccessTokenRecord, store: any FleetStore, now: Date) async throws {
        try await checkLine(from: try await store.token(id: record.id), of: record, store: store, now: now)
    }

    /// `current` (the token as just read) and every token that made it: none revoked, none
    /// expired — so a token minted in a race with its maker's revocation dies with it.
    private static func checkLine(from current: AccessTokenRecord?, of record: AccessTokenRecord, store: any FleetStore,
                                  now: Date) async throws {
        let name = describe(record.kind)
        var current = current
        var depth = 0
        while let token = current {
            guard !token.revoked else {
                throw APIError(.unauthorized, "token_revoked", token.id == record.id ? "the \(name) was revoked"
                               : "the \(name) was made by a token that was revoked")
            }
            if let expiry = token.expiresAt, expiry <= now { throw APIError(.unauthorized, "token_expired", "the \(name) expired") }
            depth += 1
            guard let maker = token.createdBy, depth < 64 else { return }
            current = try await store.token(id: maker)
        }
        guard depth > 0 else { throw APIError.unauthorized("unknown \(name)") }
    }

    static func hash(_ secret: String) -> String { SHA256.hex(Array(secret.utf8)) }

    /// Whether `secret` hashes to `storedHash`, compared in constant time: the two hashes are
    /// hashed again by swift-crypto, whose digests compare in constant time (equal digests mean
    /// equal hashes). For token secrets, device secrets and claim codes alike.
    static func matches(_ secret: String, hash storedHash: String) -> Bool {
        Crypto.SHA256.hash(data: Array(hash(secret).utf8)) == Crypto.SHA256.hash(data: Array(storedHash.utf8))
    }

    private static func prefix(_ kind: AccessTokenRecord.Kind) -> String {
        switch kind {
        case .enrollment: "fle"
        case .operator: "flo"
        case .session: "fls"
        }
    }

    private static func describe(_ kind: AccessTokenRecord.Kind) -> String {
        switch kind {
        case .enrollment: "enrollment token"
        case .operator: "operator token"
        case .session: "console session"
        }
    }

    /// Hexadecimal from the system's cryptographic random source.
    static func randomHex(bytes: Int) -> String { Deployer.randomHex(bytes: bytes) }
}
