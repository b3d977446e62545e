// Feature Reconstruction (spec §2), one per backbone stage, and its diversity
// loss. A Ghost module (intrinsic half + cheap depth-wise half with SE),
// projected back to C_i, then unified to the head width C.
// Letters: B batch, H W the stage's map, Ci stage channels, C' = Ci/2, C head width.
import NN
import Tensor

/// Squeeze-and-excitation on [B, H, W, C']: mean over H, W → fc1 (C' → Ci/8) →
/// ReLU → fc2 → sigmoid → channel scale. `{name}.fc1`, `{name}.fc2` (Linears).
public struct SqueezeExcite {
  public let fc1, fc2: Linear
  public init(_ b: LayerBuilder, _ name: String, channels: Int, hidden: Int) {
    fc1 = Linear(b, "\(name).fc1", channels, hidden)
    fc2 = Linear(b, "\(name).fc2", hidden, channels)
  }
  public func callAsFunction(_ x: Var) -> Var {
    let (bsz, c) = (x.shape[0], x.shape[3])
    let s = x.reshaped([bsz, -1, c]).mean(axis: 1)                 // [B, C']
    let g = sigmoid(fc2(relu(fc1(s)))).reshaped([bsz, 1, 1, c])    // [B, 1, 1, C']
    return x * g
  }
}

/// The FR block of one stage. `{name}.primary`, `.cheap`, `.se`, `.proj`, `.unify`.
public struct FeatureReconstruction {
  public let primary, cheap, proj, unify: ConvModule
  public let se: SqueezeExcite

  public init(_ b: LayerBuilder, _ name: String, inChannels ci: Int, channels: Int) {
    let half = ci / 2
    primary = ConvModule(b, "\(name).primary", ci, half, kernel: 1, activation: false)
    cheap = ConvModule(b, "\(name).cheap", half, half, kernel: 3, padding: 1, groups: half, activation: true)
    // SE reduction 4 relative to C' (GhostNet) = C_i/8.
    se = SqueezeExcite(b, "\(name).se", channels: half, hidden: ci / 8)
    proj = ConvModule(b, "\(name).proj", ci, ci, kernel: 1, activation: false)
    unify = ConvModule(b, "\(name).unify", ci, channels, kernel: 1, activation: true)
  }

  /// F_i [B, H, W, Ci] → (X_i [B, H, W, C], Y'' [B, H, W, C']).
  /// Intermediates' values are released on return (`releasingIntermediates`).
  public func callAsFunction(_ f: Var, _ ctx: ForwardContext) -> (x: Var, diverse: Var) {
    Self.group([self], [f], ctx)[0]
  }

  /// The FR blocks of several stages (block i on F_i), layer by layer in step
  /// (`ConvModule.group`), so SyncBN reduces the four stages' statistics of a
  /// layer in one round trip: 4 instead of 16 each way for the head's FRs.
  /// Equal to calling each block; intermediates are released on return.
  public static func group(_ blocks: [FeatureReconstruction], _ fs: [Var],
                           _ ctx: ForwardContext) -> [(x: Var, diverse: Var)] {
    releasingIntermediates({ () -> [(x: Var, diverse: Var)] in
      let y1 = ConvModule.group(blocks.map(\.primary), fs, ctx)                   // Y'  [B, H, W, C']
      let y2 = zip(blocks, ConvModule.group(blocks.map(\.cheap), y1, ctx)).map { $0.0.se($0.1) }  // Y''
      let y = ConvModule.group(blocks.map(\.proj), zip(y1, y2).map { concat([$0.0, $0.1], axis: 3) }, ctx)  // Y_i
      return zip(ConvModule.group(blocks.map(\.unify), y, ctx), y2).map { (x: $0.0, diverse: $0.1) }
    }, outputs: { $0.flatMap { [$0.x, $0.diverse] } })
  }
}

/// Σ over the batch of the per-image diversity loss of Y'' [B, H, W, C']:
/// P = softmax over the H·W positions of each channel,
/// L_div(image) = 1 − (1/C')·Σ_k max_j P[j, k]. A scalar; the loss divides by
/// the (global) number of images.
public func diversityLossSum(_ y2: Var) -> Var {
  let (bsz, c) = (y2.shape[0], y2.shape[3])
  let p = softmax(y2.reshaped([bsz, -1, c]), axis: 1)          // [B, L, C'] over L
  let peaks = p.max(axis: 1)                                    // [B, C']
  return peaks.sum() * (-1 / Float(c)) + Float(bsz)
}
