/// Recursive descent over bytes. Nesting deeper than 64 levels is refused.
struct WireParser {
    private let input: UnsafeBufferPointer<UInt8>
    private var position = 0
    private var depth = 0
    static let maximumDepth = 64

    init(_ input: UnsafeBufferPointer<UInt8>) { self.input = input }

    mutating func document() -> WireJSON? {
        guard let value = value() else { return nil }
        skipSpace()
        return position == input.count ? value : nil
    }

    private mutating func skipSpace() {
        while position < input.count {
            switch input[position] {
            case 0x20, 0x0A, 0x0D, 0x09: position += 1
            default: return
            }
        }
    }

    private mutating func value() -> WireJSON? {
        skipSpace()
        guard position < input.count else { return nil }
        switch input[position] {
        case UInt8(ascii: "{"): return object()
        case UInt8(ascii: "["): return array()
        case UInt8(ascii: "\""): return string().map(WireJSON.string)
        case UInt8(ascii: "t"): return literal("true", .bool(true))
        case UInt8(ascii: "f"): return literal("false", .bool(false))
        case UInt8(ascii: "n"): return literal("null", .null)
        default: return number()
        }
    }

    private mutating func literal(_ text: StaticString, _ result: WireJSON) -> WireJSON? {
        let count = text.utf8CodeUnitCount
        guard input.count - position >= count else { return nil }
        for index in 0..<count where input[position + index] != text.utf8Start[index] { return nil }
        position += count
        return result
    }

    private mutating func object() -> WireJSON? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { return nil }
        position += 1
        var members: [WireJSON.Member] = []
        skipSpace()
        if position < input.count, input[position] == UInt8(ascii: "}") {
            position += 1
            return .object(members)
        }
        while true {
            skipSpace()
            guard position < input.count, input[position] == UInt8(ascii: "\""), let key = string() else { return nil }
            skipSpace()
            guard position < input.count, input[position] == UInt8(ascii: ":") else { return nil }
            position += 1
            guard let value = value() else { return nil }
            members.append(WireJSON.Member(key, value))
            skipSpace()
            guard position < input.count else { return nil }
            if input[position] == UInt8(ascii: ",") { position += 1; continue }
            if input[position] == UInt8(ascii: "}") { position += 1; return .object(members) }
            return nil
        }
    }

    private mutating func array() -> WireJSON? {
        depth += 1
        defer { depth -= 1 }
        guard depth <= Self.maximumDepth else { return nil }
        position += 1
        var items: [WireJSON] = []
        skipSpace()
        if position < input.count, input[position] == UInt8(ascii: "]") {
            position += 1
            return .array(items)
        }
        while true {
            guard let item = value() else { return nil }
            items.append(item)
            skipSpace()
            guard position < input.count else { return nil }
            if input[position] == UInt8(ascii: ",") { position += 1; continue }
            if input[position] == UInt8(ascii: "]") { position += 1; return .array(items) }
            return nil
        }
    }

    private mutating func string() -> String? {
        position += 1
        let start = position
        // The common case: no escapes, so the bytes are the string.
        while position < input.count {
            let byte = input[position]
            if byte == UInt8(ascii: "\"") {
                let text = String(validating: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)
                position += 1
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { return nil }
            position += 1
        }
        var bytes = Array(input[start..<position])
        while position < input.count {
            let byte = input[position]
            position += 1
            switch byte {
            case UInt8(ascii: "\""):
                return String(validating: bytes, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard position < input.count else { return nil }
                let escape = input[position]
                position += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): bytes.append(escape)
                case UInt8(ascii: "b"): bytes.append(0x08)
                case UInt8(ascii: "f"): bytes.append(0x0C)
                case UInt8(ascii: "n"): bytes.append(0x0A)
                case UInt8(ascii: "r"): bytes.append(0x0D)
                case UInt8(ascii: "t"): bytes.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex4() else { return nil }
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard input.count - position >= 2, input[position] == UInt8(ascii: "\\"),
                              input[position + 1] == UInt8(ascii: "u") else { return nil }
                        position += 2
                        guard let low = hex4(), (0xDC00..<0xE000).contains(low) else { return nil }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        return nil
                    }
                    // U+0000 is refused: no store keeps it (PostgreSQL's text cannot), and no
                    // field of the protocol has a use for it.
                    guard scalar != 0, let unicode = Unicode.Scalar(scalar) else { return nil }
                    bytes.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    return nil
                }
            default:
                if byte < 0x20 { return nil }
                bytes.append(byte)
            }
        }
        return nil
    }

    private mutating func hex4() -> UInt32? {
        guard input.count - position >= 4 else { return nil }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = input[position]
            position += 1
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: return nil
            }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    private mutating func number() -> WireJSON? {
        let start = position
        var isInteger = true
        if position < input.count, input[position] == UInt8(ascii: "-") { position += 1 }
        guard position < input.count, isDigit(input[position]) else { return nil }
        if input[position] == UInt8(ascii: "0") {
            position += 1
        } else {
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        if position < input.count, input[position] == UInt8(ascii: ".") {
            isInteger = false
            position += 1
            guard position < input.count, isDigit(input[position]) else { return nil }
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        if position < input.count, input[position] == UInt8(ascii: "e") || input[position] == UInt8(ascii: "E") {
            isInteger = false
            position += 1
            if position < input.count, input[position] == UInt8(ascii: "+") || input[position] == UInt8(ascii: "-") { position += 1 }
            guard position < input.count, isDigit(input[position]) else { return nil }
            while position < input.count, isDigit(input[position]) { position += 1 }
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: input[start..<position]), as: UTF8.self)
        if isInteger, let integer = Int64(text) { return .number(Double(integer), integer: integer) }
        guard let double = Double(text), double.isFinite else { return nil }
        return .number(double, integer: nil)
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }
}
