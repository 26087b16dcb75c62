extension PasswordPolicy {
    /// Runs a password may not be: the alphabet, the digits, and the letter rows of a QWERTY
    /// keyboard read left to right, top to bottom. Each is read cyclically (`…xyzabc…`, `…7890123…`).
    static let sequences = ["abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiopasdfghjklzxcvbnm"]

    /// Whether `password` (lowercase) has at most two distinct characters, or is a unit of at most
    /// half its length repeated (the last repetition may be cut short): `aaaaaaaaaaab`,
    /// `abcabcabcabc`, `passwordpassword`.
    static func isRepetitive(_ password: String) -> Bool {
        let scalars = Array(password.unicodeScalars)
        guard !scalars.isEmpty else { return false }
        if Set(scalars).count <= 2 { return true }
        for period in 1...max(1, scalars.count / 2) where period < scalars.count {
            if (period..<scalars.count).allSatisfy({ scalars[$0] == scalars[$0 - period] }) { return true }
        }
        return false
    }

    /// Whether `password` (lowercase), forwards or backwards, is a run of one of ``sequences``.
    static func isSequential(_ password: String) -> Bool {
        let scalars = Array(password.unicodeScalars)
        guard scalars.count >= 2 else { return false }
        for sequence in sequences {
            let cycle = Array(sequence.unicodeScalars)
            guard let start = cycle.firstIndex(of: scalars[0]) else { continue }
            for direction in [1, -1] {
                var position = start
                var matches = true
                for scalar in scalars.dropFirst() {
                    position = (position + direction + cycle.count) % cycle.count
                    if cycle[position] != scalar { matches = false; break }
                }
                if matches { return true }
            }
        }
        return false
    }
}
