import Foundation
import JWTKit
import Synchronization

/// Per-device JWTs, signed with an Ed25519 key made on first start and kept in the data
/// directory with mode 0600.
public struct DeviceTokens: Sendable {
    private let keys: JWTKeyCollection
    /// Tokens whose signature was checked already: the Ed25519 check is the largest cost of a
    /// heartbeat, and a device sends the same token every time. Keyed by the whole token, so a
    /// forged one never matches; deletion is checked on every request apart from this.
    private let verified = VerifiedTokens()

    /// What a device token says.
    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var project: String
        var iat: IssuedAtClaim
        /// The device's token generation when issued (`DeviceRecord.tokenGeneration`); absent in
        /// tokens issued before generations existed, which count as generation 0.
        var gen: Int?

        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// Loads the signing key from `keyFile`, creating it when absent.
    public static func load(keyFile: String) async throws -> DeviceTokens {
        let key: EdDSA.PrivateKey
        if let pem = try? String(contentsOfFile: keyFile, encoding: .utf8) {
            key = try EdDSA.PrivateKey(pem: pem)
        } else {
            key = try EdDSA.PrivateKey(curve: .ed25519)
            let created = FileManager.default.createFile(atPath: keyFile, contents: Data(key.pemRepresentation.utf8),
                                                         attributes: [.posixPermissions: 0o600])
            guard created else { throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: keyFile]) }
        }
        return DeviceTokens(keys: await JWTKeyCollection().add(eddsa: key))
    }

    /// A token naming `device` in `project`, valid while the device stays in `generation`.
    func issue(device: String, project: String, generation: Int, now: Date) async throws -> String {
        try await keys.sign(Claims(sub: SubjectClaim(value: device), project: project, iat: IssuedAtClaim(value: now), gen: generation))
    }

    /// What a token names, or an `APIError` saying why it is not accepted. The caller checks the
    /// generation against the device's own.
    func verify(_ token: String) async throws -> Subject {
        if let known = remembered(token) { return known }
        do {
            let claims = try await keys.verify(token, as: Claims.self)
            let subject = Subject(device: claims.sub.value, project: claims.project, generation: claims.gen ?? 0)
            verified.remember(token, subject)
            return subject
        } catch {
            throw APIError.unauthorized("not a valid device token")
        }
    }

    /// What `token` names when it was verified before (the steady state of every device): no
    /// signature check, no suspension.
    func remembered(_ token: String) -> Subject? {
        verified.lookup(token)
    }

    /// The device, project and token generation a device token names.
    struct Subject: Sendable, Equatable {
        var device: String
        var project: String
        var generation: Int
    }
}

/// A bounded set of checked tokens, forgotten whole when full.
final class VerifiedTokens: Sendable {
    private let state = Mutex<[String: DeviceTokens.Subject]>([:])
    private let capacity = 250_000

    func lookup(_ token: String) -> DeviceTokens.Subject? {
        state.withLock { $0[token] }
    }

    func remember(_ token: String, _ subject: DeviceTokens.Subject) {
        state.withLock { entries in
            if entries.count >= capacity { entries.removeAll() }
            entries[token] = subject
        }
    }
}
