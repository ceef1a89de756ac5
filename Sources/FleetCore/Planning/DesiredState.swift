/// The desired state of single devices, for the server and agent: the slow, obvious path that
/// the planner's fast one must agree with.
public enum DesiredState {
    /// The tags that count for a device: what it reports, overridden by what git declares.
    public static func effectiveTags(_ fleet: CompiledFleet, id: String, reported: [String: String]) -> [String: String] {
        guard let declared = fleet.devices.first(where: { $0.id == id }) else { return reported }
        return reported.merging(declared.tags) { _, fromGit in fromGit }
    }

    /// Whether a device with this id and these effective tags is in `group`.
    public static func isMember(_ group: Group, id: String, tags: [String: String]) -> Bool {
        group.deviceIDs.contains { $0.value == id } || (group.selector?.matches(tags) ?? false)
    }

    /// For each app, the target that applies to the device, if any: the first whose group holds it.
    public static func resolve(_ fleet: CompiledFleet, id: String, reportedTags: [String: String]) -> [String: DesiredTarget] {
        let tags = effectiveTags(fleet, id: id, reported: reportedTags)
        var desired: [String: DesiredTarget] = [:]
        for app in fleet.apps {
            desired[app.name] = app.targets.first { target in
                fleet.group(named: target.group).map { isMember($0, id: id, tags: tags) } ?? false
            }
        }
        return desired
    }
}
