// Swin Transformer backbone (Liu et al. 2021) as in the official segmentation
// code and mmseg, read bottom-up: tables → WindowAttention → SwinBlock →
// PatchMerging → SwinStage → SwinBackbone. Channels-last throughout; the token
// sequence of the official code is our [B, H, W, C] map.
// Letters: B batch, H W map size (Hp Wp padded to the window), C channels,
// w window side, n = w² tokens per window, nW windows per image, h heads, d = C/h.
// Padding (as the official segmentation Swin and the reference): LN, then zero
// pad to a window multiple; padded tokens are not masked out of attention; the
// window is never shrunk for maps smaller than it (the classification code's
// rule does not apply to segmentation).
// Not here: loading official checkpoints (NN's safetensors reader does that).
import NN
import Tensor

/// Official Swin's relative_position_index: entry (i, j) of the n×n table of a
/// window indexes the (2w−1)² bias table by the offset between tokens i and j.
func relativePositionIndex(window w: Int) -> [Int32] {
  let n = w * w
  var idx = [Int32](repeating: 0, count: n * n)
  for i in 0..<n {
    for j in 0..<n {
      let dh = i / w - j / w + w - 1, dw = i % w - j % w + w - 1
      idx[i * n + j] = Int32(dh * (2 * w - 1) + dw)
    }
  }
  return idx
}

/// Official Swin's shift mask on the padded map: [nW, n, n], 0 where two
/// tokens of a (rolled) window come from the same region, −100 otherwise.
func shiftAttentionMask(height hp: Int, width wp: Int, window w: Int, shift s: Int) -> Tensor {
  func region(_ x: Int, _ size: Int) -> Int { x < size - w ? 0 : (x < size - s ? 1 : 2) }
  let nh = hp / w, nw = wp / w, n = w * w
  let mask = Tensor(uninitialized: [nh * nw, n, n])
  var ids = [Int](repeating: 0, count: n)
  for wy in 0..<nh {
    for wx in 0..<nw {
      for t in 0..<n { ids[t] = region(wy * w + t / w, hp) * 3 + region(wx * w + t % w, wp) }
      let base = mask.data + (wy * nw + wx) * n * n
      for i in 0..<n { for j in 0..<n { base[i * n + j] = ids[i] == ids[j] ? 0 : -100 } }
    }
  }
  return mask
}

/// Window multi-head self-attention with relative position bias and qkv bias.
/// Parameters `{name}.qkv`, `{name}.proj`, `{name}.relative_position_bias_table` [(2w−1)², h].
public struct WindowAttention {
  public let qkv: Linear
  public let proj: Linear
  public let relativePositionBiasTable: Var
  let relativeIndex: [Int32]  // n·n entries, built once
  public let dim, heads, window: Int

  public init(_ b: LayerBuilder, _ name: String, dim: Int, heads: Int, window: Int) {
    self.dim = dim; self.heads = heads; self.window = window
    qkv = Linear(b, "\(name).qkv", dim, 3 * dim, initialization: .truncNormal(std: 0.02))
    proj = Linear(b, "\(name).proj", dim, dim, initialization: .truncNormal(std: 0.02))
    let tableName = "\(name).relative_position_bias_table"
    relativePositionBiasTable = b.store.parameter(
      tableName, b.weights.truncNormal(tableName, [(2 * window - 1) * (2 * window - 1), heads], std: 0.02), decay: false)
    relativeIndex = relativePositionIndex(window: window)
  }

  /// x [B·nW, n, C] → [B·nW, n, C]; `mask` [nW, n, n] for shifted windows.
  public func callAsFunction(_ x: Var, mask: Tensor?) -> Var {
    let n = x.shape[1], d = dim / heads
    let bias = permute(gatherRows(relativePositionBiasTable, indices: relativeIndex).reshaped([n, n, heads]),
                       [2, 0, 1])                                   // [h, n, n]
    // qkv(x) [B', n, 3C] is read as [B', n, 3, h, d] and the output written as
    // [B', n, h, d] = [B', n, C], in place: official Swin's permutes are no copies here.
    return proj(windowAttention(qkv: qkv(x), heads: heads, bias: bias, mask: mask, scale: 1 / Float(d).squareRoot()))
  }
}

/// Swin's MLP: fc1 (C → 4C) → GELU → fc2.
public struct SwinMLP {
  public let fc1, fc2: Linear
  public init(_ b: LayerBuilder, _ name: String, dim: Int, hidden: Int) {
    fc1 = Linear(b, "\(name).fc1", dim, hidden, initialization: .truncNormal(std: 0.02))
    fc2 = Linear(b, "\(name).fc2", hidden, dim, initialization: .truncNormal(std: 0.02))
  }
  public func callAsFunction(_ x: Var) -> Var { fc2(gelu(fc1(x))) }
}

