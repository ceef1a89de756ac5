import PackagePlugin

/// Compiles docs/openapi.json into the target that serves it, so the document in the repository is
/// the only copy and the binary needs no resource bundle beside it at run time.
@main
struct EmbedOpenAPI: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let document = context.package.directoryURL.appending(path: "docs").appending(path: "openapi.json")
        let output = context.pluginWorkDirectoryURL.appending(path: "OpenAPIDocument.swift")
        return [
            .buildCommand(
                displayName: "Embedding docs/openapi.json",
                executable: try context.tool(named: "embed-text").url,
                arguments: [document.path, output.path, "OpenAPIDocument", "json"],
                inputFiles: [document],
                outputFiles: [output]
            ),
        ]
    }
}
