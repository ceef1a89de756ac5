import FleetProtocol
import Glibc

/// Lines on standard error, for journald or a terminal. Never given a token or a secret.
public enum Log {
    nonisolated(unsafe) public static var verbose = false

    public static func info(_ message: @autoclosure () -> String) { write("info", message()) }
    public static func warning(_ message: @autoclosure () -> String) { write("warning", message()) }
    public static func error(_ message: @autoclosure () -> String) { write("error", message()) }
    public static func debug(_ message: @autoclosure () -> String) { if verbose { write("debug", message()) } }

    private static func write(_ level: String, _ message: String) {
        let line = "flotilla-agent \(level): \(printable(message))\n"
        _ = line.utf8CString.withUnsafeBufferPointer { Glibc.write(2, $0.baseAddress, $0.count - 1) }
    }

    /// One line, whatever a message quotes (a server's ids, a step's output): a newline in it
    /// would start a line that looks like the agent's own, and an escape sequence would act on
    /// the terminal that shows the journal. Control characters are written out as `\u{…}`.
    static func printable(_ message: String) -> String { DisplayText.safe(message, limit: .max) }
}
