import ArgumentParser
import FleetCore
import FleetServer
import Foundation

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
