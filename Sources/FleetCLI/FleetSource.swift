import ArgumentParser
import FleetCore
import FleetGit
import Foundation

/// Where a command reads the fleet repository from: a directory (optionally at a git revision
/// of the repository it is in), or a remote fetched into a local cache.
struct FleetSource: ParsableArguments {
    @Argument(help: "The fleet repository's root directory (ignored with --repo).")
    var directory: String = "."

    @Option(help: ArgumentHelp("Read the repository from this git remote instead of a directory: a path, file://, git://, https:// or ssh:// URL.",
                               discussion: "An HTTPS token is read from the FLOTILLA_GIT_TOKEN environment variable."))
    var repo: String?

    @Option(help: "The branch or tag to read with --repo.")
    var ref: String = "main"

    @Option(help: "Where remotes are cached (default: $XDG_CACHE_HOME/flotilla/git or ~/.cache/flotilla/git).")
    var cache: String?

    @Option(help: "Private key file for ssh:// remotes.")
    var sshKey: String?

    @Option(help: "The ssh server's host key fingerprint (SHA256:…), as ssh-keygen -lf prints it.")
    var sshHostKey: String?

    func validate() throws {
        if repo == nil, sshKey != nil || sshHostKey != nil || cache != nil {
            throw ValidationError("--ssh-key, --ssh-host-key and --cache go with --repo")
        }
    }

    /// The files at `revision` (nil: the directory as it is, or the remote's --ref).
    func tree(at revision: String? = nil) throws -> FleetTree {
        do {
            guard let repo else {
                guard let revision else { return try FleetDirectory.read(directory) }
                let repository = try GitRepository.open(directory)
                return try repository.fleetTree(at: try repository.resolve(revision))
            }
            let mirror = try self.mirror(repo)
            guard let revision else { return try mirror.fleetTree(at: try mirror.fetch(ref).commit) }
            if CommitID(revision) == nil {
                do {
                    return try mirror.fleetTree(at: try mirror.fetch(revision).commit)
                } catch where error.code == .notFound {
                    // Not a branch or tag: a revision such as main~1, resolved after fetching --ref.
                }
            }
            _ = try mirror.fetch(ref)
            return try mirror.fleetTree(at: try mirror.resolve(revision))
        } catch let error as GitError {
            throw CLIError(error.description)
        }
    }

    private func mirror(_ url: String) throws(GitError) -> GitMirror {
        let environment = ProcessInfo.processInfo.environment
        let credentials = GitCredentials(token: environment["FLOTILLA_GIT_TOKEN"], username: environment["FLOTILLA_GIT_USER"],
                                         sshPrivateKey: sshKey, sshHostKeyFingerprint: sshHostKey)
        return try GitMirror(url: url, cacheDirectory: cache ?? Self.defaultCache(environment), credentials: credentials)
    }

    static func defaultCache(_ environment: [String: String]) -> String {
        if let xdg = environment["XDG_CACHE_HOME"], !xdg.isEmpty { return xdg + "/flotilla/git" }
        return (environment["HOME"] ?? NSTemporaryDirectory()) + "/.cache/flotilla/git"
    }

    /// Loads and validates; on failure prints the diagnostics in `format` and exits 2.
    func load(at revision: String? = nil, format: OutputFormat) throws -> CompiledFleet {
        let tree = try self.tree(at: revision)
        do {
            return try FleetLoader.load(tree)
        } catch {
            if format == .json {
                print(DiagnosticRenderer.json(error.diagnostics).serialized(pretty: true))
            } else {
                if let revision { Output.error("at \(revision):") }
                Output.report(error.diagnostics)
            }
            throw ExitCode(2)
        }
    }
}
