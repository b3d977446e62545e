// Resizing and pixel shuffle on channels-last maps, matching F.interpolate
// (bilinear with align_corners=False; legacy "nearest") and nn.PixelShuffle.
// Letters: B batch; H, W input size; Ho, Wo output size; C channels; r factor.
// x [B, H, W, C] → y [B, Ho, Wo, C]. Interpolation tables are computed once per
// axis (index and weight per output row/column), so the pixel loops only move
// contiguous C-vectors. Backward gathers per input line through the inverse
// tables instead of scattering, so threads never write the same element.
// Not here: align_corners=True, scale_factor-driven coordinates, bicubic,
// antialiasing, "nearest-exact".

// MARK: Bilinear

/// One output index's two source taps along an axis: x[i0]·w0 + x[i1]·w1.
struct LinearTap { var i0: Int; var i1: Int; var w0: Float; var w1: Float }

/// PyTorch's upsample_bilinear2d taps for align_corners=False with no explicit
/// scale: src = max(in/out · (dst + 0.5) − 0.5, 0) in Float, i0 = ⌊src⌋,
/// i1 = i0 + (i0 < in − 1 ? 1 : 0), w1 = clamp(src − i0, 0, 1), w0 = 1 − w1.
func bilinearTaps(input n: Int, output m: Int) -> [LinearTap] {
  let scale = Float(n) / Float(m)
  return (0..<m).map { dst in
    let src = max(scale * (Float(dst) + 0.5) - 0.5, 0)
    let i0 = min(Int(src), n - 1)
    let i1 = i0 + (i0 < n - 1 ? 1 : 0)
    let w1 = min(max(src - Float(i0), 0), 1)
    return LinearTap(i0: i0, i1: i1, w0: 1 - w1, w1: w1)
  }
}

/// The adjoint of a per-axis resampling table, in CSR form: input index i is read
/// by output `output[k]` with weight `weight[k]` for k in start[i]..<start[i+1].
/// Flat pointers rather than [[Int]]: an inner array per pixel would retain and
/// release a shared buffer on every access, from every thread. Backward kernels
/// gather through it per input line, so no two threads write the same element.
final class AxisAdjoint: @unchecked Sendable {
  let start: UnsafeMutablePointer<Int>
  let output: UnsafeMutablePointer<Int>
  let weight: UnsafeMutablePointer<Float>

  /// `reads` lists (input, output, weight) in increasing output order; zero weights are dropped.
  init(inputs n: Int, reads: [(input: Int, output: Int, weight: Float)]) {
    let kept = reads.filter { $0.weight != 0 }
    start = .allocate(capacity: n + 1)
    start.initialize(repeating: 0, count: n + 1)
    for r in kept { start[r.input + 1] += 1 }
    for i in 0..<n { start[i + 1] += start[i] }
    output = .allocate(capacity: max(1, kept.count))
    weight = .allocate(capacity: max(1, kept.count))
    var fill = (0..<n).map { start[$0] }
    for r in kept { let k = fill[r.input]; output[k] = r.output; weight[k] = r.weight; fill[r.input] += 1 }
  }

  deinit { start.deallocate(); output.deallocate(); weight.deallocate() }
}

/// dx[b, iy, ix, :] += Σ_{(oy, wy) reading iy} Σ_{(ox, wx) reading ix} wy·wx·dy[b, oy, ox, :]:
/// the backward of any separable resampling (bilinear, nearest, adaptive
/// average pooling), gathered per input line so no two threads write the same
/// element. dy is [B, outputHeight, outputWidth, C].
func separableAdjointBackward(dx: Tensor, dy: Tensor, inputShape: [Int], ay: AxisAdjoint, ax: AxisAdjoint,
                              outputHeight Ho: Int, outputWidth Wo: Int) {
  let (B, H, W, C) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
  let (ys, yo, yw) = (ay.start, ay.output, ay.weight)
  let dp = dx.data, gp = dy.data
  Parallel.forRange(B * H, grain: max(1, 4096 / max(1, W * C))) { r in
    for line in r {
      let b = line / H, iy = line % H
      for ky in ys[iy]..<ys[iy + 1] {
        addAdjointLine(into: dp + line * W * C, from: gp + (b * Ho + yo[ky]) * Wo * C, weight: yw[ky], ax, width: W,
                       channels: C)
      }
    }
  }
  withExtendedLifetime((ay, ax)) {}
}

