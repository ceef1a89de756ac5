@testable import FleetAgent
import FleetProtocol
import Foundation
import FleetTesting
import Glibc
import Testing

/// What the device itself checks before it sends a file: the real path (links followed) under
/// the real path of an allowed one, a regular file, at most the limit.
struct RemoteFetchTests {
    static func fetch(_ path: String, allowed: [String], limit: Int = 1 << 20, agentData: String = "/var/lib/flotilla")
        -> (RemoteCommandResult, [UInt8]) {
        let output = RemoteOutput(limit: limit)
        let result = Agent.fetch(RemoteCommand(id: "r-1-d-1", kind: .fetch, path: path, allowedPaths: allowed, timeoutSeconds: 5,
                                               maximumBytes: limit), into: output, agentData: agentData)
        return (result, output.bytes(from: 0, maximum: .max))
    }

    @Test func aFileUnderAnAllowedDirectoryIsSentAndOneLeadingOutIsNot() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("hello\n", to: root + "/logs/app.log")
        try write("secret\n", to: root + "/secret.txt")
        try FileManager.default.createSymbolicLink(atPath: root + "/logs/out.log", withDestinationPath: root + "/secret.txt")
        try FileManager.default.createSymbolicLink(atPath: root + "/logs/inner", withDestinationPath: root + "/logs")
        // The allowed directory itself may be a link: it is compared by its real path.
        try FileManager.default.createSymbolicLink(atPath: root + "/current", withDestinationPath: root + "/logs")

        let (sent, bytes) = Self.fetch(root + "/logs/app.log", allowed: [root + "/logs"])
        #expect(sent == RemoteCommandResult(exitCode: 0, outputBytes: 6))
        #expect(bytes == Array("hello\n".utf8))
        #expect(Self.fetch(root + "/logs/inner/app.log", allowed: [root + "/logs"]).1 == Array("hello\n".utf8))
        #expect(Self.fetch(root + "/current/app.log", allowed: [root + "/current"]).1 == Array("hello\n".utf8))

