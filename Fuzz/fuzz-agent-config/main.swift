import FleetAgent
import FuzzSupport


/// One input: bytes as /etc/flotilla/agent.yaml. The reader answers with settings or an
/// error naming file:line:column, and never traps.
func fuzzAgentConfiguration(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = Array(fuzzInput(data, size))
    do {
        _ = try AgentConfiguration.parse(bytes, file: "agent.yaml")
    } catch {
        guard error.description.hasPrefix("agent.yaml:") else { fatalError("an error without its place: \(error.description)") }
    }
    return 0
}

// Last, so the declarations above are initialised before the first input.
runFuzzer { data, size in fuzzAgentConfiguration(data, size) }
