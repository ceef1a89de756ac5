/// Why a deployment exists: what the rollout decision reads instead of parsing who created it.
public enum DeploymentPurpose: Codable, Sendable, Hashable, CustomStringConvertible {
    /// Made by an operator through the API; the controller's rollouts leave it alone.
    case manual
    /// A wave of the controller's rollout of the deployment's digest.
    case rollout
    /// The controller putting drifted devices back on their target's version.
    case heal
    /// The controller giving devices changed by the aborted rollout of `abortedDigest` their last good version.
    case rollback(abortedDigest: String)

    /// Whether the controller made it.
    public var isController: Bool { self != .manual }

    /// `manual`, `rollout`, `heal` or `rollback:<digest>`: how it is stored and shown.
    public var description: String {
        switch self {
        case .manual: "manual"
        case .rollout: "rollout"
        case .heal: "heal"
        case .rollback(let digest): "rollback:" + digest
        }
    }

    /// Parses `description`'s form.
    public init?(text: String) {
        switch text {
        case "manual": self = .manual
        case "rollout": self = .rollout
        case "heal": self = .heal
        default:
            guard text.hasPrefix("rollback:"), text.count > "rollback:".count else { return nil }
            self = .rollback(abortedDigest: String(text.dropFirst("rollback:".count)))
        }
    }

    /// The purpose of a deployment stored before purposes were: it was carried in `createdBy`
    /// (`controller`, `controller:heal`, `controller:rollback:<digest>`, `operator:<token>`).
    public init(legacyCreatedBy createdBy: String) {
        switch createdBy {
        case "controller": self = .rollout
        case "controller:heal": self = .heal
        case let text where text.hasPrefix("controller:rollback:"):
            self = .rollback(abortedDigest: String(text.dropFirst("controller:rollback:".count)))
        default: self = .manual
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let purpose = DeploymentPurpose(text: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "unknown purpose '\(text)'"))
        }
        self = purpose
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
