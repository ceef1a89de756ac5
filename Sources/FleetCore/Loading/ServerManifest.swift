/// `flotilla serve --config server.yaml`: the projects one server runs, each with its own fleet
/// repository, branch, credentials, webhook secret, forge and trusted signers. The operator of
/// the server writes it, never a fleet repository: what it says (where the forge token goes, who
/// may sign) is what a repository cannot claim for itself.
///
/// ```yaml
/// projects:
///   - name: acme-climate
///     repository: https://git.example.com/acme/fleet.git
///     branch: main
///     pollInterval: 15s
///     git: { tokenFile: secrets/acme-git-token, user: x-access-token }
///     webhookSecretFile: secrets/acme-webhook
///     forge: { kind: github, repository: acme/fleet, tokenFile: secrets/acme-forge-token }
///     signers: { allowedSigners: keys/acme-allowed-signers }
/// ```
///
/// Paths are as written; the command line resolves them against the file's folder.
public struct ServerManifest: Sendable, Equatable {
    public struct Project: Sendable, Equatable {
        public var name: String
        /// A path, file://, git://, https:// or ssh:// URL.
        public var repository: String
        public var branch = "main"
        public var pollInterval: Duration?
        /// A file holding the HTTPS token for the repository, and the user name sent with it.
        public var gitTokenFile: Located<String>?
        public var gitUser: String?
        /// A file holding the secret this project's push webhooks (`/hooks/git/<name>`) are signed with.
        public var webhookSecretFile: Located<String>?
        public var forge: StatusSettings.Forge?
        public var forgeRepository: String?
        public var forgeAPIURL: String?
        public var forgeTokenFile: Located<String>?
        public var forgeAllowHTTP = false
        public var statusContextPrefix: String?
        /// Notes and the status branch are written into the repository unless this is false.
        public var writeStatus = true
        /// An OpenSSH allowed-signers file and an OpenPGP keyring: only heads signed by their keys roll out.
        public var allowedSigners: Located<String>?
        public var gpgKeyring: Located<String>?
        public var location: SourceLocation

        public init(name: String, repository: String, location: SourceLocation) {
            self.name = name
            self.repository = repository
            self.location = location
        }

        /// The files this project's settings name, with where each was named.
        public var files: [(key: String, path: Located<String>)] {
            [("git.tokenFile", gitTokenFile), ("webhookSecretFile", webhookSecretFile), ("forge.tokenFile", forgeTokenFile),
             ("signers.allowedSigners", allowedSigners), ("signers.gpgKeyring", gpgKeyring)]
                .compactMap { key, path in path.map { (key, $0) } }
        }
    }

    public var projects: [Project]

    public init(projects: [Project]) {
        self.projects = projects
    }

    static let keys = ["projects"]
    static let projectKeys = ["name", "repository", "branch", "pollInterval", "git", "webhookSecretFile", "forge", "status", "signers"]
    static let gitKeys = ["tokenFile", "user"]
    static let forgeKeys = ["kind", "repository", "apiURL", "tokenFile", "allowHttp"]
    static let statusKeys = ["contextPrefix", "writeToRepository"]
    static let signerKeys = ["allowedSigners", "gpgKeyring"]

    /// Reads a server configuration, or every problem in it, each at its `file:line:column`.
    public static func decode(_ bytes: [UInt8], path: String) -> Result<ServerManifest, FleetValidationError> {
        let documents: [YAMLNode]
        switch YAMLReader.documents(in: bytes, path: path) {
        case .success(let read): documents = read
        case .failure(let problem): return .failure(FleetValidationError(diagnostics: [problem]))
        }
        let start = SourceLocation(path: path, line: 1, column: 1)
        guard documents.count == 1, let root = documents.first else {
            return .failure(FleetValidationError(diagnostics: [Diagnostic(start, documents.isEmpty
                ? "the server configuration is empty; it lists 'projects:'" : "expected one YAML document, found \(documents.count)")]))
        }
        let sink = DiagnosticSink()
        let decoder = DocumentDecoder(sink: sink)
        var projects: [Project] = []
        if let fields = Fields(root, owner: "the server configuration", known: keys, sink: sink) {
            let items = fields.sequence("projects")
            if items == nil, !fields.hasUnknownKeys { _ = fields.required("projects") }
            if let items, items.isEmpty, let node = fields["projects"] { sink.error(node.location, "'projects' lists no project") }
            projects = (items ?? []).compactMap { decoder.decodeServerProject($0) }
        }
        checkDistinct(projects, sink)
        return sink.isEmpty ? .success(ServerManifest(projects: projects)) : .failure(FleetValidationError(diagnostics: sink.diagnostics))
    }

