/// What one device reports: its id, tags, installed apps and whether it is online.
public struct ReportedDevice: Hashable, Sendable, Codable {
    public var id: String
    public var tags: [String: String]
    public var apps: [String: ReportedApp]
    public var online: Bool

    public init(id: String, tags: [String: String] = [:], apps: [String: ReportedApp] = [:], online: Bool = true) {
        self.id = id
        self.tags = tags
        self.apps = apps
        self.online = online
    }
}

/// An installed app as a device reports it.
public struct ReportedApp: Hashable, Sendable, Codable {
    public var version: String
    /// The digest of the deployment that installed it, when the device knows it.
    public var digest: String?

    public init(version: String, digest: String? = nil) {
        self.version = version
        self.digest = digest
    }
}

/// The reported state of a whole fleet, stored column by column so that a million devices
/// take tens of megabytes rather than a dictionary each.
public struct DeviceInventory: Sendable {
    public private(set) var ids: [String] = []
    public private(set) var online: [Bool] = []
    public private(set) var symbols = SymbolTable()
    // Tags of device i are tagKeys/tagValues[tagStart[i]..<tagStart[i+1]]; apps likewise.
    private(set) var tagStart: [Int32] = [0]
    private(set) var tagKeys: [Int32] = []
    private(set) var tagValues: [Int32] = []
    private(set) var appStart: [Int32] = [0]
    private(set) var appNames: [Int32] = []
    private(set) var appVersions: [Int32] = []
    private(set) var appDigests: [Int32] = []

    public init() {}

    public init(_ devices: some Sequence<ReportedDevice>) {
        for device in devices { append(device) }
    }

    public var count: Int { ids.count }

    public mutating func reserveCapacity(devices: Int, tagsPerDevice: Int, appsPerDevice: Int) {
        ids.reserveCapacity(devices)
        online.reserveCapacity(devices)
        tagStart.reserveCapacity(devices + 1)
        tagKeys.reserveCapacity(devices * tagsPerDevice)
        tagValues.reserveCapacity(devices * tagsPerDevice)
        appStart.reserveCapacity(devices + 1)
        appNames.reserveCapacity(devices * appsPerDevice)
        appVersions.reserveCapacity(devices * appsPerDevice)
        appDigests.reserveCapacity(devices * appsPerDevice)
    }

    public mutating func append(_ device: ReportedDevice) {
        append(id: device.id, tags: device.tags.map { ($0.key, $0.value) },
               apps: device.apps.map { ($0.key, $0.value.version, $0.value.digest) }, online: device.online)
    }

    /// Adds a device without building a dictionary for it.
    public mutating func append(id: String, tags: some Sequence<(String, String)>,
                                apps: some Sequence<(name: String, version: String, digest: String?)>, online: Bool) {
        ids.append(id)
        self.online.append(online)
        for (key, value) in tags {
            tagKeys.append(symbols.intern(key))
            tagValues.append(symbols.intern(value))
        }
        tagStart.append(Int32(tagKeys.count))
        for app in apps {
            appNames.append(symbols.intern(app.name))
            appVersions.append(symbols.intern(app.version))
            appDigests.append(app.digest.map { symbols.intern($0) } ?? -1)
        }
        appStart.append(Int32(appNames.count))
    }

    /// The device at `index` as a value, for output and tests.
    public func device(at index: Int) -> ReportedDevice {
        var tags: [String: String] = [:]
        for slot in Int(tagStart[index])..<Int(tagStart[index + 1]) {
            tags[symbols[tagKeys[slot]]] = symbols[tagValues[slot]]
        }
        var apps: [String: ReportedApp] = [:]
        for slot in Int(appStart[index])..<Int(appStart[index + 1]) {
            apps[symbols[appNames[slot]]] = ReportedApp(version: symbols[appVersions[slot]],
                                                        digest: appDigests[slot] < 0 ? nil : symbols[appDigests[slot]])
        }
        return ReportedDevice(id: ids[index], tags: tags, apps: apps, online: online[index])
    }

    /// The value id of tag `key` on device `index`, or -1.
    @inline(__always)
    func tagValue(device index: Int, key: Int32) -> Int32 {
        var slot = Int(tagStart[index])
        let end = Int(tagStart[index + 1])
        while slot < end {
            if tagKeys[slot] == key { return tagValues[slot] }
            slot += 1
        }
        return -1
    }

    /// The slot of app `name` on device `index`, or -1 when not installed.
    @inline(__always)
    func appSlot(device index: Int, name: Int32) -> Int {
        var slot = Int(appStart[index])
        let end = Int(appStart[index + 1])
        while slot < end {
            if appNames[slot] == name { return slot }
            slot += 1
        }
        return -1
    }

    /// Device indices in ascending id order; fails on the first id that appears twice.
    func orderByID() -> Result<[Int32], PlanError> {
        var order = [Int32](0..<Int32(ids.count))
        var sorted = true
        for index in ids.indices.dropFirst() where !(ids[index - 1] < ids[index]) {
            sorted = false
            break
        }
        if sorted { return .success(order) }
        order.sort { ids[Int($0)] < ids[Int($1)] }
        for position in order.indices.dropFirst() where ids[Int(order[position - 1])] == ids[Int(order[position])] {
            return .failure(.duplicateDevice(ids[Int(order[position])]))
        }
        return .success(order)
    }
}

/// Why a plan could not be made.
public enum PlanError: Error, Sendable, Equatable, CustomStringConvertible {
    case duplicateDevice(String)

    public var description: String {
        switch self {
        case .duplicateDevice(let id): "device '\(id)' appears more than once in the inventory"
        }
    }
}
