import FleetGit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real `git daemon` on loopback serving bare repositories from a temporary folder, with
/// push enabled; started per test and stopped with it.
public final class GitDaemon: @unchecked Sendable {
    public let root: String
    public private(set) var port: Int
    private var pid: Int32?

    public init() throws {
        root = NSTemporaryDirectory() + "flotilla-git-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        port = 0
        // A free port can be taken by another test between asking for it and the daemon binding
        // it: then the daemon exits, and it starts again on another port.
        var attempt = 0
        while true {
            port = try Self.freePort()
            // git-daemon itself, not the `git` wrapper, so that killing it stops the server.
            pid = try ChildProcess.start(try GitCommand.run(["--exec-path"]) + "/git-daemon",
                                         ["--reuseaddr", "--base-path=\(root)", "--export-all", "--enable=receive-pack",
                                          "--listen=127.0.0.1", "--port=\(port)", root])
            do {
                try waitUntilListening()
                return
            } catch {
                attempt += 1
                if attempt >= 3 { throw error }
            }
        }
    }

    deinit {
        stop()
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Stops the daemon; its repositories stay until the object goes away.
    public func stop() {
        guard let pid else { return }
        ChildProcess.kill(pid)
        self.pid = nil
    }

    /// The git:// URL of repository `name`.
    public func url(_ name: String) -> String { "git://127.0.0.1:\(port)/\(name).git" }

    /// Creates bare repository `name` and a clone to work in; with `contents`, the clone's
    /// first commit holds a copy of that folder and is pushed to `main`.
    public func createRepository(_ name: String, contents: String? = nil) throws -> WorkTree {
        let bare = root + "/\(name).git"
        try GitCommand.run(["init", "--quiet", "--bare", bare])
        try GitCommand.run(["config", "receive.denyNonFastForwards", "false"], in: bare)
        let work = root + "/work-\(name)-\(UUID().uuidString.prefix(8))"
        try GitCommand.run(["clone", "--quiet", url(name), work])
        let tree = WorkTree(path: work)
        if let contents {
            for item in try FileManager.default.contentsOfDirectory(atPath: contents) {
                try FileManager.default.copyItem(atPath: contents + "/" + item, toPath: work + "/" + item)
            }
            try tree.commitAll("Initial fleet")
            try tree.git("push", "--quiet", "origin", "HEAD:main")
        }
        return tree
    }

    /// A second clone of `name`, as another person would make.
    public func clone(_ name: String) throws -> WorkTree {
        let work = root + "/clone-\(name)-\(UUID().uuidString.prefix(8))"
        try GitCommand.run(["clone", "--quiet", url(name), work])
        return WorkTree(path: work)
    }

    public static func freePort() throws -> Int {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private func waitUntilListening() throws {
        for _ in 0..<500 {
            if Self.canConnect(port: port) { return }
            guard let pid, ChildProcess.isRunning(pid) else { break }
            usleep(10_000)
        }
        stop()
        throw GitCommand.Failure(arguments: ["daemon"], status: -1, output: "git daemon did not start listening on port \(port)")
    }

    /// Waits until something accepts connections on `port` (at most `seconds`); whether it did.
    @discardableResult
    public static func waitUntilListening(port: Int, seconds: Double = 5) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if canConnect(port: port) { return true }
            usleep(10_000)
        }
        return false
    }

    public static func canConnect(port: Int) -> Bool {
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }
}

/// A clone to work in, changed with the git command line as a person would.
public struct WorkTree: Sendable {
    public let path: String

    @discardableResult
    public func git(_ arguments: String...) throws -> String {
        try GitCommand.run(arguments, in: path)
    }

    /// Writes `text` to `relativePath`, creating folders.
    public func write(_ relativePath: String, _ text: String) throws {
        let url = URL(fileURLWithPath: path + "/" + relativePath)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    /// Stages everything and commits; returns the new commit id.
    @discardableResult
    public func commitAll(_ message: String) throws -> String {
        try git("add", "--all")
        try git("commit", "--quiet", "--allow-empty", "-m", message)
        return try git("rev-parse", "HEAD")
    }
}
