public import FleetCore
import FleetProtocol
import FleetStore
public import FoundationEssentials

/// A deterministic fleet: a virtual clock, the real rollout decision, the stores' own execution
/// transitions (`ExecutionRecord.applying`, `taken`, `ended`), and devices that run the agent's
/// real `ExecutionProgress`. No wall clock, no sockets: a seed gives the same run every time.
///
/// It checks the engine's invariants as it goes (`Violation`); `trace` tells, step by step,
/// what happened, for replaying one seed.
public final class FleetSimulator {
    public let scenario: Scenario
    public internal(set) var violations: [Violation] = []
    public private(set) var decisions = 0
    /// Executions left out of decisions' snapshots by `ExecutionHistory`, summed over them all.
    public internal(set) var historyDropped = 0
    var trace: ((String) -> Void)?

    // The server's side.
    var deployments: [DeploymentRecord] = []
    var deploymentIndex: [String: Int] = [:]
    var executions: [ExecutionRecord] = []
    var executionIndex: [String: Int] = [:]
    /// Each device's executions, by index, in creation order.
    var executionsOf: [String: [Int]] = [:]
    var registry: [RegisteredDevice] = []
    var fleet: CompiledFleet
    var commit = "c0"
    var headErrors: [String] = []
    var suspended: Set<String> = []
    var nextID = 0
    var dirty = true
    var lastDecision = -1_000_000
    var lastReport: FleetStatusReport?
    var lastActions = 0

    // The devices' side.
    var devices: [SimulatedDevice] = []
    var random: SeededGenerator

    // What the invariants remember.
    /// The rollout episode: grows each time the desired digest changes.
    var episode = 0
    /// "group digest" of each rollout the decision aborted.
    var abortedDigests: Set<String> = []
    /// The approvals given so far (`FleetSnapshot.approvalKey`).
    var approvals: Set<String> = []

    static let start = Date(timeIntervalSinceReferenceDate: 820_000_000)
    static let tick = 5
    static let heartbeatEvery = 15
    /// The controller decides when something changed, and at least this often.
    static let decideAtLeastEvery = 60
    let settings = RolloutSettings(offlineAfter: 45, selfHealInterval: 300, driftGrace: 10)

    public init(seed: UInt64, trace: ((String) -> Void)? = nil) throws {
        scenario = Scenario(seed: seed)
        self.trace = trace
        random = SeededGenerator(seed: seed ^ 0x5EED_F1EE_7000_0000)
        fleet = try scenario.fleet(version: "1.0")
        let initial = fleet.apps[0].targets
        for (index, spec) in scenario.devices.enumerated() {
            let id = index < 10 ? "d0\(index)" : "d\(index)"
            let target = initial.first { $0.group == "all" || $0.group == spec.ring }!
            devices.append(SimulatedDevice(id: id, spec: spec, installed: InstalledApp(version: "1.0", digest: target.digest)))
            registry.append(RegisteredDevice(id: id, ring: spec.ring, apps: ["app": InstalledApp(version: "1.0", digest: target.digest)],
                                             lastHeard: spec.firstHeard == 0 ? 0 : -86_400))
        }
        // The fleet has run 1.0 through the controller: that is what a rollback goes back to.
        for target in initial {
            let members = devices.filter { target.group == "all" || target.group == $0.spec.ring }.map(\.id)
            guard !members.isEmpty else { continue }
            let record = DeploymentRecord(id: newID("dep"), project: "sim", app: "app", version: "1.0", flow: "install", digest: target.digest,
                                          parameters: target.parameters, steps: steps(version: "1.0"), rollback: [restoreStep], artifactAllowlist: [],
                                          createdAt: date(-86_400), createdBy: "controller", purpose: .rollout, group: target.group)
            create(record, devices: members)
            for index in executions.indices where executions[index].deploymentID == record.id {
                executions[index].state = .succeeded
                executions[index].takenAt = date(-86_400)
            }
        }
        log(0, "scenario: \(scenario.deviceCount) devices, \(scenario.twoTargets ? "targets canary, main" : "one target"), rollout \(scenario.policy), "
            + "selfHeal \(scenario.selfHeal), gate \(scenario.gate?.description ?? "none"), windows \(scenario.windows?.description ?? "none"), "
            + "health \(scenario.health?.description ?? "none"), locks on \(scenario.devices.filter { !$0.locks.isEmpty }.count) devices, steps \(scenario.stepCount) × \(scenario.stepSeconds) s, failure rates \(scenario.failureRate.sorted { $0.key < $1.key })")
    }

