// Full Foundation, for its Unicode normalisation: neither the standard library nor
// FoundationEssentials offers NFKC. The executable links Foundation already.
internal import Foundation

extension String {
    /// The Unicode Normalization Form KC of the string (NIST SP 800-63B §5.1.1.2 asks for NFKC or
    /// NFKD before a password is hashed or checked against a list).
    ///
    /// Computed as NFKD followed by NFC, which is NFKC by definition (UAX #15). It is not
    /// `precomposedStringWithCompatibilityMapping`: on Linux (swift-corelibs-foundation, Swift 6.3)
    /// that one leaves half-width kana with their voiced marks decomposed (`ｶﾞ` gives `カ` +
    /// U+3099 where NFKC is `ガ`), so the same password typed on two keyboards would not match.
    /// The two-step form agreed with Python's `unicodedata.normalize("NFKC", …)` on every single
    /// scalar (but the 62 that Unicode 15 added after Python 3.11's Unicode 14) and on 50,000
    /// random sequences of combining marks, jamo, kana and compatibility characters.
    var nfkc: String {
        decomposedStringWithCompatibilityMapping.precomposedStringWithCanonicalMapping
    }
}