/// d[ix, :] += wy·Σ_{(ox, wx) reading ix} wx·g[ox, :] for every input column
/// ix of one line: one output line's share of a separable adjoint (the caller
/// keeps `ax` alive).
@inline(__always)
func addAdjointLine(into d: UnsafeMutablePointer<Float>, from g: UnsafePointer<Float>, weight wy: Float,
                    _ ax: AxisAdjoint, width W: Int, channels C: Int) {
  let (xs, xo, xw) = (ax.start, ax.output, ax.weight)
  for ix in 0..<W {
    let o = d + ix * C
    for kx in xs[ix]..<xs[ix + 1] {
      let w = wy * xw[kx], src = g + xo[kx] * C
      for c in 0..<C { o[c] += w * src[c] }
    }
  }
}

/// The adjoint of a bilinear tap table.
func inverseTaps(_ taps: [LinearTap], input n: Int) -> AxisAdjoint {
  var reads: [(input: Int, output: Int, weight: Float)] = []
  for (o, t) in taps.enumerated() { reads.append((t.i0, o, t.w0)); reads.append((t.i1, o, t.w1)) }
  return AxisAdjoint(inputs: n, reads: reads)
}

/// F.interpolate(mode="bilinear", align_corners=False).
public func resizeBilinear(_ x: Var, height: Int, width: Int) -> Var {
  precondition(x.shape.count == 4, "resizeBilinear: input \(x.shape) must be [B, H, W, C]")
  precondition(height >= 1 && width >= 1 && x.shape[1] >= 1 && x.shape[2] >= 1,
               "resizeBilinear: \(x.shape) to \(height)×\(width)")
  let (B, H, W, C) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let ty = bilinearTaps(input: H, output: height), tx = bilinearTaps(input: W, output: width)
  let y = Tensor(uninitialized: [B, height, width, C])
  bilinearForward(out: y, x: x.value, tapsY: ty, tapsX: tx)
  let shape = x.shape
  return makeResult(y, inputs: [x]) { dy in
    bilinearBackward(dx: x.gradBuffer(), dy: dy, inputShape: shape, tapsY: ty, tapsX: tx)
  }
}

/// y[b, oy, ox] = wy0·(wx0·x[y0, x0] + wx1·x[y0, x1]) + wy1·(wx0·x[y1, x0] + wx1·x[y1, x1]),
/// PyTorch's order of operations.
func bilinearForward(out y: Tensor, x: Tensor, tapsY: [LinearTap], tapsX: [LinearTap]) {
  let (H, W, C) = (x.shape[1], x.shape[2], x.shape[3])
  let (Ho, Wo) = (tapsY.count, tapsX.count)
  let xp = x.data, yp = y.data
  Parallel.forRange(y.shape[0] * Ho, grain: max(1, 4096 / max(1, Wo * C))) { r in
    for line in r {
      let b = line / Ho
      bilinearLine(out: yp + line * Wo * C, image: xp + b * H * W * C, width: W, channels: C,
                   tapY: tapsY[line % Ho], tapsX: tapsX)
    }
  }
}

/// One output line of bilinearForward: out[ox, c] for every ox, from the input
/// image `image` [H, W, C] (the fused upsample-and-loss kernels share it, so
/// they see exactly the values resizeBilinear would have made).
@inline(__always)
func bilinearLine(out o: UnsafeMutablePointer<Float>, image: UnsafePointer<Float>, width W: Int, channels C: Int,
                  tapY t: LinearTap, tapsX: [LinearTap]) {
  let r0 = image + t.i0 * W * C, r1 = image + t.i1 * W * C
  tapsX.withUnsafeBufferPointer { tx in
    for ox in 0..<tx.count {
      let u = tx[ox], oi = o + ox * C
      let a00 = r0 + u.i0 * C, a01 = r0 + u.i1 * C, a10 = r1 + u.i0 * C, a11 = r1 + u.i1 * C
      for c in 0..<C {
        oi[c] = t.w0 * (u.w0 * a00[c] + u.w1 * a01[c]) + t.w1 * (u.w0 * a10[c] + u.w1 * a11[c])
      }
    }
  }
}