    /// The calm phase's length: long enough for every wave to run one after the other.
    var calmSeconds: Int {
        let policy = fleet.apps[0].app.rollout
        let waves = (scenario.deviceCount + policy.waveSize(total: scenario.deviceCount) - 1) / policy.waveSize(total: scenario.deviceCount)
        let execution = scenario.stepCount * scenario.stepSeconds.upperBound + 2 * Self.tick + 2 * Self.heartbeatEvery
        // A promoted target waits for the first to converge and bake, then runs its own waves.
        let gated = scenario.gate.map { $0.bakeSeconds + (waves + 2) * (execution + Self.decideAtLeastEvery) * 2 } ?? 0
        // A window may open only a day or two on (a denied day in between), and each wave waits
        // for it again: a window shorter than the rollout spreads it over days.
        let windowed = scenario.windows.map { _ in 3 * 86_400 + (waves + 2) * 86_400 } ?? 0
        // Each wave waits for the one before to be observed.
        let observed = scenario.health.map { (waves + 2) * ($0.observeSeconds + 2 * Self.heartbeatEvery + Self.decideAtLeastEvery) * 2 } ?? 0
        return (waves + 2) * (execution + Self.decideAtLeastEvery) * 2 + scenario.executionTimeout + 600 + gated + windowed + observed
    }

    /// Runs the scenario to its end; returns the violations found.
    @discardableResult
    public func run() -> [Violation] {
        let end = scenario.chaosSeconds + calmSeconds
        var second = 0
        while second <= end, violations.isEmpty {
            step(second)
            // Calm and settled: nothing in flight, nothing queued on a device, the last decision
            // did nothing. It would stay so; the end state is checked now.
            if second >= scenario.chaosSeconds, settled { break }
            second += quiet(second) ? Self.quietStep : Self.tick
        }
        if violations.isEmpty { checkConverged(at: min(second, end)) }
        return violations
    }

    // MARK: One tick

    func step(_ second: Int) {
        let calm = second >= scenario.chaosSeconds
        if !calm { worldEvents(second) }
        for index in devices.indices { device(index, at: second, calm: calm) }
        let restart = scenario.restarts.contains { $0 / Self.tick == second / Self.tick }
        // Something changed; or time alone may end an execution (every minute while any is in
        // flight) or show drift past its grace (every five).
        let due = second - lastDecision >= (inFlight > 0 ? Self.decideAtLeastEvery : 5 * Self.decideAtLeastEvery)
        if dirty || restart || due { decide(at: second, restart: restart) }
    }

    /// How far a quiet calm phase moves at once: less than `offlineAfter` (45 s), so every
    /// device heartbeats and stays online as it would, and a window that opens is seen within
    /// the idle decision interval as before. Waiting days for a window costs thousands of steps
    /// rather than tens of thousands.
    static let quietStep = 30

    /// The process lists of health samples, shared by every sample rather than made for each.
    static let appUp = ["app": true]
    static let appDown = ["app": false]

    /// Calm, nothing in flight or queued, no device busy, and the last decision did nothing.
    func quiet(_ second: Int) -> Bool {
        second >= scenario.chaosSeconds && !dirty && lastActions == 0 && inFlight == 0
            && devices.indices.allSatisfy { devices[$0].idle }
    }

    /// Executions not final on the server.
    var inFlight: Int { executions.lazy.filter { !$0.state.isFinal }.count }

    var settled: Bool {
        // …and the server has heard what each device runs (a change by hand shows at its next heartbeat).
        lastActions == 0 && !dirty && inFlight == 0 && devices.indices.allSatisfy { devices[$0].idle }
            && devices.indices.allSatisfy { registry[$0].apps["app"] == devices[$0].installed && !registry[$0].locked }
            && lastReport?.apps.allSatisfy { $0.targets.allSatisfy { $0.state != "updating" && !(scenario.selfHeal && $0.state == "drifted")
                // Rollbacks waiting for a window will run when it opens.
                && !($0.state == "aborted" && $0.reason?.contains("window") == true)
                // A target waiting out a time (bake, notBefore) is not settled; one waiting for an approval or a target that will not converge is.
                && !($0.state == "waiting" && ($0.reason?.hasPrefix("baking") == true || $0.reason?.hasPrefix("waiting until") == true
                                                || $0.reason?.hasPrefix("waiting for window") == true
                                                || $0.reason?.hasPrefix("waiting for") == true && lastReport?.apps[0].targets.first?.state == "updating")) } } == true
    }

