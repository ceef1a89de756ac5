import FleetGit
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Debian's Prometheus Alertmanager on a loopback port, with a configuration that routes every
/// alert to a receiver that sends nothing on: alerts sent to it are read back through its own
/// API v2. Started per test, stopped with it. (`./hack/test.sh` installs the package.)
public final class Alertmanager: @unchecked Sendable {
    public static let executable = "/usr/bin/prometheus-alertmanager"
    public let directory: String
    public let port: Int
    private let pid: Int32

    public struct Missing: Error, CustomStringConvertible {
        public var description: String
    }

    public init() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.executable) else {
            throw Missing(description: "\(Self.executable) is not installed; ./hack/test.sh installs Debian's prometheus-alertmanager")
        }
        directory = NSTemporaryDirectory() + "flotilla-alertmanager-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: directory + "/data", withIntermediateDirectories: true)
        let config = """
            route:
              receiver: nowhere
              group_wait: 1s
              group_interval: 1s
            receivers:
              - name: nowhere
            """
        try Data(config.utf8).write(to: URL(fileURLWithPath: directory + "/alertmanager.yml"))
        port = try GitDaemon.freePort()
        pid = try ChildProcess.start(Self.executable, [
            "--config.file=\(directory)/alertmanager.yml", "--storage.path=\(directory)/data",
            "--web.listen-address=127.0.0.1:\(port)", "--cluster.listen-address=",
        ], environment: [:], logPath: directory + "/alertmanager.log")
        guard GitDaemon.waitUntilListening(port: port, seconds: 20) else {
            ChildProcess.kill(pid)
            let log = (try? String(contentsOfFile: directory + "/alertmanager.log", encoding: .utf8)) ?? ""
            throw Missing(description: "Alertmanager did not start listening on \(port): \(log.suffix(2_000))")
        }
    }

    deinit {
        ChildProcess.kill(pid)
        try? FileManager.default.removeItem(atPath: directory)
    }

    public var url: String { "http://127.0.0.1:\(port)" }

    /// The alerts it holds, as `GET /api/v2/alerts` returns them (resolved ones too).
    public func alerts() async throws -> [[String: Any]] {
        var request = URLRequest(url: URL(string: url + "/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true")!)
        request.timeoutInterval = 5
        let (data, _) = try await URLSession.shared.data(for: request)
        return (try JSONSerialization.jsonObject(with: data) as? [[String: Any]]) ?? []
    }
}
