import ArgumentParser
import FleetCore
import FleetServer
import Foundation

/// `flotilla secret`: the values `secret` flow parameters name, kept by the server sealed, and
/// never shown again once set.
struct SecretCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "secret",
        abstract: "Set, list and delete the secrets flow parameters of type secret name.",
        discussion: "A secret's value is never printed, returned by the API or written to git; only a device gets it, inside its assignment.",
        subcommands: [Set.self, List.self, Delete.self]
    )

    /// The project an operator names, checked against the token's: a secret set with the wrong
    /// token must not land in another project unnoticed.
    struct Target: ParsableArguments {
        @Argument(help: "The project; the operator token in FLOTILLA_TOKEN must belong to it.")
        var project: String

        func validate() throws {
            if let problem = FleetNames.problem(project) { throw ValidationError("PROJECT: \(problem)") }
        }

        func confirm(_ client: ServerClient) async throws {
            let projects = try ServerClient.decode([String: [String]].self, from: try await client.get("/api/v1/projects"))["projects"] ?? []
            guard projects.contains(project) else {
                throw CLIError("the token in FLOTILLA_TOKEN is for project \(projects.first ?? "(none)"), not \(project)")
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Set a secret from standard input (or --from-file); one trailing newline is dropped.",
            discussion: "Calls PUT /api/v1/secrets/NAME with the operator token in FLOTILLA_TOKEN. Devices get the new value from their next assignment on; what runs keeps the value it started with."
        )

        @OptionGroup var target: Target

        @Argument(help: "The secret's name, as a flow parameter of type secret names it.")
        var name: String

        @Option(help: "Read the value from this file instead of standard input.")
        var fromFile: String?

        @OptionGroup var connection: ServerOptions

        func validate() throws {
            if let problem = FleetNames.problem(name) { throw ValidationError("NAME: \(problem)") }
        }

        func run() async throws {
            var bytes: [UInt8]
            if let fromFile {
                guard let data = FileManager.default.contents(atPath: fromFile) else { throw CLIError("--from-file: cannot read '\(fromFile)'") }
                bytes = Array(data)
            } else {
                bytes = Array(FileHandle.standardInput.readDataToEndOfFile())
            }
            if bytes.last == UInt8(ascii: "\n") { bytes.removeLast() }
            if bytes.last == UInt8(ascii: "\r") { bytes.removeLast() }
            guard !bytes.isEmpty else { throw CLIError("the secret is empty; give its value on standard input or with --from-file") }
            guard let value = String(validating: bytes, as: UTF8.self) else { throw CLIError("the secret is not UTF-8 text") }
            let client = try connection.client()
            try await target.confirm(client)
            let body = try JSONEncoder().encode(["value": value])
            let view = try ServerClient.decode(SecretController.View.self, from: try await client.put("/api/v1/secrets/\(name)", json: body))
            print("secret \(view.name) set (version \(view.version))")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "list",
            abstract: "List the project's secrets: name, version, when and by whom set — never values."
        )

        @OptionGroup var target: Target
        @OptionGroup var connection: ServerOptions

        func run() async throws {
            let client = try connection.client()
            try await target.confirm(client)
            let secrets = try ServerClient.decode([String: [SecretController.View]].self, from: try await client.get("/api/v1/secrets"))["secrets"] ?? []
            print("NAME".column(32) + "VERSION".column(9) + "UPDATED".column(22) + "BY")
            for secret in secrets {
                print(secret.name.column(32) + "\(secret.version)".column(9) + secret.updatedAt.ISO8601Format().column(22) + secret.updatedBy)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete",
            abstract: "Delete a secret (audited). Deployments that name it fail on the devices that have not taken them yet."
        )

        @OptionGroup var target: Target

        @Argument(help: "The secret's name.")
        var name: String

        @OptionGroup var connection: ServerOptions

        func validate() throws {
            if let problem = FleetNames.problem(name) { throw ValidationError("NAME: \(problem)") }
        }

        func run() async throws {
            let client = try connection.client()
            try await target.confirm(client)
            _ = try await client.delete("/api/v1/secrets/\(name)")
            print("secret \(name) deleted")
        }
    }
}
