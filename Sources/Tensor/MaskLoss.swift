// Focal and dice losses of bilinearly upsampled masks, fused (ECENet spec §6:
// L_focal and L_dice on the present classes' M_sum at label size).
//
// Unfused, the masks [M, h, w] are upsampled to [M, H·W], a 0/1 target tensor
// of that size is built, focal and dice each read both, and the backward writes
// a gradient of that size twice and reads it once more to downsample it: at
// Swin-T 512², batch 2, with 150 present classes, five passes over 315 MB
// tensors and ≈ 10% of a training step (perf, BENCHMARKS.md). This op keeps no
// full-resolution tensor: it works on bands of lines, computes each output
// line z from the two horizontally interpolated source rows it blends, the
// target line from the labels, and reduces or differentiates it on the spot.
//
// Values equal the unfused ops up to summation order: z is bit for bit
// resizeBilinear's (the same horizontal-then-vertical order as bilinearLine),
// the per-element formulas are sigmoidFocalLoss's and diceLoss's, and only the
// grouping of the sums differs. Bands are fixed by the sizes alone, never by
// the thread count, so results are bit-reproducible on any number of threads.
//
// Letters: M masks, h w mask size, H W label (output) size.
// Not here: per-mask (unsummed) results, soft targets, align_corners=True.

/// Mask i's target: the pixels of image `image` whose label is `cls` (others,
/// ignored pixels included, are 0).
public struct MaskTarget: Equatable {
  public let image: Int
  public let cls: Int32
  public init(image: Int, cls: Int32) { self.image = image; self.cls = cls }
}

/// (Σ sigmoidFocalLoss(z, t) over every element, Σ_i diceLoss(z, t)[i]) with
/// z = resizeBilinear(masks) [M, H·W] and t the 0/1 targets of `targets` in
/// `labels` [B, H, W] — as the unfused ops compute them, without their tensors.
public func upsampledMaskLosses(masks: Var, height H: Int, width W: Int, labels: [Int32], targets: [MaskTarget],
                                alpha: Float = 0.25, gamma: Float = 2) -> (focal: Var, dice: Var) {
  precondition(masks.shape.count == 3 && masks.shape[0] == targets.count,
               "upsampledMaskLosses: masks \(masks.shape) must be [M, h, w] with M = \(targets.count) targets")
  precondition(H >= 1 && W >= 1 && labels.count % (H * W) == 0,
               "upsampledMaskLosses: \(labels.count) labels are not whole \(H)×\(W) images")
  for t in targets {
    precondition(t.image >= 0 && t.image < labels.count / (H * W),
                 "upsampledMaskLosses: target image \(t.image) outside 0..<\(labels.count / (H * W))")
  }
  let geo = MaskLossGeometry(masks: masks.shape, height: H, width: W)
  let xv = masks.value
  // Per (mask, band): Σ focal, Σ σ·t, Σ σ, Σ t.
  let bands = geo.outputBands
  let pp = UnsafeMutablePointer<Double>.allocate(capacity: geo.M * bands * 4)
  defer { pp.deallocate() }
  let square = gamma == 2
  labels.withUnsafeBufferPointer { lb in
    Parallel.forRange(geo.M * bands, grain: 1) { r in
      let s = MaskLossScratch(geo)
      for task in r {
        let (i, band) = (task / bands, task % bands)
        let lo = band * geo.outputBandLines, hi = min(geo.H, lo + geo.outputBandLines)
        s.interpolateRows(geo, mask: xv.data + i * geo.h * geo.w, from: geo.ty[lo].i0, through: geo.ty[hi - 1].i1)
        var acc = (focal: 0.0, st: 0.0, ss: 0.0, tt: 0.0)
        for oy in lo..<hi {
          let z = s.blend(geo, line: oy), t = s.targetLine(geo, lb, targets[i], line: oy)
          let y = s.y, p = s.p
          if square {
            for ox in 0..<W { let f = focalTerms(z[ox], t[ox], alpha: alpha); y[ox] = focalValue(f, gamma: 2, square: true); p[ox] = f.p }
          } else {
            for ox in 0..<W { let f = focalTerms(z[ox], t[ox], alpha: alpha); y[ox] = focalValue(f, gamma: gamma, square: false); p[ox] = f.p }
          }
          acc.focal += Double(rowSum(y, W)); acc.st += Double(rowDot(p, t, W))
          acc.ss += Double(rowSum(p, W)); acc.tt += Double(rowSum(t, W))
        }
        let o = pp + task * 4
        o[0] = acc.focal; o[1] = acc.st; o[2] = acc.ss; o[3] = acc.tt
      }
    }
  }
  // Per mask, in band order: the dice numerator 2Σσt + 1 and denominator Σσ + Σt + 1 (kept for the backward).
  var num = [Float](repeating: 0, count: geo.M), den = num
  var focal = 0.0, dice = 0.0
  for i in 0..<geo.M {
    var st = 0.0, ss = 0.0, tt = 0.0
    for b in 0..<bands {
      let o = pp + (i * bands + b) * 4
      focal += o[0]; st += o[1]; ss += o[2]; tt += o[3]
    }
    let nu = 2 * st + 1, de = ss + tt + 1
    num[i] = Float(nu); den[i] = Float(de)
    dice += 1 - nu / de
  }
  let both = makeResult(Tensor(shape: [2], values: [Float(focal), Float(dice)]), inputs: [masks]) { g in
    upsampledMaskLossesBackward(dx: masks.gradBuffer(), focalScale: g.data[0], diceScale: g.data[1], masks: xv,
                                geometry: geo, labels: labels, targets: targets, num: num, den: den,
                                alpha: alpha, gamma: gamma)
  }
  let parts = split(both, sizes: [1, 1], axis: 0)
  return (parts[0].sum(), parts[1].sum())
}

