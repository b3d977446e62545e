// Explicit Class Extraction (spec §3): per class mask, a pyramid of adaptive
// average pools with s×s bins for s = 1…S (levels concatenated level by level,
// bins row-major), then one Linear(Σs² → C): one embedding per class.
// Also the initial masks M_4 = conv2(conv1(X_4)) (no activation).
// Letters: B batch, H W map, N classes, C head width, S pyramid levels.
import NN
import Tensor

/// One ECE instance. `{name}.fc` (Linear Σs² → C).
public struct ECE {
  public let fc: Linear
  public let levels: Int

  public init(_ b: LayerBuilder, _ name: String, levels: Int, channels: Int) {
    self.levels = levels
    fc = Linear(b, "\(name).fc", (1...levels).reduce(0) { $0 + $1 * $1 }, channels)
  }

  /// Pyramid of masks M [B, H, W, N] → [B, N, Σs²].
  public func pool(_ m: Var) -> Var {
    let (bsz, n) = (m.shape[0], m.shape[3])
    let parts = (1...levels).map { s in
      // [B, s, s, N] → [B, N, s, s] → [B, N, s²] (bins row-major, as PyTorch's reshape)
      permute(adaptiveAvgPool2d(m, outputHeight: s, outputWidth: s), [0, 3, 1, 2]).reshaped([bsz, n, s * s])
    }
    return parts.count == 1 ? parts[0] : concat(parts, axis: 2)
  }

  /// M [B, H, W, N] → G [B, N, C].
  public func callAsFunction(_ m: Var) -> Var { fc(pool(m)) }
}

/// Initial masks: `{name}.conv1` (1×1 C → C, bias), `{name}.conv2` (1×1 C → N, bias).
public struct InitialMasks {
  public let conv1, conv2: Conv2d
  public init(_ b: LayerBuilder, _ name: String, channels: Int, classes: Int) {
    conv1 = Conv2d(b, "\(name).conv1", channels, channels, kernel: 1)
    conv2 = Conv2d(b, "\(name).conv2", channels, classes, kernel: 1)
  }
  /// X_4 [B, H, W, C] → M_4 [B, H, W, N]
  public func callAsFunction(_ x: Var) -> Var { conv2(conv1(x)) }
}
