/// "Did you mean …" for a misspelled key or name.
enum Suggestion {
    /// The candidate closest to `word`, if it is close enough to be a likely typo.
    static func closest(to word: String, in candidates: some Sequence<String>) -> String? {
        // A typo is a few characters off a name: a long word is none, and a candidate whose
        // length is further off than the most a hint allows (3) is not one. Neither costs an
        // edit distance, whose work is the product of the two lengths.
        let length = word.unicodeScalars.count
        guard length <= maximumWordLength else { return nil }
        let lowered = word.lowercased()
        var best: (name: String, distance: Int)?
        for candidate in candidates {
            guard abs(candidate.unicodeScalars.count - length) <= 3 else { continue }
            let distance = editDistance(lowered, candidate.lowercased())
            // Ties go to the name that sorts first, so the hint does not depend on set order.
            if let current = best, distance > current.distance || (distance == current.distance && candidate >= current.name) {
                continue
            }
            best = (candidate, distance)
        }
        guard let best else { return nil }
        let allowed = max(1, min(3, best.name.count / 3))
        return best.distance <= allowed ? best.name : nil
    }

    /// Longer words get no hint.
    static let maximumWordLength = 256

    /// `; did you mean 'x'?` or nothing.
    static func hint(for word: String, in candidates: some Sequence<String>) -> String {
        closest(to: word, in: candidates).map { "; did you mean '\($0)'?" } ?? ""
    }

    /// Levenshtein distance over Unicode scalars, with one row of memory.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.unicodeScalars), b = Array(b.unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...b.count {
                let above = row[j]
                row[j] = a[i - 1] == b[j - 1] ? diagonal : 1 + min(diagonal, row[j - 1], above)
                diagonal = above
            }
        }
        return row[b.count]
    }
}
