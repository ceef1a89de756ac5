public import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Crypto
import FleetStore

/// Seals and opens the values of secret flow parameters: AES-256-GCM under a key kept in a file
/// of its own (`secret-key`, 0600), never in the database — a copy of the database alone gives
/// no secret away. Each value is bound to its project and name (the additional authenticated
/// data), so a sealed value moved to another row does not open.
public struct SecretBox: Sendable {
    private let key: SymmetricKey

    init(key: SymmetricKey) {
        self.key = key
    }

    /// The key in `keyFile` (64 hexadecimal digits), made on first start. An existing file must be
    /// the server's own: not a link, not another user's, not readable by group or others.
    public static func load(keyFile: String) throws -> SecretBox {
        // Attributes of the path itself: a link is reported as a link, not followed.
        if let attributes = try? FileManager.default.attributesOfItem(atPath: keyFile) {
            guard attributes[.type] as? FileAttributeType == .typeRegular else {
                throw SecretKeyError(message: "\(keyFile) is not a regular file (a link?); the key must be the server's own file")
            }
            let owner = (attributes[.ownerAccountID] as? NSNumber)?.uint32Value
            guard owner == geteuid() else {
                throw SecretKeyError(message: "\(keyFile) belongs to user \(owner.map(String.init) ?? "?"), not to the server's user \(geteuid())")
            }
            let mode = (attributes[.posixPermissions] as? NSNumber)?.intValue ?? 0o777
            guard mode & 0o077 == 0 else {
                throw SecretKeyError(message: "\(keyFile) is readable by others (mode \(String(mode, radix: 8))); chmod 600 it")
            }
            guard let text = try? String(contentsOfFile: keyFile, encoding: .utf8) else { throw SecretKeyError(message: "\(keyFile): cannot read the secret key") }
            let hex = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard hex.utf8.count == 64, let bytes = ControllerRoutes.bytes(hex: Substring(hex)) else {
                throw SecretKeyError(message: "\(keyFile) is not a secret key (64 hexadecimal digits); restore it from a backup")
            }
            return SecretBox(key: SymmetricKey(data: bytes))
        }
        let key = SymmetricKey(size: .bits256)
        let hex = key.withUnsafeBytes { $0.map { String(format: "%02x", $0) }.joined() } + "\n"
        // O_EXCL through createFile's atomic write would replace; this refuses to overwrite.
        let descriptor = Glibc.open(keyFile, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else { throw SecretKeyError(message: "\(keyFile): cannot create the secret key (\(String(cString: strerror(errno))))") }
        defer { close(descriptor) }
        let written = hex.utf8CString.withUnsafeBufferPointer { write(descriptor, $0.baseAddress, $0.count - 1) }
        guard written == hex.utf8.count, fsync(descriptor) == 0 else {
            unlink(keyFile)
            throw SecretKeyError(message: "\(keyFile): cannot write the secret key (\(String(cString: strerror(errno))))")
        }
        // The new name must survive a power cut as the file's bytes do.
        let folder = (keyFile as NSString).deletingLastPathComponent
        let directory = Glibc.open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY)
        if directory >= 0 { fsync(directory); close(directory) }
        return SecretBox(key: key)
    }

    func seal(_ value: String, project: String, name: String) throws -> [UInt8] {
        let box = try AES.GCM.seal(Array(value.utf8), using: key, authenticating: Self.context(project, name))
        guard let combined = box.combined else { throw SecretKeyError(message: "cannot seal a secret") }
        return Array(combined)
    }

    /// The project's secret `name`, read from `store` and opened; nil when it is not set or does
    /// not open under this key.
    func value(of name: String, project: String, in store: any FleetStore) async throws -> String? {
        guard let record = try await store.secret(project: project, name: name) else { return nil }
        return open(record.sealed, project: project, name: name)
    }

    /// The value, or nil when it does not open under this key for this project and name.
    func open(_ sealed: [UInt8], project: String, name: String) -> String? {
        guard let box = try? AES.GCM.SealedBox(combined: sealed),
              let bytes = try? AES.GCM.open(box, using: key, authenticating: Self.context(project, name))
        else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    private static func context(_ project: String, _ name: String) -> [UInt8] {
        Array("flotilla secret\u{0}\(project)\u{0}\(name)".utf8)
    }
}

public struct SecretKeyError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}

/// The secrets of one deployment, opened for filling in an assignment or hiding them in what a
/// device reports back.
struct DeploymentSecrets {
    /// Parameter name → value.
    var values: [String: String] = [:]
    /// Secret names the deployment needs that are not set (deleted since it was made), or that
    /// no longer open.
    var missing: [String] = []

    static func open(for deployment: DeploymentRecord, store: any FleetStore, box: SecretBox?) async throws -> DeploymentSecrets {
        var opened = DeploymentSecrets()
        for (parameter, name) in deployment.secrets.sorted(by: { $0.key < $1.key }) {
            if let value = try await box?.value(of: name, project: deployment.project, in: store) {
                opened.values[parameter] = value
            } else {
                opened.missing.append(name)
            }
        }
        return opened
    }

    /// `text` with every secret value replaced by `[secret:<parameter>]`, longest first so a value
    /// inside another is not left half shown.
    func redact(_ text: String) -> String {
        var text = text
        for (parameter, value) in values.sorted(by: { $0.value.count > $1.value.count }) where !value.isEmpty {
            text = text.replacingOccurrences(of: value, with: "[secret:\(parameter)]")
        }
        return text
    }
}