    func worldEvents(_ second: Int) {
        for (at, change) in scenario.commits where at / Self.tick == second / Self.tick {
            nextID += 1
            switch change {
            case .invalid:
                headErrors = ["apps/app.yaml:1:1: does not validate"]
                log(second, "commit c\(nextID): does not validate; the desired state stays at \(commit)")
            case .version(let version):
                guard let next = try? scenario.fleet(version: version) else { continue }
                if next.apps[0].targets.map(\.digest) != fleet.apps[0].targets.map(\.digest) { episode += 1 }
                fleet = next
                commit = "c\(nextID)"
                headErrors = []
                log(second, "commit \(commit): \(change)")
            }
            dirty = true
        }
        for (at, length) in scenario.suspensions {
            if at / Self.tick == second / Self.tick { suspended.insert("app"); dirty = true; log(second, "app suspended") }
            if (at + length) / Self.tick == second / Self.tick { suspended.remove("app"); dirty = true; log(second, "app resumed") }
        }
        for at in scenario.gate?.approvals ?? [] where at / Self.tick == second / Self.tick {
            if let main = fleet.apps[0].targets.first(where: { $0.group == "main" }) {
                approvals.insert(FleetSnapshot.approvalKey(app: "app", group: "main", digest: main.digest))
                dirty = true
                log(second, "an operator approved main at \(main.version)")
            }
        }
        for (at, index) in scenario.tamper where at / Self.tick == second / Self.tick {
            devices[index].installed = InstalledApp(version: "0.9", digest: nil)
            devices[index].tampered = true
            log(second, "\(devices[index].id) changed by hand to 0.9")
        }
    }

    // MARK: Devices

    func device(_ index: Int, at second: Int, calm: Bool) {
        let connected = calm || devices[index].spec.isConnected(at: second)
        let powered = calm || !devices[index].spec.isPoweredOff(at: second)
        if powered { advance(index, at: second, calm: calm) }
        guard connected else { return }
        // As the agent does: queued reports first, then the heartbeat, then assignments.
        flushOutbox(index, at: second)
        if second - devices[index].lastHeartbeat >= Self.heartbeatEvery || devices[index].heartbeatNow {
            heartbeat(index, at: second)
        }
        // As the agent does: locked, it takes no new work.
        let locked = !calm && devices[index].spec.isLocked(at: second)
        if devices[index].running == nil, !locked { poll(index, at: second) }
    }

    /// Runs the device's execution on: a step ends, the next begins.
    func advance(_ index: Int, at second: Int, calm: Bool) {
        guard var progress = devices[index].running else { return }
        guard second >= devices[index].stepEndsAt else { return }
        if progress.current != nil, devices[index].stepBegun {
            let rate = calm ? 0 : scenario.failureRate[progress.assignment.version] ?? 0
            let succeeded = Double.random(in: 0..<1, using: &random) >= rate
            let result = progress.complete(succeeded: succeeded, exitCode: succeeded ? 0 : 1)
            devices[index].outbox.append((progress.assignment.executionID, progress.report(for: result)))
            devices[index].stepBegun = false
        }
        if progress.current != nil {
            progress.begin()
            devices[index].stepBegun = true
            devices[index].stepEndsAt = second + Int.random(in: scenario.stepSeconds, using: &random)
            devices[index].running = progress
            return
        }
        // Finished: the installed version changes only when every step succeeded.
        let report = progress.finalReport!
        if report.state == .succeeded {
            devices[index].installed = InstalledApp(version: progress.assignment.version, digest: progress.assignment.digest)
            devices[index].tampered = false
        }
        devices[index].outcomes[progress.assignment.executionID] = report.state
        devices[index].outbox.append((progress.assignment.executionID, report))
        devices[index].finished.insert(progress.assignment.executionID)
        devices[index].running = nil
        devices[index].heartbeatNow = true
        log(second, "\(devices[index].id) finished \(progress.assignment.executionID) (\(progress.assignment.version)): \(report.state.rawValue)")
    }

