import CLibGit2
import Foundation

/// One conversation with a remote: libgit2's callbacks reach it through their payload pointer,
/// since C callbacks cannot capture.
final class RemoteSession {
    let credentials: GitCredentials
    private var triedPassword = false
    private var triedKey = false
    /// Refs the remote refused in a push, with its reason.
    var rejections: [String: String] = [:]
    /// Why the SSH host key was not accepted, if it was not.
    var hostKeyProblem: String?
    /// Why authentication failed, in words for the operator.
    var authenticationProblem: String?

    init(credentials: GitCredentials) {
        self.credentials = credentials
    }

    /// Runs `body` with callbacks that answer for this session.
    func withCallbacks<Result>(_ body: (inout git_remote_callbacks) throws(GitError) -> Result) throws(GitError) -> Result {
        var callbacks = git_remote_callbacks()
        git_remote_init_callbacks(&callbacks, UInt32(GIT_REMOTE_CALLBACKS_VERSION))
        callbacks.payload = Unmanaged.passUnretained(self).toOpaque()
        callbacks.credentials = { out, _, usernameFromURL, allowedTypes, payload in
            let session = Unmanaged<RemoteSession>.fromOpaque(payload!).takeUnretainedValue()
            return session.credential(out!, usernameFromURL: usernameFromURL.map { String(cString: $0) }, allowed: allowedTypes)
        }
        callbacks.certificate_check = { certificate, valid, host, payload in
            let session = Unmanaged<RemoteSession>.fromOpaque(payload!).takeUnretainedValue()
            return session.checkCertificate(certificate!, valid: valid != 0, host: host.map { String(cString: $0) } ?? "?")
        }
        callbacks.push_update_reference = { reference, status, payload in
            if let status, let reference {
                let session = Unmanaged<RemoteSession>.fromOpaque(payload!).takeUnretainedValue()
                session.rejections[String(cString: reference)] = String(cString: status)
            }
            return 0
        }
        return try withExtendedLifetime(self) { () throws(GitError) -> Result in try body(&callbacks) }
    }

    /// One try per kind of credential: libgit2 asks again after each refusal.
    private func credential(_ out: UnsafeMutablePointer<UnsafeMutablePointer<git_credential>?>, usernameFromURL: String?,
                            allowed: UInt32) -> Int32 {
        let username = credentials.username ?? usernameFromURL
        if allowed & GIT_CREDENTIAL_SSH_KEY.rawValue != 0, let key = credentials.sshPrivateKey, !triedKey {
            triedKey = true
            return git_credential_ssh_key_new(out, username ?? "git", credentials.sshPublicKey, key, credentials.sshPassphrase)
        }
        if allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT.rawValue != 0, let token = credentials.token, !triedPassword {
            triedPassword = true
            return git_credential_userpass_plaintext_new(out, username ?? "x-access-token", token)
        }
        if allowed & GIT_CREDENTIAL_USERNAME.rawValue != 0, let username, !triedKey, !triedPassword {
            return git_credential_username_new(out, username)
        }
        if triedKey, let key = credentials.sshPrivateKey {
            authenticationProblem = "the server refused the SSH key \(key)"
        } else if triedPassword {
            authenticationProblem = "the server refused the token"
        } else {
            authenticationProblem = "the remote requires authentication; give a token (FLOTILLA_GIT_TOKEN) or an SSH key"
        }
        return GIT_EUSER.rawValue
    }

    /// TLS: libgit2's own verdict stands. SSH: the host key must match the pinned fingerprint.
    private func checkCertificate(_ certificate: UnsafeMutablePointer<git_cert>, valid: Bool, host: String) -> Int32 {
        guard certificate.pointee.cert_type == GIT_CERT_HOSTKEY_LIBSSH2 else {
            return valid ? 0 : GIT_PASSTHROUGH.rawValue
        }
        guard let pinned = credentials.sshHostKeyFingerprint else {
            hostKeyProblem = "no SSH host key fingerprint is configured for \(host); pin it (ssh-keyscan \(host) | ssh-keygen -lf -)"
            return GIT_ECERTIFICATE.rawValue
        }
        let hostKey = UnsafeRawPointer(certificate).assumingMemoryBound(to: git_cert_hostkey.self).pointee
        guard hostKey.type.rawValue & GIT_CERT_SSH_SHA256.rawValue != 0 else {
            hostKeyProblem = "the SSH server did not offer a SHA-256 host key fingerprint"
            return GIT_ECERTIFICATE.rawValue
        }
        let digest = withUnsafeBytes(of: hostKey.hash_sha256) { Data($0) }
        let fingerprint = "SHA256:" + digest.base64EncodedString().replacingOccurrences(of: "=", with: "")
        guard fingerprint == pinned else {
            hostKeyProblem = "the SSH host key of \(host) is \(fingerprint), not the pinned \(pinned)"
            return GIT_ECERTIFICATE.rawValue
        }
        return 0
    }
}
