import CLibGit2

/// git's `url.<base>.insteadOf` and `url.<base>.pushInsteadOf`: a remote URL starting with a
/// configured prefix is rewritten to start with `<base>` instead; where several prefixes match,
/// the longest wins. The mirror applies them itself: libgit2 1.5's own rewrite matches every
/// configuration entry against a regular expression and leaks the match data of each entry that
/// does not match (about 20 kB), once per fetch or push — a server polling its repository grew
/// without bound.
struct URLRewrites: Equatable {
    struct Rule: Equatable {
        let base: String
        let prefix: String
    }

    var fetch: [Rule] = []
    var push: [Rule] = []

    /// The URL to fetch from (and to push to, unless a push rule says otherwise).
    func fetchURL(_ url: String) -> String {
        Self.rewrite(url, fetch) ?? url
    }

    /// The URL to push to when a `pushInsteadOf` rule applies; nil pushes to `fetchURL`.
    func pushURL(_ url: String) -> String? {
        Self.rewrite(url, push)
    }

    private static func rewrite(_ url: String, _ rules: [Rule]) -> String? {
        guard let rule = rules.filter({ !$0.prefix.isEmpty && url.hasPrefix($0.prefix) })
            .max(by: { $0.prefix.utf8.count < $1.prefix.utf8.count }) else { return nil }
        return rule.base + url.dropFirst(rule.prefix.count)
    }

    /// The rules among configuration entries given as (name, value). Names are as libgit2 gives
    /// them: section and key in lower case, the base (the subsection) as written.
    init(entries: [(name: String, value: String)]) {
        for (name, value) in entries where name.hasPrefix("url.") {
            if name.hasSuffix(".insteadof") {
                fetch.append(Rule(base: String(name.dropFirst(4).dropLast(10)), prefix: value))
            } else if name.hasSuffix(".pushinsteadof") {
                push.append(Rule(base: String(name.dropFirst(4).dropLast(14)), prefix: value))
            }
        }
    }

    /// The rules of `repository`'s configuration (with the global and system files), read by
    /// plain iteration.
    init(repository: OpaquePointer) {
        var entries: [(name: String, value: String)] = []
        var config: OpaquePointer?
        var iterator: OpaquePointer?
        if git_repository_config_snapshot(&config, repository) == 0, git_config_iterator_new(&iterator, config) == 0 {
            var entry: UnsafeMutablePointer<git_config_entry>?
            while git_config_next(&entry, iterator) == 0, let current = entry?.pointee {
                guard let name = current.name, let value = current.value else { continue }
                let key = String(cString: name)
                if key.hasPrefix("url.") { entries.append((key, String(cString: value))) }
            }
        }
        git_config_iterator_free(iterator)
        git_config_free(config)
        self.init(entries: entries)
    }
}
