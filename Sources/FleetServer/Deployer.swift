public import FleetProtocol
public import FleetStore
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
    @discardableResult
    public func create(_ deployment: DeploymentRecord, devices: [String], at date: Date) async throws -> [ExecutionRecord] {
        let executions = devices.map { device in
            ExecutionRecord(id: "ex-" + AccessTokens.randomHex(bytes: 8), deploymentID: deployment.id, deviceID: device, updatedAt: date)
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

    public static func newDeploymentID() -> String { "dep-" + AccessTokens.randomHex(bytes: 8) }
}
