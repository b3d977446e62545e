// Loss kernels: softmax cross-entropy with ignore index and class weights,
// sigmoid focal loss (elementwise) and per-row dice loss. Not here: label
// smoothing, soft-label CE, reductions of focal/dice (the caller sums them).
//
// Letters: M rows (leading positions), K classes (last axis of the logits),
// P elements per dice row. Sums over rows are in Double, in fixed row blocks
// (`blockedColumnSums`), so a loss reproduces bit for bit on any thread count.
import Foundation

// MARK: Cross-entropy

/// Σ of the class weights of the non-ignored labels: the divisor of PyTorch's
/// reduction="mean". The trainer allreduces it for global-batch normalisation.
public func crossEntropyWeightSum(labels: [Int32], ignoreIndex: Int32 = 255, classWeights: [Float]? = nil) -> Double {
  var s = 0.0
  for l in labels where l != ignoreIndex { s += classWeights.map { Double($0[Int(l)]) } ?? 1 }
  return s
}

/// log Σ_k exp(x[k]) over one row, shifted by its max. The exps go to
/// `scratch` (K floats) to be summed in 16 lanes (expShifted): a running sum
/// kept the loop scalar, and the upsampled segmentation CE (150 classes per
/// pixel) spent ≈ 3% of a Swin-T step here.
@inline(__always)
func logSumExp(_ x: UnsafePointer<Float>, _ K: Int, scratch: UnsafeMutablePointer<Float>) -> Float {
  let m = rowMax(x, K)
  return m + logf(expShifted(x, into: scratch, K, m))
}

/// lse[m] = log Σ_K exp(x[m, k]) and loss = Σ_m w[label]·(lse − x[label]) over non-ignored rows.
func crossEntropyForward(lse: UnsafeMutablePointer<Float>, logits x: UnsafePointer<Float>, labels: [Int32],
                         ignoreIndex: Int32, classWeights: [Float]?, rows: Int, K: Int) -> Double {
  labels.withUnsafeBufferPointer { lb in
    blockedColumnSums(rows: rows, width: 1, rowCost: K) { r, acc in
      let scratch = Tensor(uninitialized: [K])
      for row in r {
        let xi = x + row * K
        let l = logSumExp(xi, K, scratch: scratch.data)
        lse[row] = l
        let label = lb[row]
        if label == ignoreIndex { continue }
        let w = classWeights.map { $0[Int(label)] } ?? 1
        acc[0] += Double(w) * Double(l - xi[Int(label)])
      }
    }[0]
  }
}

/// dx[m, k] += g·w[label]/divisor·(softmax(x)[m, k] − [k == label]); ignored rows get nothing.
func crossEntropyBackward(dx: UnsafeMutablePointer<Float>, scale: Float, lse: UnsafePointer<Float>,
                          logits x: UnsafePointer<Float>, labels: [Int32], ignoreIndex: Int32,
                          classWeights: [Float]?, rows: Int, K: Int) {
  labels.withUnsafeBufferPointer { lb in
    Parallel.forRange(rows, grain: max(1, (1 << 14) / max(1, K))) { r in
      for row in r {
        let label = lb[row]
        if label == ignoreIndex { continue }
        let f = scale * (classWeights.map { $0[Int(label)] } ?? 1)
        let xi = x + row * K, di = dx + row * K, l = lse[row]
        for k in 0..<K { di[k] += f * fastExp(xi[k] - l) }
        di[Int(label)] -= f
      }
    }
  }
}

/// F.cross_entropy over the last axis of logits [..., K] with integer labels
/// (one per leading position), ignore index and optional class weights.
/// Returns the SUM of (weighted) per-position losses divided by `normalizer`
/// when given (global-batch normalisation), else by the local weight sum
/// (PyTorch's reduction="mean"; NaN when every label is ignored, as there).
public func crossEntropy(logits: Var, labels: [Int32], ignoreIndex: Int32 = 255,
                         classWeights: [Float]? = nil, normalizer: Double? = nil) -> Var {
  let K = logits.shape.last ?? 0, rows = logits.count / max(1, K)
  precondition(labels.count == rows, "crossEntropy: \(labels.count) labels for logits \(logits.shape)")
  precondition(classWeights == nil || classWeights!.count == K,
               "crossEntropy: \(classWeights?.count ?? 0) class weights for \(K) classes")
  for l in labels where l != ignoreIndex {
    precondition(l >= 0 && Int(l) < K, "crossEntropy: label \(l) outside 0..<\(K) (ignore index \(ignoreIndex))")
  }
  let xv = logits.value
  let lse = Tensor(uninitialized: [rows])
  let total = crossEntropyForward(lse: lse.data, logits: xv.data, labels: labels, ignoreIndex: ignoreIndex,
                                  classWeights: classWeights, rows: rows, K: K)
  let divisor = normalizer ?? crossEntropyWeightSum(labels: labels, ignoreIndex: ignoreIndex, classWeights: classWeights)
  return makeResult(Tensor(scalar: Float(total / divisor)), inputs: [logits]) { g in
    crossEntropyBackward(dx: logits.gradBuffer().data, scale: Float(Double(g.scalar) / divisor), lse: lse.data,
                         logits: xv.data, labels: labels, ignoreIndex: ignoreIndex, classWeights: classWeights,
                         rows: rows, K: K)
  }
}