/// dx[b, iy, ix] += Σ_{(oy, wy) reading iy} Σ_{(ox, wx) reading ix} wy·wx·dy[b, oy, ox].
func bilinearBackward(dx: Tensor, dy: Tensor, inputShape: [Int], tapsY: [LinearTap], tapsX: [LinearTap]) {
  separableAdjointBackward(dx: dx, dy: dy, inputShape: inputShape,
                           ay: inverseTaps(tapsY, input: inputShape[1]), ax: inverseTaps(tapsX, input: inputShape[2]),
                           outputHeight: tapsY.count, outputWidth: tapsX.count)
}

// MARK: Nearest

/// PyTorch's legacy nearest source index: identity when sizes match, dst >> 1
/// when exactly doubling, else min(⌊dst · (in/out)⌋, in − 1) in Float.
func nearestIndices(input n: Int, output m: Int) -> [Int] {
  if m == n { return Array(0..<m) }
  if m == 2 * n { return (0..<m).map { $0 >> 1 } }
  let scale = Float(n) / Float(m)
  return (0..<m).map { min(Int((Float($0) * scale).rounded(.down)), n - 1) }
}

/// F.interpolate(mode="nearest"): source index floor(dst · in/out).
public func resizeNearest(_ x: Var, height: Int, width: Int) -> Var {
  precondition(x.shape.count == 4, "resizeNearest: input \(x.shape) must be [B, H, W, C]")
  precondition(height >= 1 && width >= 1 && x.shape[1] >= 1 && x.shape[2] >= 1,
               "resizeNearest: \(x.shape) to \(height)×\(width)")
  let (B, H, W, C) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let sy = nearestIndices(input: H, output: height), sx = nearestIndices(input: W, output: width)
  let y = Tensor(uninitialized: [B, height, width, C])
  let xp = x.value.data, yp = y.data
  Parallel.forRange(B * height, grain: max(1, 4096 / max(1, width * C))) { r in
    for line in r {
      let row = xp + (line / height * H + sy[line % height]) * W * C
      for ox in 0..<width { (yp + (line * width + ox) * C).update(from: row + sx[ox] * C, count: C) }
    }
  }
  let shape = x.shape
  return makeResult(y, inputs: [x]) { dy in
    // Each input pixel sums the output pixels that copied it (weight 1, exact).
    let ay = AxisAdjoint(inputs: H, reads: sy.enumerated().map { ($1, $0, 1) })
    let ax = AxisAdjoint(inputs: W, reads: sx.enumerated().map { ($1, $0, 1) })
    separableAdjointBackward(dx: x.gradBuffer(), dy: dy, inputShape: shape, ay: ay, ax: ax,
                             outputHeight: height, outputWidth: width)
  }
}

// MARK: Pixel shuffle

/// nn.PixelShuffle(r): [B, H, W, C·r²] → [B, H·r, W·r, C], with PyTorch's
/// channel order (input channel c·r² + i·r + j goes to output (h·r+i, w·r+j, c)).
public func pixelShuffle(_ x: Var, factor: Int) -> Var {
  let r = factor
  precondition(x.shape.count == 4 && r >= 1 && x.shape[3] % (r * r) == 0,
               "pixelShuffle: input \(x.shape) must be [B, H, W, C·r²] with r = \(r)")
  let (B, H, W, Cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let C = Cin / (r * r), Ho = H * r, Wo = W * r
  let y = Tensor(uninitialized: [B, Ho, Wo, C])
  let xp = x.value.data, yp = y.data
  // One output line (b, h·r + i) reads input line (b, h) only.
  Parallel.forRange(B * Ho, grain: max(1, 4096 / max(1, Wo * C))) { lr in
    for line in lr {
      let i = line % r, inRow = xp + (line / r) * W * Cin
      for w in 0..<W {
        let src = inRow + w * Cin + i * r
        for j in 0..<r {
          let o = yp + (line * Wo + w * r + j) * C, s = src + j
          for c in 0..<C { o[c] = s[c * r * r] }
        }
      }
    }
  }
  return makeResult(y, inputs: [x]) { dy in
    // The exact inverse permutation, accumulated; per input line, so no conflicts.
    let dp = x.gradBuffer().data, gp = dy.data
    Parallel.forRange(B * H, grain: max(1, 4096 / max(1, W * Cin))) { lr in
      for line in lr {
        for i in 0..<r {
          let gRow = gp + (line * r + i) * Wo * C
          for w in 0..<W {
            let dst = dp + (line * W + w) * Cin + i * r
            for j in 0..<r {
              let s = gRow + (w * r + j) * C, d = dst + j
              for c in 0..<C { d[c * r * r] += s[c] }
            }
          }
        }
      }
    }
  }
}
