// Parameters per module and forward FLOPs, computed analytically from the
// config (no kernels run). FLOPs follow fvcore's convention: one multiply-add
// is one FLOP; GEMMs, convolutions and attention matmuls count m·n·k; as
// fvcore's handles, LayerNorm/GroupNorm count 5 per element, eval BatchNorm 2,
// adaptive average pooling 1 per input element, bilinear upsampling 4 per
// output element; activations, softmax, adds and layout ops count 0. Swin's
// window padding is included (the padded tokens go through qkv, attention and proj).
// The tests check the parameter counts against a built model, module by module.

/// One module's parameters and FLOPs (for a batch of one image).
public struct ModuleCost: Equatable {
  public let module: String
  public var params: Int
  public var flops: Double
}

/// The module key of a parameter name, the grouping `info` prints:
/// backbone.patch_embed, backbone.layers.{s}, backbone.norm, head.fr.{s},
/// head.init_mask, head.ece, head.sau.{j}, head.up.{u}, head.fuse, head.cls_seg, head.class_head.
public func moduleKey(_ parameterName: String) -> String {
  let p = parameterName.split(separator: ".").map(String.init)
  guard p.count >= 2 else { return parameterName }
  if p[0] == "backbone" && p[1].hasPrefix("norm") { return "backbone.norm" }
  if ["layers", "fr", "sau", "up"].contains(p[1]) && p.count >= 3 { return "\(p[0]).\(p[1]).\(p[2])" }
  return "\(p[0]).\(p[1])"
}

