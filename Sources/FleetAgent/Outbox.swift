public import FleetProtocol
import Synchronization

/// Reports waiting to reach the server, on disk, in the order they were made. Execution reports
/// always pass through here (written before they are sent, so a crash loses none); heartbeats
/// only while the server cannot be reached. When full, the oldest heartbeats are dropped first;
/// execution reports are never dropped.
public final class Outbox: Sendable {
    public let directory: String
    public let limit: Int
    private let state: Mutex<Int>
    /// Held while sending, so two threads never send the same entry or out of order.
    private let sending = Mutex(())

    public init(directory: String, limit: Int) throws(AgentError) {
        self.directory = directory
        self.limit = max(limit, 1)
        try Files.makeDirectories(directory)
        let last = Files.list(directory).compactMap { Int($0.prefix(while: { $0 != "-" })) }.max() ?? 0
        state = Mutex(last)
    }

    /// Entries waiting, oldest first.
    public var entries: [String] { Files.list(directory).filter { $0.hasSuffix(".json") } }

    public var isEmpty: Bool { entries.isEmpty }

    public func enqueue(heartbeat: [UInt8]) throws(AgentError) {
        makeRoom()
        try write(name: "heartbeat", heartbeat)
    }

    /// At the limit, drops the oldest heartbeats; execution reports stay even beyond it.
    private func makeRoom() {
        var waiting = entries
        var heartbeats = waiting.filter { $0.hasSuffix("-heartbeat.json") }
        while waiting.count >= limit, let oldest = heartbeats.first {
            Files.remove(directory + "/" + oldest)
            heartbeats.removeFirst()
            waiting.removeAll { $0 == oldest }
            Log.debug("outbox full: dropped the oldest heartbeat")
        }
    }

    /// Whether reports on `execution` can be kept here (its id names a file).
    public static func canKeep(execution: String) -> Bool { !execution.isEmpty && execution.utf8.allSatisfy { safe($0) } }

    public func enqueue(report: ExecutionReport, execution: String) throws(AgentError) {
        guard Self.canKeep(execution: execution) else {
            throw AgentError("execution id '\(execution)' has characters that cannot name a file")
        }
        makeRoom()
        try write(name: "report-" + execution, Array(report.wireJSON().utf8))
    }

    private func write(name: String, _ bytes: [UInt8]) throws(AgentError) {
        let sequence = state.withLock { value in
            value += 1
            return value
        }
        let digits = String(sequence)
        let padded = String(repeating: "0", count: max(0, 12 - digits.count)) + digits
        try Files.writeAtomically(directory + "/" + padded + "-" + name + ".json", bytes)
    }

    /// Sends what waits, in order, until the outbox is empty or the server is unavailable.
    /// An entry the server refuses outright (or a report on an execution it already closed) is
    /// dropped with a warning; anything else stays for the next try. `heard` is given each
    /// queued heartbeat's acknowledgement (the interval the server wants, whether remote access
    /// is on).
    public func flush(_ api: AgentAPI, heard: ((HeartbeatAcknowledgement) -> Void)? = nil) throws(AgentAPI.Failure) {
        try sending.withLock { (_: inout ()) throws(AgentAPI.Failure) in
            for name in entries {
                let path = directory + "/" + name
                guard let body = (try? Files.read(path)) ?? nil else { continue }
                do throws(AgentAPI.Failure) {
                    if let marker = name.firstRange(of: "-report-") {
                        let execution = String(name[marker.upperBound...].dropLast(".json".count))
                        _ = try api.report(execution: execution, body)
                    } else {
                        let acknowledgement = try api.heartbeat(body)
                        heard?(acknowledgement)
                    }
                } catch .rejected(let status, let why) {
                    Log.warning("dropped \(name): the server refused it (\(status)): \(why)")
                }
                Files.remove(path)
            }
        }
    }

    private static func safe(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_")
    }
}
