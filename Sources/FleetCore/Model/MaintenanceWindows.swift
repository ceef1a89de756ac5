public import FoundationEssentials
// The zone rules (tzdata) are compiled into ICU's library: reading them is no I/O.
public import FoundationInternationalization
import Synchronization

/// When the devices of a target may start an update: weekly ranges of allowed and denied time,
/// read in each device's own zone (from its `zoneTag`, else `timeZone`). Deny wins over allow;
/// with no allow entries every time not denied is allowed.
///
/// Only starting is bounded: an execution that runs when its window closes runs to its end.
public struct MaintenanceWindows: Hashable, Sendable {
    /// The IANA zone of devices without a zone tag.
    public var timeZone: String
    /// The tag whose value is a device's own IANA zone, with `.` for `/` (tag values cannot hold
    /// a slash): `timezone: Europe.Berlin`.
    public var zoneTag: String
    public var allow: [WeeklyRange]
    public var deny: [WeeklyRange]

    public static let defaultZoneTag = "timezone"
    static let minutesPerWeek = 7 * 1_440

    public init(timeZone: String = "UTC", zoneTag: String = Self.defaultZoneTag, allow: [WeeklyRange] = [], deny: [WeeklyRange] = []) {
        self.timeZone = timeZone
        self.zoneTag = zoneTag
        self.allow = allow
        self.deny = deny
    }

    /// The zone a device's tag value names: `Europe.Berlin` is `Europe/Berlin`.
    public static func zoneName(tagValue: String) -> String {
        String(tagValue.map { $0 == "." ? "/" : $0 })
    }

    /// The zone called `name`, if the zone rules know it. Looked up once per process: the rules
    /// do not change while it runs, and a decision asks for every zone of its fleet.
    public static func zone(named name: String) -> TimeZone? {
        guard !name.isEmpty else { return nil }
        if let known = zones.withLock({ $0[name] }) { return known }
        let zone = TimeZone(identifier: name)
        zones.withLock { cache in if cache.count < 4_096 { cache[name] = zone } }
        return zone
    }

    private static let zones = Mutex<[String: TimeZone?]>([:])

    /// Whether a device in `zone` may start an update at `instant`.
    public func isOpen(at instant: Date, in zone: TimeZone) -> Bool {
        isOpen(minuteOfWeek: Self.minuteOfWeek(instant, in: zone))
    }

    func isOpen(minuteOfWeek minute: Int) -> Bool {
        if deny.contains(where: { $0.contains(minuteOfWeek: minute) }) { return false }
        return allow.isEmpty || allow.contains { $0.contains(minuteOfWeek: minute) }
    }

    /// Whether any minute of the week is open.
    public var opensAtAll: Bool {
        (0..<Self.minutesPerWeek).contains { isOpen(minuteOfWeek: $0) }
    }

    /// The first instant at or after `instant` at which a device in `zone` may start; nil when
    /// the windows never open.
    public func nextOpening(after instant: Date, in zone: TimeZone) -> Date? {
        if isOpen(at: instant, in: zone) { return instant }
        // The windows open where an allowed range begins or a denied one ends.
        let now = Self.minuteOfWeek(instant, in: zone)
        var deltas: [Int] = []
        for minute in allow.flatMap(\.starts) + deny.flatMap(\.ends) {
            let delta = ((minute - now) % Self.minutesPerWeek + Self.minutesPerWeek) % Self.minutesPerWeek
            deltas += [delta, delta + Self.minutesPerWeek]
        }
        let localNow = (instant.timeIntervalSince1970 + Double(zone.secondsFromGMT(for: instant))) / 60
        let localMinute = localNow.rounded(.down)
        for delta in Set(deltas).sorted() where delta > 0 {
            // The local wall time `delta` minutes on, as an instant: its offset may differ from
            // now's across a change of daylight saving time, so it is looked up there.
            let local = (localMinute + Double(delta)) * 60
            var candidate = Date(timeIntervalSince1970: local - Double(zone.secondsFromGMT(for: instant)))
            candidate = Date(timeIntervalSince1970: local - Double(zone.secondsFromGMT(for: candidate)))
            if candidate > instant, isOpen(at: candidate, in: zone) { return candidate }
        }
        return nil
    }

    /// Minutes since Monday 00:00 in `zone`.
    static func minuteOfWeek(_ instant: Date, in zone: TimeZone) -> Int {
        let local = instant.timeIntervalSince1970 + Double(zone.secondsFromGMT(for: instant))
        let minutes = Int((local / 60).rounded(.down))
        // 1970-01-01 was a Thursday: three days after a Monday.
        return ((minutes + 3 * 1_440) % minutesPerWeek + minutesPerWeek) % minutesPerWeek
    }

