import FleetGit
import FleetTesting
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing

/// Clients that send their request slowly, against a real `flotilla serve`.
@Suite(.serialized)
struct HostileClientTests {
    /// Sends the request's headers and first body byte, waits until `go` exists, sends the rest,
    /// and prints the answer's status code.
    static let slowClient = """
        import os, socket, sys, time
        port, token, body, go = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(), sys.argv[4]
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(("POST /api/v1/tokens HTTP/1.1\\r\\nHost: x\\r\\nAuthorization: Bearer " + token +
                   "\\r\\nContent-Type: application/json\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body)).encode() + body[:1])
        print("sent", flush=True)
        while not os.path.exists(go): time.sleep(0.02)
        s.sendall(body[1:])
        print(s.recv(65536).split(b"\\r\\n")[0].decode(), flush=True)
        """

    /// A token revoked while its request's body was still arriving does not act.
    @Test func aTokenRevokedWhileItsBodyArrivesDoesNotAct() async throws {
        let server = try ServerUnderTest()
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let made = try await server.post("/api/v1/tokens", ["kind": "operator"])
        let leaked = try #require(made.json["token"] as? String)
        let leakedID = try #require((made.json["info"] as? [String: Any])?["id"] as? String)
        try Self.slowClient.write(toFile: root + "/slow.py", atomically: true, encoding: .utf8)
        let pid = try ChildProcess.start("/usr/bin/python3", [root + "/slow.py", "\(server.port)", leaked, #"{"kind": "operator"}"#, root + "/go"],
                                         environment: [:], logPath: root + "/slow.log")
        defer { ChildProcess.kill(pid) }
        try await eventually(seconds: 10, "the slow client to start its request") {
            ((try? String(contentsOfFile: root + "/slow.log", encoding: .utf8)) ?? "").contains("sent") ? true : nil
        }
        var request = URLRequest(url: URL(string: server.base + "/api/v1/tokens/\(leakedID)")!)
        request.httpMethod = "DELETE"
        request.setValue("Bearer \(server.operatorToken)", forHTTPHeaderField: "Authorization")
        let (_, revoked) = try await URLSession.shared.data(for: request)
        #expect((revoked as? HTTPURLResponse)?.statusCode == 200)
        FileManager.default.createFile(atPath: root + "/go", contents: nil)
        let answer = try await eventually(seconds: 10, "the slow request's answer") { () -> String? in
            let log = (try? String(contentsOfFile: root + "/slow.log", encoding: .utf8)) ?? ""
            return log.contains("HTTP/1.1") ? log : nil
        }
        #expect(answer.contains("HTTP/1.1 401"), "\(answer)")
        let tokens = try await server.get("/api/v1/tokens")["tokens"] as? [[String: Any]] ?? []
        #expect(!tokens.contains { $0["createdBy"] as? String == leakedID })
    }

    /// Opens idle connections and ones that stop in the middle of their headers, holds them
    /// until `check` exists, then prints how many the server has closed.
    static let idleClients = """
        import os, select, socket, sys, time
        port, idle, slow, check = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(idle)]
        for _ in range(slow):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"POST /agent/v1/heartbeat HTTP/1.1\\r\\nHost: x\\r\\nContent-Le")
            held.append(s)
        print("open %d" % len(held), flush=True)
        while not os.path.exists(check): time.sleep(0.05)
        poller = select.poll()
        for s in held: poller.register(s, select.POLLIN | select.POLLHUP)
        # A closed connection is readable (an answer, then the end) or hung up.
        closed = len(poller.poll(0))
        print("closed %d" % closed, flush=True)
        """

    /// Thousands of idle and half-sent connections neither lock devices out nor stay open.
    @Test func idleAndSlowConnectionsDoNotLockDevicesOut() async throws {
        let server = try ServerUnderTest(flags: ["--idle-timeout", "3"])
        let agent = try AgentUnderTest(server: server)
        try agent.start()
        let device = try await agent.deviceID()
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.idleClients.write(toFile: root + "/idle.py", atomically: true, encoding: .utf8)
        let pid = try ChildProcess.start("/usr/bin/python3", [root + "/idle.py", "\(server.port)", "2000", "200", root + "/check"],
                                         environment: [:], logPath: root + "/idle.log")
        defer { ChildProcess.kill(pid) }
        func log() -> String { (try? String(contentsOfFile: root + "/idle.log", encoding: .utf8)) ?? "" }
        try await eventually(seconds: 30, "2,200 connections to open") { log().contains("open 2200") ? true : nil }
        // Heartbeats keep arriving, and the operator API answers, while they are held.
        func lastHeartbeat() async throws -> String? {
            (try await server.get("/api/v1/devices/\(device)")["device"] as? [String: Any])?["lastHeartbeatAt"] as? String
        }
        let before = try await lastHeartbeat()
        try await eventually(seconds: 10, "a heartbeat while 2,200 connections are held") {
            try await lastHeartbeat().flatMap { $0 != before ? true : nil }
        }
        // Past the idle timeout every one of them has been closed by the server.
        try await Task.sleep(for: .seconds(5))
        FileManager.default.createFile(atPath: root + "/check", contents: nil)
        let closed = try await eventually(seconds: 20, "the count of closed connections") { () -> String? in
            log().split(separator: "\n").first { $0.hasPrefix("closed") }.map(String.init)
        }
        #expect(closed == "closed 2200", "\(log())")
    }

    /// Sends a heartbeat's head, then its body a byte every half second, until the server closes
    /// the connection or 20 s pass; prints how long that took.
    static let drippingClient = """
        import socket, sys, time
        port = int(sys.argv[1])
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST /agent/v1/heartbeat HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/json\\r\\nContent-Length: 100\\r\\n\\r\\n")
        start = time.time()
        s.settimeout(0.5)
        while time.time() - start < 20:
            try:
                s.sendall(b" ")
                if s.recv(65536) == b"": break
            except socket.timeout:
                continue
            except OSError:
                break
        print("closed after %.1f" % (time.time() - start), flush=True)
        """

    /// A body dripped a byte at a time resets the idle timeout forever; the request deadline cuts
    /// it off, while a long-poll, whose request ended at once, waits its full time.
    @Test func aBodyDrippedSlowerThanTheRequestTimeoutIsCutOff() async throws {
        let server = try ServerUnderTest(flags: ["--idle-timeout", "30", "--request-timeout", "2"])
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        try Self.drippingClient.write(toFile: root + "/drip.py", atomically: true, encoding: .utf8)
        let started = Date()
        let pid = try ChildProcess.start("/usr/bin/python3", [root + "/drip.py", "\(server.port)"], environment: [:], logPath: root + "/drip.log")
        defer { ChildProcess.kill(pid) }
        let line = try await eventually(seconds: 30, "the dripping client to stop") { () -> String? in
            ((try? String(contentsOfFile: root + "/drip.log", encoding: .utf8)) ?? "").split(separator: "\n").first { $0.hasPrefix("closed") }.map(String.init)
        }
        let seconds = Double(line.dropFirst("closed after ".count)) ?? 99
        #expect(seconds >= 1.5 && seconds < 8, "\(line)")
        #expect(Date().timeIntervalSince(started) < 15)
        // The server answers as before.
        #expect((try await server.get("/api/v1/devices")["devices"] as? [Any]) != nil)
    }
}
