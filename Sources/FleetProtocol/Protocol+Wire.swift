// Field-by-field forms of the wire types the agent sends and receives, so the agent needs no
// Foundation. What a device sends is read strictly (unknown keys refused); what a server sends
// is read leniently, so an older agent keeps working against a newer server.

extension EnrollmentRequest: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        token = try object.string("token")
        hardwareID = try object.string("hardwareID")
        deviceSecret = try object.string("deviceSecret")
        name = try object.optionalString("name")
        tags = try object.optionalStringMap("tags")
        attributes = try object.optionalStringMap("attributes")
        claimCode = try object.optionalString("claimCode")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("attributes", attributes)
        writer.field("claimCode", claimCode)
        writer.field("deviceSecret", deviceSecret)
        writer.field("hardwareID", hardwareID)
        writer.field("name", name)
        writer.field("tags", tags)
        writer.field("token", token)
        writer.endObject()
    }
}

extension EnrollmentResponse: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        deviceID = try object.string("deviceID")
        project = try object.string("project")
        deviceToken = try object.string("deviceToken")
        heartbeatIntervalSeconds = try object.int("heartbeatIntervalSeconds")
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("deviceID", deviceID)
        writer.field("deviceToken", deviceToken)
        writer.field("heartbeatIntervalSeconds", heartbeatIntervalSeconds)
        writer.field("project", project)
        writer.endObject()
    }
}

extension HeartbeatAcknowledgement: WireDecodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        reportID = try object.string("reportID")
        accepted = try object.bool("accepted")
        heartbeatIntervalSeconds = try object.int("heartbeatIntervalSeconds")
        remote = try object.optionalBool("remote")
    }
}

extension AssignedStep: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        name = try object.string("name")
        let kindText = try object.string("kind")
        guard let kind = Kind(rawValue: kindText) else {
            throw WireDecodingError(field: object.child("kind"), message: "'\(object.child("kind"))' is not a step kind this agent knows: \(kindText)")
        }
        self.kind = kind
        command = try object.optionalString("command")
        url = try object.optionalString("url")
        sha256 = try object.optionalString("sha256")
        destination = try object.optionalString("destination")
        project = try object.optionalString("project")
        file = try object.optionalString("file")
        action = try object.optionalString("action")
        timeoutSeconds = try object.int("timeoutSeconds")
        retries = try object.int("retries")
        onFailure = try object.string("onFailure")
        idempotent = try object.bool("idempotent")
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("action", action)
        writer.field("command", command)
        writer.field("destination", destination)
        writer.field("file", file)
        writer.field("idempotent", idempotent)
        writer.field("kind", kind.rawValue)
        writer.field("name", name)
        writer.field("onFailure", onFailure)
        writer.field("project", project)
        writer.field("retries", retries)
        writer.field("sha256", sha256)
        writer.field("timeoutSeconds", timeoutSeconds)
        writer.field("url", url)
        writer.endObject()
    }
}

extension Assignment: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        executionID = try object.string("executionID")
        deploymentID = try object.string("deploymentID")
        app = try object.string("app")
        version = try object.string("version")
        digest = try object.optionalString("digest") ?? ""
        steps = try object.array("steps") { (value, path) throws(WireDecodingError) in try AssignedStep(wire: value, path: path) }
        rollback = try object.optionalArray("rollback") { (value, path) throws(WireDecodingError) in
            try AssignedStep(wire: value, path: path)
        } ?? []
        artifactAllowlist = try object.optionalStrings("artifactAllowlist") ?? []
        secrets = try object.optionalStringMap("secrets") ?? [:]
        if let value = object.optional("probe") {
            probe = try AssignedProbe(wire: value, path: object.child("probe"))
        } else {
            probe = nil
        }
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("app", app)
        writer.field("artifactAllowlist", artifactAllowlist)
        writer.field("deploymentID", deploymentID)
        writer.field("digest", digest)
        writer.field("executionID", executionID)
        writer.field("probe", probe)
        writer.field("rollback", rollback)
        writer.field("secrets", secrets)
        writer.field("steps", steps)
        writer.field("version", version)
        writer.endObject()
    }
}

extension AssignedProbe: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        command = try object.string("command")
        timeoutSeconds = try object.int("timeoutSeconds")
        intervalSeconds = try object.int("intervalSeconds")
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("command", command)
        writer.field("intervalSeconds", intervalSeconds)
        writer.field("timeoutSeconds", timeoutSeconds)
        writer.endObject()
    }
}

extension AssignmentList: WireDecodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        assignments = try object.array("assignments") { (value, path) throws(WireDecodingError) in try Assignment(wire: value, path: path) }
    }
}

extension StepResult: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        index = try object.int("index")
        name = try object.string("name")
        let statusText = try object.string("status")
        guard let status = Status(rawValue: statusText) else { throw WireObject.wrongType(object.child("status")) }
        self.status = status
        rollback = try object.optionalBool("rollback") ?? false
        attempts = try object.optionalInt("attempts") ?? 1
        exitCode = try object.optionalInt("exitCode")
        outputTail = try object.optionalString("outputTail")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("attempts", attempts)
        writer.field("exitCode", exitCode)
        writer.field("index", index)
        writer.field("name", name)
        writer.field("outputTail", outputTail)
        writer.field("rollback", rollback)
        writer.field("status", status.rawValue)
        writer.endObject()
    }
}

extension ExecutionReport: WireDecodable, WireEncodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        reportID = try object.string("reportID")
        let stateText = try object.string("state")
        guard let state = ExecutionState(rawValue: stateText) else { throw WireObject.wrongType(object.child("state")) }
        self.state = state
        if let value = object.optional("step") {
            step = try StepResult(wire: value, path: object.child("step"))
        } else {
            step = nil
        }
        message = try object.optionalString("message")
        try object.finish()
    }

    public func write(to writer: inout WireWriter) {
        writer.beginObject()
        writer.field("message", message)
        writer.field("reportID", reportID)
        writer.field("state", state.rawValue)
        writer.field("step", step)
        writer.endObject()
    }
}

/// The server's answer to an execution report.
public struct ExecutionReportAcknowledgement: Codable, Sendable, Equatable, WireDecodable {
    public var reportID: String
    /// False when the report had been applied before.
    public var accepted: Bool
    /// The execution's state after the report.
    public var state: ExecutionState

    public init(reportID: String, accepted: Bool, state: ExecutionState) {
        self.reportID = reportID
        self.accepted = accepted
        self.state = state
    }

    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        reportID = try object.string("reportID")
        accepted = try object.bool("accepted")
        guard let state = ExecutionState(rawValue: try object.string("state")) else { throw WireObject.wrongType(object.child("state")) }
        self.state = state
    }
}

extension ErrorResponse: WireDecodable {
    public init(wire value: WireJSON, path: String) throws(WireDecodingError) {
        var object = try WireObject(value, path: path)
        var detail = try WireObject(try object.required("error"), path: object.child("error"))
        error = Detail(code: try detail.string("code"), message: try detail.string("message"), field: try detail.optionalString("field"))
    }
}