/// dx += the adjoint of the upsampling applied to
/// dz = g_focal·d focal/dz + g_dice·d dice_i/dz, per band of SOURCE rows: a
/// band recomputes the output lines that read its rows (those on its edges are
/// computed by both neighbours), gathers them into its rows of a
/// horizontally-interpolated gradient dH [rows, W] in increasing line order,
/// then adds dH's horizontal adjoint into dx. No two tasks write one element.
func upsampledMaskLossesBackward(dx: Tensor, focalScale gf: Float, diceScale gd: Float, masks x: Tensor,
                                 geometry geo: MaskLossGeometry, labels: [Int32], targets: [MaskTarget],
                                 num: [Float], den: [Float], alpha: Float, gamma: Float) {
  let (h, w, W) = (geo.h, geo.w, geo.W)
  let bands = geo.sourceBands, square = gamma == 2
  let ax = inverseTaps(geo.tx, input: w)
  let (xs, xo, xw) = (ax.start, ax.output, ax.weight)
  labels.withUnsafeBufferPointer { lb in
    Parallel.forRange(geo.M * bands, grain: 1) { r in
      let s = MaskLossScratch(geo)
      let dH = Tensor(uninitialized: [geo.sourceBandRows * W])
      for task in r {
        let (i, band) = (task / bands, task % bands)
        let a = band * geo.sourceBandRows, b = min(h, a + geo.sourceBandRows)
        let dh = dH.data
        dh.update(repeating: 0, count: (b - a) * W)
        s.interpolateRows(geo, mask: x.data + i * h * w, from: max(0, a - 1), through: min(h - 1, b))
        // dice_i = 1 − nu/de: d/dσ_j = −(2t_j·de − nu)/de², dσ/dz = σ(1 − σ).
        let nu = num[i], de = den[i], fd = gd / (de * de)
        for oy in 0..<geo.H {
          let tap = geo.ty[oy]
          let reads0 = tap.w0 != 0 && tap.i0 >= a && tap.i0 < b, reads1 = tap.w1 != 0 && tap.i1 >= a && tap.i1 < b
          if !reads0 && !reads1 { continue }
          let z = s.blend(geo, line: oy), t = s.targetLine(geo, lb, targets[i], line: oy), dz = s.y
          if square {
            for ox in 0..<W {
              let tv = t[ox], f = focalTerms(z[ox], tv, alpha: alpha)
              dz[ox] = gf * f.at * focalSlope(f, tv, gamma: 2, square: true) - fd * (2 * tv * de - nu) * f.p * (1 - f.p)
            }
          } else {
            for ox in 0..<W {
              let tv = t[ox], f = focalTerms(z[ox], tv, alpha: alpha)
              dz[ox] = gf * f.at * focalSlope(f, tv, gamma: gamma, square: false) - fd * (2 * tv * de - nu) * f.p * (1 - f.p)
            }
          }
          if reads0 { let d = dh + (tap.i0 - a) * W, wy = tap.w0; for ox in 0..<W { d[ox] += wy * dz[ox] } }
          if reads1 { let d = dh + (tap.i1 - a) * W, wy = tap.w1; for ox in 0..<W { d[ox] += wy * dz[ox] } }
        }
        for iy in a..<b {
          let d = dx.data + (i * h + iy) * w, g = dh + (iy - a) * W
          for ix in 0..<w {
            var sum: Float = 0
            for k in xs[ix]..<xs[ix + 1] { sum += xw[k] * g[xo[k]] }
            d[ix] += sum
          }
        }
      }
    }
  }
  withExtendedLifetime(ax) {}
}

