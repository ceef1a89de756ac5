import ArgumentParser
import AsyncHTTPClient
import FleetCore
import FleetServer
import Foundation
import NIOCore
import NIOHTTP1

/// The operator API as the command line calls it, with the operator token from FLOTILLA_TOKEN.
struct ServerClient {
    let base: String
    let token: String

    init(server: String) throws {
        guard server.hasPrefix("http://") || server.hasPrefix("https://") else {
            throw ValidationError("--server must be an http(s) URL, e.g. http://127.0.0.1:8080")
        }
        guard let token = ProcessInfo.processInfo.environment["FLOTILLA_TOKEN"], !token.isEmpty else {
            throw ValidationError("set FLOTILLA_TOKEN to an operator token (flotilla token create --operator)")
        }
        base = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.token = token
    }

    func get(_ path: String) async throws -> Data { try await send(.GET, path) }

    func post(_ path: String, json: Data? = nil) async throws -> Data { try await send(.POST, path, json: json) }

    func put(_ path: String, json: Data) async throws -> Data { try await send(.PUT, path, json: json) }

    func delete(_ path: String) async throws -> Data { try await send(.DELETE, path) }

    /// An answer of the API as its wire type (dates in ISO 8601), or an error naming what is wrong.
    static func decode<T: Decodable>(_ type: T.Type, from body: Data) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        do {
            return try decoder.decode(type, from: body)
        } catch {
            throw CLIError("the server's answer could not be read: \(error)")
        }
    }

    private func send(_ method: HTTPMethod, _ path: String, json: Data? = nil) async throws -> Data {
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: json))
        }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        } catch {
            throw CLIError("cannot reach \(base): \(error)")
        }
        let body = Data(try await response.body.collect(upTo: 256 << 20).readableBytesView)
        guard (200..<300).contains(Int(response.status.code)) else {
            let message = ((try? JSONSerialization.jsonObject(with: body)) as? [String: [String: Any]])?["error"]?["message"] as? String
            throw CLIError("\(base)\(path): \(response.status.code) \(message ?? response.status.reasonPhrase)")
        }
        return body
    }
}

/// `flotilla status`: what the controller last saw, per app and target.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the controller's view of the fleet: per app the commit, each target's version and its device counts.",
        discussion: "Reads GET /api/v1/status with the operator token in FLOTILLA_TOKEN."
    )

    @OptionGroup var connection: ServerOptions

    @Flag(help: "Refresh in place until interrupted.")
    var watch = false

    @Option(help: "Seconds between refreshes with --watch.")
    var interval: Double = 2

    @Option(help: "text or json.")
    var format: String = "text"

    func validate() throws {
        guard ["text", "json"].contains(format) else { throw ValidationError("--format must be text or json") }
        guard interval > 0 else { throw ValidationError("--interval must be positive") }
    }

    func run() async throws {
        let client = try ServerClient(server: connection.server)
        repeat {
            let body = try await client.get("/api/v1/status")
            let text = format == "json" ? String(decoding: body, as: UTF8.self) : try Self.render(body)
            // Clear the screen and go home, so --watch refreshes in place.
            if watch { print("\u{1B}[2J\u{1B}[H", terminator: "") }
            print(text)
            if watch { try await Task.sleep(for: .seconds(interval)) }
        } while watch
    }

    static func render(_ body: Data) throws -> String {
        guard let status = try JSONSerialization.jsonObject(with: body) as? [String: Any] else { throw CLIError("the server's status could not be read") }
        var lines = ["commit \((status["commit"] as? String ?? "").prefix(12))"]
        if let head = status["head"] as? String, head != status["commit"] as? String {
            lines.append("head   \(head.prefix(12)) does not validate:")
            lines += (status["headErrors"] as? [String] ?? []).map { "  \($0)" }
        }
        for app in status["apps"] as? [[String: Any]] ?? [] {
            lines.append("")
            lines.append("\(app["name"] as? String ?? "")")
            lines.append("  GROUP                VERSION         CONVERGED  UPDATING  FAILED  OFFLINE  STATE")
            for target in app["targets"] as? [[String: Any]] ?? [] {
                lines.append("  " + (target["group"] as? String ?? "").column(20) + " " + (target["version"] as? String ?? "").column(15) + " "
                             + "\(target["converged"] as? Int ?? 0)/\(target["devices"] as? Int ?? 0)".column(10) + " "
                             + "\(target["updating"] as? Int ?? 0)".column(9) + " " + "\(target["failed"] as? Int ?? 0)".column(7) + " "
                             + "\(target["offline"] as? Int ?? 0)".column(8) + " " + (target["state"] as? String ?? ""))
            }
            let drifted = app["drifted"] as? [String] ?? []
            if !drifted.isEmpty { lines.append("  drifted: " + drifted.joined(separator: ", ")) }
        }
        return lines.joined(separator: "\n")
    }
}

