import CLibGit2
import Foundation

/// The keys whose signatures count, as files git users already keep.
public struct TrustedKeys: Sendable {
    /// An OpenSSH allowed-signers file (`principal ssh-ed25519 AAAA…` per line).
    public var sshAllowedSigners: String?
    /// An OpenPGP keyring file (as `gpg --export` writes it).
    public var gpgKeyring: String?

    public init(sshAllowedSigners: String? = nil, gpgKeyring: String? = nil) {
        self.sshAllowedSigners = sshAllowedSigners
        self.gpgKeyring = gpgKeyring
    }
}

/// Whether a commit's signature holds, and whose it is.
public struct SignatureVerification: Sendable, Equatable {
    public enum Verdict: String, Sendable, Equatable {
        /// Signed by a trusted key, and the commit is as it was signed.
        case good
        /// Signed, but the signature does not match the commit.
        case bad
        /// Signed by a key that is not trusted, or of a kind no trusted keys were given for.
        case unknownKey
        /// Not signed at all.
        case unsigned
    }

    public var verdict: Verdict
    /// Who signed: the allowed-signers principal or the OpenPGP user id, when known.
    public var signer: String?
    /// The verifier's own words, for logs.
    public var detail: String

    public init(verdict: Verdict, signer: String?, detail: String) {
        self.verdict = verdict
        self.signer = signer
        self.detail = detail
    }
}

extension GitRepository {
    /// The signature block and the signed bytes of `commit`, or nil when it is unsigned.
    public func signature(of commit: CommitID) throws(GitError) -> (signature: String, signedData: [UInt8])? {
        var signature = git_buf()
        var signedData = git_buf()
        defer {
            git_buf_dispose(&signature)
            git_buf_dispose(&signedData)
        }
        var oid = commit.oid
        let result = git_commit_extract_signature(&signature, &signedData, handle, &oid, nil)
        if result == GIT_ENOTFOUND.rawValue { return nil }
        try Libgit2.check(result, "read signature of \(commit.short) in \(path)")
        let text = String(decoding: UnsafeRawBufferPointer(start: signature.ptr, count: signature.size), as: UTF8.self)
        let data = Array(UnsafeRawBufferPointer(start: signedData.ptr, count: signedData.size))
        return (text, data)
    }

    /// Verifies `commit`'s signature against `trusted`: SSH signatures with `ssh-keygen -Y`,
    /// OpenPGP ones with `gpg --verify`. Whether to require a good one is the caller's policy.
    public func verifySignature(of commit: CommitID, trusted: TrustedKeys) throws(GitError) -> SignatureVerification {
        guard let (signature, data) = try signature(of: commit) else {
            return SignatureVerification(verdict: .unsigned, signer: nil, detail: "the commit is not signed")
        }
        let operation = "verify signature of \(commit.short)"
        if signature.hasPrefix("-----BEGIN SSH SIGNATURE-----") {
            guard let allowed = trusted.sshAllowedSigners else {
                return SignatureVerification(verdict: .unknownKey, signer: nil, detail: "SSH-signed, but no allowed signers are configured")
            }
            return try SignatureTools.verifySSH(signature: signature, data: data, allowedSigners: allowed, operation: operation)
        }
        if signature.hasPrefix("-----BEGIN PGP SIGNATURE-----") {
            guard let keyring = trusted.gpgKeyring else {
                return SignatureVerification(verdict: .unknownKey, signer: nil, detail: "OpenPGP-signed, but no keyring is configured")
            }
            return try SignatureTools.verifyOpenPGP(signature: signature, data: data, keyring: keyring, operation: operation)
        }
        return SignatureVerification(verdict: .unknownKey, signer: nil, detail: "signature of an unknown kind")
    }
}

