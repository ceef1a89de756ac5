public import FleetProtocol
public import Foundation

/// Executions are read and rewritten on every report a device sends, so the stores code them
/// with the wire reader and writer: the same JSON as JSONEncoder with sorted keys and
/// `StoredJSON`'s dates (seconds since 1970, as a number), so rows written either way read either way.
extension ExecutionRecord: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        id = try object.string("id")
        deploymentID = try object.string("deploymentID")
        deviceID = try object.string("deviceID")
        let stateText = try object.string("state")
        guard let state = ExecutionState(rawValue: stateText) else { throw WireObject.wrongType(object.child("state")) }
        self.state = state
        results = try object.array("results") { (value, path) throws(WireDecodingError) in try StepResult(wire: value, path: path) }
        message = try object.optionalString("message")
        updatedAt = Date(timeIntervalSince1970: try WireObject.double(object.required("updatedAt"), path: object.child("updatedAt")))
        takenAt = try object.optionalDouble("takenAt").map(Date.init(timeIntervalSince1970:))
        healthPassedAt = try object.optionalDouble("healthPassedAt").map(Date.init(timeIntervalSince1970:))
        revision = try object.int("revision")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) { write(to: &writer, dateText: nil) }

    /// Writes the record with each date as `dateText` makes it (the operator API's ISO 8601),
    /// or, when it is nil, as seconds since 1970 (the stores' bodies).
    public func write(to writer: inout WireWriter, dateText: ((Date) -> String)?) {
        func date(_ name: String, _ value: Date?) {
            guard let value else { return }
            if let dateText { writer.field(name, dateText(value)) } else { writer.field(name, value.timeIntervalSince1970) }
        }
        writer.beginObject()
        writer.field("deploymentID", deploymentID)
        writer.field("deviceID", deviceID)
        date("healthPassedAt", healthPassedAt)
        writer.field("id", id)
        writer.field("message", message)
        writer.key("results")
        writer.beginArray()
        for result in results { result.write(to: &writer) }
        writer.endArray()
        writer.field("revision", revision)
        writer.field("state", state.rawValue)
        date("takenAt", takenAt)
        date("updatedAt", updatedAt)
        writer.endObject()
    }
}

/// How the stores write a record's body as JSON: sorted keys, and every date as seconds since
/// 1970 (a number SQL can read as `unixepoch` too), written out here rather than left to
/// JSONEncoder's default, which counts from 2001.
public enum StoredJSON {
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        encoder.dateEncodingStrategy = .secondsSince1970
        return encoder
    }

    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        return decoder
    }
}

/// Devices' small JSON columns, read by both stores with the wire reader: every controller pass
/// reads every device, and JSONDecoder costs several times as much.
public enum StoredColumns {
    /// A stored heartbeat report, read by the wire reader (it was written by the wire writer);
    /// a row it does not take (written otherwise, by an older release) goes to `decoder`.
    /// Health checks read every heartbeat of every device under observation on each pass.
    public static func heartbeat(_ text: String, decoder: JSONDecoder) throws -> Heartbeat {
        if let report = try? Heartbeat.decode(wire: text.utf8) { return report }
        return try decoder.decode(Heartbeat.self, from: Data(text.utf8))
    }

    /// A JSON object column as a dictionary of `element`s; a column that does not decode is
    /// `StoreError.corrupt`, naming it.
    public static func map<T>(_ text: String, column: String, _ element: (WireJSON, String) throws(WireDecodingError) -> T) throws -> [String: T] {
        guard let members = WireJSON.parse(text.utf8)?.members else { throw StoreError(.corrupt, "a stored \(column) is not a JSON object") }
        var map: [String: T] = [:]
        map.reserveCapacity(members.count)
        for member in members {
            do {
                map[member.key] = try element(member.value, member.key)
            } catch {
                throw StoreError(.corrupt, "a stored \(column) does not decode: \(error.message)")
            }
        }
        return map
    }

    /// The update lock column (the wire JSON of the newest heartbeat's lock), if any.
    public static func lock(_ text: String?) throws -> Heartbeat.UpdateLock? {
        guard let text else { return nil }
        do {
            return try Heartbeat.UpdateLock.decode(wire: text.utf8)
        } catch {
            throw StoreError(.corrupt, "a stored update_lock does not decode: \(error)")
        }
    }
}
