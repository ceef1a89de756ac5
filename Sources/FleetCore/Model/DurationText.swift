/// Durations as operators write them: `30s`, `5m`, `2h`, `1h30m`, `500ms`, `7d`.
public enum DurationText {
    public struct Problem: Error, Sendable, Equatable { public var reason: String }

    /// Parses a duration; the units are ms, s, m, h and d, and a number comes before each.
    public static func parse(_ text: String) -> Result<Duration, Problem> {
        guard !text.isEmpty else { return .failure(Problem(reason: "it is empty")) }
        var total: Int64 = 0
        var number: Int64? = nil
        var scalars = Array(text.unicodeScalars)[...]
        while let first = scalars.first {
            if first.value >= 48, first.value <= 57 {
                let digit = Int64(first.value - 48)
                let (times, overflow1) = (number ?? 0).multipliedReportingOverflow(by: 10)
                let (sum, overflow2) = times.addingReportingOverflow(digit)
                guard !overflow1, !overflow2 else { return .failure(Problem(reason: "the number is too large")) }
                number = sum
                scalars.removeFirst()
                continue
            }
            guard let value = number else {
                return .failure(Problem(reason: "expected a number before '\(first)'; write it like 30s, 5m or 2h"))
            }
            let unit: Int64
            if scalars.starts(with: "ms".unicodeScalars) { unit = 1; scalars.removeFirst(2) } else {
                switch first {
                case "s": unit = 1_000
                case "m": unit = 60_000
                case "h": unit = 3_600_000
                case "d": unit = 86_400_000
                case " ":
                    return .failure(Problem(reason: "spaces are not allowed; write it like 30s, 5m or 1h30m"))
                default:
                    return .failure(Problem(reason: "unknown unit '\(first)'; use ms, s, m, h or d"))
                }
                scalars.removeFirst()
            }
            let (part, overflow1) = value.multipliedReportingOverflow(by: unit)
            let (sum, overflow2) = total.addingReportingOverflow(part)
            guard !overflow1, !overflow2 else { return .failure(Problem(reason: "the duration is too long")) }
            total = sum
            number = nil
        }
        if number != nil {
            return .failure(Problem(reason: "a number needs a unit (ms, s, m, h or d), as in 30s"))
        }
        return .success(.milliseconds(total))
    }

    /// The shortest text that parses back to `duration`: `90s` → `1m30s`.
    public static func format(_ duration: Duration) -> String {
        var milliseconds = duration.components.seconds * 1_000 + duration.components.attoseconds / 1_000_000_000_000_000
        if milliseconds == 0 { return "0s" }
        var text = ""
        for (unit, size) in [("d", Int64(86_400_000)), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1)] {
            if milliseconds >= size {
                text += "\(milliseconds / size)\(unit)"
                milliseconds %= size
            }
        }
        return text
    }
}

extension Duration {
    /// The duration in seconds, fractions included.
    public var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