/// One Swin block: x + DropPath(W-MSA(LN(x))), then x + DropPath(MLP(LN(x))).
public struct SwinBlock {
  public let norm1, norm2: LayerNorm
  public let attn: WindowAttention
  public let mlp: SwinMLP
  public let window, shift: Int
  /// Stochastic-depth probability of this block.
  public let dropPathRate: Float

  public init(_ b: LayerBuilder, _ name: String, dim: Int, heads: Int, window: Int, shift: Int,
              mlpRatio: Int, dropPathRate: Float) {
    norm1 = LayerNorm(b, "\(name).norm1", dim)
    attn = WindowAttention(b, "\(name).attn", dim: dim, heads: heads, window: window)
    norm2 = LayerNorm(b, "\(name).norm2", dim)
    mlp = SwinMLP(b, "\(name).mlp", dim: dim, hidden: dim * mlpRatio)
    self.window = window; self.shift = shift; self.dropPathRate = dropPathRate
  }

  /// x [B, H, W, C] → [B, H, W, C]; `mask` is the stage's shift mask for the padded size.
  /// Its intermediates' values are released when it returns (`releasingIntermediates`):
  /// what backward needs stays captured by the tape.
  public func callAsFunction(_ x: Var, mask: Tensor?, _ ctx: ForwardContext) -> Var {
    releasingIntermediates { forward(x, mask: mask, ctx) }
  }

  func forward(_ x: Var, mask: Tensor?, _ ctx: ForwardContext) -> Var {
    let (h, w) = (x.shape[1], x.shape[2])
    let (padB, padR) = ((window - h % window) % window, (window - w % window) % window)
    var y = norm1(x)
    if padB > 0 || padR > 0 { y = padSpatial(y, bottom: padB, right: padR) }  // [B, Hp, Wp, C]
    if shift > 0 { y = rollSpatial(y, shiftH: -shift, shiftW: -shift) }
    let win = attn(windowPartition(y, window: window), mask: shift > 0 ? mask : nil)  // [B·nW, n, C]
    y = windowReverse(win, window: window, height: h + padB, width: w + padR)        // [B, Hp, Wp, C]
    if shift > 0 { y = rollSpatial(y, shiftH: shift, shiftW: shift) }
    if padB > 0 || padR > 0 { y = cropSpatial(y, height: h, width: w) }              // [B, H, W, C]
    let x1 = x + drop(y, ctx)
    return x1 + drop(mlp(norm2(x1)), ctx)
  }

  func drop(_ x: Var, _ ctx: ForwardContext) -> Var {
    ctx.training && dropPathRate > 0 ? dropPath(x, p: dropPathRate, rng: &ctx.rng) : x
  }
}

/// Patch merging: 2×2 neighbours concatenated in the official order
/// x0 = (0::2, 0::2), x1 = (1::2, 0::2), x2 = (0::2, 1::2), x3 = (1::2, 1::2)
/// → LN(4C) → Linear 4C → 2C without bias. Odd sizes are zero-padded first.
public struct PatchMerging {
  public let norm: LayerNorm
  public let reduction: Linear

  public init(_ b: LayerBuilder, _ name: String, dim: Int) {
    norm = LayerNorm(b, "\(name).norm", 4 * dim)
    reduction = Linear(b, "\(name).reduction", 4 * dim, 2 * dim, bias: false, initialization: .truncNormal(std: 0.02))
  }

  /// [B, H, W, C] → [B, ⌈H/2⌉, ⌈W/2⌉, 2C]
  public func callAsFunction(_ x: Var) -> Var {
    releasingIntermediates { forward(x) }
  }

  func forward(_ x: Var) -> Var {
    var x = x
    let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    if h % 2 == 1 || w % 2 == 1 { x = padSpatial(x, bottom: h % 2, right: w % 2) }
    let (h2, w2) = ((h + 1) / 2, (w + 1) / 2)
    // [B, H/2, hpar, W/2, wpar, C] → [B, H/2, W/2, wpar, hpar, C]: channel block
    // hpar + 2·wpar, which is the official x0, x1, x2, x3 order.
    let t = permute(x.reshaped([b, h2, 2, w2, 2, c]), [0, 1, 3, 4, 2, 5]).reshaped([b, h2, w2, 4 * c])
    return reduction(norm(t))
  }
}

/// One stage: `depth` blocks, odd ones shifted by w/2, then (stages 0–2) patch
/// merging. The shift mask depends only on the padded size: built on first
/// use for that size and cached.
public final class SwinStage {
  public let blocks: [SwinBlock]
  public let downsample: PatchMerging?
  public let window: Int
  private var maskCache: [[Int]: Tensor] = [:]