/// Sizes, interpolation taps and the fixed band split of one upsampledMaskLosses call.
struct MaskLossGeometry {
  let M, h, w, H, W: Int
  let ty, tx: [LinearTap]
  /// Forward: bands of output lines. Backward: bands of source rows (about
  /// the same work when upsampling 4×). Fixed sizes, so sums never depend on
  /// the thread count; small enough that a few masks still fill the threads.
  let outputBandLines, sourceBandRows: Int
  var outputBands: Int { (H + outputBandLines - 1) / outputBandLines }
  var sourceBands: Int { (h + sourceBandRows - 1) / sourceBandRows }

  init(masks shape: [Int], height: Int, width: Int) {
    (M, h, w, H, W) = (shape[0], shape[1], shape[2], height, width)
    ty = bilinearTaps(input: h, output: H); tx = bilinearTaps(input: w, output: W)
    outputBandLines = 64
    sourceBandRows = max(1, 64 * h / max(1, H))
  }
}

/// One task's lines: the horizontally interpolated source rows it needs, and
/// the output line, target line and per-element results it is working on.
final class MaskLossScratch {
  private let rows: Tensor        // [h, W]: row iy interpolated to the output width (only the band's rows are set)
  private let zLine, tLine, yLine, pLine: Tensor
  var y: UnsafeMutablePointer<Float> { yLine.data }
  var p: UnsafeMutablePointer<Float> { pLine.data }

  init(_ geo: MaskLossGeometry) {
    rows = Tensor(uninitialized: [geo.h, geo.W])
    (zLine, tLine, yLine, pLine) = (Tensor(uninitialized: [geo.W]), Tensor(uninitialized: [geo.W]),
                                    Tensor(uninitialized: [geo.W]), Tensor(uninitialized: [geo.W]))
  }

  /// rows[iy] = the horizontal pass of bilinearLine over mask row iy, for iy in lo...hi.
  func interpolateRows(_ geo: MaskLossGeometry, mask: UnsafePointer<Float>, from lo: Int, through hi: Int) {
    geo.tx.withUnsafeBufferPointer { tx in
      for iy in lo...hi {
        let src = mask + iy * geo.w, o = rows.data + iy * geo.W
        for ox in 0..<geo.W { let u = tx[ox]; o[ox] = u.w0 * src[u.i0] + u.w1 * src[u.i1] }
      }
    }
  }

  /// Output line oy of the upsampled mask: bilinearLine's vertical blend of two interpolated rows.
  func blend(_ geo: MaskLossGeometry, line oy: Int) -> UnsafeMutablePointer<Float> {
    let t = geo.ty[oy], r0 = rows.data + t.i0 * geo.W, r1 = rows.data + t.i1 * geo.W, z = zLine.data
    for ox in 0..<geo.W { z[ox] = t.w0 * r0[ox] + t.w1 * r1[ox] }
    return z
  }

  /// The 0/1 target of line oy: label == the mask's class.
  func targetLine(_ geo: MaskLossGeometry, _ labels: UnsafeBufferPointer<Int32>, _ target: MaskTarget,
                  line oy: Int) -> UnsafeMutablePointer<Float> {
    let l = labels.baseAddress! + (target.image * geo.H + oy) * geo.W, t = tLine.data, c = target.cls
    for ox in 0..<geo.W { t[ox] = l[ox] == c ? 1 : 0 }
    return t
  }
}
