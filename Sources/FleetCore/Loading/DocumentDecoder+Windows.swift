import FoundationEssentials
import FleetProtocol
import FoundationInternationalization

extension DocumentDecoder {
    static let windowKeys = ["timezone", "zoneTag", "allow", "deny"]

    /// `windows:` — a zone, the tag naming a device's own zone, and weekly allow and deny ranges.
    func decodeWindows(_ node: YAMLNode) -> MaintenanceWindows? {
        guard let fields = Fields(node, owner: "windows", known: Self.windowKeys, sink: sink) else { return nil }
        var windows = MaintenanceWindows()
        var valid = true
        if let zone = fields.string("timezone") {
            if MaintenanceWindows.zone(named: zone.value) == nil {
                sink.error(zone.location, "unknown time zone '\(zone.value)': use an IANA name such as Europe/Berlin or UTC"
                           + Suggestion.hint(for: zone.value, in: TimeZone.knownTimeZoneIdentifiers))
                valid = false
            } else {
                windows.timeZone = zone.value
            }
        }
        if let tag = fields.string("zoneTag") {
            if let problem = TagSyntax.keyProblem(tag.value) {
                sink.error(tag.location, problem)
                valid = false
            } else {
                windows.zoneTag = tag.value
            }
        }
        func ranges(_ key: String) -> [WeeklyRange] {
            (fields.strings(key) ?? []).compactMap { entry in
                switch WeeklyRange.parse(entry.value) {
                case .success(let range): return range
                case .failure(let problem):
                    sink.error(entry.location, "invalid window '\(entry.value)' in '\(key)': \(problem.reason)")
                    valid = false
                    return nil
                }
            }
        }
        windows.allow = ranges("allow")
        windows.deny = ranges("deny")
        guard valid else { return nil }
        if windows.allow.isEmpty, windows.deny.isEmpty {
            sink.error(node.location, "'windows' needs 'allow' or 'deny' entries, such as allow: [\"Mon-Fri 01:00-05:00\"]")
            return nil
        }
        if !windows.opensAtAll {
            sink.error(node.location, "these windows never open: every allowed time is denied")
            return nil
        }
        return windows
    }
}
