@testable import FleetController
import FleetCore
import FleetGit
import FleetProtocol
import FleetStatus
import FleetStore
import FleetTesting
import Foundation
import Logging
import Testing

/// The controller's wiring — poll, load, refuse, decide, deploy, report — with git, the forge and
/// the store in memory: no process, no socket, no disk, in milliseconds.
struct ControllerWiringTests {
    /// fleet-repo-template's fleet files, path → text.
    static let template: [String: String] = {
        var files: [String: String] = [:]
        let root = TestPackage.template
        for case let path as String in FileManager.default.enumerator(atPath: root)!
        where FleetTree.isFleetFile(path) {
            files[path] = try? String(contentsOfFile: root + "/" + path, encoding: .utf8)
        }
        return files
    }()

    static let quiet: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        return logger
    }()

    struct World {
        let store = MemoryFleetStore()
        let repository = MemoryRepository()
        let forge = MemoryForge()
        let controller: FleetController

        init(trusted: TrustedKeys? = nil) async throws {
            var configuration = ControllerConfiguration(repository: "memory:fleet", cacheDirectory: NSTemporaryDirectory() + "flotilla-none-\(UUID())",
                                                        forgeToken: "forge-token")
            configuration.trustedSigners = trusted
            controller = FleetController(configuration: configuration, store: store, deployer: Deployer(store: store, board: AssignmentBoard()),
                                         logger: ControllerWiringTests.quiet, repository: repository, forge: forge.reporter)
            let now = Date()
            try await store.ensureProject("acme-climate", at: now)
            for index in 1...4 {
                _ = try await store.enroll(DeviceRecord(id: "thermo-\(index)", project: "acme-climate", name: "thermo-\(index)", hardwareID: "hw-\(index)",
                                                        secretHash: "", reportedTags: ["ring": "canary", "hw": "rpi4", "site": "berlin"],
                                                        apps: ["thermostat": InstalledApp(version: "2.4.1")], enrolledAt: now, lastHeartbeatAt: now))
            }
        }

        func pass() async {
            await controller.requestPoll()
            await controller.pass()
        }
    }

    @Test func aValidHeadIsDeployedAndReportedInTheRepositoryAndOnTheForge() async throws {
        let world = try await World()
        let commit = world.repository.commit(Self.template, message: "Thermostat 2.5.0 for the canary\n\nThe fan curve.", author: "Ada")
        await world.pass()

        #expect(await world.controller.desired?.commit == commit)
        // Who made the commit in force, and why, for the console and status.json.
        #expect(await world.controller.status?.commitSubject == "Thermostat 2.5.0 for the canary")
        #expect(await world.controller.status?.commitAuthor == "Ada")
        #expect(await world.controller.status?.commitURL == "memory://commit/\(commit)", "the commit's page on the fleet's forge")
        let deployments = try await world.store.deployments(project: "acme-climate", limit: 10)
        #expect(deployments.map(\.app) == ["thermostat"])
        #expect(deployments.first?.version == "2.5.0")
        // The first wave: 25% of four canaries.
        #expect(try await world.store.executions(deploymentID: try #require(deployments.first).id).count == 1)

        #expect(world.forge.settings.map(\.repository) == ["acme/fleet"])
        #expect(world.forge.state(of: "flotilla/thermostat", on: commit.description) == .pending)
        #expect(world.forge.posts.first?.targetURL == "memory://flotilla/status/STATUS.md")
        let note = try #require(world.repository.note(on: commit))
        #expect(note.contains("thermostat"), "\(note)")
        let status = try #require(world.repository.statusFiles(on: "flotilla/status"))
        #expect(status.keys.sorted() == ["STATUS.md", "status.json"])
    }

    @Test func anInvalidHeadChangesNothingAndSaysWhereAndWhy() async throws {
        let world = try await World()
        let good = world.repository.commit(Self.template)
        await world.pass()
        var broken = Self.template
        broken["apps/thermostat.yaml"] = broken["apps/thermostat.yaml"]!.replacingOccurrences(of: "selfHeal: true", with: "selfHeal: sometimes")
        let bad = world.repository.commit(broken)
        await world.pass()

        #expect(await world.controller.desired?.commit == good)
        #expect(await world.controller.head == bad)
        let note = try #require(world.repository.note(on: bad))
        #expect(note.contains("does not validate") && note.contains("apps/thermostat.yaml:"), "\(note)")
        #expect(note.contains("The desired state stays at \(good)"))
        #expect(world.forge.state(of: "flotilla/thermostat", on: bad.description) == .failure)
        #expect(try await world.store.deployments(project: "acme-climate", limit: 10).count == 1)
    }

    @Test func anUnreachableRemoteOrForgeLeavesTheStateInForce() async throws {
        let world = try await World()
        let good = world.repository.commit(Self.template)
        world.forge.setFailing(true)
        await world.pass()
        // The forge failing does not stop the rollout.
        #expect(try await world.store.deployments(project: "acme-climate", limit: 10).count == 1)
        world.repository.setUnreachable(true)
        var bumped = Self.template
        bumped["apps/thermostat.yaml"] = bumped["apps/thermostat.yaml"]!.replacingOccurrences(of: "version: 2.5.0", with: "version: 2.6.0")
        world.repository.commit(bumped)
        await world.pass()
        #expect(await world.controller.desired?.commit == good)
        world.repository.setUnreachable(false)
        await world.pass()
        #expect(await world.controller.desired?.commit != good)
    }

    /// A target with `approval: required` waits, pending on the forge, until its digest is approved.
    @Test func anApprovalOpensATargetsGate() async throws {
        let world = try await World()
        for index in 1...2 {
            _ = try await world.store.enroll(DeviceRecord(id: "berlin-\(index)", project: "acme-climate", name: "berlin-\(index)", hardwareID: "hwb-\(index)",
                                                          secretHash: "", reportedTags: ["ring": "main", "hw": "rpi4", "site": "berlin"],
                                                          apps: ["thermostat": InstalledApp(version: "2.3.9")], enrolledAt: Date(), lastHeartbeatAt: Date()))
        }
        var files = Self.template
        files["apps/thermostat.yaml"] = files["apps/thermostat.yaml"]!.replacingOccurrences(of: "  - group: europe\n", with: "  - group: europe\n    approval: required\n")
            .replacingOccurrences(of: "    after: canary", with: "    # after: canary") // the world's canary devices never finish
        let commit = world.repository.commit(files)
        await world.pass()
        let waiting = try #require(await world.controller.status?.apps.first { $0.name == "thermostat" }?.targets.first { $0.group == "europe" })
        #expect(waiting.state == "waiting")
        #expect(waiting.reason?.contains("flotilla approve thermostat europe") == true, "\(waiting.reason ?? "")")
        #expect(try await world.store.deployments(project: "acme-climate", limit: 10).allSatisfy { $0.group != "europe" })
        #expect(world.forge.state(of: "flotilla/thermostat", on: commit.description) == .pending)

        let target = try #require(await world.controller.target(app: "thermostat", group: "europe"))
        #expect(target.approval && target.version == "2.4.1")
        _ = try await world.store.approve(ApprovalRecord(project: "acme-climate", app: "thermostat", group: "europe", digest: target.digest,
                                                         approvedBy: "operator:test", approvedAt: Date()))
        await world.pass()
        #expect(try await world.store.deployments(project: "acme-climate", limit: 10).contains { $0.group == "europe" && $0.version == "2.4.1" })
    }

    @Test func withAllowedSignersAnUnsignedHeadIsRefused() async throws {
        let world = try await World(trusted: TrustedKeys(sshAllowedSigners: "/dev/null"))
        let unsigned = world.repository.commit(Self.template)
        await world.pass()
        #expect(await world.controller.desired == nil)
        #expect(world.repository.note(on: unsigned)?.contains("is not signed by an allowed signer") == true)
        let signed = world.repository.commit(Self.template, signed: .good)
        await world.pass()
        #expect(await world.controller.desired?.commit == signed)
    }
}
