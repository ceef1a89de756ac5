/// `kind: Group`: a set of devices, by label selector over their tags and/or by explicit ids.
///
/// A device is in the group when the selector matches its tags or its id is listed.
public struct Group: Sendable {
    public var name: String
    /// The selector, or nil when the group lists devices only.
    public var selector: LabelSelector?
    /// Device ids named explicitly.
    public var deviceIDs: [Located<String>]
    public var location: SourceLocation
}

/// `kind: Devices`: the tags of devices, declared in git, which win over tags a device reports.
public struct DeviceDeclaration: Sendable {
    public var id: String
    public var tags: [String: String]
    public var location: SourceLocation
}
