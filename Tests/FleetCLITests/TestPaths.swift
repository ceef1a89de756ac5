import FleetGit
import Foundation

/// Where the tests find the repository's files and the built binary.
enum TestPaths {
    /// The package root, found from this file's place in the checkout.
    static let packageRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let brokenFixtures = packageRoot + "/Tests/FleetCLITests/Fixtures/broken"
    static let template = packageRoot + "/fleet-repo-template"

    /// The `flotilla` binary built beside the test bundle.
    static let flotilla: String = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for directory in [besideTests, besideTests.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent("flotilla").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return packageRoot + "/.build/debug/flotilla"
    }()

    /// A fresh temporary directory, removed by the caller.
    static func temporaryDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "flotilla-test-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// Runs the real `flotilla` binary, as a script or CI job would.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String

    static func run(_ arguments: [String]) throws -> CommandResult {
        let result = try ChildProcess.run(TestPaths.flotilla, arguments)
        return CommandResult(status: result.status, stdout: result.outputText, stderr: result.errorText)
    }
}