/// The external verifiers, run with their input in a private temporary directory.
enum SignatureTools {
    static func verifySSH(signature: String, data: [UInt8], allowedSigners: String, operation: String) throws(GitError) -> SignatureVerification {
        try withScratch(operation: operation) { (directory) throws(GitError) in
            let signatureFile = directory + "/commit.sig"
            try write(Data(signature.utf8), to: signatureFile, operation: operation)
            let principals = try run("/usr/bin/ssh-keygen", ["-Y", "find-principals", "-s", signatureFile, "-f", allowedSigners],
                                     input: [], operation: operation)
            guard principals.status == 0, let principal = principals.output.split(separator: "\n").first.map(String.init) else {
                return SignatureVerification(verdict: .unknownKey, signer: nil, detail: principals.combined)
            }
            let verify = try run("/usr/bin/ssh-keygen", ["-Y", "verify", "-f", allowedSigners, "-I", principal, "-n", "git", "-s", signatureFile],
                                 input: data, operation: operation)
            return SignatureVerification(verdict: verify.status == 0 ? .good : .bad, signer: principal, detail: verify.combined)
        }
    }

    static func verifyOpenPGP(signature: String, data: [UInt8], keyring: String, operation: String) throws(GitError) -> SignatureVerification {
        try withScratch(operation: operation) { (directory) throws(GitError) in
            let signatureFile = directory + "/commit.asc", dataFile = directory + "/commit"
            try write(Data(signature.utf8), to: signatureFile, operation: operation)
            try write(Data(data), to: dataFile, operation: operation)
            let keyringPath = URL(fileURLWithPath: keyring).path
            let result = try run("/usr/bin/gpg", ["--homedir", directory, "--batch", "--no-default-keyring", "--keyring", keyringPath,
                                                  "--status-fd", "1", "--verify", signatureFile, dataFile],
                                 input: [], operation: operation)
            for line in result.output.split(separator: "\n") {
                let words = line.split(separator: " ", maxSplits: 3).map(String.init)
                guard words.count >= 2, words[0] == "[GNUPG:]" else { continue }
                switch words[1] {
                case "GOODSIG": return SignatureVerification(verdict: .good, signer: words.count > 3 ? words[3] : words.last, detail: result.combined)
                case "BADSIG": return SignatureVerification(verdict: .bad, signer: words.count > 3 ? words[3] : nil, detail: result.combined)
                case "NO_PUBKEY", "ERRSIG": return SignatureVerification(verdict: .unknownKey, signer: nil, detail: result.combined)
                default: continue
                }
            }
            return SignatureVerification(verdict: .bad, signer: nil, detail: result.combined)
        }
    }

    struct Outcome {
        var status: Int32
        var output: String
        var combined: String
    }

    static func run(_ tool: String, _ arguments: [String], input: [UInt8], operation: String) throws(GitError) -> Outcome {
        guard FileManager.default.isExecutableFile(atPath: tool) else {
            throw GitError(.failed, operation: operation, message: "\(tool) is not installed")
        }
        let result: ChildProcess.Result
        do {
            result = try ChildProcess.run(tool, arguments, input: input)
        } catch {
            throw GitError(.failed, operation: operation, message: error.message)
        }
        let combined = (result.outputText + result.errorText).trimmingCharacters(in: .whitespacesAndNewlines)
        return Outcome(status: result.status, output: result.outputText, combined: combined)
    }

    private static func write(_ data: Data, to path: String, operation: String) throws(GitError) {
        guard FileManager.default.createFile(atPath: path, contents: data) else {
            throw GitError(.failed, operation: operation, message: "cannot write \(path)")
        }
    }

    private static func withScratch<Result>(operation: String, _ body: (String) throws(GitError) -> Result) throws(GitError) -> Result {
        let directory = NSTemporaryDirectory() + "flotilla-verify-" + UUID().uuidString
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw GitError(.failed, operation: operation, message: "cannot create a temporary directory: \(error.localizedDescription)")
        }
        defer { try? FileManager.default.removeItem(atPath: directory) }
        return try body(directory)
    }
}
