public import FleetProtocol
public import Foundation

/// A project: the fleet of one repository, and the scope of every token.
public struct ProjectRecord: Codable, Sendable, Equatable {
    public var name: String
    public var createdAt: Date

    public init(name: String, createdAt: Date) {
        self.name = name
        self.createdAt = createdAt
    }
}

/// A token: one that enrolls devices, one that an operator uses on the API, or the session of
/// an operator signed in to the web console (made by that operator's token, and revoked with it).
/// Only a hash of its secret is stored.
public struct AccessTokenRecord: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable, CaseIterable {
        case enrollment, `operator`, session
    }

    /// The public part of the token, `fl_e_<id>` / `fl_o_<id>` before the secret.
    public var id: String
    public var kind: Kind
    public var project: String
    /// Enrolled devices get this group's name as a tag (`group`), when set.
    public var group: String?
    /// SHA-256 of the secret, hexadecimal.
    public var secretHash: String
    public var createdAt: Date
    public var expiresAt: Date?
    public var revoked: Bool
    /// The operator token that made this one through the API; nil for tokens made on the
    /// server's own machine (`flotilla token create`). Revoking a token revokes what it made.
    public var createdBy: String?
    /// What an operator token, or a console session it signed in, may do; nil: everything
    /// (`admin`), as every token made before access existed.
    public var access: OperatorAccess?

    /// `access`, or `admin` when none was given.
    public var grants: OperatorAccess { access ?? .admin }

    public init(id: String, kind: Kind, project: String, group: String? = nil, secretHash: String, createdAt: Date,
                expiresAt: Date? = nil, revoked: Bool = false, createdBy: String? = nil, access: OperatorAccess? = nil) {
        self.id = id
        self.kind = kind
        self.project = project
        self.group = group
        self.secretHash = secretHash
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.revoked = revoked
        self.createdBy = createdBy
        self.access = access
    }
}

/// What an operator may do with the API and the console, each level including the one before:
/// `read` everything but remote commands' output; `rollout` also steer the rollouts the fleet
/// repository asks for — approve, abort, suspend, resume, reconcile; `admin` also everything
/// that runs code on devices or reaches secrets (deployments made through the API, remote
/// commands and their output), tokens, secrets, and deleting devices or resetting their identity.
public enum OperatorAccess: String, Codable, Sendable, CaseIterable, Comparable {
    case read, rollout, admin

    public static func < (lhs: OperatorAccess, rhs: OperatorAccess) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }

    /// A stored value; one this release does not know (a newer one's) grants the least.
    public init(stored: String) {
        self = OperatorAccess(rawValue: stored) ?? .read
    }
}

/// A device in the registry.
public struct DeviceRecord: Codable, Sendable, Equatable {
    public var id: String
    public var project: String
    public var name: String
    public var hardwareID: String
    /// SHA-256 of the secret the agent generated at enrollment.
    public var secretHash: String
    public var reportedTags: [String: String]
    public var attributes: [String: String]
    public var apps: [String: InstalledApp]
    public var enrolledAt: Date
    public var lastHeartbeatAt: Date?
    /// The execution its last heartbeat said it works on, if any.
    public var executing: String?
    /// The update lock its last heartbeat carried: while it holds, the device is skipped.
    public var lock: Heartbeat.UpdateLock?
    /// Deleted by an operator: its agent gets 410 Gone and stops.
    public var deleted: Bool
    /// Device tokens carry the generation they were issued in; an identity reset moves it on,
    /// so every token issued before is refused.
    public var tokenGeneration: Int
    /// After an identity reset: the hash of the one-time code that lets a new board take the
    /// device's place, and until when it does.
    public var claimHash: String?
    public var claimExpiresAt: Date?

    public init(id: String, project: String, name: String, hardwareID: String, secretHash: String, reportedTags: [String: String] = [:],
                attributes: [String: String] = [:], apps: [String: InstalledApp] = [:], enrolledAt: Date,
                lastHeartbeatAt: Date? = nil, executing: String? = nil, deleted: Bool = false, tokenGeneration: Int = 0,
                claimHash: String? = nil, claimExpiresAt: Date? = nil, lock: Heartbeat.UpdateLock? = nil) {
        self.lock = lock
        self.id = id
        self.project = project
        self.name = name
        self.hardwareID = hardwareID
        self.secretHash = secretHash
        self.reportedTags = reportedTags
        self.attributes = attributes
        self.apps = apps
        self.enrolledAt = enrolledAt
        self.lastHeartbeatAt = lastHeartbeatAt
        self.executing = executing
        self.deleted = deleted
        self.tokenGeneration = tokenGeneration
        self.claimHash = claimHash
        self.claimExpiresAt = claimExpiresAt
    }
}

