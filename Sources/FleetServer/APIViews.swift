public import FleetStore
public import Foundation

/// A token as `GET /api/v1/tokens` shows it: never its secret or the secret's hash. The command
/// line decodes the same type.
public struct TokenView: Codable, Sendable {
    public var id: String
    public var kind: String
    public var group: String?
    public var createdAt: Date
    public var expiresAt: Date?
    public var revoked: Bool
    /// The token that made this one through the API.
    public var createdBy: String?
    /// An operator token's (or console session's) access: read, deploy or admin.
    public var access: String?

    public init(_ record: AccessTokenRecord) {
        id = record.id
        kind = record.kind.rawValue
        group = record.group
        createdAt = record.createdAt
        expiresAt = record.expiresAt
        revoked = record.revoked
        createdBy = record.createdBy
        access = record.kind == .enrollment ? nil : record.grants.rawValue
    }
}

/// One entry of `GET /api/v1/audit`.
public struct AuditView: Codable, Sendable {
    public var at: Date
    public var actor: String
    public var action: String
    public var subject: String
    public var detail: String

    public init(_ record: AuditRecord) {
        at = record.at
        actor = record.actor
        action = record.action
        subject = record.subject
        detail = record.detail
    }
}

/// What `POST /api/v1/devices/{id}/reset-identity` answers.
public struct ResetIdentityResponse: Codable, Sendable {
    public var device: String
    public var hardwareID: String
    /// Shown once: the new board enrolls with it (`flotilla-agent --claim-code`).
    public var claimCode: String
    public var claimExpiresAt: Date
}
