public import FleetProtocol
public import Foundation

/// Executions are read and rewritten on every report a device sends, so the stores code them
/// with the wire reader and writer: the same JSON as JSONEncoder with sorted keys and its
/// default dates (seconds since 2001-01-01), so rows written either way read either way.
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
        updatedAt = Date(timeIntervalSinceReferenceDate: try WireObject.double(object.required("updatedAt"), path: object.child("updatedAt")))
        takenAt = try object.optionalDouble("takenAt").map(Date.init(timeIntervalSinceReferenceDate:))
        revision = try object.int("revision")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("deploymentID", deploymentID)
        writer.field("deviceID", deviceID)
        writer.field("id", id)
        writer.field("message", message)
        writer.key("results")
        writer.beginArray()
        for result in results { result.write(to: &writer) }
        writer.endArray()
        writer.field("revision", revision)
        writer.field("state", state.rawValue)
        writer.field("takenAt", takenAt?.timeIntervalSinceReferenceDate)
        writer.field("updatedAt", updatedAt.timeIntervalSinceReferenceDate)
        writer.endObject()
    }
}
