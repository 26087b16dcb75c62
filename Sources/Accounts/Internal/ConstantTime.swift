/// Constant-time equality of two byte strings: the time taken depends on their lengths only, never
/// on where they first differ, so a TOTP code or a password hash cannot be guessed byte by byte
/// from response times.
enum ConstantTime {
    @inline(never)
    static func equal(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        var difference: UInt8 = 0
        for index in lhs.indices {
            difference |= lhs[index] ^ rhs[index]
        }
        return difference == 0
    }
}
