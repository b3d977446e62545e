// Semantics Attention & Updater (spec §4): pixels attend to class embeddings
// (pre-LN, multi-head), a SegFormer Mix-FFN refines the pixels, the
// head-averaged pre-softmax scores become the stage's masks, and the class
// embeddings are updated from ECE of those masks (K-Net gate, or `plus`).
// Letters: B batch, H W map, L = H·W tokens, N classes, C width, h heads, d = C/h.
import NN
import Tensor

/// The K-Net style gated updater: `upd_w3`, `upd_w4`, `upd_fc`, `upd_norm_u`, `upd_fc_g`, `upd_norm_g`.
public struct GatedUpdater {
  public let w3, w4, fc, fcG: Linear
  public let normU, normG: LayerNorm

  public init(_ b: LayerBuilder, _ name: String, channels c: Int) {
    w3 = Linear(b, "\(name).upd_w3", c, c)
    w4 = Linear(b, "\(name).upd_w4", c, c)
    fc = Linear(b, "\(name).upd_fc", c, c)
    normU = LayerNorm(b, "\(name).upd_norm_u", c)
    fcG = Linear(b, "\(name).upd_fc_g", c, c)
    normG = LayerNorm(b, "\(name).upd_norm_g", c)
  }

  /// F_u = W₃Ĝ ⊙ W₄G; U = σ(LN(FC(F_u))); G ← U ⊙ LN(FC_g(Ĝ)) + G.   Ĝ, G [B, N, C]
  public func callAsFunction(_ gHat: Var, _ g: Var) -> Var {
    let u = sigmoid(normU(fc(w3(gHat) * w4(g))))
    return u * normG(fcG(gHat)) + g
  }
}

/// One SAU. Parameters under `{name}`: norm_x, norm_g, q, k, v, o, ffn_norm,
/// ffn_fc1, ffn_dw, ffn_fc2, and the gated updater's (none for `plus`).
public struct SAU {
  public let normX, normG, ffnNorm: LayerNorm
  public let q, k, v, o, ffnFc1, ffnFc2: Linear
  public let ffnDw: Conv2d
  public let updater: GatedUpdater?
  public let heads: Int

  public init(_ b: LayerBuilder, _ name: String, channels c: Int, heads: Int, updater: UpdaterKind) {
    precondition(c % heads == 0, "SAU \(name): \(c) channels not divisible by \(heads) heads")
    self.heads = heads
    normX = LayerNorm(b, "\(name).norm_x", c)
    normG = LayerNorm(b, "\(name).norm_g", c)
    q = Linear(b, "\(name).q", c, c)
    k = Linear(b, "\(name).k", c, c)
    v = Linear(b, "\(name).v", c, c)
    o = Linear(b, "\(name).o", c, c)
    ffnNorm = LayerNorm(b, "\(name).ffn_norm", c)
    ffnFc1 = Linear(b, "\(name).ffn_fc1", c, 4 * c)
    ffnDw = Conv2d(b, "\(name).ffn_dw", 4 * c, 4 * c, kernel: 3, padding: 1, groups: 4 * c, bias: true)
    ffnFc2 = Linear(b, "\(name).ffn_fc2", 4 * c, c)
    self.updater = updater == .gated ? GatedUpdater(b, name, channels: c) : nil
  }

  /// X [B, H, W, C], G [B, N, C] → (refined X [B, H, W, C], masks M [B, H, W, N], new G [B, N, C]).
  /// Intermediates' values are released on return (`releasingIntermediates`).
  public func callAsFunction(_ x: Var, classes g: Var, ece: ECE) -> (x: Var, masks: Var, g: Var) {
    releasingIntermediates({ forward(x, classes: g, ece: ece) }, outputs: { [$0.x, $0.masks, $0.g] })
  }

  func forward(_ x: Var, classes g: Var, ece: ECE) -> (x: Var, masks: Var, g: Var) {
    let (bsz, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (n, l, d) = (g.shape[1], h * w, c / heads)
    func splitHeads(_ t: Var, _ len: Int) -> Var {         // [B, len, C] → [B·h, len, d]
      permute(t.reshaped([bsz, len, heads, d]), [0, 2, 1, 3]).reshaped([bsz * heads, len, d])
    }
    let qh = splitHeads(q(normX(x)).reshaped([bsz, l, c]), l)
    let gn = normG(g)
    let kh = splitHeads(k(gn), n), vh = splitHeads(v(gn), n)
    let scores = matmul(qh, kh, transB: true) * (1 / Float(d).squareRoot())    // S_h [B·h, L, N]
    let attended = matmul(softmax(scores, axis: 2), vh)                          // [B·h, L, d]
    let merged = permute(attended.reshaped([bsz, heads, l, d]), [0, 2, 1, 3]).reshaped([bsz, h, w, c])
    var y = x + o(merged)
    // Mix-FFN: the depth-wise conv runs on the [B, H, W, 4C] map.
    y = y + ffnFc2(gelu(ffnDw(ffnFc1(ffnNorm(y)))))
    let masks = scores.reshaped([bsz, heads, l, n]).mean(axis: 1).reshaped([bsz, h, w, n])  // mean_h S_h
    let gHat = ece(masks)
    let gNew = updater.map { $0(gHat, g) } ?? gHat + g
    return (y, masks, gNew)
  }
}
