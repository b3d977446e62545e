// Counter-based randomness for the data layer. Every random draw a sample sees
// comes from a generator keyed by (seed, epoch, sample index, stream), so it
// does not depend on thread timing, rank count or prefetch depth.
//
// We do not use Swift's `random(in:using:)`: its mapping from bits to values is
// a standard-library detail that may change between toolchains, and a change
// would silently alter every augmentation. The few mappings we need are here.

/// The splitmix64 finalizer (Steele, Lea, Flood 2014): a bijective 64-bit mix.
@inline(__always)
public func splitmix64Mix(_ x: UInt64) -> UInt64 {
  var z = x &+ 0x9E37_79B9_7F4A_7C15
  z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
  z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
  return z ^ (z >> 31)
}

/// xoshiro256** (Blackman, Vigna) seeded through splitmix64 from a key of
/// up to four words. Small, fast, and its output is fixed by this file alone.
public struct SampleRNG {
  private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

  /// Streams keep independent uses of the same (seed, epoch, index) apart.
  public enum Stream: UInt64 {
    case augment = 1, shuffle = 2, synthetic = 3
  }

  public init(seed: UInt64, epoch: UInt64 = 0, index: UInt64 = 0, stream: Stream) {
    var k = splitmix64Mix(seed ^ 0x5EED_0000_0000_0000)
    k = splitmix64Mix(k ^ epoch &* 0xD1B5_4A32_D192_ED03)
    k = splitmix64Mix(k ^ index &* 0x8CB9_2BA7_2F3D_8DD7)
    k = splitmix64Mix(k ^ stream.rawValue)
    // splitmix64 as a sequence fills the state; it never yields all zeros.
    var x = k
    func next() -> UInt64 { x = x &+ 0x9E37_79B9_7F4A_7C15; return splitmix64Mix(x &- 0x9E37_79B9_7F4A_7C15) }
    s0 = next(); s1 = next(); s2 = next(); s3 = next()
  }

  @inline(__always)
  private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

  public mutating func next() -> UInt64 {
    let result = SampleRNG.rotl(s1 &* 5, 7) &* 9
    let t = s1 << 17
    s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
    s3 = SampleRNG.rotl(s3, 45)
    return result
  }

  /// Uniform in [0, 1) with 53 bits.
  public mutating func unit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

  /// Uniform in [lo, hi).
  public mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * unit() }

  /// Uniform integer in 0..<n (n > 0); Lemire's multiply-shift with rejection, unbiased.
  public mutating func below(_ n: Int) -> Int {
    precondition(n > 0, "SampleRNG.below: n must be positive")
    let bound = UInt64(n)
    var m = next().multipliedFullWidth(by: bound)
    if m.low < bound {
      let threshold = (0 &- bound) % bound
      while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
    }
    return Int(m.high)
  }

  /// Uniform integer in lo...hi (inclusive), like numpy's randint(lo, hi + 1).
  public mutating func int(_ lo: Int, through hi: Int) -> Int { lo + below(hi - lo + 1) }

  /// A fair coin.
  public mutating func coin() -> Bool { next() >> 63 == 1 }
}
