import CLibCurl
public import FleetProtocol
import Glibc

/// What running one step came to, after its retries.
public struct StepOutcome: Sendable {
    public var succeeded: Bool
    public var attempts: Int
    public var exitCode: Int?
    public var output: String?
    /// Why it failed, in a few words.
    public var reason: String?

    public init(succeeded: Bool, attempts: Int = 1, exitCode: Int? = nil, output: String? = nil, reason: String? = nil) {
        self.succeeded = succeeded
        self.attempts = attempts
        self.exitCode = exitCode
        self.output = output
        self.reason = reason
    }
}

/// Runs steps. The agent runs them for real; `flotilla sim` supplies a simulated one.
public protocol StepExecutor {
    func execute(_ step: AssignedStep, of assignment: Assignment) -> StepOutcome
}

/// Runs steps on this machine: shell commands and scripts, downloads, docker compose, dpkg.
public struct SystemStepExecutor: StepExecutor, Sendable {
    /// Directories downloads may be written under.
    public var allowedRoots: [String]
    /// Seconds before the first retry; doubled for each one after, up to 30.
    public var retryDelaySeconds: Double
    public var caFile: String?
    /// The most bytes one download may bring; nil for no bound but the free space below.
    public var downloadLimitBytes: Int64?
    /// Bytes a download leaves free on its destination's file system: a download that would
    /// take more stops there and fails, so an artifact server that sends without end (or an
    /// artifact larger than the device) cannot fill the disk the device runs from.
    public var downloadReserveBytes: Int64

    public static let defaultDownloadReserveBytes: Int64 = 64 << 20

    public init(allowedRoots: [String], retryDelaySeconds: Double = 1, caFile: String? = nil,
                downloadLimitBytes: Int64? = nil, downloadReserveBytes: Int64 = Self.defaultDownloadReserveBytes) {
        self.allowedRoots = allowedRoots
        self.retryDelaySeconds = retryDelaySeconds
        self.caFile = caFile
        self.downloadLimitBytes = downloadLimitBytes
        self.downloadReserveBytes = downloadReserveBytes
    }

    public func execute(_ step: AssignedStep, of assignment: Assignment) -> StepOutcome {
        // Refusals do not improve with retries.
        if let refusal = refusal(step, of: assignment) { return StepOutcome(succeeded: false, reason: refusal) }
        var outcome = StepOutcome(succeeded: false)
        for attempt in 1...max(1, step.retries + 1) {
            if attempt > 1 {
                Clock.sleep(seconds: min(30, retryDelaySeconds * Double(1 << min(attempt - 2, 5))))
                Log.info("step '\(step.name)': attempt \(attempt) of \(step.retries + 1)")
            }
            outcome = once(step, of: assignment)
            outcome.attempts = attempt
            if outcome.succeeded { break }
        }
        return outcome
    }

