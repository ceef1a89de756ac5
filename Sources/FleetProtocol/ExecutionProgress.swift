/// Where one execution stands: the state machine that decides which step runs next and what a
/// step's outcome leads to. Pure — no I/O — so the agent journals it and `flotilla sim` drives the
/// same logic for thousands of simulated devices.
///
/// Per step, in this order: `begin()` (journaled before the step runs), the step, `complete(_:)`
/// (journaled after). After a crash, a step that began and never completed is settled by
/// `recoverInterruptedStep()`: run again when it is idempotent, otherwise counted as failed.
public struct ExecutionProgress: Sendable, Equatable {
    public enum Phase: String, Sendable {
        case steps, rollback, finished
    }

    public var assignment: Assignment
    public private(set) var phase: Phase = .steps
    /// The step to run next, or the one running when `started`.
    public private(set) var index = 0
    public private(set) var started = false
    /// The outcome will be failed (a step failed with `rollback` or `abort`).
    public private(set) var failed = false
    public private(set) var message: String?
    public private(set) var results: [StepResult] = []

    public init(assignment: Assignment) {
        self.assignment = assignment
        settle()
    }

    /// The step to run now, nil once finished.
    public var current: (step: AssignedStep, index: Int, rollback: Bool)? {
        switch phase {
        case .steps: (assignment.steps[index], index, false)
        case .rollback: (assignment.rollback[index], index, true)
        case .finished: nil
        }
    }

    /// The final state once finished: succeeded unless a step failed with rollback or abort.
    public var outcome: ExecutionState? {
        phase == .finished ? (failed ? .failed : .succeeded) : nil
    }

    /// Marks the current step as begun.
    public mutating func begin() {
        precondition(phase != .finished, "no step to begin")
        started = true
    }

    /// Records the current step's result and moves on as its `onFailure` says.
    @discardableResult
    public mutating func complete(succeeded: Bool, attempts: Int = 1, exitCode: Int? = nil, output: String? = nil,
                                  reason: String? = nil) -> StepResult {
        guard let (step, index, rollback) = current else { preconditionFailure("no step to complete") }
        let result = StepResult(index: index, name: step.name, status: succeeded ? .succeeded : .failed, rollback: rollback,
                                attempts: attempts, exitCode: exitCode, outputTail: output)
        results.append(result)
        started = false
        if rollback || succeeded {
            self.index += 1
        } else {
            let why = "step '\(step.name)' failed" + (reason.map { ": \($0)" } ?? "")
            switch step.onFailure {
            case "continue":
                self.index += 1
            case "abort":
                failed = true
                message = why
                phase = .finished
            default:
                failed = true
                message = why + (assignment.rollback.isEmpty ? "" : "; rolled back")
                phase = .rollback
                self.index = 0
            }
        }
        settle()
        return result
    }

    /// After a restart: a step that began and did not complete runs again when it is marked
    /// idempotent; otherwise it counts as failed (and leads to its onFailure). Returns the
    /// failed result, if one was recorded.
    @discardableResult
    public mutating func recoverInterruptedStep() -> StepResult? {
        guard started, let (step, _, _) = current else { return nil }
        if step.idempotent {
            started = false
            return nil
        }
        return complete(succeeded: false, reason: "interrupted: the agent stopped while it ran")
    }

    /// Moves past the end of a phase.
    private mutating func settle() {
        if phase == .steps, index >= assignment.steps.count { phase = .finished }
        if phase == .rollback, index >= assignment.rollback.count { phase = .finished }
    }

    // MARK: Reports

    /// The report of a step result; its id is fixed by the step, so a resend is applied once.
    public func report(for result: StepResult) -> ExecutionReport {
        ExecutionReport(reportID: "\(assignment.executionID):\(result.rollback ? "rollback" : "step"):\(result.index)",
                        state: .running, step: result)
    }

    /// The final report, once finished.
    public var finalReport: ExecutionReport? {
        guard let outcome else { return nil }
        return ExecutionReport(reportID: "\(assignment.executionID):final", state: outcome, message: message)
    }
}

extension ExecutionProgress {
    /// The execution a journal names, read from JSON too damaged (or too new: written by a later
    /// agent, before a rollback of the agent itself) to decode as a whole. Nil when even that
    /// cannot be found.
    public static func executionID(inUnreadable bytes: [UInt8]) -> String? {
        guard case .object(let members)? = WireJSON.parse(bytes),
              case .object(let assignment)? = members.first(where: { $0.key == "assignment" })?.value,
              case .string(let id)? = assignment.first(where: { $0.key == "executionID" })?.value, !id.isEmpty else { return nil }
        return id
    }
}

extension ExecutionProgress: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        assignment = try Assignment(wire: try object.required("assignment"), path: object.child("assignment"))
        guard let phase = Phase(rawValue: try object.string("phase")) else { throw WireObject.wrongType(object.child("phase")) }
        self.phase = phase
        index = try object.int("index")
        started = try object.bool("started")
        failed = try object.bool("failed")
        message = try object.optionalString("message")
        results = try object.array("results") { (value, path) throws(WireDecodingError) in try StepResult(wire: value, path: path) }
        let count = phase == .steps ? assignment.steps.count : phase == .rollback ? assignment.rollback.count : Int.max
        guard index >= 0, phase == .finished || index < count else {
            throw WireDecodingError(field: object.child("index"), message: "'index' is outside the steps")
        }
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("assignment", assignment)
        writer.field("failed", failed)
        writer.field("index", index)
        writer.field("message", message)
        writer.field("phase", phase.rawValue)
        writer.field("results", results)
        writer.field("started", started)
        writer.endObject()
    }
}
