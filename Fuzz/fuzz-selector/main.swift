import FleetCore
import FuzzSupport


/// One input: bytes as a label selector. Parsing never traps; a selector that parses has a
/// canonical text that parses to the same selector and selects the same devices.
func fuzzSelector(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let text = String(decoding: fuzzInput(data, size), as: UTF8.self)
    guard let selector = try? LabelSelector(parsing: text) else { return 0 }
    let canonical = selector.description
    guard let again = try? LabelSelector(parsing: canonical) else {
        fatalError("the canonical form of \(text.debugDescription) does not parse: \(canonical.debugDescription)")
    }
    guard again.description == canonical else {
        fatalError("the canonical form is not stable: \(canonical.debugDescription) -> \(again.description.debugDescription)")
    }
    // Tag sets made of the selector's own keys and values, so the requirements are exercised.
    let keys = selector.requirements.map(\.key), values = selector.requirements.flatMap(\.values) + ["", "x"]
    for (index, key) in keys.enumerated() {
        for value in values {
            var tags = ["unrelated": "1"]
            tags[key] = value
            if index % 2 == 0, let other = keys.first { tags[other] = nil }
            guard selector.matches(tags) == again.matches(tags) else {
                fatalError("\(text.debugDescription) and its canonical form select differently for \(tags)")
            }
        }
    }
    return 0
}

// Last, so the declarations above are initialised before the first input.
runFuzzer { data, size in fuzzSelector(data, size) }