    /// Why the step must not run at all: a step outside the rules every step keeps (the server
    /// checks them too; the agent does not trust it to have), or a download outside the allowlist
    /// or the allowed roots.
    func refusal(_ step: AssignedStep, of assignment: Assignment) -> String? {
        if let problem = StepRules.problem(in: step, at: "step") { return "refused: \(problem.message)" }
        guard step.kind == .download || step.kind == .agentUpdate else { return nil }
        guard let url = step.url, let sha256 = step.sha256, let destination = step.kind == .agentUpdate ? "/" : step.destination else {
            return "a download needs url, sha256 and destination"
        }
        switch WebURL.parse(url) {
        case .failure(let problem):
            return "download URL '\(url)' is invalid: \(problem.reason)"
        case .success(let parsed):
            let sources = assignment.artifactAllowlist.compactMap { try? WebURL.parse($0).get() }
            guard sources.contains(where: { $0.contains(parsed) }) else {
                return "download URL '\(url)' is outside the artifact allowlist"
            }
        }
        guard sha256.utf8.count == 64, sha256.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            return "sha256 must be 64 lower-case hexadecimal digits"
        }
        guard step.kind == .agentUpdate || Self.isUnder(destination, roots: allowedRoots) else {
            return "destination '\(destination)' is outside the allowed roots (\(allowedRoots.joined(separator: ", ")))"
        }
        return nil
    }

    /// Whether `path` is absolute, has no `.` or `..` segments, and lies under one of `roots`.
    static func isUnder(_ path: String, roots: [String]) -> Bool {
        guard path.hasPrefix("/") else { return false }
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !segments.contains(where: { $0 == "." || $0 == ".." }) else { return false }
        return roots.contains { root in
            let trimmed = root.hasSuffix("/") ? String(root.dropLast()) : root
            return !trimmed.isEmpty && path.hasPrefix(trimmed + "/")
        }
    }

    private func environment(_ assignment: Assignment) -> [String: String] {
        var environment = ["FLOTILLA_APP": assignment.app, "FLOTILLA_VERSION": assignment.version, "FLOTILLA_EXECUTION": assignment.executionID]
        for (name, value) in assignment.secrets { environment["FLOTILLA_SECRET_" + name] = value }
        return environment
    }

    private func once(_ step: AssignedStep, of assignment: Assignment) -> StepOutcome {
        let timeout = Double(max(step.timeoutSeconds, 1))
        let arguments: [String]
        var stepEnvironment = environment(assignment)
        switch step.kind {
        case .run, .script:
            guard let command = step.command else { return StepOutcome(succeeded: false, reason: "no command") }
            if assignment.secrets.isEmpty {
                arguments = ["/bin/sh", "-c", command]
            } else {
                // A command with a secret filled in is not put on the shell's command line, which
                // every user of the device can read in /proc; the environment only its owner can.
                arguments = ["/bin/sh", "-c", "eval \"$FLOTILLA_STEP_COMMAND\""]
                stepEnvironment["FLOTILLA_STEP_COMMAND"] = command
            }
        case .compose:
            guard let project = step.project, let file = step.file else {
                return StepOutcome(succeeded: false, reason: "compose needs a project and a file")
            }
            let action = step.action == "down" ? ["down"] : ["up", "-d"]
            arguments = ["docker", "compose", "-p", project, "-f", file] + action
        case .install:
            guard let package = step.command else { return StepOutcome(succeeded: false, reason: "install needs a package path") }
            // Unattended, as unattended-upgrades runs dpkg: a settings file edited on this device
            // is kept when the package ships a new default, rather than a prompt no one answers.
            arguments = ["dpkg", "--force-confdef", "--force-confold", "-i", package]
        case .download:
            return download(step, timeoutSeconds: Int(timeout))
        case .agentUpdate:
            return StepOutcome(succeeded: false, reason: "an agentUpdate step is the agent's own to run")
        }
        do {
            let result = try ProcessRunner.run(arguments, environment: stepEnvironment, hiding: Array(assignment.secrets.values),
                                               timeoutSeconds: timeout)
            return StepOutcome(succeeded: result.succeeded, exitCode: result.exitCode, output: result.output,
                               reason: result.succeeded ? nil : result.failure)
        } catch {
            return StepOutcome(succeeded: false, reason: error.description)
        }
    }

    /// Into a temporary file beside the destination, hashed as it arrives, checked, synced and
    /// renamed into place: the destination is never a partial or unverified file.
    func downloadFile(_ step: AssignedStep, timeoutSeconds: Int) -> StepOutcome { download(step, timeoutSeconds: timeoutSeconds) }

    private func download(_ step: AssignedStep, timeoutSeconds: Int) -> StepOutcome {
        let url = step.url!, expected = step.sha256!, destination = step.destination!
        do {
            try Files.makeDirectories(Files.parent(of: destination), mode: 0o755)
        } catch {
            return StepOutcome(succeeded: false, reason: error.description)
        }
        let partial = destination + ".flotilla-partial"
        // Made afresh, never opened as found: the directory may be writable by the app's own
        // user, who could leave a link there (to /etc/shadow, truncated and overwritten as root)
        // or a FIFO (the open would block for good). The old one goes (unlink removes a link, not
        // what it points to), and O_EXCL refuses whatever appears in its place meanwhile.
        if unlink(partial) != 0, errno != ENOENT {
            return StepOutcome(succeeded: false, reason: AgentError.system("cannot remove", partial).description)
        }
        let fd = open(partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return StepOutcome(succeeded: false, reason: AgentError.system("cannot create", partial).description) }
        let sink = DownloadSink(fd: fd, destination: destination, limit: downloadLimitBytes, reserve: downloadReserveBytes)
        let status = Self.fetch(url, into: sink, timeoutSeconds: timeoutSeconds, caFile: caFile)
        let synced = fsync(fd) == 0
        close(fd)
        func fail(_ reason: String) -> StepOutcome {
            unlink(partial)
            return StepOutcome(succeeded: false, reason: reason)
        }
        // The sink's own reason first: when it stops the transfer, libcurl reports only that
        // writing failed.
        if let failed = sink.failed { return fail(failed) }
        if let error = status.error { return fail(error) }
        guard (200..<300).contains(status.code) else { return fail("download answered HTTP \(status.code)") }
        guard synced else { return fail("cannot sync \(partial)") }
        var hasher = sink.hasher
        let actual = hasher.finalizeHex()
        guard actual == expected else {
            return fail("sha256 mismatch: expected \(expected), got \(actual) (\(sink.bytes) bytes)")
        }
        guard rename(partial, destination) == 0 else { return fail(AgentError.system("cannot move into", destination).description) }
        Files.syncDirectory(of: destination)
        return StepOutcome(succeeded: true, output: "\(sink.bytes) bytes, sha256 \(actual)")
    }

    private static func fetch(_ url: String, into sink: DownloadSink, timeoutSeconds: Int, caFile: String?) -> (code: Int, error: String?) {
        guard let handle = curl_easy_init() else { return (0, "libcurl could not make a handle") }
        defer { curl_easy_cleanup(handle) }
        let context = Unmanaged.passRetained(sink)
        defer { context.release() }
        flotilla_curl_private_sockets(handle)
        flotilla_curl_setopt_string(handle, CURLOPT_URL, url)
        flotilla_curl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0)
        flotilla_curl_setopt_long(handle, CURLOPT_TIMEOUT, timeoutSeconds)
        flotilla_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        flotilla_curl_setopt_long(handle, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS))
        if let caFile { flotilla_curl_setopt_string(handle, CURLOPT_CAINFO, caFile) }
        flotilla_curl_setopt_write(handle, CURLOPT_WRITEFUNCTION, { data, size, count, context in
            let sink = Unmanaged<DownloadSink>.fromOpaque(context!).takeUnretainedValue()
            let total = size * count
            guard let data, total > 0 else { return total }
            if !sink.started, let handle = sink.handle {
                sink.started = true
                // An error's body is not the artifact: not written, and the status is the reason.
                var code = 0
                flotilla_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &code)
                guard (200..<300).contains(code) else {
                    sink.failed = "download answered HTTP \(code)"
                    return 0
                }
                var announced: curl_off_t = -1
                if flotilla_curl_getinfo_offset(handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) == CURLE_OK,
                   announced > 0, let refusal = sink.refusal(adding: Int64(announced), announced: true) {
                    sink.failed = refusal
                    return 0
                }
            }
            if let refusal = sink.refusal(adding: Int64(total), announced: false) {
                sink.failed = refusal
                return 0
            }
            let bytes = UnsafeRawBufferPointer(start: data, count: total)
            sink.hasher.update(bytes)
            var offset = 0
            while offset < total {
                let written = write(sink.fd, bytes.baseAddress! + offset, total - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    sink.failed = "cannot write the download: \(String(cString: strerror(errno)))"
                    return 0
                }
                offset += written
            }
            sink.bytes += total
            return total
        })
        flotilla_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context.toOpaque())
        sink.handle = handle
        defer { sink.handle = nil }
        let code = curl_easy_perform(handle)
        guard code == CURLE_OK else { return (0, "download failed: \(String(cString: curl_easy_strerror(code)))") }
        var status = 0
        flotilla_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return (status, nil)
    }
}

