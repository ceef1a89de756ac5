import ArgumentParser
import FleetCore
import FleetProtocol
import FleetStore
import Foundation

/// `flotilla exec`: a command on devices, over their agents' outbound link, output as it arrives.
struct ExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command on devices and show each one's output and exit status as they arrive.",
        discussion: """
            The words after -- are run as they are on each device, by its agent (no shell reads them: use
            sh -c '…' for one). Off unless the project's fleet.yaml has remote: {exec: true}. Each device
            sends back at most 1 MiB of output; the rest is dropped and counted. Every exec is audited.
            Exits 0 when every device's command exited 0, 1 otherwise.
            """
    )

    @Option(name: .customLong("device"), help: "A device id (d-…); repeat for several.")
    var devices: [String] = []

    @Option(help: "A label selector over the devices' tags, e.g. 'site=berlin,ring!=canary'.")
    var selector: String?

    @Option(help: "Kill the command (with its process group) after this long: 30s, 5m, at most 1h.")
    var timeout: String = "30s"

    @Flag(help: "Print the final state of every device as JSON instead of the output.")
    var json = false

    @Flag(help: "Print the devices' output as it is, control characters too (they are escaped on a terminal by default).")
    var raw = false

    @Flag(help: "Run on every device the selector matches without asking, however many (more than \(ExecCommand.askAbove) are asked about).")
    var yes = false

    @OptionGroup var connection: ServerOptions

    @Argument(parsing: .postTerminator, help: "The command and its arguments, after --.")
    var command: [String] = []

    func validate() throws {
        guard devices.isEmpty != (selector == nil) else { throw ValidationError("give --device (one or more) or --selector, not both") }
        guard !command.isEmpty else { throw ValidationError("give the command after --, e.g. flotilla exec --device d-1 -- uptime") }
        _ = try RemoteTimeout.seconds(timeout)
    }

    func run() async throws {
        struct Request: Encodable {
            var devices: [String]?
            var selector: String?
            var command: [String]
            var timeoutSeconds: Int
        }
        let client = try connection.client()
        if let selector, !yes {
            var components = URLComponents()
            components.path = "/api/v1/devices"
            components.queryItems = [URLQueryItem(name: "selector", value: selector)]
            let matched = try ServerClient.decode([String: [OperatorDeviceView]].self,
                                                  from: try await client.get(components.string ?? components.path))["devices"] ?? []
            switch Self.confirmation(matching: matched.count, interactive: isatty(STDIN_FILENO) != 0) {
            case .run: break
            case .refuse(let why): throw ValidationError(why)
            case .ask(let question):
                FileHandle.standardError.write(Data((question + " ").utf8))
                guard let answer = readLine(), ["y", "yes"].contains(answer.lowercased()) else {
                    FileHandle.standardError.write(Data("not run\n".utf8))
                    throw ExitCode(1)
                }
            }
        }
        let request = Request(devices: devices.isEmpty ? nil : devices, selector: selector, command: command,
                              timeoutSeconds: try RemoteTimeout.seconds(timeout))
        let started = try ServerClient.decode(RemoteBatchView.self, from: try await client.post("/api/v1/exec", json: try JSONEncoder().encode(request)))
        let escape = !raw && isatty(STDOUT_FILENO) != 0
        let final = try await RemoteFollower(client: client, batch: started, echo: !json, escape: escape).follow()
        if json {
            print(try Rendered.json(final))
        } else if final.devices.count > 1 {
            FileHandle.standardError.write(Data((RemoteFollower.summary(final) + "\n").utf8))
        }
        if !final.devices.allSatisfy({ $0.state == .succeeded }) { throw ExitCode(1) }
    }
}

extension ExecCommand {
    /// A selector matching more devices than this is asked about (or needs --yes).
    static let askAbove = 10

    enum Confirmation: Equatable {
        case run
        case ask(String)
        case refuse(String)
    }

