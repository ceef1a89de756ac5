import FleetGit
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// The built binaries, found beside the test bundle.
enum Binaries {
    static let flotilla = TestPackage.binary("flotilla")
    static let agent = TestPackage.binary("flotilla-agent")
}

/// A real `flotilla serve` (FleetTesting's `RunningServer`, data in `root/server`) and what the
/// agent tests ask of it: find a device, deploy to it, follow the execution.
final class ServerUnderTest: @unchecked Sendable {
    let root: String
    let running: RunningServer
    var port: Int { running.port }
    var base: String { running.base }
    var enrollmentToken: String { running.enrollmentToken }
    var operatorToken: String { running.operatorToken }

    init(heartbeatInterval: Int = 1, flags: [String] = []) throws {
        root = try temporaryDirectory()
        running = try RunningServer(data: root + "/server", flags: ["--heartbeat-interval", "\(heartbeatInterval)"] + flags,
                                    logPath: root + "/server.log")
    }

    func start() throws { try running.start() }

    /// Stops the server the hard way, as a crash or a pulled cable would.
    func kill() { running.kill() }

    deinit {
        running.kill()
        try? FileManager.default.removeItem(atPath: root)
    }

    func get(_ path: String) async throws -> [String: Any] { try await running.get(path) }

    func post(_ path: String, _ body: [String: Any]) async throws -> (status: Int, json: [String: Any]) { try await running.post(path, body) }

    func device(hardwareID: String) async throws -> [String: Any]? {
        let devices = try await get("/api/v1/devices")["devices"] as? [[String: Any]] ?? []
        return devices.first { $0["hardwareID"] as? String == hardwareID }
    }

    /// Deploys `steps` (and `rollback`) to one device; returns the execution id.
    func deploy(to device: String, app: String = "web", version: String = "2.0.0", steps: [[String: Any]], rollback: [[String: Any]] = [],
                allowlist: [String] = []) async throws -> String {
        let created = try await post("/api/v1/deployments", [
            "app": app, "version": version, "flow": "test", "devices": [device], "digest": "digest-\(version)",
            "steps": steps, "rollback": rollback, "artifactAllowlist": allowlist,
        ])
        guard created.status == 201, let executions = created.json["executions"] as? [[String: Any]],
              let id = executions.first?["id"] as? String, let deployment = created.json["deployment"] as? [String: Any] else {
            throw TestFailure("deployment not created: \(created)")
        }
        deployments[id] = deployment["id"] as? String
        return id
    }

    private var deployments: [String: String] = [:]

    /// The execution as the server has it.
    func execution(_ id: String) async throws -> [String: Any] {
        guard let deployment = deployments[id] else { throw TestFailure("unknown execution \(id)") }
        let detail = try await get("/api/v1/deployments/\(deployment)")
        return (detail["executions"] as? [[String: Any]] ?? []).first { $0["id"] as? String == id } ?? [:]
    }

    /// Waits until the execution is final; returns it.
    func finalExecution(_ id: String, seconds: Double = 30) async throws -> [String: Any] {
        try await eventually(seconds: seconds, "execution \(id) to finish") {
            let execution = try await self.execution(id)
            let state = execution["state"] as? String ?? ""
            return ["succeeded", "failed", "timedOut", "cancelled"].contains(state) ? execution : nil
        }
    }
}

/// A real `flotilla-agent` process with its own data directory and configuration.
final class AgentUnderTest: @unchecked Sendable {
    let root: String
    let hardwareID: String
    let server: ServerUnderTest
    private(set) var pid: Int32 = 0
    var data: String { root + "/data" }
    var log: String { root + "/agent.log" }

    /// The enrollment token as the agent's environment hands it, not its configuration.
    private let tokenInEnvironment: Bool

    /// `hardwareID`: another agent's, for a board that replaces that one.
    init(server: ServerUnderTest, settings: String = "", hardwareID: String? = nil, tokenInEnvironment: Bool = false) throws {
        root = try temporaryDirectory()
        self.hardwareID = hardwareID ?? "hw-" + UUID().uuidString.prefix(8).lowercased()
        self.server = server
        self.tokenInEnvironment = tokenInEnvironment
        try write("""
            server: \(server.base)
            \(tokenInEnvironment ? "" : "enrollmentToken: " + server.enrollmentToken)
            dataDirectory: \(root)/data
            hardwareID: \(self.hardwareID)
            retryDelaySeconds: 0
            allowedRoots: [\(root)/apps]
            \(settings)
            """, to: root + "/agent.yaml")
    }

    func start(fault: String? = nil) throws {
        var environment = fault.map { ["FLOTILLA_AGENT_FAULT": $0] } ?? [:]
        if tokenInEnvironment { environment["FLOTILLA_ENROLLMENT_TOKEN"] = server.enrollmentToken }
        pid = try ChildProcess.start(Binaries.agent, ["--config", root + "/agent.yaml"], environment: environment, logPath: log)
    }

    /// Waits for the agent to end by itself; its exit status (137 after SIGKILL).
    func waitForExit(seconds: Double = 30) async throws -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let status = ChildProcess.exitStatus(pid) {
                pid = 0
                return status
            }
            guard Date() < deadline else { throw TestFailure("the agent did not stop; log:\n\(logText)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    func kill() {
        if pid > 0 { ChildProcess.kill(pid) }
        pid = 0
    }

    var logText: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    func deviceID(seconds: Double = 20) async throws -> String {
        try await eventually(seconds: seconds, "device \(hardwareID) to enroll") {
            try await self.server.device(hardwareID: self.hardwareID)?["id"] as? String
        }
    }

    deinit {
        kill()
        try? FileManager.default.removeItem(atPath: root)
    }
}

/// Runs an end-to-end test whose failure should carry the tail of its server's and agent's logs:
/// `body` says which they are once it has made them.
func failingWithLogs(_ body: (_ watch: (ServerUnderTest, AgentUnderTest) -> Void) async throws -> Void) async throws {
    var logs: (() -> String)?
    do {
        try await body { server, agent in
            logs = {
                "server log:\n" + ((try? String(contentsOfFile: server.root + "/server.log", encoding: .utf8)) ?? "").suffix(3_000)
                    + "\nagent log:\n" + agent.logText.suffix(3_000)
            }
        }
    } catch {
        throw TestFailure("\(error)\n\(logs?() ?? "")")
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

func step(_ name: String, _ command: String, onFailure: String = "rollback", idempotent: Bool = false, kind: String = "run",
          timeout: Int = 20) -> [String: Any] {
    ["name": name, "kind": kind, "command": command, "timeoutSeconds": timeout, "retries": 0, "onFailure": onFailure, "idempotent": idempotent]
}
