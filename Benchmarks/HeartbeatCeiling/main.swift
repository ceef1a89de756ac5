// The ceiling for `./hack/bench.sh heartbeat`: a bare Hummingbird app that reads the heartbeat's
// body and answers 204, with none of Flotilla's work (no token, no parsing, no store, no
// middleware). Whatever the durable heartbeat reaches is measured against this, in the same run.
//
// And the floor for `./hack/bench.sh connections`: its assignments route is a long-poll with
// nothing behind it. Asked without `If-None-Match` it answers at once with an entity tag; asked
// with one it waits 30 s, as Flotilla's long-poll does when nothing changes, and answers 304.
// What the server holds per waiting device is then only what the HTTP stack holds.
//
//   flotilla-heartbeat-ceiling PORT
import Glibc
import Hummingbird

let arguments = CommandLine.arguments
guard arguments.count == 2, let port = Int(arguments[1]), (1...65_535).contains(port) else {
    print("usage: flotilla-heartbeat-ceiling PORT")
    exit(2)
}

let router = Router()
router.post("agent/v1/heartbeat") { request, _ -> HTTPResponse.Status in
    _ = try await request.body.collect(upTo: 1 << 20)
    return .noContent
}
router.get("agent/v1/assignments") { request, _ -> Response in
    guard request.headers[.ifNoneMatch] != nil else {
        return Response(status: .ok, headers: [.eTag: "\"0\"", .contentType: "application/json"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: #"{"assignments":[]}"#)))
    }
    try await Task.sleep(for: .seconds(30))
    return Response(status: .notModified, headers: [.eTag: "\"0\""])
}
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
