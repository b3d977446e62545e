// The ECENet head (spec §2–5): FR per stage → initial masks and class
// embeddings from X_4 → SAU on X_3, X_2, X_1 → ghost + pixel-shuffle
// upsampling of X_2…X_4 to 1/4 → 3×3 fuse → cls_seg, plus the class head and
// the summed-mask enhancement of the logits.
// Letters: B batch, H1 W1 the 1/4 map, N classes, C head width.
import NN
import Tensor

/// Ghost module to C·r² channels, then PixelShuffle(r): [B, H, W, C] → [B, H·r, W·r, C].
/// `{name}.primary` (1×1 C → C·r²/2 + norm + ReLU), `{name}.cheap` (dw 3×3 + norm + ReLU).
public struct GhostUpsample {
  public let primary, cheap: ConvModule
  public let factor: Int

  public init(_ b: LayerBuilder, _ name: String, channels c: Int, factor r: Int) {
    let hidden = c * r * r / 2
    primary = ConvModule(b, "\(name).primary", c, hidden, kernel: 1)
    cheap = ConvModule(b, "\(name).cheap", hidden, hidden, kernel: 3, padding: 1, groups: hidden)
    factor = r
  }

  public func callAsFunction(_ x: Var, _ ctx: ForwardContext) -> Var {
    Self.group([self], [x], ctx)[0]
  }

  /// Several upsamplers (module i on input i), layer by layer in step
  /// (`ConvModule.group`: one SyncBN round trip per layer for all). Equal to
  /// calling each; intermediates are released on return.
  public static func group(_ modules: [GhostUpsample], _ xs: [Var], _ ctx: ForwardContext) -> [Var] {
    releasingIntermediates({
      let a = ConvModule.group(modules.map(\.primary), xs, ctx)
      let b = ConvModule.group(modules.map(\.cheap), a, ctx)
      return (0..<modules.count).map { pixelShuffle(concat([a[$0], b[$0]], axis: 3), factor: modules[$0].factor) }
    }, outputs: { $0 })
  }
}

/// Everything the head computes that a loss, a test or inference needs.
public struct HeadOutput {
  /// Final logits at 1/4: logits_conv + einsum(p[:, :N], σ(M_sum)).   [B, H1, W1, N]
  public let logits: Var
  /// cls_seg's output alone.   [B, H1, W1, N]
  public let logitsConv: Var
  /// Class head logits (last slot "absent").   [B, N, N+1]
  public let classLogits: Var
  /// softmax of classLogits.   [B, N, N+1]
  public let classProbs: Var
  /// M_4↑ + M_3↑ + M_2↑ + M_1 at 1/4.   [B, H1, W1, N]
  public let maskSum: Var
  /// M_4, M_3, M_2, M_1 at their own strides.   [B, Hi, Wi, N]
  public let masks: [Var]
  /// Σ over the four stages and the batch of the per-image diversity loss (scalar).
  public let diversitySum: Var
}

/// The head. Parameter names under `head.` as the PyTorch reference.
public final class ECENetHead {
  public let config: ModelConfig
  public let fr: [FeatureReconstruction]
  public let initMask: InitialMasks
  public let ece: [ECE]
  public let sau: [SAU]
  public let up: [GhostUpsample]
  public let fuse: ConvModule
  public let clsSeg: Conv2d
  public let classHead: Linear

