public import FleetProtocol
import Glibc
import Synchronization

/// The probe thread: each installed app whose flow declares a probe has it run on its own
/// interval, and right after every install. What it says goes out with the next heartbeat (at
/// once when it changed), so the server sees drift made behind the agent's back.
extension Agent {
    func probeLoop() {
        var due: [String: Double] = [:]
        var known: [String: AssignedProbe] = [:]
        while !stopped.load(ordering: .relaxed) {
            let now = Clock.monotonic()
            let current = probes.withLock { $0 }
            for app in probesDue.withLock({ pending in defer { pending.removeAll() }; return pending }) { due[app] = now }
            for (app, probe) in current where known[app] != probe {
                known[app] = probe
                due[app] = now
            }
            for app in known.keys where current[app] == nil {
                known[app] = nil
                probeResults.withLock { $0[app] = nil }
            }
            // An app queued for a probe it no longer has (installed again without one) is not due.
            due = due.filter { current[$0.key] != nil }
            // Not while an execution runs: a half-installed app is not drift.
            let busy = executing.withLock { $0 } != nil
            if !busy, let (app, _) = due.filter({ $0.value <= now }).min(by: { $0.value < $1.value }), let probe = current[app] {
                let generation = installs.load(ordering: .relaxed)
                let result = Self.probe(probe)
                // An execution that started meanwhile made this reading stale (it may have seen the
                // app half-installed); a fresh one is taken when it ends. Checked under the lock
                // an execution's start and end take too.
                let stored = probeResults.withLock { results -> (stored: Bool, previous: ProbeResult?) in
                    guard installs.load(ordering: .relaxed) == generation else { return (false, nil) }
                    defer { results[app] = result }
                    return (true, results[app])
                }
                if stored.stored {
                    let previous = stored.previous
                    if previous?.version != result.version || previous?.error != result.error {
                        if result.error != nil { Log.warning("\(app): \(result.summary)") } else { Log.info("\(app): \(result.summary)") }
                        heartbeatNow.store(true, ordering: .relaxed)
                    }
                    due[app] = Clock.monotonic() + Double(probe.intervalSeconds)
                }
                continue
            }
            let next = busy ? now + 0.25 : due.values.min() ?? now + 1
            Clock.sleep(seconds: min(0.25, max(0.01, next - Clock.monotonic())))
        }
    }

    /// An execution of `app` starts or ends, whatever its outcome: a probe running across it is
    /// not believed, and one of the app runs next.
    func executionBoundary(app: String) {
        probeResults.withLock { _ in installs.add(1, ordering: .relaxed) }
        probesDue.withLock { _ = $0.insert(app) }
    }

    /// Records the probe of an app just installed (or that it has none now) and has it run next.
    func installed(app: String, probe: AssignedProbe?) {
        let all = probes.withLock { probes in
            probes[app] = probe
            return probes
        }
        probeResults.withLock { results in
            installs.add(1, ordering: .relaxed)
            results[app] = nil
        }
        if probe != nil { probesDue.withLock { _ = $0.insert(app) } }
        do { try Files.writeAtomically(probesPath, Array(all.wireJSON().utf8)) } catch { Log.error("cannot record the apps' probes: \(error)") }
    }

    static func loadProbes(_ path: String) -> [String: AssignedProbe] { (try? readMap(path)) ?? [:] }

    /// A map the agent keeps on disk (`apps.json`, `probes.json`): empty when the file is not
    /// there; an entry that does not read is left out.
    static func readMap<Value: WireDecodable>(_ path: String) throws(AgentError) -> [String: Value] {
        guard let bytes = try Files.read(path), let members = WireJSON.parse(bytes)?.members else { return [:] }
        var map: [String: Value] = [:]
        for member in members {
            if let value = try? Value(wire: member.value, path: member.key) { map[member.key] = value }
        }
        return map
    }

    /// Runs one probe through `/bin/sh -c`, killed with its process group at its timeout.
    public static func probe(_ probe: AssignedProbe) -> ProbeResult {
        let at = Clock.epochMilliseconds()
        if let problem = StepRules.problem(in: probe, at: "probe") {
            return ProbeResult(version: nil, error: "probe refused: \(problem.message)", atMilliseconds: at)
        }
        do {
            let outcome = try ProcessRunner.run(["/bin/sh", "-c", probe.command], timeoutSeconds: Double(probe.timeoutSeconds),
                                                separateStandardOutput: true)
            return ProbeReading.result(outcome, timeoutSeconds: probe.timeoutSeconds, at: at)
        } catch {
            return ProbeResult(version: nil, error: "probe could not start: \(error)", atMilliseconds: at)
        }
    }
}

/// What a probe's run says: the first line it printed is the version; nothing printed, nothing
/// runs; a timeout, a failure or text that is not a version leaves the version unknown.
public enum ProbeReading {
    public static func result(_ outcome: ProcessRunner.Outcome, timeoutSeconds: Int, at: Int64) -> ProbeResult {
        if outcome.timedOut { return ProbeResult(version: nil, error: "probe timed out after \(timeoutSeconds) s", atMilliseconds: at) }
        guard outcome.exitCode == 0 else {
            let said = lines(outcome.output).last.map { ": " + shown($0) } ?? ""
            return ProbeResult(version: nil, error: "probe \(outcome.failure)\(said)", atMilliseconds: at)
        }
        guard let first = lines(String(decoding: outcome.standardOutput, as: UTF8.self)).first else {
            return ProbeResult(version: nil, atMilliseconds: at)
        }
        if let problem = StepRules.versionProblem(first) {
            return ProbeResult(version: nil, error: "probe printed '\(shown(first))', which is not a version: \(problem)", atMilliseconds: at)
        }
        return ProbeResult(version: first, atMilliseconds: at)
    }

    /// The non-empty lines of `text`, trimmed of spaces and tabs.
    static func lines(_ text: String) -> [String] {
        text.split(whereSeparator: { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }).compactMap { line in
            let trimmed = line.drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed()
            return trimmed.isEmpty ? nil : String(trimmed)
        }
    }

    /// At most 100 code points (400 bytes), control characters replaced: it ends up in STATUS.md
    /// and terminals, and the server takes 512 bytes of a probe's error.
    static func shown(_ text: String) -> String {
        let scalars = text.unicodeScalars.map { StepRules.isControl($0) ? "?" : $0 }
        let cleaned = String(String.UnicodeScalarView(scalars.prefix(100)))
        return scalars.count > 100 ? cleaned + "…" : cleaned
    }
}