  public init(_ b: LayerBuilder, _ name: String, dim: Int, depth: Int, heads: Int, window: Int, mlpRatio: Int,
              dropPathRates: [Float], downsample: Bool) {
    self.window = window
    blocks = (0..<depth).map { i in
      SwinBlock(b, "\(name).blocks.\(i)", dim: dim, heads: heads, window: window, shift: i % 2 == 0 ? 0 : window / 2,
                mlpRatio: mlpRatio, dropPathRate: dropPathRates[i])
    }
    self.downsample = downsample ? PatchMerging(b, "\(name).downsample", dim: dim) : nil
  }

  /// The shift mask [nW, n, n] for a map padded to Hp × Wp.
  func mask(height hp: Int, width wp: Int) -> Tensor {
    if let m = maskCache[[hp, wp]] { return m }
    let m = shiftAttentionMask(height: hp, width: wp, window: window, shift: window / 2)
    maskCache[[hp, wp]] = m
    return m
  }

  /// x [B, H, W, C] → (stage output [B, H, W, C], next stage's input [B, ⌈H/2⌉, ⌈W/2⌉, 2C]).
  public func callAsFunction(_ x: Var, _ ctx: ForwardContext) -> (out: Var, next: Var) {
    let (h, w) = (x.shape[1], x.shape[2])
    let hp = (h + window - 1) / window * window, wp = (w + window - 1) / window * window
    let m: Tensor? = blocks.count > 1 ? mask(height: hp, width: wp) : nil
    var y = x
    for blk in blocks { y = blk(y, mask: m, ctx) }
    return (y, downsample.map { $0(y) } ?? y)
  }
}

/// Patch embedding: 4×4 stride-4 conv → LN. `{name}.proj`, `{name}.norm`.
public struct PatchEmbed {
  public let proj: Conv2d
  public let norm: LayerNorm
  public let patch: Int

  public init(_ b: LayerBuilder, _ name: String, inChannels: Int, dim: Int, patch: Int) {
    proj = Conv2d(b, "\(name).proj", inChannels, dim, kernel: patch, stride: patch)
    norm = LayerNorm(b, "\(name).norm", dim)
    self.patch = patch
  }

  /// image [B, H, W, 3] → [B, ⌈H/4⌉, ⌈W/4⌉, C]; the image is zero-padded to a multiple of 4.
  public func callAsFunction(_ x: Var) -> Var {
    let (h, w) = (x.shape[1], x.shape[2])
    let (pb, pr) = ((patch - h % patch) % patch, (patch - w % patch) % patch)
    let xp = pb > 0 || pr > 0 ? padSpatial(x, bottom: pb, right: pr) : x
    return norm(proj(xp))
  }
}

/// The Swin backbone: four feature maps at strides 4, 8, 16, 32, each through
/// its own LayerNorm `{name}.norm{s}`. Drop-path rates rise linearly from 0 to
/// `dropPath` over all blocks (torch.linspace).
public final class SwinBackbone {
  public let config: SwinConfig
  public let patchEmbed: PatchEmbed
  public let layers: [SwinStage]
  public let norms: [LayerNorm]

  public init(_ b: LayerBuilder, _ name: String = "backbone", config: SwinConfig) {
    self.config = config
    let dims = config.stageChannels
    patchEmbed = PatchEmbed(b, "\(name).patch_embed", inChannels: 3, dim: config.embedDim, patch: config.patchSize)
    let total = config.depths.reduce(0, +)
    let rates: [Float] = (0..<total).map { total > 1 ? config.dropPath * Float($0) / Float(total - 1) : 0 }
    var first = 0
    var stages: [SwinStage] = []
    for s in 0..<4 {
      let depth = config.depths[s]
      stages.append(SwinStage(b, "\(name).layers.\(s)", dim: dims[s], depth: depth, heads: config.heads[s],
                              window: config.window, mlpRatio: config.mlpRatio,
                              dropPathRates: Array(rates[first..<first + depth]), downsample: s < 3))
      first += depth
    }
    layers = stages
    norms = (0..<4).map { LayerNorm(b, "\(name).norm\($0)", dims[$0]) }
  }

  /// image [B, H, W, 3] (normalised) → [B, H/4, W/4, C₁], …, [B, H/32, W/32, C₄] (rounded up).
  public func callAsFunction(_ image: Var, _ ctx: ForwardContext) -> [Var] {
    var x = patchEmbed(image)
    var outs: [Var] = []
    for s in 0..<4 {
      let (out, next) = layers[s](x, ctx)
      outs.append(norms[s](out))
      x = next
    }
    return outs
  }
}
