import Glibc

/// An error from the operating system or from the agent's own checks, said in one sentence.
public struct AgentError: Error, Sendable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }

    static func system(_ what: String, _ path: String, errno code: Int32 = errno) -> AgentError {
        AgentError("\(what) \(path): \(String(cString: strerror(code)))")
    }
}

/// Files the way the agent needs them: whole reads, and writes that are either complete on disk
/// or not there at all — even across a power cut.
public enum Files {
    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    public static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The whole file, or nil when it does not exist; at most `limit` bytes are read.
    ///
    /// `untrusted`: a file another user may have put there (an app's custom data, its pidfile,
    /// its update lock). The agent reads those as root, so a link is not followed (a link to a
    /// root-only file would send that file in a heartbeat), and only a regular file is read: a
    /// FIFO would block the reading thread for good.
    public static func read(_ path: String, limit: Int = 16 << 20, untrusted: Bool = false) throws(AgentError) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC | (untrusted ? O_NOFOLLOW | O_NONBLOCK : 0))
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw .system("cannot open", path)
        }
        defer { close(fd) }
        if untrusted {
            var info = stat()
            guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { throw AgentError("\(path) is not a regular file") }
        }
        return try read(descriptor: fd, limit: limit, path: path)
    }

    /// What an untrusted directory holds (see `read(_:limit:untrusted:)`), as the agent reads it
    /// as root: the directory itself is not reached through a link (a link to /var/lib/flotilla,
    /// /etc/ssh or /root/.ssh would send their files in a heartbeat), and each entry is read
    /// through the directory's descriptor, only when it is a regular file and not a link.
    /// Entries' names, sorted, with up to `limit` bytes of each; nil when `path` is not there
    /// or is not a directory.
    public static func readUntrustedDirectory(_ path: String, limit: Int, entries: Int) -> [(name: String, bytes: [UInt8])]? {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        guard let directory = fdopendir(fd) else {
            close(fd)
            return nil
        }
        defer { closedir(directory) }
        var result: [(name: String, bytes: [UInt8])] = []
        for name in names(in: directory).filter({ !$0.hasPrefix(".") }).sorted().prefix(entries) {
            let file = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            guard file >= 0 else { continue }
            defer { close(file) }
            var info = stat()
            guard fstat(file, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
                  let bytes = try? read(descriptor: file, limit: limit, path: path + "/" + name) else { continue }
            result.append((name, bytes))
        }
        return result
    }

    private static func read(descriptor fd: Int32, limit: Int, path: String) throws(AgentError) -> [UInt8] {
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while result.count < limit {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, min($0.count, limit - result.count)) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .system("cannot read", path)
            }
            if count == 0 { break }
            result.append(contentsOf: chunk[0..<count])
        }
        return result
    }

    public static func readText(_ path: String, limit: Int = 16 << 20, untrusted: Bool = false) throws(AgentError) -> String? {
        try read(path, limit: limit, untrusted: untrusted).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Writes `bytes` to a temporary file beside `path`, fsyncs it, renames it over `path` and
    /// fsyncs the directory: after a crash the file holds either the old or the new content.
    public static func writeAtomically(_ path: String, _ bytes: some Collection<UInt8>, mode: UInt32 = 0o600) throws(AgentError) {
        let temporary = path + ".tmp-\(getpid())"
        // Made afresh, never opened as found: where another user may write (an update lock in
        // an app's directory), a link left at this name would have root truncate and write its
        // target. The old one goes (unlink removes a link, not its target), and O_EXCL refuses
        // whatever appears in its place meanwhile.
        if unlink(temporary) != 0, errno != ENOENT { throw .system("cannot remove", temporary) }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw .system("cannot create", temporary) }
        var failure: AgentError?
        let data = Array(bytes)
        var written = 0
        while written < data.count {
            let count = data.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if count < 0 {
                if errno == EINTR { continue }
                failure = .system("cannot write", temporary)
                break
            }
            written += count
        }
        if failure == nil, fsync(fd) != 0 { failure = .system("cannot sync", temporary) }
        close(fd)
        if let failure {
            unlink(temporary)
            throw failure
        }
        guard rename(temporary, path) == 0 else {
            let error = AgentError.system("cannot rename into", path)
            unlink(temporary)
            throw error
        }
        syncDirectory(of: path)
    }

    /// Copies `source` to `path` atomically (as `writeAtomically` writes), with `mode`.
    public static func copy(_ source: String, to path: String, mode: UInt32) throws(AgentError) {
        guard let bytes = try read(source, limit: 512 << 20) else { throw .system("cannot read", source) }
        try writeAtomically(path, bytes, mode: mode)
    }

    /// Makes the directory entry of `path` durable (a rename or unlink in it).
    public static func syncDirectory(of path: String) {
        let directory = parent(of: path)
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return }
        fsync(fd)
        close(fd)
    }

    public static func parent(of path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        if slash == path.utf8.startIndex { return "/" }
        return String(path[..<slash])
    }

    /// Creates `path` and its parents (mode 0700 for the ones made here).
    public static func makeDirectories(_ path: String, mode: UInt32 = 0o700) throws(AgentError) {
        if isDirectory(path) { return }
        let up = parent(of: path)
        if up != path, up != "/", up != "." { try makeDirectories(up, mode: mode) }
        if mkdir(path, mode) != 0, errno != EEXIST { throw .system("cannot create directory", path) }
    }

    public static func remove(_ path: String) {
        if unlink(path) == 0 { syncDirectory(of: path) }
    }

    /// Removes what writes cut short left in `directory` (a power cut between a temporary file's
    /// creation and its rename): `NAME.tmp-PID` files of processes no longer running. They may
    /// hold what the file they were to replace holds (a device token, a journal's secrets), and
    /// each power cut would leave another. Returns how many went.
    @discardableResult
    public static func removeLeftovers(in directory: String) -> Int {
        var removed = 0
        for name in list(directory) {
            guard let marker = name.ranges(of: ".tmp-").last,
                  let pid = Int32(name[marker.upperBound...]), pid > 0, pid != getpid() else { continue }
            // A process still running may be writing it (`flotilla-agent lock`, say).
            guard kill(pid, 0) != 0, errno == ESRCH else { continue }
            if unlink(directory + "/" + name) == 0 { removed += 1 }
        }
        return removed
    }

    /// Names in a directory, sorted, without "." and "..".
    public static func list(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        return names(in: directory).sorted()
    }

    /// The names an open directory stream holds, as read, without "." and "..".
    static func names(in directory: OpaquePointer) -> [String] {
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }
}

/// Clocks and waiting.
public enum Clock {
    /// Seconds on a clock that never goes back, for intervals and deadlines.
    public static func monotonic() -> Double {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return Double(spec.tv_sec) + Double(spec.tv_nsec) / 1e9
    }

    /// Seconds since 1970.
    public static func wall() -> Double { Double(epochMilliseconds()) / 1_000 }

    /// Milliseconds since 1970, for reports.
    public static func epochMilliseconds() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000
    }

    public static func sleep(seconds: Double) {
        guard seconds > 0 else { return }
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
    }
}

/// Random identifiers.
public enum Random {
    public static func hex(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        for _ in 0..<count {
            let byte = UInt8.random(in: 0...255, using: &generator)
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

extension String {
    /// Without leading and trailing spaces, tabs and line breaks.
    var trimmed: String {
        let bytes = Array(utf8)
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }
        guard let first = bytes.firstIndex(where: { !isSpace($0) }), let last = bytes.lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(decoding: bytes[first...last], as: UTF8.self)
    }

    func split(byte separator: UInt8) -> [Substring] {
        split(separator: Character(Unicode.Scalar(separator)), omittingEmptySubsequences: true)
    }
}