private final class DownloadSink {
    let fd: Int32
    let destination: String
    let limit: Int64?
    let reserve: Int64
    var handle: UnsafeMutableRawPointer?
    var started = false
    var hasher = SHA256.Hasher()
    var bytes = 0
    var failed: String?
    /// The free space last read, and `bytes` then: the file system is read again only every
    /// `recheckBytes` or once what is left comes near the reserve (on NFS each read is a round trip).
    private var checked: (free: Int64, bytes: Int)?
    static let recheckBytes = 4 << 20

    init(fd: Int32, destination: String, limit: Int64?, reserve: Int64) {
        self.fd = fd
        self.destination = destination
        self.limit = limit
        self.reserve = reserve
    }

    /// Why `count` more bytes (or, `announced`, a body the server says is `count` bytes long)
    /// must not be written: past the download limit, or into the free space kept on the
    /// destination's file system. Nil when they may.
    func refusal(adding count: Int64, announced: Bool) -> String? {
        let after = announced ? count : Int64(bytes) + count
        if let limit, after > limit {
            return announced
                ? "the download is \(after) bytes, more than this agent's limit of \(limit) (downloadLimitBytes)"
                : "the download passed this agent's limit of \(limit) bytes (downloadLimitBytes) and was stopped"
        }
        let needed = announced ? count - Int64(bytes) : count
        if !announced, let checked, bytes - checked.bytes < Self.recheckBytes,
           checked.free - Int64(bytes - checked.bytes) - needed >= reserve + Int64(Self.recheckBytes) {
            return nil
        }
        var space = statvfs()
        // A file system that cannot say (no statvfs) bounds the download by its limit alone.
        guard fstatvfs(fd, &space) == 0 else { return nil }
        // Some file systems (FUSE, network ones) report sizes whose product overflows.
        let (product, overflow) = Int64(clamping: space.f_bavail).multipliedReportingOverflow(by: Int64(clamping: space.f_frsize))
        let free = overflow ? Int64.max : product
        checked = (free, bytes)
        guard free - needed < reserve else { return nil }
        let kept = "keeping \(reserve) bytes free (downloadReserveBytes)"
        return announced
            ? "the download is \(count) bytes and \(free) are free where \(destination) goes; not started, \(kept)"
            : "the download stopped after \(bytes) bytes: \(free) are free where \(destination) goes, \(kept)"
    }
}