    func flushOutbox(_ index: Int, at second: Int) {
        while !devices[index].outbox.isEmpty {
            let (id, report) = devices[index].outbox.removeFirst()
            guard let at = executionIndex[id], let next = executions[at].applying(report, at: date(second)) else { continue }
            if report.state.isFinal, executions[at].state.isFinal {
                log(second, "\(devices[index].id) reported \(id) \(report.state.rawValue) after the server had marked it \(executions[at].state.rawValue)")
            }
            executions[at] = next
            if report.state.isFinal { devices[index].delivered.insert(id); dirty = true }
        }
    }

    func heartbeat(_ index: Int, at second: Int) {
        // Fields, not a copy of the device: a copy would make appending a sample copy them all.
        let installed = devices[index].installed
        let executing = devices[index].running?.assignment.executionID
        let locked = second < scenario.chaosSeconds && devices[index].spec.isLocked(at: second)
        if registry[index].lastHeard + Int(settings.offlineAfter) < second || registry[index].apps["app"] != installed
            || registry[index].executing != executing || registry[index].locked != locked { dirty = true }
        registry[index].locked = locked
        registry[index].lastHeard = second
        // Changed in place: a new dictionary per heartbeat was a good part of the simulator's time.
        if registry[index].apps["app"] != installed { registry[index].apps["app"] = installed }
        registry[index].executing = executing
        if let health = scenario.health {
            // Each device's own CPU level with a little noise; what its version breaks on top.
            let regression = health.regressions[installed.version]
            let cpu = Double(20 + index % 10 + (second / Self.tick * 7 + index * 13) % 10) + (regression == .cpu ? 45 : 0)
            devices[index].samples.append(HealthSample(at: date(second), cpu: cpu, processes: regression == .crash ? Self.appDown : Self.appUp))
            if devices[index].samples.count > 400 { devices[index].samples.removeFirst(100) }
        }
        devices[index].lastHeartbeat = second
        devices[index].heartbeatNow = false
    }

    /// Takes the assignments the server has for the device and starts the first not finished.
    func poll(_ index: Int, at second: Int) {
        let id = devices[index].id
        let active = (executionsOf[id] ?? []).filter { !executions[$0].state.isFinal }
        guard !active.isEmpty else { return }
        for at in active {
            if let taken = executions[at].taken(at: date(second)) { executions[at] = taken; dirty = true }
        }
        guard let at = active.first(where: { !devices[index].finished.contains(executions[$0].id) }) else { return }
        let execution = executions[at]
        let deployment = deployments[deploymentIndex[execution.deploymentID]!]
        let assignment = Assignment(executionID: execution.id, deploymentID: deployment.id, app: deployment.app, version: deployment.version,
                                    digest: deployment.digest, steps: deployment.steps, rollback: deployment.rollback, artifactAllowlist: [])
        devices[index].running = ExecutionProgress(assignment: assignment)
        devices[index].stepBegun = false
        devices[index].stepEndsAt = second
        devices[index].received.append((execution.id, deployment.digest, deployment.purpose, episode))
        log(second, "\(id) took \(execution.id) (\(deployment.version), \(deployment.purpose))")
        checkReceivedOnce(index, at: second)
    }

    // MARK: The controller

    func snapshot(at second: Int, shuffled: Bool = false) -> FleetSnapshot {
        let deviceList = registry.indices.map { index in
            let device = registry[index]
            return FleetSnapshot.Device(id: device.id, tags: [("ring", device.ring)] + (scenario.devices[index].zone.map { [("timezone", $0)] } ?? []),
                                 apps: device.apps.map { (name: $0.key, version: $0.value.version, digest: $0.value.digest) },
                                 lastHeard: date(device.lastHeard), executing: device.executing,
                                 lock: device.locked ? (reason: "locked on the device", until: nil) : nil)
        }
        var deploymentList = deployments.map {
            FleetSnapshot.Deployment(id: $0.id, app: $0.app, version: $0.version, digest: $0.digest, purpose: $0.purpose,
                                     group: $0.group, createdAt: $0.createdAt, aborted: $0.aborted)
        }
        if shuffled { deploymentList.reverse() }
        return FleetSnapshot(commit: commit, headErrors: headErrors, fleet: fleet, devices: shuffled ? deviceList.reversed() : deviceList,
                             deployments: deploymentList,
                             executions: executions.map {
                                 FleetSnapshot.Execution(id: $0.id, deploymentID: $0.deploymentID, deviceID: $0.deviceID, state: $0.state,
                                                         updatedAt: $0.updatedAt, takenAt: $0.takenAt, healthPassed: $0.healthPassedAt != nil)
                             },
                             suspended: suspended, approvals: approvals,
                             samples: scenario.health == nil ? [:] : Dictionary(uniqueKeysWithValues: devices.map { ($0.id, $0.samples) }),
                             now: date(second), settings: settings)
    }

