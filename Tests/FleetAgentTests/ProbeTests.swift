@testable import FleetAgent
import FleetProtocol
import Foundation
import Testing

/// Probes run for real through `/bin/sh`: what they print, fail or hang becomes what the
/// heartbeat says of the app.
@Suite struct ProbeTests {
    static func probe(_ command: String, timeout: Int = 5) -> ProbeResult {
        Agent.probe(AssignedProbe(command: command, timeoutSeconds: timeout, intervalSeconds: 60))
    }

    @Test func theFirstLinePrintedIsTheVersionAndStandardErrorIsNotRead() {
        let result = Self.probe("echo 'warning: cache is cold' >&2; printf '\\n  2.4.1  \\nextra\\n'")
        #expect(result.version == "2.4.1")
        #expect(result.error == nil)
        #expect(result.summary == "probe says 2.4.1")
        #expect(result.atMilliseconds > 1_700_000_000_000)
    }

    @Test func nothingPrintedMeansNothingRuns() {
        let result = Self.probe("if false; then echo 1.0; fi")
        #expect(result.version == nil)
        #expect(result.error == nil)
        #expect(result.summary == "probe says nothing runs")
    }

    @Test func aFailingProbeCannotTellAndSaysWhyFromItsStandardError() {
        let result = Self.probe("echo 1.0; echo \"dpkg-query: no packages found matching web\" >&2; exit 3")
        #expect(result.version == nil)
        #expect(result.error == "probe exited with status 3: dpkg-query: no packages found matching web")
    }

    @Test func aProbeThatHangsIsKilledWithItsChildrenAtItsTimeout() throws {
        let marker = try temporaryDirectory() + "/child-alive"
        let started = Date()
        // The child it leaves behind would touch the marker after 3 s unless its group is killed.
        let result = Self.probe("(sleep 3; touch \(marker)) & sleep 30", timeout: 1)
        #expect(result.error == "probe timed out after 1 s")
        #expect(result.version == nil)
        #expect(Date().timeIntervalSince(started) < 10)
        Thread.sleep(forTimeInterval: 3.5)
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func textThatIsNotAVersionIsAnErrorNotDrift() {
        let result = Self.probe("echo 'Status: running; version=2 (ok)'")
        #expect(result.version == nil)
        #expect(result.error == "probe printed 'Status: running; version=2 (ok)', which is not a version: use only letters, digits, '.', '-', '+', '_' and '~'")
        let long = Self.probe("printf '%05000d' 7")
        #expect(long.error?.hasPrefix("probe printed '0000") == true, "\(long)")
        #expect(long.error?.hasSuffix("…', which is not a version: use 1 to 128 characters") == true, "\(long)")
        #expect((long.error?.utf8.count ?? 0) <= 512)
    }

    @Test func aProbeThatPrintsMegabytesIsReadToItsEndWithoutBlocking() {
        // Far more than a pipe holds: the rest is drained, not left to block the probe.
        let result = Self.probe("echo 3.1.0; head -c 3000000 /dev/zero")
        #expect(result.version == "3.1.0")
    }

    @Test func aProbeOutsideTheRulesIsRefusedUnrun() {
        let result = Agent.probe(AssignedProbe(command: "echo 1", timeoutSeconds: 0, intervalSeconds: 60))
        #expect(result.error?.hasPrefix("probe refused: 'probe.timeoutSeconds' must be from 1") == true)
    }

    @Test func theResultAndTheAssignedProbeTravelOnTheWire() throws {
        let app = InstalledApp(version: "2.5.0", digest: "d", probe: ProbeResult(version: nil, error: "probe timed out after 30 s", atMilliseconds: 5))
        #expect(try InstalledApp.decode(wire: Array(app.wireJSON().utf8)) == app)
        let assignment = Assignment(executionID: "e", deploymentID: "d", app: "a", version: "1", digest: "x", steps: [], rollback: [],
                                    artifactAllowlist: [], probe: AssignedProbe(command: "cat /v", timeoutSeconds: 3, intervalSeconds: 30))
        #expect(try Assignment.decode(wire: Array(assignment.wireJSON().utf8)) == assignment)
        // And through Codable, which the server and the store use.
        let coded = try JSONDecoder().decode(InstalledApp.self, from: JSONEncoder().encode(app))
        #expect(coded == app)
    }
}
