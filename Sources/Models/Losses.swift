// ECENet's losses (spec §6): L = w_seg·L_seg + w_cls·L_cls + λ_focal·L_focal
// + λ_dice·L_dice + λ_div·L_div, every term returned on its own.
//
// Global-batch normalisation: each term is a SUM over this rank's batch divided
// by a count (`LossNormalizers`). The counts come from the labels alone, so
// the trainer computes them locally, allreduces (sums) them, and passes the
// global counts in: N ranks then compute terms whose sum over ranks is the
// one-process loss on the union batch, and the gradients must be SUMMED over
// ranks (not averaged) — or averaged after scaling the loss by the world size.
// Letters: B batch, H W label size, N classes, M present-class masks.
import Tensor

/// Integer labels [B, H, W] with an ignore value (255).
public struct LabelBatch {
  public let values: [Int32]
  public let batch, height, width: Int

  public init(values: [Int32], batch: Int, height: Int, width: Int) {
    precondition(values.count == batch * height * width,
                 "LabelBatch: \(values.count) labels for [\(batch), \(height), \(width)]")
    self.values = values; self.batch = batch; self.height = height; self.width = width
  }

  public init(bytes: [UInt8], batch: Int, height: Int, width: Int) {
    self.init(values: bytes.map { Int32($0) }, batch: batch, height: height, width: width)
  }

  /// presence[b·N + n]: class n occurs among image b's valid pixels.
  public func presence(numClasses n: Int, ignoreIndex: Int32) -> [Bool] {
    var present = [Bool](repeating: false, count: batch * n)
    let hw = height * width
    for b in 0..<batch {
      for v in values[(b * hw)..<((b + 1) * hw)] where v != ignoreIndex {
        precondition(v >= 0 && Int(v) < n, "label \(v) outside 0..<\(n) (ignore \(ignoreIndex)) in image \(b)")
        present[b * n + Int(v)] = true
      }
    }
    return present
  }
}

/// The denominators of the loss terms, counted from labels. Local counts are
/// summed over ranks (`asArray` / `init(array:)` for the allreduce) before use.
public struct LossNormalizers: Equatable {
  /// Labelled (non-ignored) pixels: L_seg's denominator.
  public var validPixels: Double
  /// Σ over all class slots of their CE weight (1 if the class is present,
  /// eos_coef if absent): L_cls's denominator (F.cross_entropy's weighted mean, as DETR).
  public var classWeight: Double
  /// Present (image, class) pairs: focal and dice denominator.
  public var masks: Double
  /// Images: L_div's denominator.
  public var images: Double

  public init(validPixels: Double, classWeight: Double, masks: Double, images: Double) {
    self.validPixels = validPixels; self.classWeight = classWeight; self.masks = masks; self.images = images
  }

  /// This rank's counts.
  public static func local(_ labels: LabelBatch, numClasses n: Int, loss: LossConfig) -> LossNormalizers {
    let present = labels.presence(numClasses: n, ignoreIndex: loss.ignoreIndex)
    let p = present.filter { $0 }.count
    let valid = labels.values.filter { $0 != loss.ignoreIndex }.count
    return LossNormalizers(validPixels: Double(valid),
                           classWeight: Double(p) + Double(present.count - p) * Double(loss.eosCoef),
                           masks: Double(p), images: Double(labels.batch))
  }

  public var asArray: [Double] { [validPixels, classWeight, masks, images] }
  public init(array a: [Double]) {
    precondition(a.count == 4, "LossNormalizers: 4 counts expected, got \(a.count)")
    self.init(validPixels: a[0], classWeight: a[1], masks: a[2], images: a[3])
  }
}

/// Every loss term (unweighted) and the weighted total.
public struct LossTerms {
  public let seg, cls, focal, dice, div, total: Var
  /// Scalar values by name (seg, cls, focal, dice, div, total) for logs.
  public var values: [String: Float] {
    ["seg": seg.value.scalar, "cls": cls.value.scalar, "focal": focal.value.scalar, "dice": dice.value.scalar,
     "div": div.value.scalar, "total": total.value.scalar]
  }
}

/// The spec §6 losses of a forward pass against labels at the input size.
/// `normalizers` nil: this batch's own counts (a world of one).
public func ecenetLosses(_ out: ModelOutput, labels: LabelBatch, config: ModelConfig,
                         normalizers: LossNormalizers? = nil) -> LossTerms {
  let n = config.numClasses, lc = config.loss
  let (bsz, h, w) = (labels.batch, labels.height, labels.width)
  precondition(out.head.logits.shape[0] == bsz && out.head.logits.shape[3] == n
                 && out.inputHeight == h && out.inputWidth == w,
               "losses: logits \(out.head.logits.shape) for a \(out.inputHeight)×\(out.inputWidth) input vs labels [\(bsz), \(h), \(w)] and \(n) classes")
  let norm = normalizers ?? LossNormalizers.local(labels, numClasses: n, loss: lc)
  let present = labels.presence(numClasses: n, ignoreIndex: lc.ignoreIndex)

  // L_seg: pixel CE of the logits upsampled to label size (fused: the upsampled
  // tensor is never stored), mean over valid pixels.
  let seg = upsampledCrossEntropy(logits: out.head.logits, height: h, width: w, labels: labels.values,
                                  ignoreIndex: lc.ignoreIndex, normalizer: max(norm.validPixels, 1))

  // L_cls: slot n's target is n if present, else "absent" (N) with weight eos_coef.
  let targets = (0..<(bsz * n)).map { present[$0] ? Int32($0 % n) : Int32(n) }
  let cls = crossEntropy(logits: out.head.classLogits, labels: targets, ignoreIndex: -1,
                         classWeights: [Float](repeating: 1, count: n) + [lc.eosCoef],
                         normalizer: max(norm.classWeight, 1e-12))

  // Focal and dice on M_sum of the present classes, at label size. Bilinear
  // resizing acts on each mask alone, so the present masks are picked first
  // ([B, h1, w1, N] → [B·N, h1, w1] → [M, h1, w1]) and upsampled inside the
  // fused op, which never stores the [M, H·W] logits, targets or gradients.
  let picks = present.indices.filter { present[$0] }
  let focal: Var, dice: Var
  if picks.isEmpty {
    focal = Var(Tensor(scalar: 0)); dice = Var(Tensor(scalar: 0))
  } else {
    let ms = out.head.maskSum
    let (h1, w1) = (ms.shape[1], ms.shape[2])
    let rows = gatherRows(permute(ms, [0, 3, 1, 2]).reshaped([bsz * n, h1 * w1]), indices: picks.map { Int32($0) })
    let targets = picks.map { MaskTarget(image: $0 / n, cls: Int32($0 % n)) }  // ignored pixels match no class
    let sums = upsampledMaskLosses(masks: rows.reshaped([picks.count, h1, w1]), height: h, width: w,
                                   labels: labels.values, targets: targets, alpha: lc.focalAlpha, gamma: lc.focalGamma)
    let masks = max(norm.masks, 1)
    focal = sums.focal * Float(1 / (Double(h * w) * masks))  // mean per mask, Σ masks, / masks
    dice = sums.dice * Float(1 / masks)
  }

  let div = out.head.diversitySum * Float(1 / max(norm.images, 1))
  let total = seg * lc.seg + cls * lc.cls + focal * lc.focal + dice * lc.dice + div * lc.div
  return LossTerms(seg: seg, cls: cls, focal: focal, dice: dice, div: div, total: total)
}
