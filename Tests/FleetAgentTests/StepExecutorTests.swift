@testable import FleetAgent
import FleetGit
import FleetProtocol
import FleetTesting
import Foundation
import Glibc
import Testing

@Suite(.serialized) struct StepExecutorTests {
    static func assignment(allowlist: [String] = []) -> Assignment {
        Assignment(executionID: "ex-1", deploymentID: "dep-1", app: "web", version: "2.0", digest: "", steps: [], rollback: [],
                   artifactAllowlist: allowlist)
    }

    static func run(_ command: String, kind: AssignedStep.Kind = .run, timeout: Int = 10, retries: Int = 0) -> AssignedStep {
        AssignedStep(name: "s", kind: kind, command: command, timeoutSeconds: timeout, retries: retries, onFailure: "rollback", idempotent: false)
    }

    @Test func runCapturesTheTailAndTheExitStatus() {
        let executor = SystemStepExecutor(allowedRoots: ["/tmp"], retryDelaySeconds: 0)
        let ok = executor.execute(Self.run("echo out; echo err >&2; echo $FLOTILLA_APP $FLOTILLA_VERSION"), of: Self.assignment())
        #expect(ok.succeeded && ok.exitCode == 0)
        #expect(ok.output == "out\nerr\nweb 2.0\n")
        let long = executor.execute(Self.run("seq 1 20000; exit 4"), of: Self.assignment())
        #expect(!long.succeeded && long.exitCode == 4 && long.reason == "exited with status 4")
        #expect(long.output!.utf8.count <= ProcessRunner.tailBytes && long.output!.hasSuffix("19999\n20000\n"))
        let script = executor.execute(Self.run("set -e\nx=1\nfalse\necho never", kind: .script), of: Self.assignment())
        #expect(!script.succeeded && script.output == "")
    }

    /// A secret the step echoes never leaves the device in its output: hidden before the tail is
    /// cut (no piece of one survives at the cut), and kept off the shell's command line.
    @Test func secretsAreHiddenInTheOutputAndOffTheCommandLine() {
        let executor = SystemStepExecutor(allowedRoots: ["/tmp"], retryDelaySeconds: 0)
        let secret = "S3CRET-0123456789abc"
        var assignment = Self.assignment()
        assignment.secrets = ["password": secret]
        let echoed = executor.execute(Self.run("echo 'pw=\(secret)'; echo \"env=$FLOTILLA_SECRET_password\"; tr '\\0' ' ' < /proc/$$/cmdline"),
                                      of: assignment)
        #expect(echoed.succeeded, "\(echoed.reason ?? "")")
        let output = echoed.output ?? ""
        #expect(output.hasPrefix("pw=[secret]\nenv=[secret]\n"), "\(output)")
        #expect(output.contains("FLOTILLA_STEP_COMMAND"), "the shell's command line names the variable, not the command: \(output)")
        #expect(!output.contains("S3CRET"))
        // The secret straddles where the 4 KiB tail begins: cut first, 10 of its characters would stay.
        let straddling = executor.execute(Self.run("head -c 5000 /dev/zero | tr '\\0' x; printf '\(secret)'; head -c 4086 /dev/zero | tr '\\0' y"),
                                          of: assignment)
        let tail = straddling.output ?? ""
        #expect(tail.utf8.count <= ProcessRunner.tailBytes)
        #expect(!tail.contains("456789abc"), "a piece of the secret survived the cut")
        #expect(tail.contains("[secret]"))
        // Without secrets, commands run as they always did.
        #expect(executor.execute(Self.run("tr '\\0' ' ' < /proc/$$/cmdline"), of: Self.assignment()).output?.contains("FLOTILLA_STEP_COMMAND") == false)
    }

