/// `POST /agent/v1/enroll`: a device presents an enrollment token and its identity.
public struct EnrollmentRequest: Codable, Sendable, Equatable {
    /// The enrollment token an operator made with `flotilla token create`.
    public var token: String
    /// A stable id of the hardware (a serial number, /etc/machine-id); the same hardware
    /// enrolling again gets the same device back.
    public var hardwareID: String
    /// A secret the agent generated and keeps; proves that a re-enrollment is the same agent.
    public var deviceSecret: String
    /// The name to show; defaults to the hardware id.
    public var name: String?
    /// Tags the device reports about itself.
    public var tags: [String: String]?
    /// Facts such as arch, os and agentVersion.
    public var attributes: [String: String]?
    /// The one-time code an operator got from resetting this hardware's identity: it lets a
    /// replaced board, with a new device secret, take the device's place.
    public var claimCode: String?

    public init(token: String, hardwareID: String, deviceSecret: String, name: String? = nil,
                tags: [String: String]? = nil, attributes: [String: String]? = nil, claimCode: String? = nil) {
        self.token = token
        self.hardwareID = hardwareID
        self.deviceSecret = deviceSecret
        self.name = name
        self.tags = tags
        self.attributes = attributes
        self.claimCode = claimCode
    }
}

/// The answer to an enrollment: who the device is and how it authenticates from now on.
public struct EnrollmentResponse: Codable, Sendable, Equatable {
    public var deviceID: String
    public var project: String
    /// A JWT for `Authorization: Bearer …` on every later call.
    public var deviceToken: String
    /// How often to send a heartbeat, in seconds.
    public var heartbeatIntervalSeconds: Int

    public init(deviceID: String, project: String, deviceToken: String, heartbeatIntervalSeconds: Int) {
        self.deviceID = deviceID
        self.project = project
        self.deviceToken = deviceToken
        self.heartbeatIntervalSeconds = heartbeatIntervalSeconds
    }
}

/// The agent's release, as `flotilla-agent --version` prints it and heartbeats report it.
public enum AgentRelease {
    public static let version = "0.1.0"
}
