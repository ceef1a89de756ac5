import CLibCurl
import Glibc

/// HTTP over libcurl's easy interface: one client per thread, reused so connections are kept
/// alive. Bodies are bytes; nothing here logs a header (the device token travels in one).
public final class HTTPClient {
    public struct Response {
        public var status: Int
        public var body: [UInt8]
        public var entityTag: String?
        public var retryAfterSeconds: Int?
    }

    private let handle: UnsafeMutableRawPointer
    private let caFile: String?

    /// Call once per process before any client is made (libcurl's global set-up is not thread-safe).
    public static func initialize() {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
    }

    public init(caFile: String? = nil) {
        guard let handle = curl_easy_init() else { fatalError("libcurl could not make a handle") }
        self.handle = handle
        self.caFile = caFile
    }

    deinit { curl_easy_cleanup(handle) }

    /// Sends one request; throws only when no HTTP answer came (connection, TLS, timeout).
    public func send(_ method: String, _ url: String, headers: [String] = [], body: [UInt8]? = nil,
                     timeoutSeconds: Int = 30) throws(AgentError) -> Response {
        curl_easy_reset(handle)
        let sink = ResponseSink()
        let context = Unmanaged.passRetained(sink)
        defer { context.release() }
        var list: UnsafeMutablePointer<curl_slist>?
        for header in headers + ["Expect:", "Accept: application/json"] { list = curl_slist_append(list, header) }
        defer { curl_slist_free_all(list) }

        flotilla_curl_private_sockets(handle)
        flotilla_curl_setopt_string(handle, CURLOPT_URL, url)
        flotilla_curl_setopt_string(handle, CURLOPT_CUSTOMREQUEST, method)
        flotilla_curl_setopt_slist(handle, CURLOPT_HTTPHEADER, list)
        flotilla_curl_setopt_long(handle, CURLOPT_TIMEOUT, timeoutSeconds)
        flotilla_curl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, 10)
        flotilla_curl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        flotilla_curl_setopt_long(handle, CURLOPT_PROTOCOLS, Int(CURLPROTO_HTTP | CURLPROTO_HTTPS))
        if let caFile { flotilla_curl_setopt_string(handle, CURLOPT_CAINFO, caFile) }
        flotilla_curl_setopt_write(handle, CURLOPT_WRITEFUNCTION, { data, size, count, context in
            let sink = Unmanaged<ResponseSink>.fromOpaque(context!).takeUnretainedValue()
            let total = size * count
            if let data, total > 0 {
                guard sink.body.count + total <= ResponseSink.limit else { return 0 }
                sink.body.append(contentsOf: UnsafeRawBufferPointer(start: data, count: total))
            }
            return total
        })
        flotilla_curl_setopt_pointer(handle, CURLOPT_WRITEDATA, context.toOpaque())
        flotilla_curl_setopt_write(handle, CURLOPT_HEADERFUNCTION, { data, size, count, context in
            let sink = Unmanaged<ResponseSink>.fromOpaque(context!).takeUnretainedValue()
            let total = size * count
            if let data, total > 0 {
                sink.header(String(decoding: UnsafeRawBufferPointer(start: data, count: total), as: UTF8.self))
            }
            return total
        })
        flotilla_curl_setopt_pointer(handle, CURLOPT_HEADERDATA, context.toOpaque())

        let code: CURLcode = (body ?? []).withUnsafeBufferPointer { buffer in
            if body != nil {
                flotilla_curl_setopt_long(handle, CURLOPT_POSTFIELDSIZE, buffer.count)
                flotilla_curl_setopt_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: buffer.baseAddress))
            }
            return curl_easy_perform(handle)
        }
        guard code == CURLE_OK else {
            throw AgentError("\(method) \(Self.redacted(url)): \(String(cString: curl_easy_strerror(code)))")
        }
        var status = 0
        flotilla_curl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return Response(status: status, body: sink.body, entityTag: sink.entityTag, retryAfterSeconds: sink.retryAfter)
    }

    /// A URL without any user:password part.
    static func redacted(_ url: String) -> String {
        guard let scheme = url.firstRange(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex(of: "/") ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return url }
        return String(url[..<scheme.upperBound]) + "***@" + String(rest[rest.index(after: at)...])
    }
}

private final class ResponseSink {
    static let limit = 8 << 20
    var body: [UInt8] = []
    var entityTag: String?
    var retryAfter: Int?

    func header(_ line: String) {
        guard let colon = line.firstIndex(of: ":") else {
            // A new status line (after a 100 Continue or a redirect) starts a new response.
            if line.hasPrefix("HTTP/") { entityTag = nil; retryAfter = nil }
            return
        }
        let name = line[..<colon].lowercased()
        let value = String(line[line.index(after: colon)...]).trimmed
        if name == "etag" { entityTag = value }
        if name == "retry-after" { retryAfter = Int(value) }
    }
}