// MARK: Cross-entropy of bilinearly upsampled logits

// The segmentation loss of every mmseg decode head is CE of the logits
// upsampled to the label size: at ADE20K 640² with 150 classes that tensor, and
// its gradient, are 246 MB each per image, written and read several times.
// The fused op keeps neither: the forward upsamples one output line at a time
// into a scratch line and reduces it to its per-pixel log-sum-exp; the backward
// recomputes each output line's softmax gradient when the low-resolution lines
// that read it need it (a small cache holds the lines shared by neighbours)
// and gathers it straight into the low-resolution gradient. Values and
// gradients equal crossEntropy(resizeBilinear(x)) exactly: the same line
// kernel, the same per-pixel formulas, the same gather order.

/// crossEntropy(logits: resizeBilinear(logits, height, width), labels, …)
/// without materialising the upsampled logits. logits [B, h, w, K];
/// labels [B·height·width]; no class weights (the segmentation loss has none).
public func upsampledCrossEntropy(logits: Var, height: Int, width: Int, labels: [Int32],
                                  ignoreIndex: Int32 = 255, normalizer: Double? = nil) -> Var {
  precondition(logits.shape.count == 4, "upsampledCrossEntropy: logits \(logits.shape) must be [B, h, w, K]")
  let (B, H, W, K) = (logits.shape[0], logits.shape[1], logits.shape[2], logits.shape[3])
  precondition(labels.count == B * height * width,
               "upsampledCrossEntropy: \(labels.count) labels for \(B)×\(height)×\(width) pixels")
  for l in labels where l != ignoreIndex {
    precondition(l >= 0 && Int(l) < K, "upsampledCrossEntropy: label \(l) outside 0..<\(K) (ignore index \(ignoreIndex))")
  }
  let ty = bilinearTaps(input: H, output: height), tx = bilinearTaps(input: W, output: width)
  let xv = logits.value, xp = xv.data
  let lse = Tensor(uninitialized: [B * height * width])
  let lp = lse.data
  let total = labels.withUnsafeBufferPointer { lb in
    blockedColumnSums(rows: B * height, width: 1, rowCost: width * K) { lines, acc in
      let zBuf = Tensor(uninitialized: [width * K]), scratch = Tensor(uninitialized: [K])  // this block's upsampled line
      let z = zBuf.data
      for line in lines {
        let b = line / height
        bilinearLine(out: z, image: xp + b * H * W * K, width: W, channels: K, tapY: ty[line % height], tapsX: tx)
        for ox in 0..<width {
          let pix = line * width + ox, zi = z + ox * K
          let l = logSumExp(zi, K, scratch: scratch.data)
          lp[pix] = l
          let label = lb[pix]
          if label != ignoreIndex { acc[0] += Double(l - zi[Int(label)]) }
        }
      }
    }[0]
  }
  let divisor = normalizer ?? crossEntropyWeightSum(labels: labels, ignoreIndex: ignoreIndex)
  let shape = xv.shape
  return makeResult(Tensor(scalar: Float(total / divisor)), inputs: [logits]) { g in
    upsampledCrossEntropyBackward(dx: logits.gradBuffer(), scale: Float(Double(g.scalar) / divisor), lse: lse,
                                  logits: xv, inputShape: shape, tapsY: ty, tapsX: tx, labels: labels,
                                  ignoreIndex: ignoreIndex)
  }
}