    func decide(at second: Int, restart: Bool) {
        dirty = false
        lastDecision = second
        decisions += 1
        let decision: RolloutDecision
        let full = snapshot(at: second)
        do {
            decision = try RolloutDecision.decide(full)
        } catch {
            violate(second, "the decision threw: \(error)")
            return
        }
        checkHistoryCut(full, decision: decision, at: second)
        if restart {
            // A restarted controller has only what the store has, listed in another order.
            let again = try? RolloutDecision.decide(snapshot(at: second, shuffled: true))
            if again?.actions != decision.actions || again?.report != decision.report {
                violate(second, "a restart changed the decision: \(decision.actions) before, \(again?.actions ?? []) after")
            }
            log(second, "controller restarted")
        }
        lastReport = decision.report
        checkHealthyWhenConverged(decision.report, at: second)
        lastActions = decision.actions.filter { if case .hold = $0 { false } else { true } }.count
        for action in decision.actions { apply(action, at: second) }
        checkInvariants(at: second)
    }

    func apply(_ action: RolloutAction, at second: Int) {
        switch action {
        case .startWave(let app, let group, let digest, let devices), .heal(let app, let group, let digest, let devices):
            if case .startWave = action, abortedDigests.contains(group + " " + digest) {
                violate(second, "a wave of \(digest.prefix(8)) started after its rollout aborted")
            }
            if case .startWave = action {
                checkGate(group: group, digest: digest, at: second)
                checkNoneObserved(group: group, digest: digest, at: second)
            }
            checkNotLocked(devices, at: second)
            checkInsideWindow(devices, at: second)
            let target = fleet.apps[0].targets.first { $0.group == group && $0.digest == digest }!
            let purpose: DeploymentPurpose = if case .heal = action { .heal } else { .rollout }
            let record = DeploymentRecord(id: newID("dep"), project: "sim", app: app, version: target.version, flow: "install", digest: digest,
                                          parameters: target.parameters, steps: steps(version: target.version), rollback: [restoreStep],
                                          artifactAllowlist: [], createdAt: date(second), createdBy: "controller", purpose: purpose,
                                          group: group)
            create(record, devices: devices)
            log(second, "\(purpose) \(record.id) \(app)/\(group) \(target.version) → \(devices.joined(separator: ","))")
        case .abortRollout(_, let group, let digest, let ids, let failed, let allowed):
            abortedDigests.insert(group + " " + digest)
            for id in ids {
                guard let at = deploymentIndex[id] else { continue }
                deployments[at].aborted = true
                for index in executions.indices where executions[index].deploymentID == id {
                    if let ended = executions[index].ended(as: .cancelled, message: "the deployment was aborted", at: date(second)) {
                        executions[index] = ended
                    }
                }
            }
            log(second, "rollout of \(group) aborted: \(failed) failed, \(allowed) allowed")
        case .rollBack(_, let aborted, let restoring, let devices):
            var record = deployments[deploymentIndex[restoring]!]
            record.id = newID("dep")
            record.createdAt = date(second)
            record.purpose = .rollback(abortedDigest: aborted)
            record.aborted = false
            checkNotLocked(devices, at: second)
            checkInsideWindow(devices, at: second)
            create(record, devices: devices)
            log(second, "rollback \(record.id) to \(record.version) → \(devices.joined(separator: ","))")
        case .end(_, let id, let device, let state, let reason, let unlessUpdatedAfter):
            guard let at = executionIndex[id],
                  let ended = executions[at].ended(as: state, message: reason.message, unlessUpdatedAfter: unlessUpdatedAfter, at: date(second))
            else { return }
            executions[at] = ended
            if reason == .stalled {
                let index = self.devices.firstIndex { $0.id == device }!
                // Only a device that is really there can stall: one that is offline is never failed.
                let window = stride(from: second - Int(settings.offlineAfter), through: second, by: Self.tick)
                if second < scenario.chaosSeconds, !window.contains(where: { self.devices[index].spec.isConnected(at: $0) }) {
                    violate(second, "\(device) was offline and its execution \(id) was counted as a failure (timedOut)")
                }
            }
            log(second, "server ended \(id) of \(device): \(reason.rawValue) → \(state.rawValue)")
        case .failHealth(_, _, let id, let device, let message):
            guard let at = executionIndex[id], let failed = executions[at].ended(as: .failed, message: message, at: date(second)) else { return }
            executions[at] = failed
            log(second, "\(device) failed its health checks after \(id): \(message)")
        case .passHealth(_, _, let id, _):
            if let at = executionIndex[id], let passed = executions[at].ended(as: .succeeded, message: "", at: date(second)) { executions[at] = passed }
        case .hold:
            break
        }
    }

