public import FleetProtocol
public import Foundation

/// One device's part of an operator's `flotilla exec` or `flotilla fetch`: what it was asked,
/// where it stands, and how much output the store holds for it (the bytes are kept apart).
public struct RemoteCommandRecord: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable, CaseIterable {
        /// Waiting for the device to take it (its next long-poll).
        case queued
        /// Taken by the device, which sends its output and then its result.
        case running
        /// Ended: exit status 0 (a fetch: the file was read whole or up to the limit).
        case succeeded
        /// Ended otherwise: another exit status, a timeout, or refused on the device.
        case failed
        /// No answer in time: not taken within `pickupSeconds`, or no result by its deadline.
        case expired

        public var isFinal: Bool { self != .queued && self != .running }
    }

    public var id: String
    /// The operator's request this is part of, one record per device.
    public var batch: String
    public var project: String
    public var deviceID: String
    public var command: RemoteCommand
    /// The operator token that asked (`operator:<id>`).
    public var requestedBy: String
    public var requestedAt: Date
    public var state: State
    public var takenAt: Date?
    public var finishedAt: Date?
    public var result: RemoteCommandResult?
    /// Why it expired, or the device's own sentence.
    public var message: String?
    /// The output bytes the store holds.
    public var outputBytes: Int

    public init(id: String, batch: String, project: String, deviceID: String, command: RemoteCommand, requestedBy: String,
                requestedAt: Date) {
        self.id = id
        self.batch = batch
        self.project = project
        self.deviceID = deviceID
        self.command = command
        self.requestedBy = requestedBy
        self.requestedAt = requestedAt
        state = .queued
        outputBytes = 0
    }

    /// How long a device has to take a command: one long-poll round trip, and a missed one.
    public static let pickupSeconds: Double = 75
    /// How long past its timeout a taken command may still send its result.
    public static let graceSeconds: Double = 30
    /// Commands not yet ended that one device may hold: more are refused, not queued.
    public static let openPerDevice = 8

    /// When it expires unless the device acts first.
    public var deadline: Date {
        if let takenAt { return takenAt.addingTimeInterval(Double(command.timeoutSeconds) + Self.graceSeconds) }
        return requestedAt.addingTimeInterval(Self.pickupSeconds)
    }

    /// The record as it stands at `date`: one whose deadline passed without an answer is expired.
    /// Every store applies this when it reads, so no sweeper is needed.
    public func settled(at date: Date) -> RemoteCommandRecord {
        guard !state.isFinal, date >= deadline else { return self }
        var record = self
        record.state = .expired
        record.finishedAt = deadline
        record.message = takenAt == nil
            ? "the device did not take it within \(Int(Self.pickupSeconds)) s (offline, or its agent does not poll for commands)"
            : "no result from the device within \(command.timeoutSeconds + Int(Self.graceSeconds)) s of taking it"
        return record
    }

    /// Taken by the device at `date`, when it still may be.
    public func taken(at date: Date) -> RemoteCommandRecord? {
        let settled = settled(at: date)
        guard settled.state == .queued else { return nil }
        var record = settled
        record.state = .running
        record.takenAt = date
        return record
    }

    /// Output a device sends, from byte `offset`: what of it is new, and the record after it.
    /// Every store applies this under its lock, so a resend is harmless and a gap is refused.
    public func appending(_ bytes: [UInt8], at offset: Int, date: Date) -> RemoteCommandUpdate {
        let record = settled(at: date)
        guard record.state == .running else { return .finished(record) }
        guard offset >= 0, offset <= record.outputBytes else { return .gap(expected: record.outputBytes) }
        let skip = record.outputBytes - offset
        guard skip < bytes.count else { return .accepted(record, append: []) }
        let room = max(0, command.maximumBytes - record.outputBytes)
        let fresh = Array(bytes[skip...].prefix(room))
        guard fresh.count == bytes.count - skip else { return .tooLarge(limit: command.maximumBytes) }
        var updated = record
        updated.outputBytes += fresh.count
        return .accepted(updated, append: fresh)
    }

    /// The device's result: the command ends once the store holds all the output it counts.
    public func finishing(with result: RemoteCommandResult, date: Date) -> RemoteCommandUpdate {
        let record = settled(at: date)
        guard record.state == .running else { return .finished(record) }
        guard result.outputBytes == record.outputBytes else { return .gap(expected: record.outputBytes) }
        var updated = record
        updated.result = result
        updated.state = result.exitCode == 0 && !result.timedOut ? .succeeded : .failed
        updated.finishedAt = date
        updated.message = result.message
        return .accepted(updated, append: [])
    }
}

extension RemoteCommandRecord {
    /// The output from byte `offset`, out of the pieces a store keeps (in order, each with the
    /// offset it starts at).
    public static func join(_ pieces: [(start: Int, bytes: [UInt8])], from offset: Int) -> [UInt8] {
        var output: [UInt8] = []
        for piece in pieces {
            let skip = max(0, offset - piece.start)
            if skip < piece.bytes.count { output += piece.bytes[skip...] }
        }
        return output
    }
}

/// What became of a device's output or result.
public enum RemoteCommandUpdate: Sendable, Equatable {
    /// Stored (`append` is what was new of the output).
    case accepted(RemoteCommandRecord, append: [UInt8])
    /// The store holds `expected` bytes: the device sends from there.
    case gap(expected: Int)
    /// More output than the command allows.
    case tooLarge(limit: Int)
    /// It already ended (or expired): nothing more is taken.
    case finished(RemoteCommandRecord)
    /// No such command for this device.
    case notFound
}