    /// Two projects of one name would share their tokens and devices; two that report into one
    /// repository branch under one prefix would overwrite each other's notes and statuses.
    private static func checkDistinct(_ projects: [Project], _ sink: DiagnosticSink) {
        var names: [String: SourceLocation] = [:]
        var reporters: [String: String] = [:]
        for project in projects {
            if let first = names[project.name] {
                sink.error(project.location, "project '\(project.name)' is listed twice (first at \(first.line):\(first.column))")
            }
            names[project.name] = names[project.name] ?? project.location
            // An unset prefix is fleet.yaml's, `flotilla` unless it says otherwise; one repository
            // may be written several ways.
            let key = "\(sameRepository(project.repository))\n\(project.statusContextPrefix ?? StatusSettings().contextPrefix)"
            let reports = project.writeStatus || project.forge != nil || project.forgeTokenFile != nil
            if reports, let other = reporters[key] {
                sink.error(project.location, "projects '\(other)' and '\(project.name)' read one repository with the same status "
                           + "context prefix, so each would overwrite the other's notes and statuses; give one 'status: {contextPrefix: …}'")
            }
            if reports { reporters[key] = reporters[key] ?? project.name }
        }
    }
}

extension ServerManifest {
    /// A repository's text reduced so that the usual ways of writing one repository compare
    /// equal: a trailing '/' or '.git', a leading './', the case of a URL's host.
    static func sameRepository(_ text: String) -> String {
        var text = text
        while text.hasSuffix("/") { text.removeLast() }
        if text.hasSuffix(".git") { text.removeLast(4) }
        while text.hasPrefix("./") { text.removeFirst(2) }
        let parts = text.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        if parts.count >= 3, parts[0].hasSuffix(":"), parts[1].isEmpty {
            // scheme://host/path: the scheme and the host are not case-sensitive.
            return ([parts[0].lowercased(), "", parts[2].lowercased()] + parts.dropFirst(3).map(String.init)).joined(separator: "/")
        }
        return text
    }
}