    /// Whether a selector matching `count` devices runs at once, is asked about on a terminal,
    /// or is refused in a script that did not say --yes: a selector wider than meant should
    /// not reach the whole fleet unnoticed.
    static func confirmation(matching count: Int, interactive: Bool) -> Confirmation {
        guard count > askAbove else { return .run }
        return interactive
            ? .ask("The selector matches \(count) devices. Run the command on all of them? [y/N]")
            : .refuse("the selector matches \(count) devices; add --yes to run the command on all of them")
    }
}

/// `flotilla fetch DEVICE:/path`: one file from a device, within the project's allowed paths.
struct FetchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fetch",
        abstract: "Fetch a file from a device (at most 1 MiB), from a directory the project allows.",
        discussion: """
            Off unless the project's fleet.yaml lists directories: remote: {fetchPaths: [/var/log]}. The device
            follows symbolic links and refuses a file whose real path is outside them, and anything that is not
            a regular file. A larger file is cut at 1 MiB, and the command says so. Every fetch is audited.
            """
    )

    @Argument(help: "DEVICE:/absolute/path, e.g. d-0123abcd:/var/log/app.log")
    var source: String

    @Option(name: [.customShort("o"), .customLong("output")], help: "Write the file here (default: standard output).")
    var file: String?

    @Option(help: "Give up reading after this long: 30s, 5m, at most 1h.")
    var timeout: String = "30s"

    @OptionGroup var connection: ServerOptions

    var parts: (device: String, path: String)? {
        guard let colon = source.firstIndex(of: ":") else { return nil }
        let device = String(source[..<colon]), path = String(source[source.index(after: colon)...])
        guard !device.isEmpty, path.hasPrefix("/") else { return nil }
        return (device, path)
    }

    func validate() throws {
        guard parts != nil else { throw ValidationError("give the file as DEVICE:/absolute/path, e.g. d-0123abcd:/var/log/app.log") }
        _ = try RemoteTimeout.seconds(timeout)
    }

    func run() async throws {
        struct Request: Encodable {
            var device: String
            var path: String
            var timeoutSeconds: Int
        }
        guard let (device, path) = parts else { throw ExitCode(2) }
        let client = try connection.client()
        let body = try JSONEncoder().encode(Request(device: device, path: path, timeoutSeconds: try RemoteTimeout.seconds(timeout)))
        let started = try ServerClient.decode(RemoteBatchView.self, from: try await client.post("/api/v1/fetch", json: body))
        let final = try await RemoteFollower(client: client, batch: started, echo: false, escape: false).follow()
        guard let result = final.devices.first, result.state == .succeeded else {
            throw CLIError("\(device):\(path): \(final.devices.first?.message ?? "not fetched")")
        }
        let bytes = try await client.get(RemoteFollower.outputPath(batch: final.id, device: device, offset: 0))
        if let file {
            do {
                try bytes.write(to: URL(fileURLWithPath: file), options: .atomic)
            } catch {
                throw CLIError("cannot write \(file): \(error.localizedDescription)")
            }
        } else {
            FileHandle.standardOutput.write(bytes)
        }
        if result.truncated {
            FileHandle.standardError.write(Data("\(device):\(path): cut at \(bytes.count) bytes; \(result.droppedBytes) more were not sent\n".utf8))
        }
    }
}

enum RemoteTimeout {
    static func seconds(_ text: String) throws -> Int {
        guard case .success(let duration) = DurationText.parse(text), (1...RemoteCommand.maximumTimeoutSeconds).contains(Int(duration.components.seconds))
        else { throw ValidationError("--timeout is a duration from 1s to 1h, such as 30s or 5m; found '\(text)'") }
        return Int(duration.components.seconds)
    }
}

/// Follows a remote request until every device's part has ended, printing output as it arrives
/// (each line after its device's id when there are several) and each device's end.
struct RemoteFollower {
    let client: ServerClient
    let batch: RemoteBatchView
    let echo: Bool
    /// Control characters a device printed are shown escaped, so it cannot move the cursor over
    /// another device's lines, retitle the window or write the clipboard.
    let escape: Bool

    static func outputPath(batch: String, device: String, offset: Int) -> String {
        "/api/v1/remote/\(PathSegment.escaped(batch))/devices/\(PathSegment.escaped(device))/output?offset=\(offset)"
    }

