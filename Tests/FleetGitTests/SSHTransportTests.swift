import FleetGit
import FleetTesting
import Foundation
import Testing

/// git over ssh:// against a real OpenSSH server on loopback: key authentication and a pinned
/// host key, or a clear refusal.
@Suite(.serialized)
struct SSHTransportTests {
    let server: SSHServer
    let daemon: GitDaemon
    let repository: String

    init() throws {
        server = try SSHServer()
        daemon = try GitDaemon()
        _ = try daemon.createRepository("fleet", contents: GitMirrorTests.template)
        repository = daemon.root + "/fleet.git"
    }

    func mirror(_ credentials: GitCredentials) throws -> GitMirror {
        try GitMirror(url: server.url(repository), cacheDirectory: daemon.root + "/cache", credentials: credentials)
    }

    @Test func fetchesWithAKeyAndAPinnedHostKey() throws {
        let mirror = try mirror(GitCredentials(sshPrivateKey: server.clientKey, sshHostKeyFingerprint: server.hostKeyFingerprint))
        let head = try GitCommand.run(["rev-parse", "main"], in: repository)
        #expect(try mirror.fetch("main").commit.hex == head)
    }

    @Test func refusesAnUnpinnedHostKey() throws {
        let mirror = try mirror(GitCredentials(sshPrivateKey: server.clientKey))
        let error = #expect(throws: GitError.self) { try mirror.fetch("main") }
        #expect(error?.code == .authentication)
        #expect(error?.message.hasPrefix("no SSH host key fingerprint is configured for 127.0.0.1") == true)
    }

    @Test func refusesAHostKeyThatDoesNotMatch() throws {
        let mirror = try mirror(GitCredentials(sshPrivateKey: server.clientKey,
                                               sshHostKeyFingerprint: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))
        let error = #expect(throws: GitError.self) { try mirror.fetch("main") }
        #expect(error?.message == "the SSH host key of 127.0.0.1 is \(server.hostKeyFingerprint), not the pinned SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    }

    @Test func saysWhichKeyTheServerRefused() throws {
        let stranger = daemon.root + "/stranger"
        try SSHServer.keygen(["-q", "-t", "ed25519", "-N", "", "-f", stranger])
        let mirror = try mirror(GitCredentials(sshPrivateKey: stranger, sshHostKeyFingerprint: server.hostKeyFingerprint))
        let error = #expect(throws: GitError.self) { try mirror.fetch("main") }
        #expect(error?.code == .authentication)
        #expect(error?.message == "the server refused the SSH key \(stranger)")
    }
}
