@testable import FleetCLI
import FleetProtocol
import FleetStore
import Foundation
import Testing

/// What `flotilla exec` prints of a device's output on a terminal, and how it says each device ended.
struct RemoteFollowerTests {
    @Test func controlCharactersADevicePrintsAreEscapedOnATerminal() {
        let hostile = Data("ok\t1\n\r\u{1b}]52;c;cGF5bG9hZA==\u{7}d-other: fine\u{7f}\n".utf8) + Data([0xC2, 0x9B]) + Data("2J".utf8)
        let shown = String(decoding: RemoteFollower.escaped(hostile), as: UTF8.self)
        #expect(shown == "ok\t1\n\\x0d\\x1b]52;c;cGF5bG9hZA==\\x07d-other: fine\\x7f\n\\u009b2J")
        // Text, tabs and newlines, and other characters pass as they are.
        let plain = Data("température: 21°C\n".utf8)
        #expect(RemoteFollower.escaped(plain) == plain)
    }

    @Test func eachDeviceSaysHowItEndedWhenThereIsMoreThanACleanExit() throws {
        func device(_ state: RemoteCommandRecord.State, exit: Int? = nil, message: String? = nil, truncated: Bool = false) throws -> RemoteBatchView.Device {
            var record = RemoteCommandRecord(id: "r-1-d-1", batch: "r-1", project: "acme", deviceID: "d-1",
                                             command: .init(id: "r-1-d-1", kind: .exec, command: ["true"], timeoutSeconds: 5),
                                             requestedBy: "operator:o", requestedAt: Date())
            record.state = state
            record.message = message
            record.outputBytes = truncated ? 1 << 20 : 0
            record.result = .init(exitCode: exit, truncated: truncated, droppedBytes: truncated ? 10 : 0, outputBytes: record.outputBytes)
            return RemoteBatchView.Device(record)
        }
        #expect(RemoteFollower.ending(try device(.succeeded, exit: 0), prefixed: true) == nil)
        #expect(RemoteFollower.ending(try device(.failed, exit: 3), prefixed: false) == "exited with status 3")
        #expect(RemoteFollower.ending(try device(.expired, message: "the device is offline"), prefixed: true) == "d-1: the device is offline")
        #expect(RemoteFollower.ending(try device(.succeeded, exit: 0, truncated: true), prefixed: false)
                == "output cut at 1048576 bytes; 10 more were dropped")
    }
}

/// A selector that matches more of the fleet than meant is noticed before anything runs.
struct ExecConfirmationTests {
    @Test(arguments: [
        (1, true, ExecCommand.Confirmation.run),
        (10, false, .run),
        (11, true, .ask("The selector matches 11 devices. Run the command on all of them? [y/N]")),
        (5_000, false, .refuse("the selector matches 5000 devices; add --yes to run the command on all of them")),
    ])
    func wideSelectorsAreAskedAboutOrNeedYes(count: Int, interactive: Bool, expected: ExecCommand.Confirmation) {
        #expect(ExecCommand.confirmation(matching: count, interactive: interactive) == expected)
    }
}