    func follow() async throws -> RemoteBatchView {
        var view = batch
        var printed: [String: Int] = [:], partial: [String: Data] = [:], ended: Set<String> = []
        let prefixed = batch.devices.count > 1
        func emit(_ device: String, _ data: Data, flush: Bool) {
            guard echo else { return }
            let data = escape ? Self.escaped(data) : data
            guard prefixed else { return FileHandle.standardOutput.write(data) }
            var pending = (partial[device] ?? Data()) + data
            while let newline = pending.firstIndex(of: 0x0A) {
                FileHandle.standardOutput.write(Data("\(device): ".utf8) + pending[pending.startIndex...newline])
                pending = Data(pending[pending.index(after: newline)...])
            }
            if flush, !pending.isEmpty {
                FileHandle.standardOutput.write(Data("\(device): ".utf8) + pending + Data("\n".utf8))
                pending = Data()
            }
            partial[device] = pending
        }
        while true {
            for device in view.devices where device.outputBytes > printed[device.device, default: 0] || (device.state.isFinal && !ended.contains(device.device)) {
                // Output is read only to be shown: a fetch waits for its end and reads the file
                // once (each read of a fetched file is an audit entry).
                if echo, device.outputBytes > printed[device.device, default: 0] {
                    let data = try await client.get(Self.outputPath(batch: view.id, device: device.device, offset: printed[device.device, default: 0]))
                    printed[device.device, default: 0] += data.count
                    emit(device.device, data, flush: false)
                }
                if device.state.isFinal, !echo || printed[device.device, default: 0] >= device.outputBytes {
                    ended.insert(device.device)
                    emit(device.device, Data(), flush: true)
                    if echo, let line = Self.ending(device, prefixed: prefixed) { FileHandle.standardError.write(Data((line + "\n").utf8)) }
                }
            }
            if view.done, ended.count == view.devices.count { return view }
            try await Task.sleep(for: .milliseconds(500))
            view = try ServerClient.decode(RemoteBatchView.self, from: try await client.get("/api/v1/remote/\(PathSegment.escaped(view.id))"))
        }
    }

    /// `data` with every control character but newline and tab written out (`\x1b`), C1 ones
    /// (U+0080–U+009F, as UTF-8) too.
    static func escaped(_ data: Data) -> Data {
        var out = Data()
        out.reserveCapacity(data.count)
        var index = data.startIndex
        while index < data.endIndex {
            let byte = data[index]
            let next = data.index(after: index)
            if byte < 0x20 && byte != 0x0A && byte != 0x09 || byte == 0x7F {
                out += Data(String(format: "\\x%02x", byte).utf8)
            } else if byte == 0xC2, next < data.endIndex, (0x80...0x9F).contains(data[next]) {
                out += Data(String(format: "\\u%04x", Int(data[next])).utf8)
                index = data.index(after: next)
                continue
            } else {
                out.append(byte)
            }
            index = next
        }
        return out
    }

    /// A device's end in a line, when there is more to say than a clean exit.
    static func ending(_ device: RemoteBatchView.Device, prefixed: Bool) -> String? {
        var parts: [String] = []
        if device.state != .succeeded {
            parts.append(device.message ?? device.exitCode.map { "exited with status \($0)" } ?? device.state.rawValue)
        }
        if device.truncated { parts.append("output cut at \(device.outputBytes) bytes; \(device.droppedBytes) more were dropped") }
        guard !parts.isEmpty else { return nil }
        return (prefixed ? "\(device.device): " : "") + parts.joined(separator: "; ")
    }

    static func summary(_ view: RemoteBatchView) -> String {
        var table = TextTable(header: ["DEVICE", "STATE", "EXIT", "OUTPUT", "NOTE"])
        table.rows = view.devices.map { device in
            [device.device, device.state.rawValue, device.exitCode.map(String.init) ?? "-",
             "\(device.outputBytes) B" + (device.truncated ? " (cut)" : ""), device.message ?? ""]
        }
        let failed = view.devices.filter { $0.state != .succeeded }.count
        return table.render() + "\n\(view.devices.count - failed) of \(view.devices.count) devices succeeded"
    }
}
