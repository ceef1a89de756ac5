public import FleetProtocol
public import Foundation

/// A device as the operator API lists it (`GET /api/v1/devices`): never its secret hash.
/// The server writes it and `flotilla devices` reads it (so it lives here, beside the records).
public struct OperatorDeviceView: Codable, Sendable, Equatable {
    public var id: String
    public var name: String
    public var project: String
    public var hardwareID: String
    public var tags: [String: String]
    public var attributes: [String: String]
    public var apps: [String: InstalledApp]
    public var online: Bool
    public var enrolledAt: Date
    public var lastHeartbeatAt: Date?

    public init(id: String, name: String, project: String, hardwareID: String, tags: [String: String], attributes: [String: String],
                apps: [String: InstalledApp], online: Bool, enrolledAt: Date, lastHeartbeatAt: Date?) {
        self.id = id
        self.name = name
        self.project = project
        self.hardwareID = hardwareID
        self.tags = tags
        self.attributes = attributes
        self.apps = apps
        self.online = online
        self.enrolledAt = enrolledAt
        self.lastHeartbeatAt = lastHeartbeatAt
    }
}

/// `GET /api/v1/devices/{id}`: the device and its latest heartbeats, newest first.
public struct OperatorDeviceDetail: Codable, Sendable {
    public var device: OperatorDeviceView
    public var heartbeats: [Heartbeat]

    public init(device: OperatorDeviceView, heartbeats: [Heartbeat]) {
        self.device = device
        self.heartbeats = heartbeats
    }
}

/// `GET /api/v1/deployments/{id}`: the deployment and each device's execution.
public struct DeploymentDetail: Codable, Sendable {
    public var deployment: DeploymentRecord
    public var executions: [ExecutionRecord]

    public init(deployment: DeploymentRecord, executions: [ExecutionRecord]) {
        self.deployment = deployment
        self.executions = executions
    }
}
