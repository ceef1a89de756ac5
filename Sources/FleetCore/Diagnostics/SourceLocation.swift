import FleetProtocol
/// A place in the fleet repository: a file, and where known a line and column (both from 1).
public struct SourceLocation: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The path of the file, relative to the repository root, with `/` separators.
    public var path: String
    /// The line, counted from 1; 0 when the error concerns the whole file.
    public var line: Int
    /// The column, counted from 1 in Unicode scalars; 0 when unknown.
    public var column: Int

    public init(path: String, line: Int = 0, column: Int = 0) {
        self.path = path
        self.line = line
        self.column = column
    }

    /// `path:line:column`, or just `path` when the error concerns the whole file.
    public var description: String {
        let path = DisplayText.safe(self.path, limit: 300)
        return line > 0 ? "\(path):\(line):\(column)" : path
    }

    /// The same place moved `offset` columns to the right, for errors inside a scalar.
    public func advanced(byColumns offset: Int) -> SourceLocation {
        SourceLocation(path: path, line: line, column: column + offset)
    }

    public static func < (lhs: SourceLocation, rhs: SourceLocation) -> Bool {
        (lhs.path, lhs.line, lhs.column) < (rhs.path, rhs.line, rhs.column)
    }
}