public enum Complexity {
  /// Per-module costs of `config` at an input of height × width (batch 1), in forward order.
  public static func analyze(_ config: ModelConfig, height: Int, width: Int) -> [ModuleCost] {
    var costs: [ModuleCost] = []
    func add(_ module: String, params: Int, flops: Double) {
      if let i = costs.firstIndex(where: { $0.module == module }) {
        costs[i].params += params; costs[i].flops += flops
      } else {
        costs.append(ModuleCost(module: module, params: params, flops: flops))
      }
    }
    let sw = config.backbone, e = sw.embedDim, ws = sw.window, n = ws * ws, ps = sw.patchSize
    func ceilDiv(_ a: Int, _ b: Int) -> Int { (a + b - 1) / b }
    let lnFlop = 5.0  // fvcore's layer_norm / group_norm per element
    let normFlop: Double = config.norm == .gn ? 5 : 2  // eval BN: 2 per element

    // Patch embedding.
    var (h, w) = (ceilDiv(height, ps), ceilDiv(width, ps))
    add("backbone.patch_embed", params: 3 * e * ps * ps + e + 2 * e,
        flops: Double(h * w) * Double(e * 3 * ps * ps) + lnFlop * Double(h * w * e))

    // Stages.
    var sizes: [(Int, Int)] = []
    for s in 0..<4 {
      let c = e << s, key = "backbone.layers.\(s)"
      sizes.append((h, w))
      let (hp, wp) = (ceilDiv(h, ws) * ws, ceilDiv(w, ws) * ws)
      let (l, lp) = (Double(h * w), Double(hp * wp))
      let cd = Double(c)
      let blockParams = 2 * c + (3 * c * c + 3 * c) + (c * c + c) + (2 * ws - 1) * (2 * ws - 1) * sw.heads[s]
        + 2 * c + (sw.mlpRatio * c * c + sw.mlpRatio * c) + (sw.mlpRatio * c * c + c)
      let blockFlops = 2 * lnFlop * l * cd          // norm1, norm2
        + lp * cd * 3 * cd + lp * cd * cd             // qkv, proj (padded tokens)
        + 2 * lp * Double(n) * cd                     // q·kᵀ and attn·v, per window n×n×C
        + 2 * l * cd * Double(sw.mlpRatio) * cd       // fc1, fc2
      add(key, params: sw.depths[s] * blockParams, flops: Double(sw.depths[s]) * blockFlops)
      add("backbone.norm", params: 2 * c, flops: lnFlop * l * cd)
      if s < 3 {
        let (h2, w2) = (ceilDiv(h, 2), ceilDiv(w, 2))
        let l2 = Double(h2 * w2)
        add(key, params: 8 * c + 8 * c * c, flops: lnFlop * l2 * 4 * cd + l2 * 4 * cd * 2 * cd)
        (h, w) = (h2, w2)
      }
    }

    // Head.
    let c = config.channels, nc = config.numClasses, cd = Double(c), nd = Double(nc)
    let levels = config.eceLevels, bins = config.eceBins
    let area = sizes.map { Double($0.0 * $0.1) }
    for (s, ci) in sw.stageChannels.enumerated() {
      let half = ci / 2, l = area[s]
      let params = ci * half + 2 * half + 9 * half + 2 * half + (half * (ci / 8) + ci / 8) + (ci / 8 * half + half)
        + ci * ci + 2 * ci + ci * c + 2 * c
      let flops = l * Double(ci * half) + normFlop * l * Double(half) + l * Double(9 * half) + normFlop * l * Double(half)
        + 2 * Double(half * (ci / 8)) + l * Double(ci * ci) + normFlop * l * Double(ci) + l * Double(ci * c)
        + normFlop * l * cd
      add("head.fr.\(s)", params: params, flops: flops)
    }
    add("head.init_mask", params: c * c + c + c * nc + nc, flops: area[3] * (cd * cd + cd * nd))
    let eceFc = nd * Double(bins) * cd
    add("head.ece", params: 4 * (bins * c + c), flops: Double(levels) * nd * area[3] + eceFc)
    for (j, stage) in [2, 1, 0].enumerated() {
      let l = area[stage]
      var params = 2 * c + 2 * c + 4 * (c * c + c) + 2 * c + (4 * c * c + 4 * c) + (4 * c * 9 + 4 * c) + (4 * c * c + c)
      var flops = lnFlop * l * cd + lnFlop * nd * cd       // norm_x, norm_g
        + 2 * l * cd * cd + 2 * nd * cd * cd               // q, o; k, v
        + 2 * l * nd * cd                                  // S_h = QKᵀ and softmax(S)·V over all heads
        + lnFlop * l * cd + 8 * l * cd * cd + l * 4 * cd * 9  // ffn_norm, fc1 + fc2, depth-wise 3×3
      if config.updater == .gated {
        params += 4 * (c * c + c) + 4 * c
        flops += 4 * nd * cd * cd + 2 * lnFlop * nd * cd
      }
      add("head.sau.\(j)", params: params, flops: flops)
      add("head.ece", params: 0, flops: Double(levels) * nd * l + eceFc)  // ECE of the SAU's masks
    }
    for (u, r) in [2, 4, 8].enumerated() {
      let hidden = c * r * r / 2, l = area[u + 1], hd = Double(hidden)
      add("head.up.\(u)", params: c * hidden + 2 * hidden + 9 * hidden + 2 * hidden,
          flops: l * cd * hd + normFlop * l * hd + l * 9 * hd + normFlop * l * hd)
    }
    let l1 = area[0]
    add("head.fuse", params: 4 * c * c * 9 + 2 * c, flops: l1 * 4 * cd * cd * 9 + normFlop * l1 * cd)
    add("head.cls_seg", params: c * nc + nc, flops: l1 * cd * nd)
    add("head.class_head", params: c * (nc + 1) + nc + 1, flops: nd * cd * (nd + 1))
    // M_4, M_3, M_2 upsampled to 1/4; the einsum of p and σ(M_sum); logits to the input size.
    add("head.output", params: 0, flops: 3 * 4 * l1 * nd + l1 * nd * nd + 4 * Double(height * width) * nd)
    return costs
  }

  public static func totalParams(_ costs: [ModuleCost]) -> Int { costs.reduce(0) { $0 + $1.params } }
  public static func totalFlops(_ costs: [ModuleCost]) -> Double { costs.reduce(0) { $0 + $1.flops } }
}
