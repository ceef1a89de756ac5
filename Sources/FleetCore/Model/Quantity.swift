/// A rollout number: a count of devices, or a percentage of the devices in the rollout.
public enum Quantity: Hashable, Sendable, CustomStringConvertible {
    case count(Int)
    /// Percent from 0 to 100.
    case percent(Double)

    /// Parses `5` or `25%` (or `12.5%`): digits, with a fraction and '%' for a percentage. No
    /// minus, exponent or spaces, so the JSON Schema's pattern can say exactly the same.
    public static func parse(_ text: String) -> Quantity? {
        let isPercent = text.hasSuffix("%")
        // A '+' as YAML's integers may have it (`+5` is the integer 5 to every YAML reader).
        let number = isPercent ? text.dropLast() : (text.hasPrefix("+") ? text.dropFirst() : Substring(text))
        let parts = number.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
        let digits = { (part: Substring) in !part.isEmpty && part.utf8.allSatisfy { (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) } }
        guard parts.allSatisfy(digits), parts.count == 1 || isPercent else { return nil }
        if isPercent { return Double(number).map(Quantity.percent) }
        return Int(number).map(Quantity.count)
    }

    /// How many devices this is out of `total`, rounding a percentage up (a batch of 10% of 5 is 1).
    public func devices(of total: Int) -> Int {
        switch self {
        case .count(let count): return count
        case .percent(let percent): return Int((Double(total) * percent / 100).rounded(.up))
        }
    }

    /// How many devices this allows out of `total`, rounding a percentage down (5% of 10 failures allowed is 0).
    public func allowance(of total: Int) -> Int {
        switch self {
        case .count(let count): return count
        case .percent(let percent): return Int((Double(total) * percent / 100).rounded(.down))
        }
    }

    public var description: String {
        switch self {
        case .count(let count): return String(count)
        case .percent(let percent):
            return percent == percent.rounded() ? "\(Int(percent))%" : "\(percent)%"
        }
    }
}
