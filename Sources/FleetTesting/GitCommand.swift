package import FleetGit
import Foundation

/// The git command line, run as a user would, with a fixed identity and no global config.
public enum GitCommand {
    public struct Failure: Error, CustomStringConvertible {
        public var arguments: [String]
        public var status: Int32
        public var output: String
        public var description: String { "git \(arguments.joined(separator: " ")) exited \(status): \(output)" }
    }

    /// Runs `git` with `arguments` in `directory`; returns its standard output, trimmed.
    @discardableResult
    public static func run(_ arguments: [String], in directory: String? = nil, input: String? = nil) throws -> String {
        var environment = ProcessInfo.processInfo.environment
        environment["GIT_CONFIG_NOSYSTEM"] = "1"
        environment["GIT_CONFIG_GLOBAL"] = "/dev/null"
        environment["GIT_TERMINAL_PROMPT"] = "0"
        let fullArguments = ["-c", "user.name=Fleet Operator", "-c", "user.email=operator@example.com",
                             "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "advice.detachedHead=false"] + arguments
        let result = try ChildProcess.run("/usr/bin/git", fullArguments, directory: directory, environment: environment,
                                          input: Array((input ?? "").utf8))
        let text = result.outputText.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0 else {
            throw Failure(arguments: arguments, status: result.status, output: text + result.errorText)
        }
        return text
    }
}
