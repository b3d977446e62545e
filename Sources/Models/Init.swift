// Seeded initial weights for the model's layers (PyTorch's defaults and Swin's
// trunc-normal), kept local to Models so the model does not depend on NN's
// initializer set. Every parameter draws from its own stream, a pure function
// of (seed, parameter name): the weights do not depend on the order in which
// layers are built, and adding a layer leaves the others' weights unchanged.
import Tensor

/// Seeded weight factory; one per model build.
public struct WeightInit {
  public let seed: UInt64
  public init(seed: UInt64) { self.seed = seed }

  /// The random stream of one parameter.
  func stream(_ name: String) -> RandomGenerator { RandomGenerator(seed: seed, keys: fnv1a(name)) }

  /// nn.init.kaiming_uniform_(a=√5) = U(−1/√fan_in, 1/√fan_in): PyTorch's default
  /// for Linear/Conv weights; its default bias uses the same bound.
  func uniformFanIn(_ name: String, _ shape: [Int], fanIn: Int) -> Tensor {
    let bound = 1 / Float(max(1, fanIn)).squareRoot()
    var g = stream(name)
    let t = Tensor(uninitialized: shape)
    for i in 0..<t.count { t.data[i] = g.uniform(-bound, bound) }
    return t
  }

  /// nn.init.trunc_normal_(std, a=−2, b=2): normal redrawn outside the absolute bounds.
  func truncNormal(_ name: String, _ shape: [Int], std: Float) -> Tensor {
    var g = stream(name)
    let t = Tensor(uninitialized: shape)
    for i in 0..<t.count {
      var v = g.normal() * std
      while abs(v) > 2 { v = g.normal() * std }
      t.data[i] = v
    }
    return t
  }
}

/// 64-bit FNV-1a of a name's UTF-8 bytes: a stable key for the parameter's stream.
func fnv1a(_ s: String) -> UInt64 {
  var h: UInt64 = 0xcbf2_9ce4_8422_2325
  for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01b3 }
  return h
}
