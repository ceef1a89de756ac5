#ifndef FLOTILLA_CLIBCURL_SHIM_H
#define FLOTILLA_CLIBCURL_SHIM_H
#include <curl/curl.h>
#include <sys/socket.h>

// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call: one typed
// wrapper per argument type.
static inline CURLcode flotilla_curl_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode flotilla_curl_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode flotilla_curl_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode flotilla_curl_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}
typedef size_t (*flotilla_curl_write_callback)(char *data, size_t size, size_t count, void *context);
static inline CURLcode flotilla_curl_setopt_write(CURL *handle, CURLoption option, flotilla_curl_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}
static inline CURLcode flotilla_curl_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}
static inline CURLcode flotilla_curl_getinfo_offset(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}
// Sockets libcurl opens are close-on-exec from the start: a step the agent starts while one of
// its requests is open (its long-poll nearly always is) must not inherit the connection.
static inline curl_socket_t flotilla_curl_cloexec_socket(void *context, curlsocktype purpose, struct curl_sockaddr *address) {
    (void)context;
    (void)purpose;
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}
static inline CURLcode flotilla_curl_private_sockets(CURL *handle) {
    return curl_easy_setopt(handle, CURLOPT_OPENSOCKETFUNCTION, flotilla_curl_cloexec_socket);
}
#endif
