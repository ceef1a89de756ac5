public import ArgumentParser
import FleetCore
import Foundation

/// `flotilla`: GitOps for fleets of IoT and edge devices.
public struct FlotillaCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "flotilla",
        abstract: "GitOps for fleets of IoT and edge devices.",
        discussion: """
            Exit status: 0 success (for plan: nothing would change), 1 plan would change devices, \
            2 invalid input or error.
            """,
        version: FlotillaVersion.current,
        subcommands: [ValidateCommand.self, PlanCommand.self, SchemaCommand.self, ServeCommand.self, TokenCommand.self, SimCommand.self, StatusCommand.self, ReconcileCommand.self, SuspendCommand.self, ResumeCommand.self, ApproveCommand.self, DevicesCommand.self, DeploymentsCommand.self, AuditCommand.self, SecretCommand.self, ExecCommand.self, FetchCommand.self]
    )

    public init() {}

    /// Runs the command line and exits with a status scripts can rely on: argument errors are 2, like every other bad input.
    public static func runMain(_ arguments: [String]? = nil) async -> Never {
        do {
            var command = try parseAsRoot(arguments)
            if var asynchronous = command as? any AsyncParsableCommand {
                try await asynchronous.run()
            } else {
                try command.run()
            }
            Foundation.exit(0)
        } catch let code as ExitCode {
            Foundation.exit(code.rawValue)
        } catch let error as CLIError {
            Output.error("error: \(error.message)")
            Foundation.exit(2)
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if code == .success {
                if !message.isEmpty { print(message) }
                Foundation.exit(0)
            }
            Output.error(message)
            Foundation.exit(2)
        }
    }
}

public enum FlotillaVersion {
    public static let current = "0.1.0"
}

/// Output formats shared by the commands.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, markdown
}

enum Output {
    static func error(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Prints diagnostics compiler-style on stderr, one per line, with a count at the end.
    static func report(_ diagnostics: [Diagnostic]) {
        for diagnostic in diagnostics { error(diagnostic.description) }
        error("\(diagnostics.count) error\(diagnostics.count == 1 ? "" : "s")")
    }
}
