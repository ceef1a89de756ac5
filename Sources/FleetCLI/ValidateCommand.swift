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

    /// What validate prints: plan's formats less markdown, which it has nothing to say in.
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    @Option(help: "How to print errors.")
    var format: Format = .text

    func run() throws {
        let fleet = try source.load(format: format == .json ? .json : .text)
        if format == .json {
            print(DiagnosticRenderer.json([]).serialized(pretty: true))
            return
        }
        print("valid: project \(fleet.fleet.project), \(fleet.apps.count) apps, \(fleet.groups.count) groups, "
              + "\(fleet.flows.count) flows, \(fleet.devices.count) declared devices"
              + (fleet.alertRules.isEmpty ? "" : ", \(fleet.alertRules.count) alert rules"))
    }
}
