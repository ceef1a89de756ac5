import ArgumentParser
import FleetCore

/// `flotilla validate [DIR]`: load and check a fleet repository.
struct ValidateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check a fleet repository; errors print as path:line:column: error: message.",
        discussion: "Exit status: 0 when valid, 2 when not."
    )

    @OptionGroup var source: FleetSource

    @Option(help: "text or json.")
    var format: OutputFormat = .text

    func validate() throws {
        guard format != .markdown else {
            throw ValidationError("--format for validate is text or json")
        }
    }

    func run() throws {
        let fleet = try source.load(format: format)
        if format == .json {
            print(DiagnosticRenderer.json([]).serialized(pretty: true))
            return
        }
        print("valid: project \(fleet.fleet.project), \(fleet.apps.count) apps, \(fleet.groups.count) groups, "
              + "\(fleet.flows.count) flows, \(fleet.devices.count) declared devices")
    }
}