    func create(_ record: DeploymentRecord, devices: [String]) {
        deploymentIndex[record.id] = deployments.count
        deployments.append(record)
        for device in devices {
            let execution = ExecutionRecord(id: newID("ex"), deploymentID: record.id, deviceID: device, updatedAt: record.createdAt)
            executionIndex[execution.id] = executions.count
            executionsOf[device, default: []].append(executions.count)
            executions.append(execution)
        }
        dirty = true
    }

    func steps(version: String) -> [AssignedStep] {
        (0..<scenario.stepCount).map { AssignedStep(name: "step\($0)", kind: .run, command: "install \(version) \($0)", timeoutSeconds: 60, retries: 0,
                                                     onFailure: "rollback", idempotent: false) }
    }

    let restoreStep = AssignedStep(name: "restore", kind: .run, command: "restore", timeoutSeconds: 60, retries: 0, onFailure: "continue",
                                           idempotent: true)

    // MARK: Support

    func date(_ second: Int) -> Date { Self.start.addingTimeInterval(Double(second)) }

    func newID(_ prefix: String) -> String {
        nextID += 1
        return "\(prefix)\(nextID)"
    }

    func violate(_ second: Int, _ message: String) {
        violations.append(Violation(second: second, message: message))
        log(second, "VIOLATION: " + message)
    }

    func log(_ second: Int, _ line: @autoclosure () -> String) {
        guard let trace else { return }
        let time = String(second)
        trace(String(repeating: " ", count: max(0, 6 - time.count)) + time + " s  " + line())
    }
}

/// An invariant that did not hold, and when.
public struct Violation: Sendable, Equatable, CustomStringConvertible {
    public var second: Int
    public var message: String

    public var description: String { "at \(second) s: \(message)" }
}

/// The registry's row for a device, as heartbeats leave it.
struct RegisteredDevice {
    var id: String
    var ring: String
    var apps: [String: InstalledApp]
    var lastHeard: Int
    var executing: String?
    /// Its last heartbeat said it refuses updates.
    var locked = false
}

/// A device as it really is.
struct SimulatedDevice {
    /// Nothing running and nothing to report (read without copying the execution out).
    var idle: Bool {
        if case .some = running { return false }
        return outbox.isEmpty
    }

    var id: String
    var spec: SimulatedDeviceSpec
    var installed: InstalledApp
    var tampered = false
    var running: ExecutionProgress?
    var stepBegun = false
    var stepEndsAt = 0
    var lastHeartbeat = -1_000
    var heartbeatNow = false
    var outbox: [(String, ExecutionReport)] = []
    var finished: Set<String> = []
    var outcomes: [String: ExecutionState] = [:]
    /// Final reports the server received.
    var delivered: Set<String> = []
    var received: [(id: String, digest: String, purpose: DeploymentPurpose, episode: Int)] = []
    /// What its heartbeats said, for health checks.
    var samples: [HealthSample] = []

    init(id: String, spec: SimulatedDeviceSpec, installed: InstalledApp) {
        self.id = id
        self.spec = spec
        self.installed = installed
    }
}
