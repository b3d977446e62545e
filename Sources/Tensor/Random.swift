// Seeded, counter-based randomness. A stream is a pure function of its seed
// (and of the keys mixed into it), so dropout masks, drop-path decisions,
// initial weights and augmentations reproduce bit for bit regardless of
// threads or rank count.

/// SplitMix64: tiny, fast, statistically fine for ML noise; splittable by hashing keys.
public struct RandomGenerator: RandomNumberGenerator, Sendable {
  public var state: UInt64

  public init(seed: UInt64) { state = seed }

  /// A generator derived from a seed and any number of keys (e.g. epoch, sample index).
  public init(seed: UInt64, keys: UInt64...) {
    var s = RandomGenerator.mix(seed ^ 0x243F_6A88_85A3_08D3)
    for k in keys { s = RandomGenerator.mix(s ^ RandomGenerator.mix(k &+ 0x9E37_79B9_7F4A_7C15)) }
    state = s
  }

  @inline(__always)
  static func mix(_ x: UInt64) -> UInt64 {
    var z = x
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  @inline(__always)
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    return RandomGenerator.mix(state)
  }

  /// Uniform in [0, 1) with 24 random bits.
  @inline(__always)
  public mutating func nextUniform() -> Float { Float(next() >> 40) * (1 / Float(1 << 24)) }

  /// Uniform in [lo, hi).
  public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * nextUniform() }

  /// Standard normal (Box–Muller).
  public mutating func normal() -> Float {
    let u1 = max(Float.leastNonzeroMagnitude, nextUniform()), u2 = nextUniform()
    return (-2 * logf(u1)).squareRoot() * cosf(2 * Float.pi * u2)
  }
}

import Foundation
