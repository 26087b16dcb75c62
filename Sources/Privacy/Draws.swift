/// The caller's generator behind one concrete type.
///
/// The public samplers are generic over the generator, but the arithmetic below them is written for
/// `Draws` only, so it is compiled once, specialised, and fast whichever generator, from whichever
/// module, is passed in (unspecialised generic integer code runs about twenty times slower). The
/// price is one indirect call per 64-bit draw.
struct Draws: RandomNumberGenerator {
    private let source: () -> UInt64

    private init(source: @escaping () -> UInt64) {
        self.source = source
    }

    mutating func next() -> UInt64 {
        source()
    }

    /// Runs `body` with draws taken from `generator`, which advances as they are consumed.
    static func with<Generator: RandomNumberGenerator, Result>(
        _ generator: inout Generator, _ body: (inout Draws) -> Result
    ) -> Result {
        withUnsafeMutablePointer(to: &generator) { pointer in
            withoutActuallyEscaping({ pointer.pointee.next() }) { next in
                var draws = Draws(source: next)
                return body(&draws)
            }
        }
    }
}
