import FleetProtocol
import FuzzSupport


/// One input: bytes as the body of an agent request or a server answer. Decoding never
/// traps, and whatever decodes encodes to JSON that decodes to the same value.
func fuzzWireJSON(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    _ = WireJSON.parse(bytes)
    roundTrip(Heartbeat.self, bytes)
    roundTrip(ExecutionReport.self, bytes)
    roundTrip(EnrollmentRequest.self, bytes)
    roundTrip(Assignment.self, bytes)
    roundTrip(ExecutionProgress.self, bytes)
    return 0
}

private func roundTrip<T: WireDecodable & WireEncodable & Equatable>(_ type: T.Type, _ bytes: UnsafeBufferPointer<UInt8>) {
    guard let value = try? T.decode(wire: bytes) else { return }
    let encoded = value.wireJSON()
    guard let again = try? T.decode(wire: Array(encoded.utf8)) else {
        fatalError("\(T.self) decoded, but its own encoding does not decode: \(encoded)")
    }
    guard again == value else { fatalError("\(T.self) changed through encode and decode: \(encoded)") }
}

// Last, so the declarations above are initialised before the first input.
runFuzzer { data, size in fuzzWireJSON(data, size) }
