import FleetGit
import FleetTesting
import Foundation
import Testing

/// SSH-signed commits made with the git CLI, verified against an allowed-signers file.
@Suite(.serialized)
struct SignatureTests {
    let daemon: GitDaemon
    let work: WorkTree
    let keys: String

    init() throws {
        daemon = try GitDaemon()
        work = try daemon.createRepository("fleet", contents: GitMirrorTests.template)
        keys = daemon.root + "/keys"
        try FileManager.default.createDirectory(atPath: keys, withIntermediateDirectories: true)
        for name in ["operator", "stranger"] {
            try SSHServer.keygen(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", "\(keys)/\(name)"])
        }
        let operatorKey = try String(contentsOfFile: "\(keys)/operator.pub", encoding: .utf8)
        try Data("operator@example.com \(operatorKey)".utf8).write(to: URL(fileURLWithPath: "\(keys)/allowed_signers"))
    }

    var trusted: TrustedKeys { TrustedKeys(sshAllowedSigners: "\(keys)/allowed_signers") }

    /// A commit signed with `key`, made with the git CLI as an operator would.
    func signedCommit(with key: String, message: String) throws -> CommitID {
        try work.write("change.txt", message + "\n")
        try work.git("add", "--all")
        try work.git("-c", "gpg.format=ssh", "-c", "user.signingkey=\(keys)/\(key).pub", "commit", "--quiet", "-S", "-m", message)
        return CommitID(try work.git("rev-parse", "HEAD"))!
    }

    @Test func aGoodSignatureNamesItsSigner() throws {
        let commit = try signedCommit(with: "operator", message: "Bump thermostat")
        let result = try GitRepository.open(work.path).verifySignature(of: commit, trusted: trusted)
        #expect(result.verdict == .good)
        #expect(result.signer == "operator@example.com")
    }

    @Test func anUnknownKeyIsNotTrusted() throws {
        let commit = try signedCommit(with: "stranger", message: "Sneaky change")
        let result = try GitRepository.open(work.path).verifySignature(of: commit, trusted: trusted)
        #expect(result.verdict == .unknownKey)
        #expect(result.signer == nil)
    }

    @Test func aTamperedCommitHasABadSignature() throws {
        let signed = try signedCommit(with: "operator", message: "Bump thermostat")
        // Same signature header, different message: what a forged commit looks like.
        let raw = try work.git("cat-file", "commit", signed.hex)
        let forged = raw.replacingOccurrences(of: "Bump thermostat", with: "Bump thermostat to 6.6.6") + "\n"
        let forgedID = try GitCommand.run(["hash-object", "-t", "commit", "-w", "--stdin"], in: work.path, input: forged)
        let result = try GitRepository.open(work.path).verifySignature(of: CommitID(forgedID)!, trusted: trusted)
        #expect(result.verdict == .bad)
        #expect(result.signer == "operator@example.com")
    }

    @Test func anUnsignedCommitIsUnsigned() throws {
        try work.write("change.txt", "plain\n")
        let commit = CommitID(try work.commitAll("Plain commit"))!
        let repository = try GitRepository.open(work.path)
        #expect(try repository.signature(of: commit) == nil)
        #expect(try repository.verifySignature(of: commit, trusted: trusted).verdict == .unsigned)
    }

    @Test func aSignatureReadFromTheMirrorVerifiesToo() throws {
        let commit = try signedCommit(with: "operator", message: "Signed and pushed")
        try work.git("push", "--quiet", "origin", "main")
        let mirror = try GitMirror(url: daemon.url("fleet"), cacheDirectory: daemon.root + "/cache")
        #expect(try mirror.fetch("main").commit == commit)
        #expect(try mirror.verifySignature(of: commit, trusted: trusted).verdict == .good)
    }
}
