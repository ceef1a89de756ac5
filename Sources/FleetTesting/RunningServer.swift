package import FleetGit
public import Foundation
#if canImport(FoundationNetworking)
public import FoundationNetworking
#endif
import Glibc
import Synchronization

/// A real `flotilla serve` on a free loopback port, with its own data directory, an enrollment
/// token and an operator token made by `flotilla token create` before it starts. Killed with
/// SIGKILL when dropped (or by `kill()`, as a crash or a pulled cable would); `start()` brings it
/// back on the same port and data. The one way the end-to-end suites start a server.
public final class RunningServer: Sendable {
    /// The server's data directory (`--data`).
    public let data: String
    public let port: Int
    public let project: String
    public let enrollmentToken: String
    public let operatorToken: String
    public var base: String { "http://127.0.0.1:\(port)" }
    /// Where its standard output and errors go: `data/serve.log` unless a test says otherwise.
    public let logPath: String

    private let arguments: [String]
    private let environment: [String: String]
    private let pid = Mutex<Int32>(0)

    /// Makes the tokens and starts the server. `flags` follow `serve --data … --listen …`.
    /// With `database` (a postgres:// URL), tokens are made in it and the server runs on it.
    public init(data: String, project: String = "acme", enrollmentGroup: String? = nil, database: String? = nil, flags: [String] = [],
                environment: [String: String] = [:], logPath: String? = nil) throws {
        self.data = data
        self.project = project
        self.environment = environment
        self.logPath = logPath ?? data + "/serve.log"
        port = try GitDaemon.freePort()
        let databaseFlags = database.map { ["--database", $0] } ?? []
        func token(_ extra: [String]) throws -> String {
            let made = try ChildProcess.run(TestPackage.binary("flotilla"), ["token", "create", "--project", project, "--data", data] + databaseFlags + extra)
            guard made.status == 0 else { throw SetupFailed("flotilla token create: \(made.errorText)") }
            return made.outputText.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        enrollmentToken = try token(enrollmentGroup.map { ["--group", $0] } ?? [])
        operatorToken = try token(["--operator"])
        arguments = ["serve", "--data", data, "--listen", "127.0.0.1:\(port)"] + databaseFlags + flags
        try start()
    }

    /// Starts (or restarts) the server and waits until it listens.
    public func start() throws {
        let started = try ChildProcess.start(TestPackage.binary("flotilla"), arguments, environment: environment, logPath: logPath)
        pid.withLock { $0 = started }
        // A server that refuses to start exits: that is said at once, not after the wait.
        var listening = false
        for _ in 0..<100 {
            listening = GitDaemon.waitUntilListening(port: port, seconds: 0.1)
            if listening { break }
            if ChildProcess.exitStatus(started) != nil {
                pid.withLock { $0 = 0 }
                break
            }
        }
        guard listening else {
            let log = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
            throw SetupFailed("flotilla serve did not listen on \(port): \(log.suffix(2_000))")
        }
    }

    /// SIGKILL, and reaped.
    public func kill() {
        let running = pid.withLock { pid in defer { pid = 0 }; return pid }
        if running > 0 { ChildProcess.kill(running) }
    }

    /// SIGTERM, as an init system stops it; its exit status once it has exited, nil when it did
    /// not within `seconds`.
    public func terminate(seconds: Double = 15) async throws -> Int32? {
        let running = pid.withLock { $0 }
        guard running > 0 else { return nil }
        Glibc.kill(running, SIGTERM)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if let status = ChildProcess.exitStatus(running) {
                pid.withLock { $0 = 0 }
                return status
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    /// Whether the process still runs (it may have exited on its own).
    public var isRunning: Bool {
        let running = pid.withLock { $0 }
        return running > 0 && ChildProcess.isRunning(running)
    }

    deinit { kill() }

    /// A request with the operator token; the status and the body parsed as a JSON object
    /// (empty when it is not one).
    public func request(_ method: String, _ path: String, json body: [String: Any]? = nil,
                        bearer: String? = nil) async throws -> (status: Int, json: [String: Any]) {
        var request = URLRequest(url: URL(string: base + path)!)
        request.httpMethod = method
        request.setValue("Bearer \(bearer ?? operatorToken)", forHTTPHeaderField: "Authorization")
        if let body {
            request.httpBody = try JSONSerialization.data(withJSONObject: body)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] ?? [:])
    }

    public func get(_ path: String) async throws -> [String: Any] { try await request("GET", path).json }

    /// The body of an unauthenticated GET as text (`/metrics`).
    public func text(_ path: String) async throws -> String {
        let (data, _) = try await URLSession.shared.data(from: URL(string: base + path)!)
        return String(decoding: data, as: UTF8.self)
    }

    public func post(_ path: String, _ body: [String: Any]) async throws -> (status: Int, json: [String: Any]) {
        try await request("POST", path, json: body)
    }
}

/// What a test needed to start could not be started; says what and why.
public struct SetupFailed: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