/// `flotilla reconcile`: asks the controller to poll the repository now.
struct ReconcileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reconcile",
        abstract: "Ask the controller to poll the fleet repository and reconcile now.",
        discussion: "Calls POST /api/v1/reconcile with the operator token in FLOTILLA_TOKEN."
    )

    @OptionGroup var connection: ServerOptions

    func run() async throws {
        _ = try await ServerClient(server: connection.server).post("/api/v1/reconcile")
        print("reconcile requested")
    }
}

/// `flotilla suspend APP` and `flotilla resume APP`: hold or release an app's rollouts.
struct SuspendCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suspend",
        abstract: "Hold an app's new waves, heals and rollbacks (what runs, runs on) until it is resumed.",
        discussion: "Calls POST /api/v1/apps/APP/suspend with the operator token in FLOTILLA_TOKEN. A suspension survives a restart."
    )

    @Argument(help: "The app, as named in apps/*.yaml.")
    var app: String

    @OptionGroup var connection: ServerOptions

    func run() async throws {
        _ = try await ServerClient(server: connection.server).post("/api/v1/apps/\(app)/suspend")
        print("\(app) suspended")
    }
}

struct ResumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Let a suspended app's rollouts go on.",
        discussion: "Calls POST /api/v1/apps/APP/resume with the operator token in FLOTILLA_TOKEN."
    )

    @Argument(help: "The app, as named in apps/*.yaml.")
    var app: String

    @OptionGroup var connection: ServerOptions

    func run() async throws {
        _ = try await ServerClient(server: connection.server).post("/api/v1/apps/\(app)/resume")
        print("\(app) resumed")
    }
}

/// `flotilla devices …`: operations on one device of the registry.
struct DevicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "devices",
        abstract: "Operate on devices in the server's registry.",
        subcommands: [ResetIdentity.self]
    )

    struct ResetIdentity: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-identity",
            abstract: "Revoke a device's tokens and let a replaced board take its place with a one-time claim code (audited).",
            discussion: """
                A device that enrolls again under a known hardware id must prove the device secret it enrolled with; \
                a board that was replaced cannot. This revokes every token the device holds at once, forgets its secret, \
                and prints a one-time claim code: the new board enrolls with it (flotilla-agent --claim-code CODE, or \
                claimCode in agent.yaml), sets its own secret and keeps the device's place, tags and history. Without the \
                code no board can take the identity. Calls POST /api/v1/devices/ID/reset-identity with the operator \
                token in FLOTILLA_TOKEN.
                """
        )

        @Argument(help: "The device id (d-…), as `GET /api/v1/devices` lists it.")
        var device: String

        @Option(name: .customLong("claim-expires"), help: "How long the claim code is good for: 1m to 30d.")
        var claimExpires = "24h"

        @OptionGroup var connection: ServerOptions

        func validate() throws {
            guard !device.isEmpty, device.utf8.allSatisfy({ $0 < 128 && (UInt8(ascii: "-") == $0 || UInt8(ascii: "_") == $0 || UInt8(ascii: ".") == $0
                                                                || Character(Unicode.Scalar($0)).isLetter || Character(Unicode.Scalar($0)).isNumber) }) else {
                throw ValidationError("'\(device)' is not a device id (letters, digits, '-', '_' and '.')")
            }
            _ = try claimSeconds()
        }

        private func claimSeconds() throws -> Int {
            guard case .success(let duration) = DurationText.parse(claimExpires),
                  (60...30 * 86_400).contains(Int(duration.seconds)) else {
                throw ValidationError("--claim-expires must be a duration from 1m to 30d, such as 24h, not '\(claimExpires)'")
            }
            return Int(duration.seconds)
        }

        func run() async throws {
            let body = try JSONSerialization.data(withJSONObject: ["claimExpiresInSeconds": try claimSeconds()])
            let answer = try await ServerClient(server: connection.server).post("/api/v1/devices/\(device)/reset-identity", json: body)
            let reset = try ServerClient.decode(ResetIdentityResponse.self, from: answer)
            print("""
                \(device): identity reset; every token it held is revoked.
                Claim code (shown once, good until \(reset.claimExpiresAt.ISO8601Format())):

                    \(reset.claimCode)

                Enroll the new board with: flotilla-agent --claim-code \(reset.claimCode) …
                """)
        }
    }
}

/// `--server`, shared by the commands that talk to a running server.
struct ServerOptions: ParsableArguments {
    @Option(help: "The server's base URL.")
    var server: String = "http://127.0.0.1:8080"
}

extension String {
    /// Left-aligned in a column at least `width` characters wide, for the commands' tables.
    func column(_ width: Int) -> String { padding(toLength: max(width, count), withPad: " ", startingAt: 0) }
}
