import FleetProtocol
@testable import FleetServer
import FleetStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing

/// `GET /api/v1/devices/{id}/metrics`: a device's history, raw for the last day and from the
/// ten-minute buckets before, in at most `points` buckets; one project never sees another's.
extension ServerTests {
    @Test func aDevicesMetricsComeFromTheHistoryAndRecentHeartbeatsInFewPoints() async throws {
        let now = Date()
        _ = try await store.enroll(DeviceRecord(id: "d1", project: "acme", name: "d1", hardwareID: "h1", secretHash: "x", enrolledAt: now))
        // Three days of a heartbeat every ten minutes: CPU climbs by one each day.
        var beats: [HeartbeatRecord] = []
        for minutes in stride(from: 3 * 24 * 60 - 10, to: 0, by: -10) {
            let day = Double(minutes / (24 * 60))
            beats.append(HeartbeatRecord(deviceID: "d1", receivedAt: now.addingTimeInterval(-Double(minutes) * 60),
                                         report: Heartbeat(reportID: "r\(minutes)", cpuPercent: 10 + day,
                                                           memory: .init(usedBytes: 1, totalBytes: 4), load: [0.5, 0, 0])))
        }
        _ = try await store.recordHeartbeats(beats)
        let total = beats.count
        // What the retention would do: all but the last day into the history.
        let rolled = try await store.rollUpHeartbeats(before: MetricHistory.bucketStart(now.addingTimeInterval(-86_400), seconds: 600),
                                                      bucketSeconds: 600)
        #expect(rolled > 250)

        try await withServer { client, tokens in
            let auth: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            // The last day by default: raw heartbeats, in five-minute buckets for 300 points.
            let day = try await client.execute(uri: "/api/v1/devices/d1/metrics", method: .get, headers: auth)
            #expect(day.status == .ok)
            let recent = try Self.decode(DeviceMetrics.self, day)
            #expect(recent.device == "d1")
            #expect(recent.bucketSeconds == 300)
            #expect((140...145).contains(recent.points.count), "\(recent.points.count)")
            #expect(recent.points.allSatisfy { $0.memory == .init(.init(count: 1, mean: 25, max: 25)) })
            #expect(recent.points.allSatisfy { $0.load?.mean == 0.5 })

            // A week in 10 points: the history and the last day together, oldest first.
            let week = try Self.decode(DeviceMetrics.self, try await client.execute(uri: "/api/v1/devices/d1/metrics?since=7d&points=10",
                                                                                  method: .get, headers: auth))
            #expect(week.bucketSeconds == 60_600)
            #expect(week.points.reduce(0) { $0 + $1.samples } == total)
            #expect(week.points.map(\.at) == week.points.map(\.at).sorted())
            #expect(week.points.first?.cpu?.max == 12)
            #expect(week.points.last?.cpu?.mean == 10)

            // A span in the past by times.
            let iso = ISO8601DateFormatter()
            let since = iso.string(from: now.addingTimeInterval(-3 * 86_400)), until = iso.string(from: now.addingTimeInterval(-2 * 86_400))
            let past = try Self.decode(DeviceMetrics.self, try await client.execute(uri: "/api/v1/devices/d1/metrics?since=\(since)&until=\(until)",
                                                                                  method: .get, headers: auth))
            #expect(past.bucketSeconds == 600)
            #expect(past.points.allSatisfy { $0.cpu?.mean == 12 })

            for (query, field) in [("since=yesterday", "since"), ("until=3x", "until"), ("points=0", "points"), ("points=2001", "points"),
                                   ("since=1h&until=2h", "since"), ("since=500d", "since")] {
                let bad = try await client.execute(uri: "/api/v1/devices/d1/metrics?\(query)", method: .get, headers: auth)
                #expect(bad.status == .badRequest, "\(query)")
                #expect(try Self.error(bad).field == field, "\(query)")
            }
            // Another project's operator, a device that does not exist, no token.
            let other = try await client.execute(uri: "/api/v1/devices/d1/metrics", method: .get,
                                                 headers: [.authorization: "Bearer \(tokens.otherOperator)"])
            #expect(other.status == .notFound)
            #expect(try await client.execute(uri: "/api/v1/devices/nope/metrics", method: .get, headers: auth).status == .notFound)
            #expect(try await client.execute(uri: "/api/v1/devices/d1/metrics", method: .get).status == .unauthorized)
        }
    }

    /// A device decides how large its heartbeats are: a day of the largest a body may be is
    /// gigabytes, so a metrics read stops at a size and says why, rather than read it all.
    @Test func aDevicesMetricsAreReadUpToASize() async throws {
        let now = Date()
        _ = try await store.enroll(DeviceRecord(id: "d1", project: "acme", name: "d1", hardwareID: "h1", secretHash: "x", enrolledAt: now))
        let padding = String(repeating: "x", count: 62 << 10)
        // 30 heartbeats of 62 KiB, 25 s apart, against a read of at most 1 MiB.
        let beats = (0..<30).map { index in
            HeartbeatRecord(deviceID: "d1", receivedAt: now.addingTimeInterval(-Double(30 - index) * 25),
                            report: Heartbeat(reportID: "r\(index)", cpuPercent: 10, custom: ["blob": padding]))
        }
        _ = try await store.recordHeartbeats(beats)
        try await withServer(metricsReadBytes: 1 << 20) { client, tokens in
            let auth: HTTPFields = [.authorization: "Bearer \(tokens.operator)"]
            let whole = try await client.execute(uri: "/api/v1/devices/d1/metrics", method: .get, headers: auth)
            #expect(whole.status == .badRequest)
            #expect(try Self.error(whole).message.contains("more than 1024 KiB of heartbeats"))
            #expect(try Self.error(whole).field == "since")
            // A shorter span, within the size, is read: the last ten.
            let iso = ISO8601DateFormatter()
            let since = iso.string(from: now.addingTimeInterval(-10 * 25 - 1)), until = iso.string(from: now)
            let recent = try await client.execute(uri: "/api/v1/devices/d1/metrics?since=\(since)&until=\(until)", method: .get, headers: auth)
            #expect(recent.status == .ok)
            #expect(try Self.decode(DeviceMetrics.self, recent).points.reduce(0) { $0 + $1.samples } == 10)
        }
    }
}
