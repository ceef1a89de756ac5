/// How Flotilla authenticates to a remote. Never printed: `description` hides the secrets.
public struct GitCredentials: Sendable, CustomStringConvertible {
    /// An HTTPS access token, sent as the password.
    public var token: String?
    /// The user name for HTTPS (forges accept any with a token) or SSH (usually `git`).
    public var username: String?
    /// A private key file for SSH (ed25519 recommended; current OpenSSH refuses ssh-rsa).
    public var sshPrivateKey: String?
    /// The matching public key file; libssh2 derives it when absent.
    public var sshPublicKey: String?
    /// The passphrase of the private key, if any.
    public var sshPassphrase: String?
    /// The server's host key fingerprint as OpenSSH prints it (`SHA256:…`). SSH connections
    /// are refused without it: an unpinned host key would accept any server.
    public var sshHostKeyFingerprint: String?

    public init(token: String? = nil, username: String? = nil, sshPrivateKey: String? = nil, sshPublicKey: String? = nil,
                sshPassphrase: String? = nil, sshHostKeyFingerprint: String? = nil) {
        self.token = token
        self.username = username
        self.sshPrivateKey = sshPrivateKey
        self.sshPublicKey = sshPublicKey
        self.sshPassphrase = sshPassphrase
        self.sshHostKeyFingerprint = sshHostKeyFingerprint
    }

    public var description: String {
        var parts: [String] = []
        if token != nil { parts.append("token ***") }
        if let username { parts.append("user \(username)") }
        if let sshPrivateKey { parts.append("ssh key \(sshPrivateKey)") }
        return parts.isEmpty ? "no credentials" : parts.joined(separator: ", ")
    }
}
