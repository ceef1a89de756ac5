// The heartbeat is the request every device sends every interval, so it is read and written
// field by field rather than through Codable. Both forms agree: `HeartbeatWireTests` checks that
// each decodes the other's text to the same value.

extension Heartbeat: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        reportID = try object.string("reportID")
        sentAtMilliseconds = try object.optionalInt64("sentAtMilliseconds")
        cpuPercent = try object.optionalDouble("cpuPercent")
        if let value = object.optional("memory") {
            memory = try Memory(wire: value, path: object.child("memory"))
        } else {
            memory = nil
        }
        disks = try object.optionalArray("disks") { (value, path) throws(WireDecodingError) in try Disk(wire: value, path: path) }
        uptimeSeconds = try object.optionalInt64("uptimeSeconds")
        load = try object.optionalArray("load") { (value, path) throws(WireDecodingError) in try WireObject.double(value, path: path) }
        processes = try object.optionalArray("processes") { (value, path) throws(WireDecodingError) in
            try MonitoredProcess(wire: value, path: path)
        }
        custom = try object.optionalMap("custom") { (value, path) throws(WireDecodingError) in try WireObject.string(value, path: path) }
        apps = try object.optionalMap("apps") { (value, path) throws(WireDecodingError) in try InstalledApp(wire: value, path: path) }
        agentVersion = try object.optionalString("agentVersion")
        executing = try object.optionalString("executing")
        if let value = object.optional("lock") {
            lock = try UpdateLock(wire: value, path: object.child("lock"))
        } else {
            lock = nil
        }
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("agentVersion", agentVersion)
        writer.field("apps", apps)
        writer.field("cpuPercent", cpuPercent)
        writer.field("custom", custom)
        writer.field("disks", disks)
        writer.field("executing", executing)
        writer.field("load", load)
        writer.field("lock", lock)
        writer.field("memory", memory)
        writer.field("processes", processes)
        writer.field("reportID", reportID)
        writer.field("sentAtMilliseconds", sentAtMilliseconds)
        writer.field("uptimeSeconds", uptimeSeconds)
        writer.endObject()
    }
}

extension Heartbeat.Memory: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        usedBytes = try object.int64("usedBytes")
        totalBytes = try object.int64("totalBytes")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("totalBytes", totalBytes)
        writer.field("usedBytes", usedBytes)
        writer.endObject()
    }
}

extension Heartbeat.Disk: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        mount = try object.string("mount")
        usedBytes = try object.int64("usedBytes")
        totalBytes = try object.int64("totalBytes")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("mount", mount)
        writer.field("totalBytes", totalBytes)
        writer.field("usedBytes", usedBytes)
        writer.endObject()
    }
}

extension Heartbeat.MonitoredProcess: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        name = try object.string("name")
        running = try object.bool("running")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("name", name)
        writer.field("running", running)
        writer.endObject()
    }
}

extension InstalledApp: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        version = try object.string("version")
        digest = try object.optionalString("digest")
        if let value = object.optional("probe") {
            probe = try ProbeResult(wire: value, path: object.child("probe"))
        } else {
            probe = nil
        }
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("digest", digest)
        writer.field("probe", probe)
        writer.field("version", version)
        writer.endObject()
    }
}

extension ProbeResult: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        version = try object.optionalString("version")
        error = try object.optionalString("error")
        atMilliseconds = try object.int64("atMilliseconds")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("atMilliseconds", atMilliseconds)
        writer.field("error", error)
        writer.field("version", version)
        writer.endObject()
    }
}

extension HeartbeatAcknowledgement: WireEncodable {
    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("accepted", accepted)
        writer.field("heartbeatIntervalSeconds", Int64(heartbeatIntervalSeconds))
        writer.field("remote", remote)
        writer.field("reportID", reportID)
        writer.endObject()
    }
}

extension Heartbeat.UpdateLock: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        reason = try object.string("reason")
        untilMilliseconds = try object.optionalInt64("untilMilliseconds")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("reason", reason)
        writer.field("untilMilliseconds", untilMilliseconds)
        writer.endObject()
    }
}
