/// `${name}` interpolation in step fields. `$${` writes a literal `${`.
public enum Template {
    /// The names every flow may use without declaring them.
    public static let builtIns = ["version", "app", "device"]

    /// A reference to a name, and its offset (in Unicode scalars) inside the template.
    public struct Reference: Hashable, Sendable {
        public var name: String
        public var offset: Int

        public init(name: String, offset: Int) {
            self.name = name
            self.offset = offset
        }
    }

    public struct Problem: Error, Sendable, Equatable {
        public var offset: Int
        public var reason: String

        public init(offset: Int, reason: String) {
            self.offset = offset
            self.reason = reason
        }
    }

    /// The names a template refers to, or the first syntax problem.
    public static func references(in template: String) -> Result<[Reference], Problem> {
        var references: [Reference] = []
        let failure = scan(template) { name, offset in
            references.append(Reference(name: name, offset: offset))
            return ""
        }.problem
        return failure.map { .failure($0) } ?? .success(references)
    }

    /// The references to names outside `known`, in order, or the first syntax problem. Loaders
    /// and servers word the message for their own readers.
    public static func unknownReferences(in template: String, known: Set<String>) -> Result<[Reference], Problem> {
        references(in: template).map { $0.filter { !known.contains($0.name) } }
    }

    /// The template with each `${name}` replaced by `value(name)`; names without a value stay as written.
    public static func render(_ template: String, _ value: (String) -> String?) -> String {
        guard template.contains("$") else { return template }
        return scan(template) { name, _ in value(name) ?? "${\(name)}" }.output
    }

    /// How long, in UTF-8 bytes, `render` would make the template, without building it: a
    /// template repeating a long value thousands of times is measured, not expanded.
    public static func renderedLength(_ template: String, _ valueLength: (String) -> Int?) -> Int {
        Measure(template).renderedLength(valueLength)
    }

    /// A template read once: its text without references, and how often it names each name. What
    /// it renders to for any values is then a sum over its names, not another scan.
    public struct Measure: Sendable {
        public let bare: Int
        public let references: [String: Int]

        public init(_ template: String) {
            guard template.contains("$") else {
                bare = template.utf8.count
                references = [:]
                return
            }
            var references: [String: Int] = [:]
            bare = Template.scan(template) { name, _ in
                references[name, default: 0] += 1
                return ""
            }.output.utf8.count
            self.references = references
        }

        /// `valueLength` nil: the name stays as written (`${name}`).
        public func renderedLength(_ valueLength: (String) -> Int?) -> Int {
            references.reduce(bare) { total, reference in
                total + reference.value * (valueLength(reference.key) ?? (reference.key.utf8.count + 3))
            }
        }
    }

    private static func scan(_ template: String, _ substitute: (String, Int) -> String) -> (output: String, problem: Problem?) {
        let scalars = Array(template.unicodeScalars)
        var output = String.UnicodeScalarView()
        var index = 0
        while index < scalars.count {
            let scalar = scalars[index]
            guard scalar == "$", index + 1 < scalars.count else {
                output.append(scalar)
                index += 1
                continue
            }
            if scalars[index + 1] == "$", index + 2 < scalars.count, scalars[index + 2] == "{" {
                output.append(contentsOf: "${".unicodeScalars)
                index += 3
                continue
            }
            guard scalars[index + 1] == "{" else {
                output.append(scalar)
                index += 1
                continue
            }
            guard let close = scalars[(index + 2)...].firstIndex(of: "}") else {
                return (String(output), Problem(offset: index, reason: "'${' is not closed by '}'"))
            }
            let name = String(String.UnicodeScalarView(scalars[(index + 2)..<close]))
            guard isName(name) else {
                return (String(output), Problem(offset: index, reason: "'${\(name)}' is not a parameter name; names are letters, digits and '_'"))
            }
            output.append(contentsOf: substitute(name, index).unicodeScalars)
            index = close + 1
        }
        return (String(output), nil)
    }

    /// Parameter names: a letter or '_', then letters, digits and '_'.
    public static func isName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || first.properties.isAlphabetic && first.isASCII else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0)) }
    }
}
