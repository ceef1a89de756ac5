/// A rollout number: a count of devices, or a percentage of the devices in the rollout.
public enum Quantity: Hashable, Sendable, CustomStringConvertible {
    case count(Int)
    /// Percent from 0 to 100.
    case percent(Double)

    /// Parses `5` or `25%`.
    public static func parse(_ text: String) -> Quantity? {
        if text.hasSuffix("%") {
            let number = text.dropLast().trimmingSpaces()
            guard let value = Double(number), value.isFinite else { return nil }
            return .percent(value)
        }
        return Int(text).map(Quantity.count)
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

extension Substring {
    func trimmingSpaces() -> Substring {
        var text = self
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return text
    }
}
