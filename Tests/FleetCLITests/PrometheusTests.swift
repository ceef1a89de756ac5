import FleetGit
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// A real Prometheus (Debian's, installed by hack/setup.sh) scrapes a live server with the
/// configuration in docs/prometheus.yml, and PromQL answers with the fleet's true counts.
struct PrometheusTests {
    @Test func prometheusScrapesTheServerAndPromQLAgreesWithTheAPI() async throws {
        let prometheus = "/usr/bin/prometheus"
        try #require(FileManager.default.isExecutableFile(atPath: prometheus), "Prometheus is not installed: run hack/setup.sh as root")
        let fleet = try ControllerTests.Fleet(devices: 5)
        let folder = try TestPaths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // The repository's configuration, pointed at this server and scraping every second.
        let configuration = try String(contentsOfFile: TestPaths.template + "/../docs/prometheus.yml", encoding: .utf8)
            .replacingOccurrences(of: "127.0.0.1:8080", with: "127.0.0.1:\(fleet.port)")
            .replacingOccurrences(of: "scrape_interval: 15s", with: "scrape_interval: 1s")
        try configuration.write(toFile: folder + "/prometheus.yml", atomically: true, encoding: .utf8)
        let port = try GitDaemon.freePort()
        let pid = try ChildProcess.start(prometheus, [
            "--config.file=\(folder)/prometheus.yml", "--storage.tsdb.path=\(folder)/data",
            "--web.listen-address=127.0.0.1:\(port)",
        ], environment: [:], logPath: folder + "/prometheus.log")
        defer { ChildProcess.kill(pid) }

        func query(_ promQL: String) async throws -> Double? {
            var components = URLComponents(string: "http://127.0.0.1:\(port)/api/v1/query")!
            components.queryItems = [URLQueryItem(name: "query", value: promQL)]
            guard let (body, _) = try? await URLSession.shared.data(from: components.url!),
                  let answer = try JSONSerialization.jsonObject(with: body) as? [String: Any],
                  let result = (answer["data"] as? [String: Any])?["result"] as? [[String: Any]],
                  let value = result.first?["value"] as? [Any], let text = value.last as? String else { return nil }
            return Double(text)
        }
        func onlineInTheAPI() async throws -> Int {
            (try await fleet.get("/api/v1/devices")["devices"] as? [[String: Any]] ?? []).filter { $0["online"] as? Bool == true }.count
        }

        // Every device online, as the API says, and then as PromQL says.
        var agreed = false
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, !agreed {
            let api = try await onlineInTheAPI()
            if api == 5, let promQL = try await query("flotilla_devices_online{job=\"flotilla\"}"), Int(promQL) == api { agreed = true }
            if !agreed { try await Task.sleep(for: .milliseconds(500)) }
        }
        let log = (try? String(contentsOfFile: folder + "/prometheus.log", encoding: .utf8)) ?? ""
        #expect(agreed, "PromQL never showed the 5 devices online the API shows; prometheus said: \(log.suffix(2_000))")
        #expect(try await query("up{job=\"flotilla\"}") == 1)
        // Counters Prometheus can take rates of: heartbeats stored and controller passes.
        #expect((try await query("flotilla_heartbeats_total") ?? 0) >= 5)
        #expect((try await query("sum(flotilla_controller_passes_total)") ?? 0) >= 1)
        #expect(try await query("sum by (status) (flotilla_http_requests_total{status=\"2xx\"})") ?? 0 > 0)
    }
}