/// dx += adjoint of the upsampling applied to dz = scale·(softmax(z) − onehot(label)) per
/// output pixel (0 when ignored), gathered per low-resolution line as separableAdjointBackward.
func upsampledCrossEntropyBackward(dx: Tensor, scale: Float, lse: Tensor, logits x: Tensor, inputShape: [Int],
                                   tapsY: [LinearTap], tapsX: [LinearTap], labels: [Int32], ignoreIndex: Int32) {
  let (B, H, W, K) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
  let (Ho, Wo) = (tapsY.count, tapsX.count)
  let ay = inverseTaps(tapsY, input: H), ax = inverseTaps(tapsX, input: W)
  let (ys, yo, yw) = (ay.start, ay.output, ay.weight)
  var maxReads = 1
  for i in 0..<H { maxReads = max(maxReads, ys[i + 1] - ys[i]) }
  // Consecutive low-resolution lines share output lines; a cache of twice the
  // most lines one of them reads keeps every shared line computed once per task.
  let slots = 2 * maxReads + 2
  let dp = dx.data, xp = x.data, lp = lse.data
  labels.withUnsafeBufferPointer { lb in
    Parallel.forRange(B * H, grain: max(1, 4096 / max(1, W * K))) { r in
      let cache = Tensor(uninitialized: [slots * Wo * K])
      var tag = [Int](repeating: -1, count: slots)  // output line (b·Ho + oy) held by each slot
      for line in r {
        let b = line / H, iy = line % H
        for ky in ys[iy]..<ys[iy + 1] {
          let outLine = b * Ho + yo[ky], slot = outLine % slots, grow = cache.data + slot * Wo * K
          if tag[slot] != outLine {
            tag[slot] = outLine
            bilinearLine(out: grow, image: xp + b * H * W * K, width: W, channels: K, tapY: tapsY[yo[ky]], tapsX: tapsX)
            for ox in 0..<Wo {
              let pix = outLine * Wo + ox, zi = grow + ox * K, label = lb[pix]
              if label == ignoreIndex { zi.update(repeating: 0, count: K); continue }
              let l = lp[pix]
              for k in 0..<K { zi[k] = scale * fastExp(zi[k] - l) }
              zi[Int(label)] -= scale
            }
          }
          addAdjointLine(into: dp + line * W * K, from: grow, weight: yw[ky], ax, width: W, channels: K)
        }
      }
    }
  }
  withExtendedLifetime((ay, ax)) {}
}

// MARK: Sigmoid focal loss

/// torchvision.ops.sigmoid_focal_loss, reduction "none":
/// p = σ(x); ce = BCE-with-logits(x, t); p_t = p·t + (1−p)(1−t);
/// loss = α_t·ce·(1 − p_t)^γ with α_t = α·t + (1−α)(1−t) (α < 0: no weighting).
/// 1 − p is computed as σ(−x), so saturated logits keep their digits.
public func sigmoidFocalLoss(logits: Var, targets: Tensor, alpha: Float = 0.25, gamma: Float = 2) -> Var {
  precondition(targets.count == logits.count, "sigmoidFocalLoss: targets \(targets.shape) for logits \(logits.shape)")
  let xv = logits.value, n = xv.count
  let y = Tensor(uninitialized: xv.shape)
  let xp = xv.data, tp = targets.data, yp = y.data
  // One exp and one log per element, branch-free, so the loop vectorises; the
  // old loop made five libm calls (2 × sigmoid's expf, expf, log1pf, powf) per
  // element and was ≈ 18% of a Swin-T 512² b2 step profile (the 150-class
  // logits at full resolution). Measured in `bench step` (2 threads, old/new
  // binaries alternated, min of 2 × 2 steps, load ≈ 2–3): Swin-T 512² b2 step
  // 14.85 → 10.74 s. `sigmoidFocalReference` is the plain libm loop.
  // The γ test is outside the loops: a powf call anywhere in a loop body stops it vectorising.
  let square = gamma == 2
  Parallel.forRange(n, grain: pointwiseGrain) { r in
    if square {
      for i in r { yp[i] = focalValue(focalTerms(xp[i], tp[i], alpha: alpha), gamma: 2, square: true) }
    } else {
      for i in r { yp[i] = focalValue(focalTerms(xp[i], tp[i], alpha: alpha), gamma: gamma, square: false) }
    }
  }
  return makeResult(y, inputs: [logits]) { g in
    focalBackward(dx: logits.gradBuffer().data, g: PerElementGradient(p: g.data), x: xv.data, t: targets.data,
                  count: n, alpha: alpha, gamma: gamma)
    withExtendedLifetime((xv, targets)) {}
  }
}