/// Heartbeats read over a span of time, and whether they are all of the span's.
public struct HeartbeatSpan: Sendable, Equatable {
    public var records: [HeartbeatRecord]
    /// False when a bound on count or size left some of the span's heartbeats out.
    public var complete: Bool

    public init(records: [HeartbeatRecord], complete: Bool) {
        self.records = records
        self.complete = complete
    }

    /// Keeps rows, oldest first, while they fit `limit` and `maximumBytes`; `size` is a row's
    /// stored JSON in bytes. Stops at the first row that does not fit (`take` is not called for
    /// it or any after), so a reader can stop reading there.
    public struct Builder {
        public let limit: Int
        public let maximumBytes: Int
        public private(set) var records: [HeartbeatRecord] = []
        public private(set) var bytes = 0
        public private(set) var complete = true

        public init(limit: Int, maximumBytes: Int) {
            self.limit = limit
            self.maximumBytes = maximumBytes
        }

        /// Whether a row of `size` bytes fits; once one does not, none after it is asked about.
        public mutating func fits(size: Int) -> Bool {
            guard complete, records.count < limit, size <= maximumBytes - bytes else {
                complete = false
                return false
            }
            return true
        }

        public mutating func take(_ record: HeartbeatRecord, size: Int) {
            records.append(record)
            bytes += size
        }

        public var span: HeartbeatSpan { HeartbeatSpan(records: records, complete: complete) }
    }
}

/// One heartbeat as stored: the device, when it arrived, and the report.
public struct HeartbeatRecord: Codable, Sendable, Equatable {
    public var deviceID: String
    public var receivedAt: Date
    public var report: Heartbeat

    public init(deviceID: String, receivedAt: Date, report: Heartbeat) {
        self.deviceID = deviceID
        self.receivedAt = receivedAt
        self.report = report
    }
}

/// A secret a flow parameter of type `secret` names, as the store keeps it: sealed (encrypted
/// and authenticated) by the server with a key the store never holds. The store cannot read it.
public struct SecretRecord: Sendable, Equatable {
    public var project: String
    public var name: String
    /// The sealed value: nonce, ciphertext and tag.
    public var sealed: [UInt8]
    public var version: Int
    public var updatedAt: Date
    /// `operator:<token id>`.
    public var updatedBy: String

    public init(project: String, name: String, sealed: [UInt8], version: Int = 1, updatedAt: Date, updatedBy: String) {
        self.project = project
        self.name = name
        self.sealed = sealed
        self.version = version
        self.updatedAt = updatedAt
        self.updatedBy = updatedBy
    }
}

/// Who did what, when.
public struct AuditRecord: Codable, Sendable, Equatable {
    public var at: Date
    public var project: String
    /// `operator:<token id>`, `device:<id>` or `cli`.
    public var actor: String
    public var action: String
    public var subject: String
    public var detail: String

    public init(at: Date, project: String, actor: String, action: String, subject: String, detail: String = "") {
        self.at = at
        self.project = project
        self.actor = actor
        self.action = action
        self.subject = subject
        self.detail = detail
    }
}

/// Why a store operation failed.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case duplicate, notFound, unavailable, corrupt
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// An operator's approval of one release (digest) of one target of an app: the gate of a target
/// with `approval: required` opens for that digest only.
public struct ApprovalRecord: Sendable, Equatable {
    public var project: String
    public var app: String
    public var group: String
    public var digest: String
    /// `operator:<token id>`.
    public var approvedBy: String
    public var approvedAt: Date

    public init(project: String, app: String, group: String, digest: String, approvedBy: String, approvedAt: Date) {
        self.project = project
        self.app = app
        self.group = group
        self.digest = digest
        self.approvedBy = approvedBy
        self.approvedAt = approvedAt
    }
}
