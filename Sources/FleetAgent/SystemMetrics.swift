public import FleetProtocol
import Glibc

/// What a heartbeat says about the machine, read from /proc and statvfs.
public final class SystemMetrics {
    /// A process to watch: by name (as in /proc/PID/comm) or by pidfile.
    public struct Watched: Sendable, Equatable {
        public var name: String
        public var pidfile: String?

        public init(name: String, pidfile: String? = nil) {
            self.name = name
            self.pidfile = pidfile
        }
    }

    private let procRoot: String
    private var lastCPU: (busy: UInt64, total: UInt64)?

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
        lastCPU = cpuTimes()
    }

    /// CPU busy percentage since the previous call (or since the metrics were made).
    public func cpuPercent() -> Double? {
        guard let now = cpuTimes() else { return nil }
        defer { lastCPU = now }
        guard let last = lastCPU, now.total > last.total else { return nil }
        let percent = Double(now.busy &- last.busy) / Double(now.total - last.total) * 100
        return min(100, max(0, (percent * 10).rounded() / 10))
    }

    private func cpuTimes() -> (busy: UInt64, total: UInt64)? {
        guard let text = (try? Files.readText(procRoot + "/stat", limit: 4096)) ?? nil,
              let line = text.split(byte: 0x0A).first, line.hasPrefix("cpu ") else { return nil }
        let fields = line.split(separator: " ").dropFirst().compactMap { UInt64($0) }
        guard fields.count >= 4 else { return nil }
        let total = fields.reduce(0, +)
        let idle = fields[3] + (fields.count > 4 ? fields[4] : 0)
        return (total - idle, total)
    }

    public func memory() -> Heartbeat.Memory? {
        guard let text = (try? Files.readText(procRoot + "/meminfo", limit: 16_384)) ?? nil else { return nil }
        var values: [Substring: Int64] = [:]
        for line in text.split(byte: 0x0A) {
            let parts = line.split(separator: " ")
            guard parts.count >= 2, let value = Int64(parts[1]) else { continue }
            values[parts[0].dropLast()] = value * 1024
        }
        guard let total = values["MemTotal"], let available = values["MemAvailable"] ?? values["MemFree"] else { return nil }
        return Heartbeat.Memory(usedBytes: total - available, totalBytes: total)
    }

    public func disks(_ mounts: [String]) -> [Heartbeat.Disk] {
        mounts.compactMap { mount in
            var info = statvfs()
            guard statvfs(mount, &info) == 0 else { return nil }
            let block = Int64(info.f_frsize)
            let total = Int64(info.f_blocks) * block
            let free = Int64(info.f_bfree) * block
            return Heartbeat.Disk(mount: mount, usedBytes: total - free, totalBytes: total)
        }
    }

    public func uptimeSeconds() -> Int64? {
        guard let text = (try? Files.readText(procRoot + "/uptime", limit: 256)) ?? nil,
              let first = text.split(separator: " ").first, let seconds = Double(first) else { return nil }
        return Int64(seconds)
    }

    public func load() -> [Double]? {
        guard let text = (try? Files.readText(procRoot + "/loadavg", limit: 256)) ?? nil else { return nil }
        let values = text.split(separator: " ").prefix(3).compactMap { Double($0) }
        return values.count == 3 ? values : nil
    }

    /// Whether each watched process is running.
    public func processes(_ watched: [Watched]) -> [Heartbeat.MonitoredProcess] {
        guard !watched.isEmpty else { return [] }
        var running: Set<String> = []
        if watched.contains(where: { $0.pidfile == nil }) {
            for entry in Files.list(procRoot) where entry.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
                if let comm = (try? Files.readText(procRoot + "/" + entry + "/comm", limit: 64)) ?? nil { running.insert(comm.trimmed) }
            }
        }
        return watched.map { process in
            if let pidfile = process.pidfile {
                guard let text = (try? Files.readText(pidfile, limit: 64, untrusted: true)) ?? nil, let pid = Int32(text.trimmed), pid > 0 else {
                    return .init(name: process.name, running: false)
                }
                return .init(name: process.name, running: kill(pid, 0) == 0 || errno == EPERM)
            }
            // The kernel keeps the first 15 bytes of a process name.
            return .init(name: process.name, running: running.contains(String(decoding: process.name.utf8.prefix(15), as: UTF8.self)))
        }
    }
}

/// Values a device's own apps publish for the heartbeat: a JSON object in a file, or a directory
/// of small files (the name is the key, the trimmed content the value).
public enum CustomData {
    public static let maximumEntries = 64
    public static let maximumValueBytes = 1_024
    public static let maximumNameBytes = 128

    public static func read(_ path: String) -> [String: String] {
        var values: [String: String] = [:]
        if let files = Files.readUntrustedDirectory(path, limit: maximumValueBytes, entries: maximumEntries) {
            for (name, bytes) in files { keep(name, String(decoding: bytes, as: UTF8.self).trimmed, in: &values) }
            return values
        }
        guard let bytes = (try? Files.read(path, limit: 64 * 1024, untrusted: true)) ?? nil, let members = WireJSON.parse(bytes)?.members else {
            return values
        }
        for member in members.prefix(maximumEntries) {
            switch member.value {
            case .string(let text): keep(member.key, text, in: &values)
            case .number(let number, let integer): keep(member.key, integer.map(String.init) ?? String(number), in: &values)
            case .bool(let flag): keep(member.key, flag ? "true" : "false", in: &values)
            default: continue
            }
        }
        return values
    }

    /// What the server accepts, so one odd file an app wrote cannot get every heartbeat refused
    /// (and the device taken for offline): a name of 1 to 128 bytes without control characters,
    /// or the value is left out; a value cut to 1 KiB on a character's boundary (after invalid
    /// UTF-8 was replaced, which can make it longer).
    static func keep(_ name: String, _ value: String, in values: inout [String: String]) {
        guard !name.isEmpty, name.utf8.count <= maximumNameBytes, !name.unicodeScalars.contains(where: StepRules.isControl) else { return }
        var cut = String.UnicodeScalarView()
        var bytes = 0
        for scalar in value.unicodeScalars {
            bytes += UTF8.width(scalar)
            guard bytes <= maximumValueBytes else { break }
            cut.append(scalar)
        }
        values[name] = String(cut)
    }
}
