import ArgumentParser
import FleetCore

/// `flotilla schema`: the JSON Schema of the repository's YAML files.
struct SchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "schema",
        abstract: "Print the JSON Schema (draft 2020-12) of fleet repository files, for editors."
    )

    func run() {
        print(FleetSchema.document().serialized(pretty: true))
    }
}
