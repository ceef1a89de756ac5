import FleetController
import FleetCore
import FleetGit
import Foundation

/// `flotilla serve --config server.yaml`: reads the file, the files it names (tokens, secrets,
/// signers — relative to the file's folder), and turns each project into a controller to start.
/// Every problem is reported at once, each at its `file:line:column`; nothing starts until the
/// whole file is right.
enum ServerConfigFile {
    /// The configuration file itself is small; a larger one is a mistake.
    static let maximumBytes = 1 << 20

    static func load(path: String) throws -> ServerManifest {
        guard let handle = FileHandle(forReadingAtPath: path) else { throw CLIError("--config: cannot read '\(path)'") }
        defer { try? handle.close() }
        let bytes = Array((try? handle.read(upToCount: maximumBytes + 1)) ?? Data())
        guard bytes.count <= maximumBytes else { throw CLIError("--config: '\(path)' is over 1 MiB; a server configuration is a short list of projects") }
        switch ServerManifest.decode(bytes, path: path) {
        case .success(let manifest): return manifest
        case .failure(let error): throw CLIError(error.description)
        }
    }

    static func plans(path: String, dataDirectory: String, defaults: ServeCommand, offlineAfterSeconds: Double,
                      environment: [String: String]) throws -> [ServeCommand.ControllerPlan] {
        let manifest = try load(path: path)
        try checkNoSuspensionsLeftBehind(dataDirectory: dataDirectory)
        let ignored = repositoryVariables.filter { environment[$0] != nil }
        if !ignored.isEmpty {
            throw CLIError("\(ignored.joined(separator: ", ")) configure the repository of --repo; with --config each project names its own "
                           + "files (git.tokenFile, forge.tokenFile, webhookSecretFile): unset them")
        }
        let folder = (path as NSString).deletingLastPathComponent
        func resolved(_ file: String) -> String { file.hasPrefix("/") || folder.isEmpty ? file : folder + "/" + file }
        var problems: [Diagnostic] = []
        /// A secret file's text (trimmed), or a problem at the place that named it.
        func secret(_ named: Located<String>?, _ key: String) -> String? {
            guard let named else { return nil }
            guard let text = try? String(contentsOfFile: resolved(named.value), encoding: .utf8) else {
                problems.append(Diagnostic(named.location, "\(key): cannot read '\(resolved(named.value))'"))
                return nil
            }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { problems.append(Diagnostic(named.location, "\(key): '\(resolved(named.value))' is empty")) }
            return trimmed
        }
        func readable(_ named: Located<String>?, _ key: String) -> String? {
            guard let named else { return nil }
            let file = resolved(named.value)
            guard FileManager.default.isReadableFile(atPath: file) else {
                problems.append(Diagnostic(named.location, "\(key): cannot read '\(file)'"))
                return nil
            }
            return file
        }
        var plans: [ServeCommand.ControllerPlan] = []
        for project in manifest.projects {
            let poll = project.pollInterval ?? .milliseconds(Int(defaults.pollInterval * 1_000))
            var configuration = ControllerConfiguration(
                repository: resolvedRepository(project.repository, folder: folder), branch: project.branch,
                cacheDirectory: dataDirectory + "/projects/" + project.name + "/git", pollInterval: poll,
                reconcileInterval: .milliseconds(Int(defaults.reconcileInterval * 1_000)),
                offlineAfterSeconds: offlineAfterSeconds, writeStatus: project.writeStatus,
                credentials: GitCredentials(token: secret(project.gitTokenFile, "git.tokenFile"), username: project.gitUser),
                forgeToken: secret(project.forgeTokenFile, "forge.tokenFile"))
            configuration.project = project.name
            configuration.statusInterval = .milliseconds(Int(defaults.statusInterval * 1_000))
            configuration.statusOverrides = StatusOverrides(forge: project.forge, repository: project.forgeRepository,
                                                            apiURL: project.forgeAPIURL, contextPrefix: project.statusContextPrefix)
            configuration.allowPlainHTTPForge = project.forgeAllowHTTP
            let signers = readable(project.allowedSigners, "signers.allowedSigners")
            let keyring = readable(project.gpgKeyring, "signers.gpgKeyring")
            if signers != nil || keyring != nil { configuration.trustedSigners = TrustedKeys(sshAllowedSigners: signers, gpgKeyring: keyring) }
            plans.append(ServeCommand.ControllerPlan(configuration: configuration,
                                                     hookSecret: secret(project.webhookSecretFile, "webhookSecretFile")))
        }
        guard problems.isEmpty else { throw CLIError(FleetValidationError(diagnostics: problems).description) }
        return plans
    }

    /// A repository given as a relative path is relative to the file, like the other paths in it;
    /// what git reads as a URL or `host:path` is left as it is.
    static func resolvedRepository(_ repository: String, folder: String) -> String {
        guard !repository.hasPrefix("/"), !folder.isEmpty, (try? RemoteURL(repository))?.transport == .local else { return repository }
        return folder + "/" + repository
    }

    /// With `--repo`, suspensions live in `<data>/git`; a project of `--config` keeps its own. An
    /// operator moving to `--config` must not find a suspended app rolling out again unnoticed.
    static func checkNoSuspensionsLeftBehind(dataDirectory: String) throws {
        let file = dataDirectory + "/git/suspended-apps.json"
        guard let data = FileManager.default.contents(atPath: file),
              let names = try? JSONDecoder().decode([String].self, from: data), !names.isEmpty else { return }
        throw CLIError("\(file) holds apps suspended under serve --repo (\(names.joined(separator: ", "))); with --config each project keeps "
                       + "its own: move the file to \(dataDirectory)/projects/<project>/git/ for the project they belong to, or delete it")
    }

    /// Variables that configure the one repository of `--repo`; with `--config` each project's
    /// files do, so these would be ignored — which an operator moving over should hear about.
    static let repositoryVariables = ["FLOTILLA_GIT_TOKEN", "FLOTILLA_GIT_USER", "FLOTILLA_FORGE_TOKEN", "FLOTILLA_WEBHOOK_SECRET"]
}
