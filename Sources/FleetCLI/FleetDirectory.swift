public import FleetCore
import Foundation

/// Reads a fleet repository from a directory on disk into a `FleetTree`, touching only the
/// paths the loader reads and never following symbolic links.
public enum FleetDirectory {
    public static func read(_ root: String) throws(CLIError) -> FleetTree {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory) else {
            throw CLIError("\(root): no such directory")
        }
        guard isDirectory.boolValue else {
            throw CLIError("\(root): not a directory; give the root of a fleet repository")
        }
        var tree = FleetTree()
        var visited = 0
        for top in ["fleet.yaml", "fleet.yml"] + FleetTree.folders.map(\.folder) {
            try visit(top, root: root, into: &tree, visited: &visited)
        }
        return tree
    }

    private static func visit(_ relative: String, root: String, into tree: inout FleetTree, visited: inout Int) throws(CLIError) {
        // Past a limit the tree says where and why, and the loader refuses it: nothing more is read.
        guard tree.overflow == nil else { return }
        let path = root + "/" + relative
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
              let type = attributes[.type] as? FileAttributeType
        else { return }
        switch type {
        case .typeSymbolicLink where FleetTree.isFleetFile(relative):
            let target = (try? FileManager.default.destinationOfSymbolicLink(atPath: path)) ?? "?"
            tree.add(relative, .symlink(target: target))
        case .typeDirectory:
            let children = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            // Every entry under a fleet folder counts, hidden ones too, as the git walk counts them.
            for child in children.sorted() {
                visited += 1
                guard visited <= FleetTree.maximumEntriesVisited else {
                    tree.stop(at: relative + "/" + child, "the repository has more than \(FleetTree.maximumEntriesVisited) entries under its fleet folders")
                    return
                }
                guard !FleetTree.isHidden(child) else { continue }
                try visit(relative + "/" + child, root: root, into: &tree, visited: &visited)
            }
        case .typeRegular where FleetTree.isFleetFile(relative):
            let size = (attributes[.size] as? NSNumber)?.intValue ?? 0
            if size > FleetTree.maximumFileSize {
                tree.add(relative, .tooLarge(size: size))
                return
            }
            guard tree.admits(size: size, at: relative) else { return }
            guard let data = FileManager.default.contents(atPath: path) else {
                throw CLIError("\(path): cannot be read")
            }
            tree.addFile(relative, bytes: [UInt8](data))
        default:
            return
        }
    }
}

/// A problem with the command's input that is not a fleet-file error: a missing directory,
/// an unreadable inventory. Printed as `error: message`, exit status 2.
public struct CLIError: Error, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