  /// `strides`: the backbone's output strides; X_2…X_4 are upsampled by
  /// strides[i] / strides[0] (Swin 2, 4, 8; ResNet-D8 2, 2, 2).
  public init(_ b: LayerBuilder, _ name: String = "head", inChannels: [Int], strides: [Int] = [4, 8, 16, 32],
              config: ModelConfig) {
    precondition(strides.count == 4 && strides.dropFirst().allSatisfy { $0 % strides[0] == 0 && $0 > strides[0] },
                 "ECENetHead: strides \(strides) must be multiples of the first, each larger")
    self.config = config
    let (c, n) = (config.channels, config.numClasses)
    fr = inChannels.enumerated().map { FeatureReconstruction(b, "\(name).fr.\($0.offset)", inChannels: $0.element, channels: c) }
    initMask = InitialMasks(b, "\(name).init_mask", channels: c, classes: n)
    ece = (0..<4).map { ECE(b, "\(name).ece.\($0)", levels: config.eceLevels, channels: c) }
    sau = (0..<3).map { SAU(b, "\(name).sau.\($0)", channels: c, heads: config.sauHeads, updater: config.updater) }
    up = strides.dropFirst().map { $0 / strides[0] }.enumerated().map { GhostUpsample(b, "\(name).up.\($0.offset)", channels: c, factor: $0.element) }
    fuse = ConvModule(b, "\(name).fuse", 4 * c, c, kernel: 3, padding: 1)
    clsSeg = Conv2d(b, "\(name).cls_seg", c, n, kernel: 1)
    classHead = Linear(b, "\(name).class_head", c, n + 1)
  }

  /// Backbone features F_1…F_4 [B, Hi, Wi, Ci] → HeadOutput.
  /// Intermediates' values are released on return (`releasingIntermediates`);
  /// every Var of the HeadOutput keeps its value.
  public func callAsFunction(_ feats: [Var], _ ctx: ForwardContext) -> HeadOutput {
    releasingIntermediates({ forward(feats, ctx) }, outputs: { o in
      [o.logits, o.logitsConv, o.classLogits, o.classProbs, o.maskSum, o.diversitySum] + o.masks
    })
  }

  func forward(_ feats: [Var], _ ctx: ForwardContext) -> HeadOutput {
    precondition(feats.count == 4, "ECENetHead: expected 4 feature maps, got \(feats.count)")
    let n = config.numClasses
    let frOut = FeatureReconstruction.group(fr, feats, ctx)
    var x = frOut.map(\.x)                                        // X_1…X_4 (index 0…3)
    let divs = frOut.map { diversityLossSum($0.diverse) }
    let diversity = divs.dropFirst().reduce(divs[0], +)          // Σ over stages
    let m4 = initMask(x[3])                                       // [B, H4, W4, N]
    var g = ece[0](m4)                                            // [B, N, C]
    var masks = [m4]
    for (j, stage) in [2, 1, 0].enumerated() {                    // SAU on X_3, X_2, X_1
      let r = sau[j](x[stage], classes: g, ece: ece[j + 1])
      x[stage] = r.x                                              // refined tokens replace X_i
      masks.append(r.masks)
      g = r.g
    }
    let (h1, w1) = (x[0].shape[1], x[0].shape[2])
    let ups = GhostUpsample.group(up, Array(x[1...]), ctx)        // X_2, X_3, X_4 → [B, H1, W1, C]
    var fused = fuse(concat([x[0]] + ups, axis: 3), ctx)          // [B, H1, W1, C]
    if ctx.training && config.dropout > 0 { fused = dropout(fused, p: config.dropout, rng: &ctx.rng) }
    let logitsConv = clsSeg(fused)                                // [B, H1, W1, N]
    let classLogits = classHead(g)                                // [B, N, N+1]
    let probs = softmax(classLogits, axis: 2)
    var maskSum = masks[3]
    for m in masks[0..<3] { maskSum = maskSum + resizeBilinear(m, height: h1, width: w1) }
    // einsum("bnc,bnhw->bchw", p[..., :N], σ(M_sum)) as σ(M_sum)[B, L, N] · p[B, N, N].
    let pPresent = split(probs, sizes: [n, 1], axis: 2)[0]       // [B, N, N]
    let bsz = maskSum.shape[0]
    let enhancement = matmul(sigmoid(maskSum).reshaped([bsz, h1 * w1, n]), pPresent).reshaped([bsz, h1, w1, n])
    return HeadOutput(logits: logitsConv + enhancement, logitsConv: logitsConv, classLogits: classLogits,
                      classProbs: probs, maskSum: maskSum, masks: masks, diversitySum: diversity)
  }
}
