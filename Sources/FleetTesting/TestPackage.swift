public import Foundation

/// Where the tests find the checkout and the binaries built beside them, and the temporary
/// directories they work in: one answer for every suite.
public enum TestPackage {
    /// The package root, found from this file's place in the checkout (Sources/FleetTesting/).
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    /// `fleet-repo-template/`, the repository the demo and the end-to-end tests start from.
    public static var template: String { root + "/fleet-repo-template" }

    /// A product built beside the test bundle (`flotilla`, `flotilla-agent`), or the debug build's.
    public static func binary(_ name: String) -> String {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for directory in [besideTests, besideTests.deletingLastPathComponent()] {
            let candidate = directory.appendingPathComponent(name).path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return root + "/.build/debug/" + name
    }

    /// A fresh temporary directory; the caller removes it.
    public static func temporaryDirectory(prefix: String = "flotilla-test-") throws -> String {
        let path = NSTemporaryDirectory() + prefix + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }
}

/// What a test waited for did not come in time.
public struct TimedOut: Error, CustomStringConvertible {
    public var description: String
    public init(_ what: String) { description = "timed out waiting for \(what)" }
}

/// Polls `check` every `interval` until it gives a value, or throws `TimedOut` after `seconds`.
/// It checks once more after the deadline: a test whose task was not run for a while (every
/// thread of the pool busy with other suites) is judged by what holds, not by the wait.
public func eventually<T>(seconds: Double, _ what: String, every interval: Duration = .milliseconds(50),
                          _ check: () async throws -> T?) async throws -> T {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if let value = try await check() { return value }
        try await Task.sleep(for: interval)
    }
    if let value = try await check() { return value }
    throw TimedOut(what)
}

/// Runs `body`, which blocks (a child process, a wait), on a thread of its own: the test's
/// concurrency pool has a thread per core, and every async test of the run waits on it.
public func offThePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try body() }) }.start()
    }
}
