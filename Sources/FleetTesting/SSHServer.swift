import FleetGit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real OpenSSH server on a loopback port, accepting one generated client key, so git over
/// ssh:// is tested end to end. Started per test, stopped with it.
public final class SSHServer: @unchecked Sendable {
    public let directory: String
    public let port: Int
    /// The private key the server accepts.
    public let clientKey: String
    /// The server's host key fingerprint, as `ssh-keygen -lf` prints it (`SHA256:…`).
    public let hostKeyFingerprint: String
    private let pid: Int32

    public init() throws {
        directory = NSTemporaryDirectory() + "flotilla-sshd-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // sshd insists on its privilege-separation directory even when run by hand.
        try FileManager.default.createDirectory(atPath: "/run/sshd", withIntermediateDirectories: true)
        clientKey = directory + "/client"
        try Self.keygen(["-q", "-t", "ed25519", "-N", "", "-f", directory + "/hostkey"])
        try Self.keygen(["-q", "-t", "ed25519", "-N", "", "-f", clientKey])
        try FileManager.default.copyItem(atPath: clientKey + ".pub", toPath: directory + "/authorized_keys")
        let fingerprint = try Self.keygen(["-lf", directory + "/hostkey.pub"])
        hostKeyFingerprint = fingerprint.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        port = try GitDaemon.freePort()
        let config = """
            Port \(port)
            ListenAddress 127.0.0.1
            HostKey \(directory)/hostkey
            AuthorizedKeysFile \(directory)/authorized_keys
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            UsePAM no
            StrictModes no
            PidFile \(directory)/sshd.pid
            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: directory + "/sshd_config"))
        pid = try ChildProcess.start("/usr/sbin/sshd", ["-f", directory + "/sshd_config", "-D", "-e"])
        GitDaemon.waitUntilListening(port: port)
    }

    deinit {
        ChildProcess.kill(pid)
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// An ssh:// URL for a repository path on this machine.
    public func url(_ path: String) -> String { "ssh://root@127.0.0.1:\(port)\(path)" }

    /// Runs ssh-keygen; returns what it printed.
    @discardableResult
    public static func keygen(_ arguments: [String]) throws -> String {
        let result = try ChildProcess.run("/usr/bin/ssh-keygen", arguments)
        guard result.status == 0 else {
            throw GitCommand.Failure(arguments: ["ssh-keygen"] + arguments, status: result.status, output: result.errorText)
        }
        return result.outputText
    }
}
