@testable import FleetCore
import Testing

/// `serve --config`: what a server configuration says, and every mistake in one at its place.
struct ServerManifestTests {
    static func decode(_ text: String) -> Result<ServerManifest, FleetValidationError> {
        ServerManifest.decode(Array(text.utf8), path: "server.yaml")
    }

    @Test func readsEveryProjectSetting() throws {
        let manifest = try Self.decode("""
            projects:
              - name: acme
                repository: https://git.example.com/acme/fleet.git
                branch: production
                pollInterval: 30s
                git: {tokenFile: secrets/acme-git, user: x-access-token}
                webhookSecretFile: secrets/acme-hook
                forge: {kind: github, repository: acme/fleet, apiURL: https://ghe.example.com/api/v3, tokenFile: secrets/acme-forge}
                status: {contextPrefix: prod, writeToRepository: false}
                signers: {allowedSigners: keys/acme, gpgKeyring: keys/acme.gpg}
              - name: beta
                repository: ./beta
            """).get()
        #expect(manifest.projects.map(\.name) == ["acme", "beta"])
        let acme = manifest.projects[0]
        #expect(acme.branch == "production" && acme.pollInterval == .seconds(30))
        #expect(acme.gitTokenFile?.value == "secrets/acme-git" && acme.gitUser == "x-access-token")
        #expect(acme.forge == .github && acme.forgeRepository == "acme/fleet" && acme.forgeAPIURL == "https://ghe.example.com/api/v3")
        #expect(acme.statusContextPrefix == "prod" && !acme.writeStatus && !acme.forgeAllowHTTP)
        #expect(acme.files.map(\.key) == ["git.tokenFile", "webhookSecretFile", "forge.tokenFile", "signers.allowedSigners", "signers.gpgKeyring"])
        #expect(acme.webhookSecretFile?.location.line == 7)
        let beta = manifest.projects[1]
        #expect(beta.branch == "main" && beta.pollInterval == nil && beta.writeStatus && beta.files.isEmpty)
    }

    @Test(arguments: [
        ("", "server.yaml:1:1: error: the server configuration is empty"),
        ("projects: []", "server.yaml:1:11: error: 'projects' lists no project"),
        ("project:\n  - name: a", "server.yaml:1:1: error: unknown key 'project' in the server configuration; did you mean 'projects'?"),
        ("projects:\n  - repository: /r", "server.yaml:2:5: error: missing required key 'name' in a project"),
        ("projects:\n  - {name: Acme, repository: /r}", "server.yaml:2:12: error: invalid project name 'Acme'"),
        ("projects:\n  - {name: a, repository: /r, pollIntervall: 1s}", "server.yaml:2:31: error: unknown key 'pollIntervall' in a project; did you mean 'pollInterval'?"),
        ("projects:\n  - {name: a, repository: /r, pollInterval: 0s}", "server.yaml:2:45: error: 'pollInterval' must be at least 1s"),
        ("projects:\n  - {name: a, repository: /r, pollInterval: 1ms}", "'pollInterval' must be at least 1s"),
        ("projects:\n  - {name: a, repository: /r, branch: refs/heads/main}", "give the branch's name, without refs/heads/"),
        ("projects:\n  - {name: a, repository: /r, branch: 'a..b'}", "'..', '//' and '@{' are not allowed"),
        ("projects:\n  - {name: a, repository: /r, branch: x.lock}", "no part may start with '.' or end with '.lock'"),
        ("projects:\n  - {name: a, repository: /r, branch: 'a~1'}", "are not allowed"),
        ("projects:\n  - {name: a, repository: /r, forge: {tokenFile: t}}", "forge.tokenFile needs forge.kind and forge.repository"),
        ("projects:\n  - {name: a, repository: /r}\n  - {name: b, repository: /r.git/, status: {contextPrefix: flotilla}}",
         "projects 'a' and 'b' read one repository with the same status context prefix"),
        ("projects:\n  - {name: a, repository: 'https://Git.Example.com/x'}\n  - {name: b, repository: 'https://git.example.com/x.git'}",
         "projects 'a' and 'b' read one repository"),
        ("projects:\n  - {name: a, repository: /r, branch: '-x'}", "server.yaml:2:39: error: invalid branch '-x'"),
        ("projects:\n  - {name: a, repository: 'two words'}", "server.yaml:2:27: error: 'repository' must be a path or a URL without spaces"),
        ("projects:\n  - {name: a, repository: /r, forge: {kind: github}}", "forge.kind is 'github' but forge.repository is not set"),
        ("projects:\n  - {name: a, repository: /r, forge: {kind: bitbucket, repository: x}}", "invalid value 'bitbucket' for 'kind'"),
        ("projects:\n  - {name: a, repository: /r, forge: {kind: gitea, repository: x, apiURL: 'ftp://x'}}", "'apiURL' must be an http(s) URL"),
        ("projects:\n  - {name: a, repository: /r, status: {contextPrefix: 'a/b'}}", "'contextPrefix' must be 1 to 64 letters"),
        ("projects:\n  - {name: a, repository: /r, forge: {kind: github, repository: 'acme/../admin'}}", "error: invalid 'repository'"),
        ("projects:\n  - {name: a, repository: /r, git: {tokenFile: ''}}", "'tokenFile' must name a file"),
        ("projects:\n  - {name: a, repository: /r}\n  - {name: a, repository: /s}", "server.yaml:3:5: error: project 'a' is listed twice (first at 2:5)"),
        ("projects:\n  - {name: a, repository: /r}\n  - {name: b, repository: /r}", "projects 'a' and 'b' read one repository with the same status context prefix"),
        ("projects:\n  - {name: a, repository: !custom /r}", "server.yaml:2:27: error:"),
    ])
    func reportsEachMistakeAtItsPlace(text: String, message: String) {
        switch Self.decode(text) {
        case .success: Issue.record("accepted: \(text)")
        case .failure(let error): #expect(error.description.contains(message), "\(error)")
        }
    }

    /// Two projects may share a repository when they report under different prefixes (staging
    /// and production reading one repository on two branches, say).
    @Test func oneRepositoryUnderTwoPrefixesIsFine() throws {
        let manifest = try Self.decode("""
            projects:
              - {name: staging, repository: /r, branch: staging, status: {contextPrefix: staging}}
              - {name: production, repository: /r}
            """).get()
        #expect(manifest.projects.count == 2)
    }

    @Test func everyProblemIsReportedAtOnce() {
        guard case .failure(let error) = Self.decode("""
            projects:
              - {name: A, repository: /r}
              - {name: b, repository: /s, pollInterval: soon}
            """) else { Issue.record("accepted"); return }
        #expect(error.diagnostics.map(\.location.line) == [2, 3], "\(error)")
    }
}