    @Test func aTimeoutKillsTheWholeProcessGroup() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let executor = SystemStepExecutor(allowedRoots: ["/tmp"], retryDelaySeconds: 0)
        let started = Date()
        // The child's own child would keep running without a group kill and write the file.
        let outcome = executor.execute(Self.run("(sleep 2; touch \(root)/survived) & sleep 30", timeout: 1), of: Self.assignment())
        #expect(!outcome.succeeded && outcome.reason == "timed out")
        #expect(Date().timeIntervalSince(started) < 10)
        Thread.sleep(forTimeInterval: 2.5)
        #expect(!FileManager.default.fileExists(atPath: root + "/survived"))
    }

    @Test func retriesUntilSuccess() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let executor = SystemStepExecutor(allowedRoots: ["/tmp"], retryDelaySeconds: 0)
        // Fails twice, then succeeds: three attempts.
        let command = "n=$(cat \(root)/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > \(root)/n; [ $n -ge 3 ]"
        let outcome = executor.execute(Self.run(command, retries: 5), of: Self.assignment())
        #expect(outcome.succeeded && outcome.attempts == 3)
        let exhausted = executor.execute(Self.run("false", retries: 2), of: Self.assignment())
        #expect(!exhausted.succeeded && exhausted.attempts == 3)
    }

    /// A stand-in `docker` and `dpkg` on PATH record their arguments: no engine runs here.
    @Test func composeAndInstallCallTheirTools() throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        for tool in ["docker", "dpkg"] {
            // Written with O_CLOEXEC, so no child another test starts meanwhile keeps it open for writing.
            let fd = open(root + "/bin/" + tool, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o755)
            let script = Array("#!/bin/sh\necho \"$(basename $0) $*\" >> \(root)/calls\n".utf8)
            #expect(script.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == script.count)
            close(fd)
        }
        let path = String(cString: getenv("PATH"))
        setenv("PATH", root + "/bin:" + path, 1)
        defer { setenv("PATH", path, 1) }
        let executor = SystemStepExecutor(allowedRoots: ["/tmp"], retryDelaySeconds: 0)
        let up = AssignedStep(name: "up", kind: .compose, project: "web", file: "/opt/web/compose.yaml", action: "up",
                              timeoutSeconds: 10, retries: 0, onFailure: "rollback", idempotent: true)
        var down = up
        down.action = "down"
        #expect(executor.execute(up, of: Self.assignment()).succeeded)
        #expect(executor.execute(down, of: Self.assignment()).succeeded)
        #expect(executor.execute(Self.run("/tmp/web_2.0_amd64.deb", kind: .install), of: Self.assignment()).succeeded)
        #expect(try String(contentsOfFile: root + "/calls", encoding: .utf8) == """
            docker compose -p web -f /opt/web/compose.yaml up -d
            docker compose -p web -f /opt/web/compose.yaml down
            dpkg --force-confdef --force-confold -i /tmp/web_2.0_amd64.deb

            """)
    }

    @Test(.timeLimit(.minutes(1))) func downloadsAreVerifiedAndRefusedOutsideTheirBounds() async throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let payload = String(repeating: "flotilla artifact\n", count: 10_000)
        try write(payload, to: root + "/www/releases/web-2.0.tar")
        let port = try GitDaemon.freePort()
        let server = try ChildProcess.start("/usr/bin/python3", ["-m", "http.server", "--bind", "127.0.0.1", "--directory", root + "/www", "\(port)"])
        defer { ChildProcess.kill(server) }
        #expect(GitDaemon.waitUntilListening(port: port))

        let base = "http://127.0.0.1:\(port)"
        let digest = SHA256.hex(Array(payload.utf8))
        let executor = SystemStepExecutor(allowedRoots: [root + "/apps"], retryDelaySeconds: 0)
        let assignment = Self.assignment(allowlist: [base + "/releases/"])
        func download(_ url: String, _ sha: String, _ destination: String) -> AssignedStep {
            AssignedStep(name: "fetch", kind: .download, url: url, sha256: sha, destination: destination, timeoutSeconds: 10, retries: 0,
                         onFailure: "rollback", idempotent: true)
        }
        let destination = root + "/apps/web/web.tar"
        let good = executor.execute(download(base + "/releases/web-2.0.tar", digest, destination), of: assignment)
        #expect(good.succeeded, "\(good.reason ?? "")")
        #expect(try String(contentsOfFile: destination, encoding: .utf8) == payload)

        let other = root + "/apps/web/other.tar"
        let mismatch = executor.execute(download(base + "/releases/web-2.0.tar", String(repeating: "0", count: 64), other), of: assignment)
        #expect(!mismatch.succeeded)
        #expect(mismatch.reason?.hasPrefix("sha256 mismatch: expected 0000") == true)
        #expect(!FileManager.default.fileExists(atPath: other))
        #expect(!FileManager.default.fileExists(atPath: other + ".flotilla-partial"))

        let outside = executor.execute(download(base + "/private/key", digest, destination), of: assignment)
        #expect(outside.reason == "download URL '\(base)/private/key' is outside the artifact allowlist")
        let sneaky = executor.execute(download(base + "/releases/../private/key", digest, destination), of: assignment)
        #expect(sneaky.reason?.contains("'.' and '..' path segments are not allowed") == true)
        let escape = executor.execute(download(base + "/releases/web-2.0.tar", digest, root + "/apps/../etc/passwd"), of: assignment)
        #expect(escape.reason?.hasPrefix("refused: 'step.destination' must not contain a '..' component") == true)
        let elsewhere = executor.execute(download(base + "/releases/web-2.0.tar", digest, "/etc/passwd"), of: assignment)
        #expect(elsewhere.reason?.hasPrefix("destination '/etc/passwd' is outside the allowed roots") == true)
        let missing = executor.execute(download(base + "/releases/none.tar", digest, root + "/apps/none"), of: assignment)
        #expect(missing.reason == "download answered HTTP 404")

        // A redirect (here http.server's, for a directory asked without its slash) is not the
        // server's answer: not a refusal that drops a report, the server not reached yet.
        try FileManager.default.createDirectory(atPath: root + "/www/agent/v1/assignments", withIntermediateDirectories: true)
        let api = AgentAPI(server: base, deviceToken: "t")
        do {
            _ = try api.assignments(entityTag: nil, waitSeconds: 1)
            Issue.record("a redirect was taken as an answer")
        } catch {
            if case .unavailable = error {} else { Issue.record("a redirect taken for the server's refusal: \(error)") }
        }

        // The app's own user may write where its artifacts go, and leave a link (or a FIFO) where
        // the download's temporary file will be: the agent, as root, makes its own file instead
        // of writing through the link (or blocking on the FIFO).
        let precious = root + "/precious"
        try write("keep me\n", to: precious)
        let planted = root + "/apps/web/linked.tar"
        try FileManager.default.createSymbolicLink(atPath: planted + ".flotilla-partial", withDestinationPath: precious)
        let linked = executor.execute(download(base + "/releases/web-2.0.tar", digest, planted), of: assignment)
        #expect(linked.succeeded, "\(linked.reason ?? "")")
        #expect(try String(contentsOfFile: precious, encoding: .utf8) == "keep me\n", "the link's target is untouched")
        #expect(try String(contentsOfFile: planted, encoding: .utf8) == payload)
        let piped = root + "/apps/web/piped.tar"
        #expect(mkfifo(piped + ".flotilla-partial", 0o644) == 0)
        let fifo = executor.execute(download(base + "/releases/web-2.0.tar", digest, piped), of: assignment)
        #expect(fifo.succeeded, "\(fifo.reason ?? "")")
        #expect(try String(contentsOfFile: piped, encoding: .utf8) == payload)
    }

    /// An artifact server that sends without end, or announces more than the device holds,
    /// cannot fill the disk the device runs from: the download stops at the agent's limit, or
    /// before the free space it keeps, and leaves nothing behind.
    @Test(.timeLimit(.minutes(1))) func aDownloadStopsAtItsLimitAndBeforeTheFreeSpaceKept() async throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        // /endless: no length, 256 KiB at a time until the client goes (or 64 MiB are sent, so a
        // broken bound cannot fill the disk); /huge: announces a petabyte; /gone: a 404 as long.
        try write("""
            import socket, sys, threading
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", int(sys.argv[1])))
            listener.listen(8)
            chunk = b"x" * 262144
            def serve(client):
                try:
                    request = client.recv(65536)
                    head = b"HTTP/1.0 404 Not Found\\r\\n" if b"/gone" in request else b"HTTP/1.0 200 OK\\r\\n"
                    if b"/huge" in request or b"/gone" in request:
                        head += b"Content-Length: 1000000000000000\\r\\n"
                    client.sendall(head + b"\\r\\n")
                    for _ in range(256):
                        client.sendall(chunk)
                except OSError:
                    pass
                client.close()
            while True:
                client, _ = listener.accept()
                threading.Thread(target=serve, args=(client,), daemon=True).start()
            """, to: root + "/endless.py")
        let port = try GitDaemon.freePort()
        let server = try ChildProcess.start("/usr/bin/python3", [root + "/endless.py", "\(port)"])
        defer { ChildProcess.kill(server) }
        #expect(GitDaemon.waitUntilListening(port: port))
        let base = "http://127.0.0.1:\(port)"
        let assignment = Self.assignment(allowlist: [base + "/"])
        func download(_ path: String, to destination: String) -> AssignedStep {
            AssignedStep(name: "fetch", kind: .download, url: base + path, sha256: String(repeating: "0", count: 64),
                         destination: destination, timeoutSeconds: 30, retries: 0, onFailure: "rollback", idempotent: true)
        }
        let destination = root + "/apps/web.tar"
        func nothingLeft() -> Bool {
            !FileManager.default.fileExists(atPath: destination) && !FileManager.default.fileExists(atPath: destination + ".flotilla-partial")
        }

        let limited = SystemStepExecutor(allowedRoots: [root + "/apps"], retryDelaySeconds: 0, downloadLimitBytes: 1 << 20)
        let endless = limited.execute(download("/endless", to: destination), of: assignment)
        #expect(!endless.succeeded)
        #expect(endless.reason == "the download passed this agent's limit of 1048576 bytes (downloadLimitBytes) and was stopped")
        #expect(nothingLeft())
        // An error's body is not written, however long, and the status is the reason.
        let gone = limited.execute(download("/gone", to: destination), of: assignment)
        #expect(gone.reason == "download answered HTTP 404")
        #expect(nothingLeft())
        let huge = limited.execute(download("/huge", to: destination), of: assignment)
        #expect(huge.reason == "the download is 1000000000000000 bytes, more than this agent's limit of 1048576 (downloadLimitBytes)")
        #expect(nothingLeft())

        // No limit: the free space decides. Keep all but 4 MiB of what is free now.
        var space = statvfs()
        #expect(statvfs(root, &space) == 0)
        let free = Int64(space.f_bavail) * Int64(space.f_frsize)
        // Other tests write beside this one: the bound is what matters, the stop may come early.
        guard free > 64 << 20 else { return }
        let keeping = SystemStepExecutor(allowedRoots: [root + "/apps"], retryDelaySeconds: 0, downloadReserveBytes: free - (4 << 20))
        let filling = keeping.execute(download("/endless", to: destination), of: assignment)
        #expect(filling.reason?.hasPrefix("the download stopped after ") == true, "\(filling.reason ?? "")")
        #expect(filling.reason?.hasSuffix("keeping \(free - (4 << 20)) bytes free (downloadReserveBytes)") == true)
        #expect(nothingLeft())
        let announced = SystemStepExecutor(allowedRoots: [root + "/apps"], retryDelaySeconds: 0).execute(download("/huge", to: destination), of: assignment)
        #expect(announced.reason?.hasPrefix("the download is 1000000000000000 bytes and ") == true, "\(announced.reason ?? "")")
        #expect(announced.reason?.contains("not started") == true)
        #expect(nothingLeft())
    }

    /// What the server should never send, the agent refuses itself rather than trap on: an
    /// overflowing retry count, a negative timeout, an unknown onFailure.
    @Test(arguments: [
        (Int.max, 10, "rollback", "refused: 'step.retries' must be from 0 to 100"),
        (-1, 10, "rollback", "refused: 'step.retries' must be from 0 to 100"),
        (0, -5, "rollback", "refused: 'step.timeoutSeconds' must be from 1 to 604800 (a week)"),
        (0, 10, "explode", "refused: 'step.onFailure' must be one of rollback, continue, abort"),
    ])
    func refusesStepsOutsideTheRules(_ retries: Int, _ timeout: Int, _ onFailure: String, _ reason: String) {
        let executor = SystemStepExecutor(allowedRoots: ["/tmp"], retryDelaySeconds: 0)
        let step = AssignedStep(name: "x", kind: .run, command: "true", timeoutSeconds: timeout, retries: retries,
                                onFailure: onFailure, idempotent: false)
        let assignment = Assignment(executionID: "e", deploymentID: "d", app: "a", version: "1", digest: "", steps: [step],
                                    rollback: [], artifactAllowlist: [])
        let outcome = executor.execute(step, of: assignment)
        #expect(!outcome.succeeded)
        #expect(outcome.reason == reason)
    }
}
