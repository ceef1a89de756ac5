@testable import FleetAgent
import FleetProtocol
import Foundation
import Synchronization
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

/// The probe thread of an agent made in-process (no server): what it runs, when, and what it keeps.
@Suite struct ProbeThreadTests {
    struct NoSteps: StepExecutor, Sendable {
        func execute(_ step: AssignedStep, of assignment: Assignment) -> StepOutcome { StepOutcome(succeeded: true) }
    }

    static func agent() throws -> Agent {
        var configuration = AgentConfiguration()
        configuration.dataDirectory = try temporaryDirectory()
        return try Agent(configuration: configuration, executor: NoSteps())
    }

    static func waitFor(_ seconds: Double, _ check: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if check() { return true }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return check()
    }

    /// An app installed again without a probe leaves no probe due that can never run: the other
    /// apps' probes go on, and the app's old reading is gone.
    @Test func anAppThatLostItsProbeDoesNotStopTheOthers() throws {
        let agent = try Self.agent()
        agent.installed(app: "a", probe: AssignedProbe(command: "echo 1.0", timeoutSeconds: 5, intervalSeconds: 60))
        agent.installed(app: "a", probe: nil)
        agent.installed(app: "b", probe: AssignedProbe(command: "echo 2.0", timeoutSeconds: 5, intervalSeconds: 60))
        let thread = Worker.start { agent.probeLoop() }
        defer {
            agent.stopped.store(true, ordering: .relaxed)
            thread.join()
        }
        #expect(Self.waitFor(10) { agent.probeResults.withLock { $0["b"]?.version } == "2.0" })
        #expect(agent.probeResults.withLock { $0["a"] } == nil)
        // Kept on disk for the next start: only b's.
        #expect(Agent.loadProbes(agent.probesPath).keys.sorted() == ["b"])
    }

    /// A reading taken while an execution of the app ran is not believed (it may have seen the app
    /// half-installed); a fresh one is taken when the execution ends, whatever its outcome.
    @Test func aReadingAcrossAnExecutionIsThrownAwayAndTakenAgainAfter() throws {
        let agent = try Self.agent()
        let marker = agent.configuration.dataDirectory + "/state"
        try "1.0\n".write(toFile: marker, atomically: true, encoding: .utf8)
        // The probe reads the state a moment after it starts; the execution changes it meanwhile.
        agent.installed(app: "a", probe: AssignedProbe(command: "sleep 0.5; cat \(marker)", timeoutSeconds: 5, intervalSeconds: 3_600))
        let thread = Worker.start { agent.probeLoop() }
        defer {
            agent.stopped.store(true, ordering: .relaxed)
            thread.join()
        }
        Thread.sleep(forTimeInterval: 0.2)
        agent.executionBoundary(app: "a")           // an execution starts: the probe in flight is stale
        try "\n".write(toFile: marker, atomically: true, encoding: .utf8)  // half-installed: nothing runs
        Thread.sleep(forTimeInterval: 0.6)
        #expect(agent.probeResults.withLock { $0["a"] } == nil, "a reading taken across the execution's start was kept")
        try "1.1\n".write(toFile: marker, atomically: true, encoding: .utf8)
        agent.executionBoundary(app: "a")           // it ends (failed, say): the app is probed again at once
        #expect(Self.waitFor(10) { agent.probeResults.withLock { $0["a"]?.version } == "1.1" })
    }
}

extension ProbeTests {
    /// A probe that ignores SIGTERM and closes its output only once told to stop is killed after
    /// the grace, not waited for forever.
    @Test func aProbeIgnoringSIGTERMAfterClosingItsOutputIsKilled() {
        let started = Date()
        let result = Self.probe("trap 'exec 1>&- 2>&-' TERM; while :; do sleep 0.1 >/dev/null 2>&1; done", timeout: 1)
        #expect(result.error == "probe timed out after 1 s")
        #expect(Date().timeIntervalSince(started) < 15)
    }
}
