// Seeded weight initialisers: truncated normal (Swin's Linear weights and
// relative-position tables), Kaiming normal/uniform (ResNet convs, PyTorch's
// default nn.Linear / nn.Conv2d init), zeros, ones, constant.
//
// Every function returns a fresh Tensor of the requested shape and draws from
// the caller's `RandomGenerator`, so a model's initial weights are a pure
// function of the seed (and of the order in which layers draw). The values are
// not bit-identical to PyTorch's (different generator); the distributions are.
//
// Shapes are PyTorch's: Linear [out, in], Conv2d [out, in/groups, kh, kw], so
// fan-in/fan-out follow torch.nn.init._calculate_fan_in_and_fan_out.
import Foundation
import Tensor

public enum Init {
  // MARK: constants

  public static func zeros(_ shape: [Int]) -> Tensor { Tensor.zeros(shape) }
  public static func ones(_ shape: [Int]) -> Tensor { Tensor.ones(shape) }
  public static func constant(_ shape: [Int], _ value: Float) -> Tensor { Tensor.filled(shape, value) }

  // MARK: truncated normal

  /// timm.layers.trunc_normal_(t, mean, std, a, b): normal(mean, std) restricted
  /// to [a, b]. Like timm, `a` and `b` are ABSOLUTE bounds, not multiples of std:
  /// Swin's `trunc_normal_(w, std=.02)` keeps the defaults a = −2, b = 2, which
  /// at std 0.02 cuts nothing in practice.
  ///
  /// timm samples by inverse CDF and clamps; we reject and redraw, which gives
  /// the same truncated distribution without needing erfinv.
  public static func truncatedNormal(_ shape: [Int], mean: Float = 0, std: Float = 1,
                                     a: Float = -2, b: Float = 2,
                                     using rng: inout RandomGenerator) -> Tensor {
    precondition(std > 0 && a < b, "truncatedNormal: need std > 0 and a < b (std \(std), a \(a), b \(b))")
    // Probability mass kept; rejection needs about 1/mass draws per value.
    let phi = { (x: Double) in 0.5 * (1 + erf(x / 2.0.squareRoot())) }
    let mass = phi(Double((b - mean) / std)) - phi(Double((a - mean) / std))
    precondition(mass > 1e-3, "truncatedNormal: [\(a), \(b)] keeps only \(mass) of normal(\(mean), \(std)); rejection sampling would stall")
    let t = Tensor(uninitialized: shape)
    let d = t.data
    for i in 0..<t.count {
      var x: Float
      repeat { x = mean + std * rng.normal() } while x < a || x > b
      d[i] = x
    }
    return t
  }

  // MARK: Kaiming (He) initialisation

  public enum FanMode { case fanIn, fanOut }

  public enum Nonlinearity: Equatable {
    case linear, relu
    /// leaky_relu with negative slope `a` (PyTorch's default `a = 0` equals relu's gain).
    case leakyReLU(Float)

    /// torch.nn.init.calculate_gain.
    public var gain: Float {
      switch self {
      case .linear: return 1
      case .relu: return Float(2).squareRoot()
      case .leakyReLU(let a): return (2 / (1 + a * a)).squareRoot()
      }
    }
  }

  /// torch.nn.init._calculate_fan_in_and_fan_out for a PyTorch-layout weight:
  /// fan_in = shape[1]·receptive, fan_out = shape[0]·receptive, receptive = ∏ shape[2...].
  public static func fans(_ shape: [Int]) -> (fanIn: Int, fanOut: Int) {
    precondition(shape.count >= 2, "fan in and fan out need a weight of rank ≥ 2, got \(shape)")
    let receptive = shape.dropFirst(2).reduce(1, *)
    return (shape[1] * receptive, shape[0] * receptive)
  }

  static func fan(_ shape: [Int], _ mode: FanMode) -> Int {
    let f = fans(shape)
    let n = mode == .fanIn ? f.fanIn : f.fanOut
    precondition(n > 0, "Kaiming init of a weight with zero fan (\(shape))")
    return n
  }

  /// torch.nn.init.kaiming_normal_: normal(0, gain/√fan).
  public static func kaimingNormal(_ shape: [Int], mode: FanMode = .fanIn,
                                   nonlinearity: Nonlinearity = .leakyReLU(0),
                                   using rng: inout RandomGenerator) -> Tensor {
    let std = nonlinearity.gain / Float(fan(shape, mode)).squareRoot()
    return normal(shape, mean: 0, std: std, using: &rng)
  }

  /// torch.nn.init.kaiming_uniform_: uniform(−bound, bound), bound = gain·√(3/fan).
  public static func kaimingUniform(_ shape: [Int], mode: FanMode = .fanIn,
                                    nonlinearity: Nonlinearity = .leakyReLU(0),
                                    using rng: inout RandomGenerator) -> Tensor {
    let bound = nonlinearity.gain * (3 / Float(fan(shape, mode))).squareRoot()
    return uniform(shape, -bound, bound, using: &rng)
  }

  /// PyTorch's default weight of nn.Linear and nn.Conv2d (`reset_parameters`):
  /// kaiming_uniform_(w, a=√5), i.e. uniform(±1/√fan_in).
  public static func torchDefaultWeight(_ shape: [Int], using rng: inout RandomGenerator) -> Tensor {
    kaimingUniform(shape, mode: .fanIn, nonlinearity: .leakyReLU(Float(5).squareRoot()), using: &rng)
  }

  /// PyTorch's default bias of nn.Linear / nn.Conv2d: uniform(±1/√fan_in) with
  /// the fan_in of the layer's weight (0 when fan_in is 0, as in PyTorch).
  public static func torchDefaultBias(_ count: Int, weightShape: [Int], using rng: inout RandomGenerator) -> Tensor {
    let fanIn = fans(weightShape).fanIn
    let bound: Float = fanIn > 0 ? 1 / Float(fanIn).squareRoot() : 0
    return uniform([count], -bound, bound, using: &rng)
  }

  // MARK: plain distributions

  /// uniform [lo, hi) (torch.nn.init.uniform_).
  public static func uniform(_ shape: [Int], _ lo: Float, _ hi: Float, using rng: inout RandomGenerator) -> Tensor {
    let t = Tensor(uninitialized: shape)
    let d = t.data
    for i in 0..<t.count { d[i] = rng.uniform(lo, hi) }
    return t
  }

  /// normal(mean, std) (torch.nn.init.normal_).
  public static func normal(_ shape: [Int], mean: Float = 0, std: Float = 1, using rng: inout RandomGenerator) -> Tensor {
    let t = Tensor(uninitialized: shape)
    let d = t.data
    for i in 0..<t.count { d[i] = mean + std * rng.normal() }
    return t
  }
}
