// The ceiling for `./hack/bench.sh heartbeat`: a bare Hummingbird app that reads the heartbeat's
// body and answers 204, with none of Flotilla's work (no token, no parsing, no store, no
// middleware). Whatever the durable heartbeat reaches is measured against this, in the same run.
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
let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: port)))
try await app.runService()
