import NIOCore
import NIOHTTPTypes

/// A request must arrive whole within `deadline` of its head. The idle timeout already bounds
/// the time to a complete head (Hummingbird counts it from the connection or the last answer)
/// and the silence between body chunks; a client dripping its body a byte at a time resets the
/// latter forever, holding a connection and a handler. Past the deadline the connection is
/// closed. An answer that takes long (a long-poll) is not affected: its request ended at once.
final class RequestDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private let deadline: TimeAmount
    private var pending: Scheduled<Void>?

    init(deadline: TimeAmount) {
        self.deadline = deadline
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            pending?.cancel()
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            pending = context.eventLoop.scheduleTask(in: deadline) {
                loopBound.value.close(promise: nil)
            }
        case .end:
            pending?.cancel()
            pending = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        pending?.cancel()
        pending = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        pending?.cancel()
        pending = nil
    }
}
