import FleetAgent
import FleetProtocol
import Foundation
import Testing

@Suite struct ExecutionProgressTests {
    static func step(_ name: String, onFailure: String = "rollback", idempotent: Bool = false) -> AssignedStep {
        AssignedStep(name: name, kind: .run, command: "true", timeoutSeconds: 10, retries: 0, onFailure: onFailure, idempotent: idempotent)
    }

    static func assignment(_ steps: [AssignedStep], rollback: [AssignedStep] = [step("undo")]) -> Assignment {
        Assignment(executionID: "ex-1", deploymentID: "dep-1", app: "web", version: "2.0", digest: "d", steps: steps,
                   rollback: rollback, artifactAllowlist: [])
    }

    /// Runs the machine with the given step outcomes; returns the steps run, in order, and the outcome.
    func drive(_ progress: inout ExecutionProgress, _ outcomes: [String: Bool]) -> [String] {
        var ran: [String] = []
        while let (step, _, rollback) = progress.current {
            let name = (rollback ? "rollback:" : "") + step.name
            ran.append(name)
            progress.begin()
            progress.complete(succeeded: outcomes[name] ?? true)
        }
        return ran
    }

    /// A journal that does not decode still names its execution when its JSON holds one, so
    /// that execution can be ended rather than started again; nothing is made up otherwise.
    @Test func anUnreadableJournalStillNamesItsExecutionWhenItCan() {
        var progress = ExecutionProgress(assignment: Self.assignment([Self.step("a")]))
        progress.begin()
        let written = progress.wireJSON()
        let later = written.replacingOccurrences(of: "\"phase\":\"steps\"", with: "\"phase\":\"verifying\"")
        #expect(later != written)
        #expect((try? ExecutionProgress.decode(wire: Array(later.utf8))) == nil)
        #expect(ExecutionProgress.executionID(inUnreadable: Array(later.utf8)) == "ex-1")
        for damaged in ["", "{", String(written.prefix(40)), "[\"ex-1\"]", #"{"assignment":{"executionID":""}}"#,
                        #"{"assignment":{"executionID":7}}"#, #"{"executionID":"ex-1"}"#] {
            #expect(ExecutionProgress.executionID(inUnreadable: Array(damaged.utf8)) == nil, "\(damaged)")
        }
    }

    /// A step may print anything, a NUL among it (`find -print0`, a binary on stdout). The journal
    /// written after it must read back, or a restart would run the execution again from its first
    /// step, steps that must not run twice included.
    @Test func aJournalWithANulInAStepsOutputReadsBack() throws {
        var progress = ExecutionProgress(assignment: Self.assignment([Self.step("a"), Self.step("b")]))
        progress.begin()
        progress.complete(succeeded: true, exitCode: 0, output: "one\u{0}two\u{0}")
        progress.begin()
        let read = try ExecutionProgress.decode(wire: Array(progress.wireJSON().utf8))
        #expect(read.results.first?.outputTail == "one\u{FFFD}two\u{FFFD}")
        #expect(read.current?.step.name == "b", "it resumes at the step it was on")
        // And the report of that step is one the server reads.
        #expect(try StepResult.decode(wire: Array(read.results[0].wireJSON().utf8)).outputTail == "one\u{FFFD}two\u{FFFD}")
    }

    @Test func allStepsSucceed() {
        var progress = ExecutionProgress(assignment: Self.assignment([Self.step("a"), Self.step("b")]))
        #expect(drive(&progress, [:]) == ["a", "b"])
        #expect(progress.outcome == .succeeded)
        #expect(progress.finalReport == ExecutionReport(reportID: "ex-1:final", state: .succeeded))
    }

    @Test func rollbackRunsTheRollbackStepsThenFails() {
        var progress = ExecutionProgress(assignment: Self.assignment([Self.step("a"), Self.step("b"), Self.step("c")],
                                                                   rollback: [Self.step("undo-1"), Self.step("undo-2")]))
        // A failing rollback step does not stop the others.
        #expect(drive(&progress, ["b": false, "rollback:undo-1": false]) == ["a", "b", "rollback:undo-1", "rollback:undo-2"])
        #expect(progress.outcome == .failed)
        #expect(progress.message == "step 'b' failed; rolled back")
        #expect(progress.results.map(\.status) == [.succeeded, .failed, .failed, .succeeded])
        #expect(progress.results.map(\.rollback) == [false, false, true, true])
    }

    @Test func continueCarriesOnAndAbortStopsWithoutRollback() {
        var tolerant = ExecutionProgress(assignment: Self.assignment([Self.step("a", onFailure: "continue"), Self.step("b")]))
        #expect(drive(&tolerant, ["a": false]) == ["a", "b"])
        #expect(tolerant.outcome == .succeeded)
        var strict = ExecutionProgress(assignment: Self.assignment([Self.step("a", onFailure: "abort"), Self.step("b")]))
        #expect(drive(&strict, ["a": false]) == ["a"])
        #expect(strict.outcome == .failed)
    }

    @Test func anInterruptedStepFailsUnlessIdempotent() throws {
        var progress = ExecutionProgress(assignment: Self.assignment([Self.step("a"), Self.step("b", idempotent: true), Self.step("c")]))
        progress.begin()
        // A restart in the middle of an idempotent step… (after "a" completed)
        progress.complete(succeeded: true)
        progress.begin()
        var restarted = try ExecutionProgress.decode(wire: Array(progress.wireJSON().utf8))
        #expect(restarted == progress)
        #expect(restarted.recoverInterruptedStep() == nil)
        #expect(restarted.current?.step.name == "b")
        #expect(restarted.started == false)
        // …and in the middle of one that is not.
        restarted.begin()
        restarted.complete(succeeded: true)
        restarted.begin()
        var again = try ExecutionProgress.decode(wire: Array(restarted.wireJSON().utf8))
        let recovered = again.recoverInterruptedStep()
        let failed = try #require(recovered)
        #expect(failed.name == "c")
        #expect(failed.status == .failed)
        #expect(again.current?.rollback == true)
        #expect(again.message == "step 'c' failed: interrupted: the agent stopped while it ran; rolled back")
    }

    @Test func reportIDsAreFixedPerStep() {
        var progress = ExecutionProgress(assignment: Self.assignment([Self.step("a")]))
        progress.begin()
        let result = progress.complete(succeeded: false)
        #expect(progress.report(for: result).reportID == "ex-1:step:0")
        progress.begin()
        let undo = progress.complete(succeeded: true)
        #expect(progress.report(for: undo).reportID == "ex-1:rollback:0")
    }

    @Test func aJournalThatDoesNotFitItsStepsIsRefused() {
        let text = #"{"assignment":{"executionID":"e","deploymentID":"d","app":"a","version":"1","steps":[]},"phase":"steps","index":3,"started":false,"failed":false,"results":[]}"#
        #expect(throws: WireDecodingError.self) { try ExecutionProgress.decode(wire: Array(text.utf8)) }
    }
}