/// Σ of sigmoidFocalLoss over every element, as one scalar op: the same
/// gradient as `sigmoidFocalLoss(...).sum()`, bit for bit, without storing the
/// per-element losses or the all-equal gradient the sum hands back (each the
/// size of the logits: 246 MB per tensor for ECENet's 150 masks at 640²).
public func sigmoidFocalLossSum(logits: Var, targets: Tensor, alpha: Float = 0.25, gamma: Float = 2) -> Var {
  precondition(targets.count == logits.count, "sigmoidFocalLossSum: targets \(targets.shape) for logits \(logits.shape)")
  let xv = logits.value, n = xv.count
  let xp = xv.data, tp = targets.data
  let chunk = 4096, square = gamma == 2
  let total = blockedColumnSums(rows: (n + chunk - 1) / chunk, width: 1, rowCost: chunk) { chunks, acc in
    let buf = Tensor(uninitialized: [chunk])  // this block's per-element losses
    let yp = buf.data
    for c in chunks {
      let lo = c * chunk, m = min(chunk, n - lo)
      if square {
        for i in 0..<m { yp[i] = focalValue(focalTerms(xp[lo + i], tp[lo + i], alpha: alpha), gamma: 2, square: true) }
      } else {
        for i in 0..<m { yp[i] = focalValue(focalTerms(xp[lo + i], tp[lo + i], alpha: alpha), gamma: gamma, square: false) }
      }
      acc[0] += Double(rowSum(yp, m))
    }
  }[0]
  return makeResult(Tensor(scalar: Float(total)), inputs: [logits]) { g in
    focalBackward(dx: logits.gradBuffer().data, g: UniformGradient(value: g.scalar), x: xv.data, t: targets.data,
                  count: n, alpha: alpha, gamma: gamma)
    withExtendedLifetime((xv, targets)) {}
  }
}

/// d(loss)/d(output element i): one per element, or one for all (a summed loss).
protocol ElementGradient { subscript(_ i: Int) -> Float { get } }
struct PerElementGradient: ElementGradient {
  let p: UnsafePointer<Float>
  @inline(__always) subscript(_ i: Int) -> Float { p[i] }
}
struct UniformGradient: ElementGradient {
  let value: Float
  @inline(__always) subscript(_ i: Int) -> Float { value }
}

/// dx[i] += g[i]·d focal(x[i], t[i])/dx  (specialised per gradient kind, so both loops vectorise):
/// d/dx = α_t·[(p − t)·q^γ + ce·γ·q^(γ−1)·dq/dx],  dq/dx = p(1−p)(1 − 2t).
@inline(__always)
func focalBackward<G: ElementGradient>(dx d: UnsafeMutablePointer<Float>, g gp: G, x xp: UnsafePointer<Float>,
                                       t tp: UnsafePointer<Float>, count n: Int, alpha: Float, gamma: Float) {
  Parallel.forRange(n, grain: pointwiseGrain) { r in
    if gamma == 2 {
      for i in r { let t = tp[i], f = focalTerms(xp[i], t, alpha: alpha); d[i] += gp[i] * f.at * focalSlope(f, t, gamma: 2, square: true) }
    } else {
      for i in r { let t = tp[i], f = focalTerms(xp[i], t, alpha: alpha); d[i] += gp[i] * f.at * focalSlope(f, t, gamma: gamma, square: false) }
    }
  }
}

/// One element's focal loss α_t·ce·q^γ from its focalTerms (literal `square`: see focalSlope).
@inline(__always)
func focalValue(_ f: FocalTerms, gamma: Float, square: Bool) -> Float {
  square ? f.at * f.ce * (f.q * f.q) : f.at * f.ce * powf(f.q, gamma)
}

/// d focal/dx ÷ α_t from one element's focalTerms. Call it with a literal
/// `square` (γ = 2: q^γ = q·q, γ·q^(γ−1) = 2q) from a loop chosen outside:
/// a powf call anywhere in a loop body stops it vectorising.
@inline(__always)
func focalSlope(_ f: FocalTerms, _ t: Float, gamma: Float, square: Bool) -> Float {
  let q = f.q
  if square { return (f.p - t) * (q * q) + f.ce * 2 * q * f.p * f.q0 * (1 - 2 * t) }
  let qg = powf(q, gamma)
  // q^(γ−1)·p(1−p) → 0 as q → 0 for γ > 0; write it as q^γ/q only when q > 0.
  let focal: Float = q > 0 && gamma != 0 ? f.ce * gamma * (qg / q) * f.p * f.q0 * (1 - 2 * t) : 0
  return (f.p - t) * qg + focal
}