    /// `2026-12-02 01:00 Europe/Berlin`: an instant as the device's wall clock shows it.
    public static func localText(_ instant: Date, in zone: TimeZone) -> String {
        let local = Int((instant.timeIntervalSince1970 + Double(zone.secondsFromGMT(for: instant))).rounded(.down))
        var days = local / 86_400, rest = local % 86_400
        if rest < 0 { rest += 86_400; days -= 1 }
        let (year, month, day) = Timestamp.civil(days)
        func two(_ value: Int) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(year)-\(two(month))-\(two(day)) \(two(rest / 3_600)):\(two(rest % 3_600 / 60)) \(zone.identifier)"
    }

    /// In words, for plans: "allow Mon-Fri 01:00-05:00; deny Sat 02:00-03:00 (Europe/Berlin, or the device's timezone tag)".
    public var summary: String {
        var parts: [String] = []
        if !allow.isEmpty { parts.append("allow " + allow.map(\.text).joined(separator: ", ")) }
        if !deny.isEmpty { parts.append("deny " + deny.map(\.text).joined(separator: ", ")) }
        return parts.joined(separator: "; ") + " (\(timeZone), or the device's \(zoneTag) tag)"
    }
}

/// One weekly range of a maintenance window: `Mon-Fri 01:00-05:00`, `Sat,Sun`, `daily 22:00-02:00`
/// (a range whose end is not after its start runs past midnight into the next day).
public struct WeeklyRange: Hashable, Sendable {
    /// The days it begins on, Monday as bit 0.
    public var days: UInt8
    /// Minutes after midnight it begins.
    public var start: Int
    /// How many minutes it lasts, 1 to 1,440.
    public var length: Int
    /// As it was written.
    public var text: String

    func contains(minuteOfWeek minute: Int) -> Bool {
        for day in 0..<7 where days & (1 << day) != 0 {
            let since = ((minute - (day * 1_440 + start)) % MaintenanceWindows.minutesPerWeek + MaintenanceWindows.minutesPerWeek)
                % MaintenanceWindows.minutesPerWeek
            if since < length { return true }
        }
        return false
    }

    var starts: [Int] { (0..<7).filter { days & (1 << $0) != 0 }.map { $0 * 1_440 + start } }
    var ends: [Int] { starts.map { ($0 + length) % MaintenanceWindows.minutesPerWeek } }

    static let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    public static func parse(_ text: String) -> Result<WeeklyRange, Timestamp.Problem> {
        let shape = "write it as DAYS [HH:MM-HH:MM], e.g. 'Mon-Fri 01:00-05:00', 'Sat,Sun' or 'daily 22:00-02:00'"
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard words.count == 1 || words.count == 2 else { return .failure(.init(reason: shape)) }
        var days: UInt8 = 0
        let dayText = words[0]
        if dayText.lowercased() == "daily" || dayText == "*" {
            days = 0x7F
        } else {
            for part in dayText.split(separator: ",", omittingEmptySubsequences: false) {
                let ends = part.split(separator: "-", omittingEmptySubsequences: false)
                guard ends.count <= 2 else { return .failure(.init(reason: "'\(part)' is not a day or a range of days; " + shape)) }
                var numbers: [Int] = []
                for end in ends {
                    let name = end.lowercased()
                    guard let day = dayNames.firstIndex(of: String(name.prefix(3))), name.count == 3 || fullDayNames[day] == name else {
                        return .failure(.init(reason: "'\(end)' is not a day: use Mon, Tue, Wed, Thu, Fri, Sat or Sun"))
                    }
                    numbers.append(day)
                }
                // Fri-Mon wraps over the weekend.
                var day = numbers[0]
                while true {
                    days |= 1 << day
                    if day == numbers.last! { break }
                    day = (day + 1) % 7
                }
            }
        }
        guard words.count == 2 else { return .success(WeeklyRange(days: days, start: 0, length: 1_440, text: text)) }
        let times = words[1].split(separator: "-", omittingEmptySubsequences: false)
        guard times.count == 2, let start = minutes(times[0], allowing24: false), let end = minutes(times[1], allowing24: true) else {
            return .failure(.init(reason: "'\(words[1])' is not a time range; " + shape))
        }
        guard end != start else {
            return .failure(.init(reason: "'\(words[1])' starts and ends at the same time; for whole days write only the days"))
        }
        let length = end > start ? end - start : end + 1_440 - start
        return .success(WeeklyRange(days: days, start: start, length: length, text: text))
    }

    static let fullDayNames = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]

    /// `01:00` as minutes after midnight; `24:00` only as an end.
    private static func minutes(_ text: Substring, allowing24: Bool) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2,
              parts.allSatisfy({ $0.allSatisfy { ("0"..."9").contains($0) } }), let hours = Int(parts[0]), let minutes = Int(parts[1]),
              minutes < 60, hours < 24 || (allowing24 && hours == 24 && minutes == 0)
        else { return nil }
        return hours * 60 + minutes
    }
}
