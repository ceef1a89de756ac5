public import FleetProtocol
public import Foundation

/// Creates and aborts deployments and wakes the devices they concern: the one way both the
/// operator API and the controller change what devices should run.
public struct Deployer: Sendable {
    public let store: any FleetStore
    public let board: AssignmentBoard

    public init(store: any FleetStore, board: AssignmentBoard) {
        self.store = store
        self.board = board
    }

    /// Stores `deployment` with one queued execution per device, then wakes those devices.
    /// Refused when a secret it names is not set in its project: nothing could fill it in.
    @discardableResult
    public func create(_ deployment: DeploymentRecord, devices: [String], at date: Date) async throws -> [ExecutionRecord] {
        for name in Set(deployment.secrets.values).sorted() where try await store.secret(project: deployment.project, name: name) == nil {
            throw MissingSecret(project: deployment.project, name: name)
        }
        let executions = devices.map { device in
            ExecutionRecord(id: "ex-" + Self.randomHex(bytes: 8), deploymentID: deployment.id, deviceID: device, updatedAt: date)
        }
        try await store.createDeployment(deployment, executions: executions)
        await board.notify(devices)
        return executions
    }

    /// Cancels what has not finished and wakes the devices concerned.
    @discardableResult
    public func abort(_ deploymentID: String, at date: Date) async throws -> [ExecutionRecord] {
        let cancelled = try await store.abortDeployment(id: deploymentID, at: date)
        await board.notify(cancelled.map(\.deviceID))
        return cancelled
    }

    /// A deployment names a secret its project does not have.
    public struct MissingSecret: Error, CustomStringConvertible {
        public var project: String
        public var name: String
        public var description: String {
            "secret '\(name)' is not set in project \(project); set it with: flotilla secret set \(project) \(name)"
        }
    }

    public static func newDeploymentID() -> String { "dep-" + randomHex(bytes: 8) }

    /// `bytes` random bytes as lowercase hexadecimal.
    public static func randomHex(bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in
            let byte = UInt8.random(in: 0...255, using: &generator)
            return String(byte >> 4, radix: 16) + String(byte & 0xf, radix: 16)
        }.joined()
    }
}
