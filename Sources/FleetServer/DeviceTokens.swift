import Foundation
import JWTKit

/// Per-device JWTs, signed with an Ed25519 key made on first start and kept in the data
/// directory with mode 0600.
public struct DeviceTokens: Sendable {
    private let keys: JWTKeyCollection

    /// What a device token says.
    struct Claims: JWTPayload {
        var sub: SubjectClaim
        var project: String
        var iat: IssuedAtClaim

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

    /// A token naming `device` in `project`.
    func issue(device: String, project: String, now: Date) async throws -> String {
        try await keys.sign(Claims(sub: SubjectClaim(value: device), project: project, iat: IssuedAtClaim(value: now)))
    }

    /// The device and project a token names, or an `APIError` saying why it is not accepted.
    func verify(_ token: String) async throws -> (device: String, project: String) {
        do {
            let claims = try await keys.verify(token, as: Claims.self)
            return (claims.sub.value, claims.project)
        } catch {
            throw APIError.unauthorized("not a valid device token")
        }
    }
}