        let (escaped, leaked) = Self.fetch(root + "/logs/out.log", allowed: [root + "/logs"])
        #expect(escaped.exitCode == nil && leaked.isEmpty)
        #expect(escaped.message?.contains("not under a path the project allows") == true, "\(escaped)")
        // A sibling whose name starts the same is not under it.
        try write("x\n", to: root + "/logs2/app.log")
        #expect(Self.fetch(root + "/logs2/app.log", allowed: [root + "/logs"]).0.exitCode == nil)
        #expect(Self.fetch(root + "/logs/missing.log", allowed: [root + "/logs"]).0.message?.contains("No such file") == true)
    }

    /// A refusal names the path, and a link's target, which a local user may have made of any
    /// bytes and up to 4 KiB: the message is cut and cleaned to what the server accepts, or the
    /// result would be refused and the operator left with a timeout.
    @Test func aResultsMessageIsHeldToWhatTheServerAccepts() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let odd = root + "/" + String(repeating: "d", count: 200) + "\u{1B}[31m\u{202E}"
        try write("secret\n", to: odd)
        try FileManager.default.createDirectory(atPath: root + "/logs", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/logs/out.log", withDestinationPath: odd)
        let (refused, _) = Self.fetch(root + "/logs/out.log", allowed: [root + "/logs"] + (1...12).map { "/opt/" + String(repeating: "a", count: 100) + "\($0)" })
        let message = try #require(refused.message)
        #expect(message.utf8.count > 1_024 && message.unicodeScalars.contains(where: StepRules.isControl), "the case is one the server refuses")
        let shown = Agent.shown(message)
        #expect(shown.utf8.count <= 1_024 && !shown.unicodeScalars.contains(where: StepRules.isControl))
        #expect(shown.hasPrefix(String(message.prefix(40))) && shown.hasSuffix("\u{2026}"))
        #expect(Agent.shown("cannot open /var/log/app.log: Permission denied") == "cannot open /var/log/app.log: Permission denied")
    }

    @Test func onlyRegularFilesAreReadAndNothingBlocks() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/logs/sub", withIntermediateDirectories: true)
        #expect(mkfifo(root + "/logs/pipe", 0o600) == 0)
        // A FIFO nobody writes to would block a plain open for ever.
        let started = Date()
        let (fifo, _) = Self.fetch(root + "/logs/pipe", allowed: [root + "/logs"])
        #expect(fifo.message?.contains("is not a regular file") == true, "\(fifo)")
        #expect(Date().timeIntervalSince(started) < 2)
        #expect(Self.fetch(root + "/logs/sub", allowed: [root + "/logs"]).0.message?.contains("is not a regular file") == true)
        #expect(Self.fetch("/dev/zero", allowed: ["/dev"]).0.message?.contains("is not a regular file") == true)
        #expect(Self.fetch("relative/path", allowed: ["/"]).0.exitCode == nil)
    }

    @Test func theAgentsOwnFilesAndAnAllowedPathResolvingToRootAreNeverSent() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write("fle_secret\n", to: root + "/agent/identity.json")
        try write("fine\n", to: root + "/app.log")
        // The project allows the whole tree the agent's data directory is in.
        let (own, leaked) = Self.fetch(root + "/agent/identity.json", allowed: [root], agentData: root + "/agent")
        #expect(own.exitCode == nil && leaked.isEmpty, "\(own)")
        #expect(Self.fetch(root + "/app.log", allowed: [root], agentData: root + "/agent").1 == Array("fine\n".utf8))
        // An allowed directory that is a link to / allows nothing.
        try FileManager.default.createSymbolicLink(atPath: root + "/everything", withDestinationPath: "/")
        #expect(Self.fetch("/etc/hostname", allowed: [root + "/everything"]).0.exitCode == nil)
    }

    @Test func aFileLargerThanTheLimitIsCutAndTheRestCounted() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try write(String(repeating: "0123456789", count: 1_000), to: root + "/big.log")
        let (result, bytes) = Self.fetch(root + "/big.log", allowed: [root], limit: 4_096)
        #expect(bytes.count == 4_096)
        #expect(result == RemoteCommandResult(exitCode: 0, truncated: true, droppedBytes: 10_000 - 4_096, outputBytes: 4_096))
    }

    @Test func outputPastTheLimitIsCountedNotKept() {
        let output = RemoteOutput(limit: 10)
        output.append(ArraySlice(Array("0123456".utf8)))
        output.append(ArraySlice(Array("789abcdef".utf8)))
        #expect(output.counts == (10, 6))
        #expect(output.bytes(from: 7, maximum: 100) == Array("789".utf8))
        #expect(output.bytes(from: 12, maximum: 100).isEmpty)
    }
}

/// A command past its timeout takes its whole process group with it, also a child that ignores
/// SIGTERM after the command itself died of it.
struct ProcessGroupTimeoutTests {
    @Test func aChildIgnoringTheTimeoutsSIGTERMIsKilledToo() async throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let pidFile = root + "/child.pid"
        let outcome = try await offThePool {
            try ProcessRunner.run(["sh", "-c", "(trap '' TERM; exec sleep 100) & echo $! > \(pidFile); wait"], timeoutSeconds: 1)
        }
        #expect(outcome.timedOut)
        let child = try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        // Gone, or a zombie waiting for a parent that does not reap: either way not running.
        // (A blocking wait: other suites may hold every thread of the test's pool.)
        func running() -> Bool {
            (try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8)).map { $0.split(separator: " ")[2] != "Z" } ?? false
        }
        let deadline = Date().addingTimeInterval(3)
        while running(), Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        // Without the kill at the end, the child sleeps on for 100 s.
        #expect(!running(), "the child that ignored SIGTERM still runs")
    }
}
