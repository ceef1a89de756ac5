// embed-text INPUT OUTPUT TYPE PROPERTY: writes a Swift file declaring `enum TYPE { static let PROPERTY }`
// whose value is INPUT's text, as a raw string literal. Used by the EmbedOpenAPI build plugin.
import Foundation

let arguments = CommandLine.arguments
guard arguments.count == 5 else {
    FileHandle.standardError.write(Data("usage: embed-text INPUT OUTPUT TYPE PROPERTY\n".utf8))
    exit(64)
}
let (input, output, type, property) = (arguments[1], arguments[2], arguments[3], arguments[4])
guard let data = FileManager.default.contents(atPath: input), let text = String(data: data, encoding: .utf8) else {
    FileHandle.standardError.write(Data("embed-text: cannot read \(input) as UTF-8\n".utf8))
    exit(1)
}
// Enough #s that no `"` followed by them occurs in the text, so the literal cannot end early.
var hashes = "#"
while text.contains("\"" + hashes) { hashes += "#" }
let source = """
// Generated from \(URL(fileURLWithPath: input).lastPathComponent) by the EmbedOpenAPI plugin. Do not edit.
enum \(type) {
    static let \(property) = \(hashes)\"\"\"
\(text.hasSuffix("\n") ? String(text.dropLast()) : text)
\"\"\"\(hashes)
}

"""
do {
    try Data(source.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
} catch {
    FileHandle.standardError.write(Data("embed-text: cannot write \(output): \(error)\n".utf8))
    exit(1)
}
