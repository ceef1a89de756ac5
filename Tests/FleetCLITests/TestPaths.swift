import FleetGit
import FleetTesting
import Foundation

/// Where the tests find the repository's files and the built binary.
enum TestPaths {
    static let packageRoot = TestPackage.root

    static let brokenFixtures = packageRoot + "/Tests/FleetCLITests/Fixtures/broken"
    static let template = TestPackage.template
    static let flotilla = TestPackage.binary("flotilla")

    static func temporaryDirectory() throws -> String { try TestPackage.temporaryDirectory() }
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