/// One element's focal-loss terms (focalTerms).
typealias FocalTerms = (p: Float, q0: Float, ce: Float, q: Float, at: Float)

/// Per element of the focal loss: p = σ(x), q0 = σ(−x) = 1 − p (without
/// cancellation), ce = BCE-with-logits, q = 1 − p_t, α_t. Shares one e^−|x|.
@inline(__always)
func focalTerms(_ x: Float, _ t: Float, alpha: Float) -> FocalTerms {
  let e = fastExp(-abs(x))
  let inv = 1 / (1 + e)
  let p = x >= 0 ? inv : e * inv, q0 = x >= 0 ? e * inv : inv
  let ce = max(x, 0) - x * t + fastLog1p(e)
  let q = q0 * t + p * (1 - t)
  let at: Float = alpha >= 0 ? alpha * t + (1 - alpha) * (1 - t) : 1
  return (p, q0, ce, q, at)
}

/// The plain libm form of the focal loss forward (torchvision's
/// sigmoid_focal_loss, reduction none): the reference the fast loop replaced.
func sigmoidFocalReference(_ x: Float, _ t: Float, alpha: Float, gamma: Float) -> Float {
  let p = stableSigmoid(x), q0 = stableSigmoid(-x)
  let ce = max(x, 0) - x * t + log1pf(expf(-abs(x)))
  let q = q0 * t + p * (1 - t)
  let at: Float = alpha >= 0 ? alpha * t + (1 - alpha) * (1 - t) : 1
  return at * ce * powf(q, gamma)
}

// MARK: Dice loss

/// Dice loss per row: logits [M, P], targets [M, P] in {0,1}; returns [M] with
/// 1 − (2Σ σ(x)·t + 1)/(Σσ(x) + Σt + 1) (SegViT / mmseg).
public func diceLoss(logits: Var, targets: Tensor) -> Var {
  precondition(logits.shape.count == 2 && targets.count == logits.count,
               "diceLoss: logits \(logits.shape) must be [M, P], targets \(targets.shape) the same size")
  let M = logits.shape[0], P = logits.shape[1]
  // fastSigmoid (vectorises) instead of libm's expf: dice was ≈ 2% of a Swin-T 512² b2 step
  // profile; the step gain (with relu's select) was within the run-to-run noise (±10%).
  let xv = logits.value, xp = xv.data, tp = targets.data
  // Saved per row: numerator 2Σσt + 1 and denominator Σσ + Σt + 1.
  var num = [Double](repeating: 0, count: M), den = [Double](repeating: 0, count: M)
  let y = Tensor(uninitialized: [M])
  num.withUnsafeMutableBufferPointer { nb in
    den.withUnsafeMutableBufferPointer { db in
      let np = nb.baseAddress!, dp = db.baseAddress!, yp = y.data
      Parallel.forRange(M, grain: max(1, (1 << 14) / max(1, P))) { r in
        // σ of a chunk into scratch (a loop that vectorises), then the chunk's
        // three sums in 16 Float lanes (rowDot/rowSum), added up in Double:
        // one Double chain per element kept this loop scalar.
        let chunk = 1024
        let sBuf = Tensor(uninitialized: [chunk])
        let sp = sBuf.data
        for row in r {
          var st = 0.0, ss = 0.0, tt = 0.0
          var j0 = 0
          while j0 < P {
            let n = min(chunk, P - j0), x = xp + row * P + j0, t = tp + row * P + j0
            for j in 0..<n { sp[j] = fastSigmoid(x[j]) }
            st += Double(rowDot(sp, t, n)); ss += Double(rowSum(sp, n)); tt += Double(rowSum(t, n))
            j0 += n
          }
          np[row] = 2 * st + 1; dp[row] = ss + tt + 1
          yp[row] = Float(1 - np[row] / dp[row])
        }
      }
    }
  }
  return makeResult(y, inputs: [logits]) { g in
    // dL/dσ_j = −(2t_j·den − num)/den²; dσ/dx = σ(1−σ).
    let d = logits.gradBuffer().data, gp = g.data, xp = xv.data, tp = targets.data  // keeps both alive
    Parallel.forRange(M, grain: max(1, (1 << 14) / max(1, P))) { r in
      for row in r {
        let nu = Float(num[row]), de = Float(den[row]), f = gp[row] / (de * de)
        for j in 0..<P {
          let i = row * P + j, s = fastSigmoid(xp[i])
          d[i] += -f * (2 * tp[i] * de - nu) * s * (1 - s)
        }
      }
    }
  }
}