extension DocumentDecoder {
    func decodeServerProject(_ node: YAMLNode) -> ServerManifest.Project? {
        guard let fields = Fields(node, owner: "a project", known: ServerManifest.projectKeys, sink: sink) else { return nil }
        let name = fields.requiredString("name")
        if let name, let problem = Self.nameProblem(name.value) {
            sink.error(name.location, "invalid project name '\(name.value)': \(problem)")
        }
        let repository = fields.requiredString("repository")
        if let repository, repository.value.isEmpty || repository.value.contains(where: { $0.isNewline || $0 == " " }) {
            sink.error(repository.location, "'repository' must be a path or a URL without spaces")
        }
        guard let name, let repository else { return nil }
        var project = ServerManifest.Project(name: name.value, repository: repository.value, location: node.location)
        if let branch = fields.string("branch") {
            if let problem = ServerManifest.branchProblem(branch.value) { sink.error(branch.location, "invalid branch '\(branch.value)': \(problem)") }
            project.branch = branch.value
        }
        if let interval = fields.duration("pollInterval") {
            if interval < .seconds(1), let location = fields["pollInterval"]?.location {
                sink.error(location, "'pollInterval' must be at least 1s")
            }
            project.pollInterval = interval
        }
        project.webhookSecretFile = file(fields, "webhookSecretFile")
        if let node = fields["git"], let git = Fields(node, owner: "git", known: ServerManifest.gitKeys, sink: sink) {
            project.gitTokenFile = file(git, "tokenFile")
            project.gitUser = git.string("user")?.value
        }
        if let node = fields["forge"], let forge = Fields(node, owner: "forge", known: ServerManifest.forgeKeys, sink: sink) {
            project.forge = choice(forge, "kind")
            if let repository = forge.string("repository") {
                if let problem = StatusSettings.repositoryProblem(repository.value) {
                    sink.error(repository.location, "invalid 'repository': \(problem)")
                }
                project.forgeRepository = repository.value
            }
            if let api = forge.string("apiURL") {
                if !(api.value.hasPrefix("https://") || api.value.hasPrefix("http://")) || api.value.contains(" ") {
                    sink.error(api.location, "'apiURL' must be an http(s) URL, not '\(api.value)'")
                }
                project.forgeAPIURL = api.value
            }
            project.forgeTokenFile = file(forge, "tokenFile")
            project.forgeAllowHTTP = forge.bool("allowHttp") ?? false
            if let kind = project.forge, kind != .none, project.forgeRepository == nil {
                sink.error(forge.keyLocation("kind") ?? node.location, "forge.kind is '\(kind.rawValue)' but forge.repository is not set")
            }
            // The token goes where this file says, never where the repository's fleet.yaml does.
            if project.forgeTokenFile != nil, project.forge == nil || project.forge == StatusSettings.Forge.none {
                sink.error(forge.keyLocation("tokenFile") ?? node.location,
                           "forge.tokenFile needs forge.kind and forge.repository: the server's file, not the repository, says where the token goes")
            }
        }
        if let node = fields["status"], let status = Fields(node, owner: "status", known: ServerManifest.statusKeys, sink: sink) {
            if let prefix = status.string("contextPrefix") {
                if let problem = StatusSettings.contextPrefixProblem(prefix.value) { sink.error(prefix.location, "'contextPrefix' \(problem)") }
                project.statusContextPrefix = prefix.value
            }
            project.writeStatus = status.bool("writeToRepository") ?? true
        }
        if let node = fields["signers"], let signers = Fields(node, owner: "signers", known: ServerManifest.signerKeys, sink: sink) {
            project.allowedSigners = file(signers, "allowedSigners")
            project.gpgKeyring = file(signers, "gpgKeyring")
        }
        return project
    }

    private func file(_ fields: Fields, _ key: String) -> Located<String>? {
        guard let path = fields.string(key) else { return nil }
        guard !path.value.isEmpty, !path.value.contains("\0") else {
            sink.error(path.location, "'\(key)' must name a file")
            return nil
        }
        return path
    }
}

extension ServerManifest {
    /// Why `branch` is not a branch name git takes, or nil when it is (the rules of
    /// git check-ref-format, for a name under refs/heads/).
    static func branchProblem(_ branch: String) -> String? {
        if branch.isEmpty { return "empty" }
        if branch.hasPrefix("refs/") { return "give the branch's name, without refs/heads/" }
        if branch.hasPrefix("-") || branch.hasPrefix("/") || branch.hasSuffix("/") || branch.hasSuffix(".") { return "it cannot start with '-' or '/' or end with '/' or '.'" }
        if branch.contains("..") || branch.contains("//") || branch.contains("@{") || branch == "@" { return "'..', '//' and '@{' are not allowed" }
        if branch.split(separator: "/").contains(where: { $0.hasPrefix(".") || $0.hasSuffix(".lock") }) {
            return "no part may start with '.' or end with '.lock'"
        }
        if branch.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f || " ~^:?*[\\".unicodeScalars.contains($0) }) {
            return "spaces, control characters and ~ ^ : ? * [ \\ are not allowed"
        }
        return nil
    }
}

extension StatusSettings {
    /// A context prefix also names a notes ref and a branch, so it is kept to characters git
    /// takes anywhere: why `prefix` is not one, or nil when it is.
    public static func contextPrefixProblem(_ prefix: String) -> String? {
        guard !prefix.isEmpty, prefix.count <= 64, !prefix.hasPrefix("."), !prefix.hasPrefix("-"),
              prefix.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) })
        else { return "must be 1 to 64 letters, digits, '.', '_' or '-', not starting with '.' or '-'" }
        return nil
    }
}
