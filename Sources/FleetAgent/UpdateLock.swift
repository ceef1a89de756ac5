public import FleetProtocol
import Glibc

/// The device's update lock: a small text file an operator writes with `flotilla-agent lock`, or
/// an application writes itself while it must not be disturbed. Its first line is the reason;
/// a line `until=<milliseconds since 1970>` makes it end by itself. While it holds, the agent
/// says so in every heartbeat (the server skips the device, never failing it) and takes no new
/// work; what it already runs, it finishes.
public enum UpdateLockFile {
    /// The lock the file holds at `now`; nil when there is no file, or it has expired.
    public static func read(_ path: String, now: Int64 = Clock.epochMilliseconds()) -> Heartbeat.UpdateLock? {
        let text: String
        do {
            guard let read = try Files.readText(path, limit: 4_096, untrusted: true) else { return nil }
            text = read
        } catch {
            // A lock file that is there but cannot be read still locks: refusing an update is
            // the safe side of not knowing.
            // A link there is not followed (its target's first line would go out as the reason).
            return Heartbeat.UpdateLock(reason: "the update lock file cannot be read (\(error.description)); a link is not followed")
        }
        var reason = ""
        var until: Int64?
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if line.hasPrefix("until=") {
                until = Int64(line.dropFirst("until=".count).trimmingSpaces())
            } else if index == 0 {
                reason = String(line.trimmingSpaces())
            }
        }
        if let until, until <= now { return nil }
        // What the server accepts: 1 to 200 bytes, no control characters.
        var clean = String(String.UnicodeScalarView(reason.unicodeScalars.filter { !StepRules.isControl($0) }))
        while clean.utf8.count > 200 { clean.removeLast() }
        return Heartbeat.UpdateLock(reason: clean.isEmpty ? "locked" : clean, untilMilliseconds: until)
    }

    public static func write(_ path: String, reason: String, untilMilliseconds: Int64?) throws(AgentError) {
        var text = reason.replacingNewlines() + "\n"
        if let untilMilliseconds { text += "until=\(untilMilliseconds)\n" }
        try Files.makeDirectories(Files.parent(of: path))
        try Files.writeAtomically(path, Array(text.utf8), mode: 0o644)
    }

    public static func remove(_ path: String) { Files.remove(path) }
}

extension StringProtocol {
    func trimmingSpaces() -> Substring {
        var text = Substring(self)
        while let first = text.first, first == " " || first == "\t" || first == "\r" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" || last == "\r" { text.removeLast() }
        return text
    }

    func replacingNewlines() -> String {
        String(String.UnicodeScalarView(unicodeScalars.map { $0 == "\n" || $0 == "\r" ? " " : $0 }))
    }
}

/// `--for` durations: whole numbers with s, m, h or d, one after another (`1h30m`).
public enum LockDuration {
    /// The longest lock `--for` takes: 36,500 days.
    public static let longest: Int64 = 36_500 * 86_400_000

    public static func milliseconds(_ text: String) -> Int64? {
        var total: Int64 = 0, number: Int64?
        for character in text {
            if let digit = character.wholeNumberValue, character.isASCII {
                number = (number ?? 0) * 10 + Int64(digit)
                guard number! < 1_000_000_000 else { return nil }
                continue
            }
            guard let value = number else { return nil }
            let unit: Int64
            switch character {
            case "s": unit = 1_000
            case "m": unit = 60_000
            case "h": unit = 3_600_000
            case "d": unit = 86_400_000
            default: return nil
            }
            // Past about a hundred years is a mistake, not a lock: refused, never an overflow.
            let (part, overflowed) = value.multipliedReportingOverflow(by: unit)
            guard !overflowed, part <= longest - total else { return nil }
            total += part
            number = nil
        }
        return number == nil && total > 0 ? total : nil
    }
}
