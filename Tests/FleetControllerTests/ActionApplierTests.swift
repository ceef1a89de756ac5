@testable import FleetController
import FleetCore
import FleetGit
import FleetStore
import Foundation
import Logging
import Testing

/// The applier's own refusals, before anything reaches the store.
struct ActionApplierTests {
    static let files: [String: String] = [
        "fleet.yaml": "kind: Fleet\nproject: acme\n",
        "groups/all.yaml": "kind: Group\nname: all\nselector: hw=rpi4\n",
        "flows/login.yaml": """
            kind: UpdateFlow
            name: login
            parameters:
              password: {type: secret, default: db-password}
            steps:
              - name: login
                run: login ${password}
            """,
        "apps/web.yaml": "kind: App\nname: web\nflow: login\ntargets:\n  - {group: all, version: '1.0'}\n",
    ]

    func applier(_ store: MemoryFleetStore, pinned: Bool) throws -> (ActionApplier, RolloutAction) {
        var tree = FleetTree()
        for (path, text) in Self.files { tree.addFile(path, bytes: Array(text.utf8)) }
        let fleet = try FleetLoader.load(tree)
        let target = try #require(fleet.apps.first?.targets.first)
        let applier = ActionApplier(store: store, deployer: Deployer(store: store, board: AssignmentBoard()), logger: Logger(label: "test"),
                                    fleet: fleet, commit: CommitID(String(repeating: "a", count: 40))!, deployments: [:], projectPinned: pinned)
        return (applier, .startWave(app: "web", group: "all", digest: target.digest, devices: ["d1"]))
    }

    /// With `serve --repo` and no `--project`, fleet.yaml chooses the project: it must not choose
    /// whose secrets its steps get.
    @Test func secretsAreDeployedOnlyWhenTheServerPinnedTheProject() async throws {
        let store = MemoryFleetStore()
        _ = try await store.putSecret(SecretRecord(project: "acme", name: "db-password", sealed: [1], updatedAt: Date(), updatedBy: "t"))
        let (unpinned, action) = try applier(store, pinned: false)
        await #expect(throws: ActionApplier.UnpinnedSecrets.self) { try await unpinned.apply(action, at: Date()) }
        #expect(try await store.deployments(project: "acme", limit: 10).isEmpty)
        let (pinned, _) = try applier(store, pinned: true)
        try await pinned.apply(action, at: Date())
        #expect(try await store.deployments(project: "acme", limit: 10).first?.secrets == ["password": "db-password"])
    }
}
