// 2-D convolution on channels-last maps, matching F.conv2d (zero padding).
// Letters: B batch; H, W input size; Ho, Wo output size; Cin, Cout channels;
// kh, kw kernel size; G groups (Cin/G, Cout/G channels per group); taps = kh·kw;
// K = (Cin/G)·taps, the length of one im2col row; a "line" is one (b, row) pair.
// x [B, H, W, Cin]; weight [Cout, Cin/G, kh, kw] (PyTorch layout, so checkpoints
// load unchanged); bias [Cout]; y [B, Ho, Wo, Cout].
//
// Five algorithms, all with the same forward/backward contract:
//  - pointwise (1×1, stride 1, pad 0, G = 1): channels-last makes this exactly
//    F.linear over B·H·W rows, i.e. one sgemm, with no copy at all.
//  - im2col (everything else, any G): gathers each output pixel's receptive
//    field into a row of a pooled column buffer in (ci, ky, kx) order, which is
//    PyTorch's weight order, so weight [Cout, K] is B-transposed in one sgemm.
//    Done over chunks of output lines so the buffer stays bounded (≈32 MB).
//  - shifted (stride 1, G = 1, k×k): no columns at all. With x zero-padded
//    once into xp [B, H+2p, W+2p, Cin] and rows numbered over the padded width,
//    tap (ky, kx) of every output pixel is the same padded-row matrix shifted
//    by (ky·d·(W+2p) + kx·d) rows, so the conv is taps GEMMs [rows, Cin]·W_tapᵀ
//    accumulated into one [rows, Cout] buffer, whose 2p junk columns per row
//    are dropped (4% extra work at 48², 1.5% at 128²). im2col instead copies
//    each input element taps times with a channel stride of taps: 0.86 of
//    sgemm on the FR fuse conv, against ≈ 0.95 for this (BENCHMARKS.md).
//    On our kernels the forward is one taps-summing GEMM (each block of xp
//    packed once for all taps), dW one K-shifted taps GEMM (dW_tapᵀ =
//    (xp shifted)ᵀ·dy, each block of xp packed once for all taps), and dx
//    the forward's taps GEMM again, over dy with the shifts reversed.
//  - winograd (3×3, stride 1, padding 1, G = 1, channels multiples of 16, in
//    fp32; Winograd.swift): F(2×2, 3×3), 16 products per 2×2 outputs instead
//    of 36, as 16 GEMMs over channels between add-only transforms. Forward,
//    dx and dW (the FR fuse conv: forward 568 → 332–342 ms, with its backward
//    1718 → 976–1000 ms).
//  - depthwise (G == Cin == Cout): a direct loop; a GEMM with K = taps would be
//    all overhead. The inner loop runs over contiguous channels, so it
//    vectorises, and it touches x once per tap instead of building columns.
//    3×3 / stride 1 / padding 1 (the only one ECENet runs) has line kernels
//    of its own (see "Depth-wise 3×3" below).
// Backward never scatters in parallel: dX is gathered per input line (each
// input pixel sums the output pixels that saw it), so no two threads write the
// same element and the result does not depend on the thread schedule.
// Not here: transposed conv, non-zero padding modes, per-axis stride/padding.

import CShims
import Foundation

/// Sizes of one convolution, validated once.
public struct Conv2dGeometry: Equatable, Sendable {
  public let batch, height, width, inChannels, outChannels: Int
  public let kernelH, kernelW, stride, padding, dilation, groups: Int
  public let outHeight, outWidth: Int

  public init(input: [Int], weight: [Int], stride: Int, padding: Int, dilation: Int, groups: Int) {
    precondition(input.count == 4, "conv2d: input \(input) must be [B, H, W, Cin]")
    precondition(weight.count == 4, "conv2d: weight \(weight) must be [Cout, Cin/groups, kh, kw]")
    precondition(stride >= 1 && padding >= 0 && dilation >= 1 && groups >= 1,
                 "conv2d: stride \(stride), padding \(padding), dilation \(dilation), groups \(groups)")
    precondition(input[3] % groups == 0 && weight[0] % groups == 0,
                 "conv2d: groups \(groups) must divide Cin \(input[3]) and Cout \(weight[0])")
    precondition(weight[1] * groups == input[3],
                 "conv2d: weight \(weight) with groups \(groups) expects Cin \(weight[1] * groups), input \(input)")
    batch = input[0]; height = input[1]; width = input[2]; inChannels = input[3]; outChannels = weight[0]
    kernelH = weight[2]; kernelW = weight[3]
    self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
    outHeight = (height + 2 * padding - dilation * (kernelH - 1) - 1) / stride + 1
    outWidth = (width + 2 * padding - dilation * (kernelW - 1) - 1) / stride + 1
    precondition(height + 2 * padding >= dilation * (kernelH - 1) + 1 && width + 2 * padding >= dilation * (kernelW - 1) + 1,
                 "conv2d: kernel \(kernelH)×\(kernelW) (dilation \(dilation)) larger than padded input \(input) (padding \(padding))")
  }

  public var outputShape: [Int] { [batch, outHeight, outWidth, outChannels] }
  var taps: Int { kernelH * kernelW }
  var groupIn: Int { inChannels / groups }
  var groupOut: Int { outChannels / groups }
}

public enum Conv2dAlgorithm: Sendable {
  case pointwise, im2col, depthwise, shifted, winograd

  /// The fastest algorithm that applies.
  public static func choose(for g: Conv2dGeometry) -> Conv2dAlgorithm {
    if g.kernelH == 1 && g.kernelW == 1 && g.stride == 1 && g.padding == 0 && g.groups == 1 { return .pointwise }
    if g.groups > 1 && g.groups == g.inChannels && g.groups == g.outChannels { return .depthwise }
    if Conv2dTuning.winograd && g.winogradApplies && g.inChannels * g.outChannels >= Conv2dTuning.winogradMinimumChannelProduct
      && GEMMPrecision.current == .fp32 { return .winograd }
    if g.stride == 1 && g.groups == 1 { return .shifted }
    return .im2col
  }

  /// The op's name in `bench step --profile` (OpProfile): one row per algorithm.
  var profileName: StaticString {
    switch self {
    case .pointwise: return "conv2d 1×1"
    case .im2col: return "conv2d im2col"
    case .depthwise: return "conv2d depth-wise"
    case .shifted: return "conv2d shifted taps"
    case .winograd: return "conv2d winograd"
    }
  }

  func check(_ g: Conv2dGeometry) {
    switch self {
    case .pointwise:
      precondition(g.kernelH == 1 && g.kernelW == 1 && g.stride == 1 && g.padding == 0 && g.groups == 1,
                   "conv2d: pointwise algorithm needs a 1×1, stride 1, padding 0, groups 1 conv, got \(g)")
    case .depthwise:
      precondition(g.groups == g.inChannels && g.groups == g.outChannels,
                   "conv2d: depthwise algorithm needs groups == Cin == Cout, got \(g)")
    case .shifted:
      precondition(g.stride == 1 && g.groups == 1, "conv2d: shifted algorithm needs stride 1 and groups 1, got \(g)")
    case .winograd:
      precondition(g.winogradApplies, "conv2d: winograd algorithm needs a 3×3, stride 1, padding = dilation, groups 1 conv with channels multiples of 16, got \(g)")
    case .im2col: break
    }
  }
}

/// F.conv2d on channels-last x [B, H, W, Cin] with weight [Cout, Cin/groups, kh, kw].
public func conv2d(_ x: Var, weight: Var, bias: Var?, stride: Int = 1, padding: Int = 0,
                   dilation: Int = 1, groups: Int = 1) -> Var {
  let g = Conv2dGeometry(input: x.shape, weight: weight.shape, stride: stride, padding: padding,
                         dilation: dilation, groups: groups)
  return conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                groups: groups, algorithm: .choose(for: g))
}

/// conv2d with an explicit algorithm (tests compare the algorithms with each other).
public func conv2d(_ x: Var, weight: Var, bias: Var?, stride: Int = 1, padding: Int = 0,
                   dilation: Int = 1, groups: Int = 1, algorithm: Conv2dAlgorithm) -> Var {
  let g = Conv2dGeometry(input: x.shape, weight: weight.shape, stride: stride, padding: padding,
                         dilation: dilation, groups: groups)
  if let b = bias { precondition(b.count == g.outChannels, "conv2d: bias \(b.shape) for weight \(weight.shape)") }
  let y = Tensor(uninitialized: g.outputShape)
  conv2dForward(out: y, x: x.value, weight: weight.value, bias: bias?.value, geometry: g, algorithm: algorithm)
  let (xv, wv) = (x.value, weight.value)
  return makeResult(y, inputs: [x, weight, bias], op: algorithm.profileName) { dy in
    let dx = x.requiresGrad ? x.gradDestination() : nil
    conv2dBackward(dx: dx?.tensor, accumulateDx: dx?.accumulate ?? true,
                   dWeight: weight.requiresGrad ? weight.gradBuffer() : nil,
                   dBias: bias?.requiresGrad == true ? bias!.gradBuffer() : nil,
                   dy: dy, x: xv, weight: wv, geometry: g, algorithm: algorithm)
  }
}

/// y = conv(x, weight) + bias, overwriting y [B, Ho, Wo, Cout].
public func conv2dForward(out y: Tensor, x: Tensor, weight: Tensor, bias: Tensor?,
                          geometry g: Conv2dGeometry, algorithm: Conv2dAlgorithm) {
  algorithm.check(g)
  switch algorithm {
  case .pointwise:
    linearForward(out: y.reshaped([-1, g.outChannels]), x: x.reshaped([-1, g.inChannels]),
                  weight: weight.reshaped([g.outChannels, g.inChannels]), bias: bias)
  case .im2col: im2colConvForward(out: y, x: x, weight: weight, bias: bias, g)
  case .depthwise: depthwiseConvForward(out: y, x: x, weight: weight, bias: bias, g)
  case .shifted: shiftedConvForward(out: y, x: x, weight: weight, bias: bias, g)
  case .winograd:
    // Dilated: the same conv on x's phases (WinogradPhases), merged back into y.
    let u = winogradFilters(weight, cout: g.outChannels, cin: g.inChannels, transposed: false)
    let ph = WinogradPhases(dilated: g), (batch, height, width) = ph?.extent ?? (g.batch, g.height, g.width)
    let xp = ph?.split(x.data, channels: g.inChannels) ?? x
    let yp = ph?.phaseTensor(channels: g.outChannels) ?? y
    winogradConv3x3(out: yp.data, accumulate: false, x: xp.data, batch: batch, height: height, width: width,
                    inChannels: g.inChannels, outChannels: g.outChannels, filters: u, bias: bias?.data)
    ph?.merge(yp, into: y.data, channels: g.outChannels, accumulate: false)
  }
}

/// dx += ∂/∂x, dWeight += ∂/∂w, dBias += ∂/∂b (each optional) given dy [B, Ho, Wo, Cout].
/// `accumulateDx` false: dx is overwritten instead (the 1×1 GEMM and the 3×3
/// depth-wise line kernel write it; the other algorithms add taps into it, so it
/// is zeroed for them first).
public func conv2dBackward(dx: Tensor?, accumulateDx: Bool = true, dWeight: Tensor?, dBias: Tensor?, dy: Tensor,
                           x: Tensor, weight: Tensor, geometry g: Conv2dGeometry, algorithm: Conv2dAlgorithm) {
  algorithm.check(g)
  if let dx = dx, !accumulateDx, algorithm == .im2col || algorithm == .shifted { dx.zero() }
  switch algorithm {
  case .pointwise:
    linearBackward(dx: dx?.reshaped([-1, g.inChannels]), accumulateDx: accumulateDx, dWeight: dWeight?.reshaped([g.outChannels, g.inChannels]),
                   dBias: dBias, dy: dy.reshaped([-1, g.outChannels]), x: x.reshaped([-1, g.inChannels]),
                   weight: weight.reshaped([g.outChannels, g.inChannels]))
  case .im2col:
    im2colConvBackward(dx: dx, dWeight: dWeight, dy: dy, x: x, weight: weight, g)
  case .depthwise:
    depthwiseConvBackward(dx: dx, accumulateDx: accumulateDx, dWeight: dWeight, dBias: dBias, dy: dy, x: x,
                          weight: weight, g)
  case .shifted:
    shiftedConvBackward(dx: dx, dWeight: dWeight, dy: dy, x: x, weight: weight, g)
  case .winograd:
    // dx: the same conv of dy with the filters rotated and transposed; dW through the same transforms.
    // Dilated: the same on the phases of dy and x (zero where padded, so they add nothing).
    let ph = WinogradPhases(dilated: g), (batch, height, width) = ph?.extent ?? (g.batch, g.height, g.width)
    let dyp = ph?.split(dy.data, channels: g.outChannels) ?? dy
    if let dx = dx {
      let u = winogradFilters(weight, cout: g.outChannels, cin: g.inChannels, transposed: true)
      let dxp = ph?.phaseTensor(channels: g.inChannels) ?? dx
      winogradConv3x3(out: dxp.data, accumulate: ph == nil && accumulateDx, x: dyp.data, batch: batch, height: height,
                      width: width, inChannels: g.outChannels, outChannels: g.inChannels, filters: u, bias: nil)
      ph?.merge(dxp, into: dx.data, channels: g.inChannels, accumulate: accumulateDx)
    }
    if let dw = dWeight {
      // x's phases again, not kept from the forward: holding that copy of x
      // until backward would add to the step's peak memory.
      let xp = ph?.split(x.data, channels: g.inChannels) ?? x
      winogradWeightGradient(dw, x: xp.data, dy: dyp.data, batch: batch, height: height, width: width,
                             inChannels: g.inChannels, outChannels: g.outChannels)
    }
  }
  // The 1×1 (linearBackward) and depth-wise kernels sum dBias in their own
  // passes; for the others it is the column sums of dy.
  if let db = dBias, algorithm != .pointwise && algorithm != .depthwise {
    addColumnSums(into: db.data, of: dy.data, rows: dy.count / g.outChannels, columns: g.outChannels)
  }
}

// MARK: im2col + GEMM

/// Tunables of the im2col path.
public enum Conv2dTuning {
  /// Float budget of the column buffer (default 8 Mi floats = 32 MB); chunks of
  /// output lines are sized to it. Tests shrink it to exercise chunk boundaries.
  nonisolated(unsafe) public static var im2colBufferFloats = 1 << 23
  /// The 3×3 same depth-wise conv on its line kernels (Mix-FFN's DWConv); tests
  /// turn it off to compare with the generic depth-wise loops.
  nonisolated(unsafe) public static var depthwise3x3Lines = true
  /// Outputs of the 3×3 depth-wise line kernels at least this large (the
  /// last-level cache here) are stored past the caches
  /// (`ecenet_store16_nontemporal`): they cannot stay cached for the next op
  /// anyway, and this saves reading each line before it is overwritten
  /// (forward 11.2 → 9.7 ms at 160²×1024). Tests set 0 to run that store.
  nonisolated(unsafe) public static var nonTemporalStoreMinimumBytes = 32 << 20
  /// The shifted algorithm's forward on one taps-summing GEMM per row block
  /// (`PackedGEMMKernel.runTaps`) and its weight gradient on one K-shifted taps
  /// GEMM (`runKTaps`) where our kernels run; tests turn it off to compare with
  /// one GEMM per tap.
  nonisolated(unsafe) public static var shiftedTapsKernel = true
  /// 3×3 / stride 1 / padding 1 convs (channels multiples of 16, Cin·Cout at
  /// least `winogradMinimumChannelProduct`) on Winograd F(2×2, 3×3) in fp32
  /// (Winograd.swift): forward, dx and dW; off, they take the shifted algorithm.
  /// `ECENET_WINOGRAD=0` turns it off for a run (the direct sums, for
  /// comparisons).
  nonisolated(unsafe) public static var winograd = ProcessInfo.processInfo.environment["ECENET_WINOGRAD"] != "0"

  nonisolated(unsafe) public static var winogradMinimumChannelProduct = 64 * 64
  /// Floats of transformed input per chunk of tiles (16·tiles·Cin; at least 64
  /// tiles): 4 Mi floats = 16 MB. Tests shrink it to cross chunk boundaries.
  nonisolated(unsafe) public static var winogradChunkFloats = 1 << 22
}

/// How many output lines one chunk holds so that lines·Wo·K ≤ the budget (at least one).
func im2colChunkLines(_ g: Conv2dGeometry) -> Int {
  max(1, min(g.batch * g.outHeight, Conv2dTuning.im2colBufferFloats / max(1, g.outWidth * g.groupIn * g.taps)))
}

/// cols[(line − lines.lo)·Wo + ox, ci·taps + ky·kw + kx] = x[b, oy·s − p + ky·d, ox·s − p + kx·d, c0 + ci]
/// (0 outside the image), for ci < cg: one group's receptive fields, PyTorch's (ci, ky, kx) order.
func im2col(cols: UnsafeMutablePointer<Float>, x: UnsafePointer<Float>, lines: Range<Int>,
            channelOffset c0: Int, channels cg: Int, _ g: Conv2dGeometry) {
  let (H, W, C, Ho, Wo) = (g.height, g.width, g.inChannels, g.outHeight, g.outWidth)
  let (kh, kw, s, p, d, taps) = (g.kernelH, g.kernelW, g.stride, g.padding, g.dilation, g.taps)
  let K = cg * taps, lo = lines.lowerBound
  Parallel.forRange(lines.count, grain: max(1, 16384 / max(1, Wo * K))) { r in
    for li in r {
      let line = lo + li, b = line / Ho, oy = line % Ho
      for ox in 0..<Wo {
        let row = cols + (li * Wo + ox) * K
        for ky in 0..<kh {
          let iy = oy * s - p + ky * d
          for kx in 0..<kw {
            let ix = ox * s - p + kx * d
            let dst = row + ky * kw + kx
            if iy < 0 || iy >= H || ix < 0 || ix >= W {
              for c in 0..<cg { dst[c * taps] = 0 }
            } else {
              let src = x + ((b * H + iy) * W + ix) * C + c0
              for c in 0..<cg { dst[c * taps] = src[c] }
            }
          }
        }
      }
    }
  }
}

/// dx[b, iy, ix, c0 + ci] += Σ dcols[row of (b, oy, ox), ci·taps + ky·kw + kx] over the taps with
/// iy = oy·s − p + ky·d, ix = ox·s − p + kx·d and (b, oy) in `lines`. The adjoint of `im2col`,
/// gathered per input line so threads never write the same element.
func col2imAdd(dx: UnsafeMutablePointer<Float>, dcols: UnsafePointer<Float>, lines: Range<Int>,
               channelOffset c0: Int, channels cg: Int, _ g: Conv2dGeometry) {
  let (H, W, C, Ho, Wo) = (g.height, g.width, g.inChannels, g.outHeight, g.outWidth)
  let (kh, kw, s, p, d, taps) = (g.kernelH, g.kernelW, g.stride, g.padding, g.dilation, g.taps)
  let K = cg * taps, lo = lines.lowerBound
  // The input lines this chunk of output lines can reach.
  var inputLines: [Int] = []
  let bLo = lines.lowerBound / Ho, bHi = (lines.upperBound - 1) / Ho
  for b in bLo...bHi {
    let oyLo = b == bLo ? lines.lowerBound % Ho : 0, oyHi = b == bHi ? (lines.upperBound - 1) % Ho : Ho - 1
    let iyLo = max(0, oyLo * s - p), iyHi = min(H - 1, oyHi * s - p + (kh - 1) * d)
    if iyLo <= iyHi { for iy in iyLo...iyHi { inputLines.append(b * H + iy) } }
  }
  inputLines.withUnsafeBufferPointer { il in
    Parallel.forRange(il.count, grain: max(1, 16384 / max(1, W * K))) { r in
      for i in r {
        let b = il[i] / H, iy = il[i] % H
        for ky in 0..<kh {
          let ty = iy + p - ky * d
          if ty < 0 || ty % s != 0 { continue }
          let line = b * Ho + ty / s
          if ty / s >= Ho || !lines.contains(line) { continue }
          let crow = dcols + (line - lo) * Wo * K + ky * kw
          for ix in 0..<W {
            let dst = dx + ((b * H + iy) * W + ix) * C + c0
            for kx in 0..<kw {
              let tx = ix + p - kx * d
              if tx < 0 || tx % s != 0 || tx / s >= Wo { continue }
              let src = crow + (tx / s) * K + kx
              for c in 0..<cg { dst[c] += src[c * taps] }
            }
          }
        }
      }
    }
  }
}

func im2colConvForward(out y: Tensor, x: Tensor, weight: Tensor, bias: Tensor?, _ g: Conv2dGeometry) {
  let (Wo, Co, cg, og) = (g.outWidth, g.outChannels, g.groupIn, g.groupOut)
  let K = cg * g.taps, totalLines = g.batch * g.outHeight, chunk = im2colChunkLines(g)
  let cols = Tensor(uninitialized: [chunk * Wo * K])  // pooled; reused by every chunk and group
  var l0 = 0
  while l0 < totalLines {
    let lines = l0..<min(totalLines, l0 + chunk), rows = lines.count * Wo
    for grp in 0..<g.groups {
      im2col(cols: cols.data, x: x.data, lines: lines, channelOffset: grp * cg, channels: cg, g)
      // y[rows, og] = cols[rows, K] · W_g[og, K]ᵀ (+ bias_g)
      let (w, out) = (weight.data + grp * og * K, y.data + l0 * Wo * Co + grp * og)
      if let bias = bias {
        gemmAddingBias(transA: false, transB: true, m: rows, n: og, k: K, a: cols.data, lda: K, b: w, ldb: K,
                       bias: bias.data + grp * og, c: out, ldc: Co)
      } else {
        gemm(transA: false, transB: true, m: rows, n: og, k: K, a: cols.data, lda: K, b: w, ldb: K, beta: 0,
             c: out, ldc: Co)
      }
    }
    l0 = lines.upperBound
  }
}

/// dWeight += dyᵀ·cols (columns recomputed per chunk rather than kept from the
/// forward: memory stays bounded); dx += col2im(dy·W).
func im2colConvBackward(dx: Tensor?, dWeight: Tensor?, dy: Tensor, x: Tensor, weight: Tensor, _ g: Conv2dGeometry) {
  if dx == nil && dWeight == nil { return }
  let (Wo, Co, cg, og) = (g.outWidth, g.outChannels, g.groupIn, g.groupOut)
  let K = cg * g.taps, totalLines = g.batch * g.outHeight, chunk = im2colChunkLines(g)
  let cols = Tensor(uninitialized: [chunk * Wo * K])
  var l0 = 0
  while l0 < totalLines {
    let lines = l0..<min(totalLines, l0 + chunk), rows = lines.count * Wo
    for grp in 0..<g.groups {
      let dyg = dy.data + l0 * Wo * Co + grp * og
      if let dw = dWeight {
        im2col(cols: cols.data, x: x.data, lines: lines, channelOffset: grp * cg, channels: cg, g)
        // dW_g[og, K] += dy_gᵀ[og, rows] · cols[rows, K]
        gemm(transA: true, transB: false, m: og, n: K, k: rows, a: dyg, lda: Co, b: cols.data, ldb: K,
             beta: 1, c: dw.data + grp * og * K, ldc: K)
      }
      if let dx = dx {
        // dcols[rows, K] = dy_g[rows, og] · W_g[og, K], then scattered back onto the input.
        gemm(transA: false, transB: false, m: rows, n: K, k: og, a: dyg, lda: Co, b: weight.data + grp * og * K,
             ldb: K, beta: 0, c: cols.data, ldc: K)
        col2imAdd(dx: dx.data, dcols: cols.data, lines: lines, channelOffset: grp * cg, channels: cg, g)
      }
    }
    l0 = lines.upperBound
  }
}

// MARK: Shifted GEMMs (stride 1, groups 1)

/// The padded-row frame of the shifted algorithm: images of Hp×Wp padded
/// pixels stacked; output pixel (b, oy, ox) is padded row b·Hp·Wp + oy·Wp + ox,
/// and tap (ky, kx) reads padded row (that + ky·d·Wp + kx·d). `rows` stops at
/// the last real output pixel, so no tap reads past the last padded image.
struct ShiftedFrame {
  let hp, wp, rows: Int
  init(_ g: Conv2dGeometry) {
    hp = g.height + 2 * g.padding; wp = g.width + 2 * g.padding
    rows = (g.batch - 1) * hp * wp + (g.outHeight - 1) * wp + g.outWidth
  }
  func shift(_ g: Conv2dGeometry, tap t: Int) -> Int {
    (t / g.kernelW) * g.dilation * wp + (t % g.kernelW) * g.dilation
  }
  /// Every tap's shift, in tap order (the taps GEMMs' offsets).
  func shifts(_ g: Conv2dGeometry) -> [Int] { (0..<g.taps).map { shift(g, tap: $0) } }
}

/// Copies between x [B, H, W, C] and the interior of padded [B, Hp, Wp, C]
/// (`toPadded`: zero borders, copy in; otherwise add the interior into x).
func padCopy(_ x: UnsafeMutablePointer<Float>, _ padded: UnsafeMutablePointer<Float>, _ g: Conv2dGeometry,
             _ f: ShiftedFrame, toPadded: Bool) {
  let (H, W, C, p) = (g.height, g.width, g.inChannels, g.padding)
  Parallel.forRange(g.batch * f.hp, grain: max(1, 16384 / max(1, f.wp * C))) { r in
    for pl in r {
      let b = pl / f.hp, py = pl % f.hp, row = padded + pl * f.wp * C
      let interior = py >= p && py < p + H
      if toPadded {
        guard interior else { row.update(repeating: 0, count: f.wp * C); continue }
        row.update(repeating: 0, count: p * C)
        (row + (p + W) * C).update(repeating: 0, count: p * C)
        (row + p * C).update(from: x + (b * H + py - p) * W * C, count: W * C)
      } else if interior {
        let dst = x + (b * H + py - p) * W * C, src = row + p * C
        for i in 0..<(W * C) { dst[i] += src[i] }
      }
    }
  }
}

/// weight [Cout, Cin, kh, kw] → [taps, Cout, Cin] (one [Cout, Cin] matrix per tap).
func tapMatrices(_ w: Tensor, _ g: Conv2dGeometry) -> Tensor {
  let (Co, Ci, taps) = (g.outChannels, g.inChannels, g.taps)
  let t = Tensor(uninitialized: [taps, Co, Ci])
  let src = w.data, dst = t.data
  Parallel.forRange(Co, grain: 8) { r in
    for co in r { for ci in 0..<Ci { for k in 0..<taps { dst[(k * Co + co) * Ci + ci] = src[(co * Ci + ci) * taps + k] } } }
  }
  return t
}

func shiftedConvForward(out y: Tensor, x: Tensor, weight: Tensor, bias: Tensor?, _ g: Conv2dGeometry) {
  let f = ShiftedFrame(g)
  let (Ci, Co, Ho, Wo) = (g.inChannels, g.outChannels, g.outHeight, g.outWidth)
  let xpad = Tensor(uninitialized: [g.batch * f.hp * f.wp * Ci])
  padCopy(x.data, xpad.data, g, f, toPadded: true)
  let wt = tapMatrices(weight, g)
  let acc = Tensor(uninitialized: [f.rows * Co])
  if Conv2dTuning.shiftedTapsKernel, let kernel = packedKernelForGEMMPrecision() {
    // One pass: xp packed once per row block for all taps, C written once per K block.
    kernel.runTaps(m: f.rows, n: Co, k: Ci, offsets: f.shifts(g), a: xpad.data, lda: Ci,
                   transB: true, b: wt.data, ldb: Ci, tapStride: Co * Ci, beta: 0, c: acc.data, ldc: Co)
  } else {
    for t in 0..<g.taps {  // acc (+)= xp shifted · W_tapᵀ
      gemm(transA: false, transB: true, m: f.rows, n: Co, k: Ci, a: xpad.data + f.shift(g, tap: t) * Ci, lda: Ci,
           b: wt.data + t * Co * Ci, ldb: Ci, beta: t == 0 ? 0 : 1, c: acc.data, ldc: Co)
    }
  }
  let yp = y.data, ap = acc.data, bp = bias?.data
  Parallel.forRange(g.batch * Ho, grain: max(1, 16384 / max(1, Wo * Co))) { r in
    for line in r {
      let b = line / Ho, oy = line % Ho
      let src = ap + (b * f.hp * f.wp + oy * f.wp) * Co, dst = yp + line * Wo * Co
      if let bp = bp {
        for ox in 0..<Wo { for c in 0..<Co { dst[ox * Co + c] = src[ox * Co + c] + bp[c] } }
      } else {
        dst.update(from: src, count: Wo * Co)
      }
    }
  }
}

/// dW_tap += dyPᵀ·(xp shifted); dxp[shifted] += dyP·W_tap; with dyP = dy in the
/// padded-row frame, zero in the junk columns (so they add nothing to either).
func shiftedConvBackward(dx: Tensor?, dWeight: Tensor?, dy: Tensor, x: Tensor, weight: Tensor, _ g: Conv2dGeometry) {
  if dx == nil && dWeight == nil { return }
  let f = ShiftedFrame(g)
  let (Ci, Co, Ho, Wo, taps) = (g.inChannels, g.outChannels, g.outHeight, g.outWidth, g.taps)
  let kernel = Conv2dTuning.shiftedTapsKernel ? packedKernelForGEMMPrecision() : nil
  let shifts = f.shifts(g), span = shifts.max() ?? 0, padded = g.batch * f.hp * f.wp
  // With the taps kernel, dx reads up to `span` rows before dyP's first row
  // and past its last, to row `padded` (see below), so dyP sits between zero
  // rows: `lead` in front, zeros behind up to `padded + span` rows in all.
  let tapsDx = kernel != nil && dx != nil
  let lead = tapsDx ? span : 0, frameRows = tapsDx ? padded + span : f.rows
  let dyFrame = Tensor(uninitialized: [frameRows * Co])
  dyFrame.data.update(repeating: 0, count: lead * Co)
  let dyp = dyFrame.data + lead * Co, gp = dy.data
  (dyp + f.rows * Co).update(repeating: 0, count: (frameRows - lead - f.rows) * Co)
  Parallel.forRange(f.rows / f.wp + 1, grain: max(1, 16384 / max(1, f.wp * Co))) { r in
    for pl in r {  // padded row pl of the frame: image pl / hp, output line pl % hp (junk when ≥ Ho)
      let lo = pl * f.wp, hi = min(f.rows, lo + f.wp)
      if lo >= hi { continue }
      let dst = dyp + lo * Co, b = pl / f.hp, oy = pl % f.hp
      let valid = oy < Ho ? min(Wo, hi - lo) : 0
      if valid > 0 { dst.update(from: gp + (b * Ho + oy) * Wo * Co, count: valid * Co) }
      (dst + valid * Co).update(repeating: 0, count: (hi - lo - valid) * Co)
    }
  }
  let xpad = Tensor(uninitialized: [padded * Ci])
  if let dw = dWeight {
    padCopy(x.data, xpad.data, g, f, toPadded: true)
    // dW_tapᵀ [Ci, Co] = (xp shifted)ᵀ·dyP per tap, then added into dW [Co, Ci, taps].
    let dwt = Tensor(uninitialized: [taps, Ci, Co])
    if let kernel = kernel {
      // All taps in one pass: dyP packed once, each block of xp once for every tap.
      kernel.runKTaps(m: Ci, n: Co, k: f.rows, offsets: shifts, a: xpad.data,
                      lda: Ci, b: dyp, ldb: Co, beta: 0, c: dwt.data, ldc: Co, tapStride: Ci * Co)
    } else {
      for t in 0..<taps {
        gemm(transA: true, transB: false, m: Ci, n: Co, k: f.rows, a: xpad.data + shifts[t] * Ci, lda: Ci,
             b: dyp, ldb: Co, beta: 0, c: dwt.data + t * Ci * Co, ldc: Co)
      }
    }
    let src = dwt.data, dst = dw.data
    Parallel.forRange(Co, grain: 8) { r in
      for co in r { for ci in 0..<Ci { for k in 0..<taps { dst[(co * Ci + ci) * taps + k] += src[(k * Ci + ci) * Co + co] } } }
    }
  }
  if let dx = dx {
    let wt = tapMatrices(weight, g)
    let dxp = xpad.data  // reused as the padded dx
    if let kernel = kernel {
      // dxp[r] = Σ_t dyP[r − s_t]·W_t: the forward's taps GEMM with offsets
      // span − s_t into the zero-led frame (row r + span − s_t of it is dyP's
      // row r − s_t, or a zero row). One pass writes every row of dxp once;
      // one GEMM per tap read and wrote all of dxp per tap, after a zero fill
      // (the 3×3 fuse conv at 160²: 105 MB, ten times).
      kernel.runTaps(m: padded, n: Ci, k: Co, offsets: shifts.map { span - $0 }, a: dyFrame.data, lda: Co,
                     transB: false, b: wt.data, ldb: Ci, tapStride: Co * Ci, beta: 0, c: dxp, ldc: Ci)
    } else {
      dxp.update(repeating: 0, count: xpad.count)
      for t in 0..<taps {  // one tap after another: their row ranges overlap
        gemm(transA: false, transB: false, m: f.rows, n: Ci, k: Co, a: dyp, lda: Co,
             b: wt.data + t * Co * Ci, ldb: Ci, beta: 1, c: dxp + shifts[t] * Ci, ldc: Ci)
      }
    }
    padCopy(dx.data, dxp, g, f, toPadded: false)
  }
}

// MARK: Depth-wise

/// weight [C, 1, kh, kw] → [taps, C], so a tap's weights are contiguous across channels.
func tapMajorWeights(_ w: Tensor, _ g: Conv2dGeometry) -> Tensor {
  let C = g.outChannels, taps = g.taps
  let t = Tensor(uninitialized: [taps, C])
  for c in 0..<C { for k in 0..<taps { t.data[k * C + c] = w.data[c * taps + k] } }
  return t
}

/// out[c] = start[c] (0 when nil) + Σ_t x[taps[t].0 + c]·w[taps[t].1 + c] for c < C, the
/// taps in order: 16 channels at a time held in a register across all taps and
/// stored once (a plain per-tap loop reads and writes the output once per tap).
/// `start` may be `out` itself (accumulate).
@inline(__always)
func tapSum(out o: UnsafeMutablePointer<Float>, start: UnsafePointer<Float>?, channels C: Int,
            taps: UnsafePointer<(Int, Int)>, count n: Int, x: UnsafePointer<Float>, w: UnsafePointer<Float>) {
  var c = 0
  while c + 16 <= C {
    var acc = start.map { load16($0 + c) } ?? SIMD16<Float>()
    for t in 0..<n { acc += load16(x + taps[t].0 + c) * load16(w + taps[t].1 + c) }
    store16(o + c, acc)
    c += 16
  }
  while c < C {
    var acc = start?[c] ?? 0
    for t in 0..<n { acc += x[taps[t].0 + c] * w[taps[t].1 + c] }
    o[c] = acc; c += 1
  }
}

/// y[b, oy, ox, c] = bias[c] + Σ_{ky,kx} x[b, oy·s − p + ky·d, ox·s − p + kx·d, c] · w[c, 0, ky, kx]
func depthwiseConvForward(out y: Tensor, x: Tensor, weight: Tensor, bias: Tensor?, _ g: Conv2dGeometry) {
  let (H, W, C, Ho, Wo) = (g.height, g.width, g.inChannels, g.outHeight, g.outWidth)
  let (kh, kw, s, p, d) = (g.kernelH, g.kernelW, g.stride, g.padding, g.dilation)
  let wt = tapMajorWeights(weight, g)
  let xp = x.data, yp = y.data, wp = wt.data, bp = bias?.data
  if g.isDepthwise3x3Same && Conv2dTuning.depthwise3x3Lines {
    let zeros = Tensor.zeros([W * C])  // the rows above and below the image
    let zp = UnsafePointer(zeros.data), bypass = y.count * 4 >= Conv2dTuning.nonTemporalStoreMinimumBytes
    Parallel.forRange(g.batch * Ho, grain: max(1, 8192 / max(1, Wo * C * 9))) { r in
      for line in r {
        let rows = Depthwise3x3Rows(xp, line: line, height: H, rowFloats: W * C, zeros: zp)
        depthwise3x3Line(out: yp + line * Wo * C, rows: rows, width: W, channels: C, taps: wp,
                         start: bp.map { .bias($0) } ?? .zero, bypassCache: bypass)
      }
      if bypass { ecenet_store_fence() }  // the streamed lines, before the pool reports this chunk done
    }
    return
  }
  Parallel.forRange(g.batch * Ho, grain: max(1, 8192 / max(1, Wo * C * g.taps))) { r in
    // The taps inside the image for one output pixel: (input offset, weight offset).
    withUnsafeTemporaryAllocation(of: (Int, Int).self, capacity: g.taps) { tapBuf in
      let tapList = tapBuf.baseAddress!
      for line in r {
        let b = line / Ho, oy = line % Ho
        for ox in 0..<Wo {
          var n = 0
          for ky in 0..<kh {
            let iy = oy * s - p + ky * d
            if iy < 0 || iy >= H { continue }
            for kx in 0..<kw {
              let ix = ox * s - p + kx * d
              if ix < 0 || ix >= W { continue }
              tapList[n] = (((b * H + iy) * W + ix) * C, (ky * kw + kx) * C); n += 1
            }
          }
          tapSum(out: yp + (line * Wo + ox) * C, start: bp, channels: C, taps: tapList, count: n, x: xp, w: wp)
        }
      }
    }
  }
}

// MARK: Depth-wise 3×3, stride 1, padding 1 (Mix-FFN's DWConv)
//
// The one depth-wise shape ECENet runs, at up to 160²×1024 per image, gets
// kernels of its own. Along a line, each 16-channel block keeps its 9 taps in
// registers and slides a 3×3 window of input vectors over the pixels: 3 loads
// and 9 FMAs per 16 outputs, where the generic tapSum loads 18 vectors and
// rebuilds a tap list per pixel (1.7× the time at 160²×1024; BENCHMARKS.md). The
// pixels go in tiles outside the channel blocks so that memory is read in
// contiguous runs (blocks outside the pixels measured slower).
// dX is the same correlation of dY with the taps flipped (tap t ↔ 8 − t), and
// dW slides the same window of x while holding the 9 tap sums in registers.

extension Conv2dGeometry {
  /// 3×3, stride 1, padding 1, dilation 1, depth-wise: output size = input size.
  var isDepthwise3x3Same: Bool {
    kernelH == 3 && kernelW == 3 && stride == 1 && padding == 1 && dilation == 1
      && groups == inChannels && groups == outChannels
  }
}

/// The three rows (line − 1, line, line + 1 of one image) that a 3×3 line reads.
/// Rows outside the image point at `zeros` (a zero row), so the kernels never
/// branch on them.
struct Depthwise3x3Rows {
  let r0, r1, r2: UnsafePointer<Float>
  subscript(a: Int) -> UnsafePointer<Float> { a == 0 ? r0 : a == 1 ? r1 : r2 }
  init(_ base: UnsafePointer<Float>, line: Int, height H: Int, rowFloats: Int, zeros: UnsafePointer<Float>) {
    let y = line % H, row = base + line * rowFloats
    r0 = y > 0 ? row - rowFloats : zeros
    r1 = row
    r2 = y + 1 < H ? row + rowFloats : zeros
  }
}

/// Where a line's sums start: 0, the bias, or what the output already holds.
enum Depthwise3x3Start { case zero, bias(UnsafePointer<Float>), accumulate }

/// Pixels per tile of the line kernels: the window is re-primed (6 loads) and
/// the taps reloaded (9) once per tile and channel block.
/// 4 measured best at 160²×1024 (forward 11.3 ms; 2: 12.3, 6: 11.8, 16: 13.8):
/// longer tiles keep more 4 KiB-strided lines in flight at once.
let depthwise3x3Tile = 4


/// The 16 channels at c of column x of the three rows (zeros outside the image).
@inline(__always)
private func column16(_ rows: Depthwise3x3Rows, _ x: Int, width W: Int, channels C: Int, _ c: Int)
  -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
  if x < 0 || x >= W { return (.zero, .zero, .zero) }
  let o = x * C + c
  return (load16(rows.r0 + o), load16(rows.r1 + o), load16(rows.r2 + o))
}

/// out[x, c] = start + Σ_{a, b < 3} rows[a][x − 1 + b, c] · taps[3a + b, c] for x < W, c < C,
/// taps in that order (taps is [9, C]); columns −1 and W read as 0. `bypassCache`:
/// store non-temporally where the line allows it (64-byte aligned vectors).
func depthwise3x3Line(out o: UnsafeMutablePointer<Float>, rows: Depthwise3x3Rows, width W: Int, channels C: Int,
                      taps w: UnsafePointer<Float>, start: Depthwise3x3Start, bypassCache: Bool) {
  let streaming = bypassCache && C % 16 == 0 && Int(bitPattern: o) % 64 == 0
  // One specialised copy of the loops per start (no test on it per pixel).
  switch start {
  case .zero: depthwise3x3Line(o, rows, W, C, w, bias: nil, accumulate: false, streaming: streaming)
  case .bias(let bias): depthwise3x3Line(o, rows, W, C, w, bias: bias, accumulate: false, streaming: streaming)
  case .accumulate: depthwise3x3Line(o, rows, W, C, w, bias: nil, accumulate: true, streaming: false)
  }
}

@inline(__always)
private func depthwise3x3Line(_ o: UnsafeMutablePointer<Float>, _ rows: Depthwise3x3Rows, _ W: Int, _ C: Int,
                              _ w: UnsafePointer<Float>, bias: UnsafePointer<Float>?, accumulate: Bool,
                              streaming: Bool) {
  var x0 = 0
  while x0 < W {
    let x1 = min(W, x0 + depthwise3x3Tile)
    var c = 0
    while c + 16 <= C {
      let w0 = load16(w + c), w1 = load16(w + C + c), w2 = load16(w + 2 * C + c)
      let w3 = load16(w + 3 * C + c), w4 = load16(w + 4 * C + c), w5 = load16(w + 5 * C + c)
      let w6 = load16(w + 6 * C + c), w7 = load16(w + 7 * C + c), w8 = load16(w + 8 * C + c)
      let first = bias.map { load16($0 + c) } ?? .zero
      var (a0, a1, a2) = column16(rows, x0 - 1, width: W, channels: C, c)  // left column
      var (b0, b1, b2) = column16(rows, x0, width: W, channels: C, c)      // centre
      for x in x0..<x1 {
        let (n0, n1, n2) = column16(rows, x + 1, width: W, channels: C, c)  // right
        let out = o + x * C + c
        var acc = accumulate ? load16(out) : first
        acc.addProduct(a0, w0); acc.addProduct(b0, w1); acc.addProduct(n0, w2)
        acc.addProduct(a1, w3); acc.addProduct(b1, w4); acc.addProduct(n1, w5)
        acc.addProduct(a2, w6); acc.addProduct(b2, w7); acc.addProduct(n2, w8)
        if streaming { ecenet_store16_nontemporal(out, acc) } else {
          store16(out, acc)
        }
        (a0, a1, a2) = (b0, b1, b2); (b0, b1, b2) = (n0, n1, n2)
      }
      c += 16
    }
    for c in c..<C {  // the last C mod 16 channels, one at a time
      for x in x0..<x1 {
        var acc = accumulate ? o[x * C + c] : bias?[c] ?? 0
        for t in 0..<9 where x - 1 + t % 3 >= 0 && x - 1 + t % 3 < W {
          acc = acc.addingProduct(rows[t / 3][(x - 1 + t % 3) * C + c], w[t * C + c])
        }
        o[x * C + c] = acc
      }
    }
    x0 = x1
  }
}

/// sums[3a + b, c] += Σ_x dy[x, c] · rows[a][x − 1 + b, c] and sums[9, c] += Σ_x dy[x, c]
/// (sums is [10, C]): one output line's share of dW (tap-major) and dBias.
func depthwise3x3WeightGradLine(sums s: UnsafeMutablePointer<Float>, dy: UnsafePointer<Float>,
                                rows: Depthwise3x3Rows, width W: Int, channels C: Int) {
  var x0 = 0
  while x0 < W {
    let x1 = min(W, x0 + depthwise3x3Tile)
    var c = 0
    while c + 16 <= C {
      var d0 = SIMD16<Float>(), d1 = d0, d2 = d0, d3 = d0, d4 = d0, d5 = d0, d6 = d0, d7 = d0, d8 = d0, db = d0
      var (a0, a1, a2) = column16(rows, x0 - 1, width: W, channels: C, c)
      var (b0, b1, b2) = column16(rows, x0, width: W, channels: C, c)
      for x in x0..<x1 {
        let (n0, n1, n2) = column16(rows, x + 1, width: W, channels: C, c)
        let g = load16(dy + x * C + c)
        db += g
        d0.addProduct(g, a0); d1.addProduct(g, b0); d2.addProduct(g, n0)
        d3.addProduct(g, a1); d4.addProduct(g, b1); d5.addProduct(g, n1)
        d6.addProduct(g, a2); d7.addProduct(g, b2); d8.addProduct(g, n2)
        (a0, a1, a2) = (b0, b1, b2); (b0, b1, b2) = (n0, n1, n2)
      }
      func add(_ t: Int, _ v: SIMD16<Float>) {
        let p = s + t * C + c
        store16(p, load16(p) + v)
      }
      add(0, d0); add(1, d1); add(2, d2); add(3, d3); add(4, d4); add(5, d5); add(6, d6); add(7, d7); add(8, d8)
      add(9, db)
      c += 16
    }
    for c in c..<C {
      for x in x0..<x1 {
        let g = dy[x * C + c]
        s[9 * C + c] += g
        for t in 0..<9 where x - 1 + t % 3 >= 0 && x - 1 + t % 3 < W {
          s[t * C + c] += g * rows[t / 3][(x - 1 + t % 3) * C + c]
        }
      }
    }
    x0 = x1
  }
}

/// Backward of the 3×3 same depth-wise conv: dx lines (overwritten or added to),
/// then the weight and bias sums of the same lines, over contiguous line ranges
/// (one per thread) whose partial sums are added in range order (deterministic
/// for a given thread count, as the generic path).
func depthwise3x3Backward(dx: Tensor?, accumulateDx: Bool, dWeight: Tensor?, dBias: Tensor?, dy: Tensor, x: Tensor,
                          weight: Tensor, _ g: Conv2dGeometry) {
  let (H, W, C) = (g.height, g.width, g.inChannels)
  let lines = g.batch * H, rowFloats = W * C
  let wt = tapMajorWeights(weight, g)
  let flipped = Tensor(uninitialized: [9, C])  // dX correlates dY with tap t ↔ 8 − t
  for t in 0..<9 { flipped.data.advanced(by: t * C).update(from: wt.data + (8 - t) * C, count: C) }
  let needSums = dWeight != nil || dBias != nil
  let chunks = max(1, min(Parallel.threads, lines))
  let partial = Tensor.zeros([needSums ? chunks : 0, 10 * C])
  let zeros = Tensor.zeros([rowFloats])  // the rows above and below the image
  let zp = UnsafePointer(zeros.data), bypass = dy.count * 4 >= Conv2dTuning.nonTemporalStoreMinimumBytes
  let (xp, gp, fp, pp) = (UnsafePointer(x.data), UnsafePointer(dy.data), UnsafePointer(flipped.data), partial.data)
  let dxp = dx?.data
  Parallel.forRange(chunks) { cr in
    for chunk in cr {
      for line in (lines * chunk / chunks)..<(lines * (chunk + 1) / chunks) {
        if let dxp = dxp {
          depthwise3x3Line(out: dxp + line * rowFloats, rows: Depthwise3x3Rows(gp, line: line, height: H, rowFloats: rowFloats, zeros: zp),
                           width: W, channels: C, taps: fp, start: accumulateDx ? .accumulate : .zero,
                           bypassCache: bypass)
        }
        if needSums {  // dY's line was just read for dX: it is still in cache
          depthwise3x3WeightGradLine(sums: pp + chunk * 10 * C, dy: gp + line * rowFloats,
                                     rows: Depthwise3x3Rows(xp, line: line, height: H, rowFloats: rowFloats, zeros: zp),
                                     width: W, channels: C)
        }
      }
    }
    if bypass && dxp != nil { ecenet_store_fence() }  // the streamed dX lines, as in the forward
  }
  guard needSums else { return }
  for chunk in 1..<chunks {  // fold partials into chunk 0, in order
    let src = pp + chunk * 10 * C
    for i in 0..<(10 * C) { pp[i] += src[i] }
  }
  if let dw = dWeight { for c in 0..<C { for t in 0..<9 { dw.data[c * 9 + t] += pp[t * C + c] } } }
  if let db = dBias { for c in 0..<C { db.data[c] += pp[9 * C + c] } }
}

/// dx gathered per input line; dW and dBias from per-chunk partials over output
/// lines, summed in chunk order (deterministic for a given thread count).
func depthwiseConvBackward(dx: Tensor?, accumulateDx: Bool, dWeight: Tensor?, dBias: Tensor?, dy: Tensor, x: Tensor,
                           weight: Tensor, _ g: Conv2dGeometry) {
  if g.isDepthwise3x3Same && Conv2dTuning.depthwise3x3Lines {
    depthwise3x3Backward(dx: dx, accumulateDx: accumulateDx, dWeight: dWeight, dBias: dBias, dy: dy, x: x,
                         weight: weight, g)
    return
  }
  if let dx = dx, !accumulateDx { dx.zero() }  // the gather below adds taps into dx
  let (H, W, C, Ho, Wo) = (g.height, g.width, g.inChannels, g.outHeight, g.outWidth)
  let (kh, kw, s, p, d, taps) = (g.kernelH, g.kernelW, g.stride, g.padding, g.dilation, g.taps)
  let xp = x.data, gp = dy.data
  if let dx = dx {
    let wt = tapMajorWeights(weight, g)
    let wp = wt.data, dp = dx.data
    Parallel.forRange(g.batch * H, grain: max(1, 8192 / max(1, W * C * taps))) { r in
      // As the forward: the taps that reach this input pixel, then tapSum.
      withUnsafeTemporaryAllocation(of: (Int, Int).self, capacity: taps) { tapBuf in
        let tapList = tapBuf.baseAddress!
        for inLine in r {
          let b = inLine / H, iy = inLine % H
          for ix in 0..<W {
            var n = 0
            for ky in 0..<kh {
              let ty = iy + p - ky * d
              if ty < 0 || ty % s != 0 || ty / s >= Ho { continue }
              for kx in 0..<kw {
                let tx = ix + p - kx * d
                if tx < 0 || tx % s != 0 || tx / s >= Wo { continue }
                tapList[n] = (((b * Ho + ty / s) * Wo + tx / s) * C, (ky * kw + kx) * C); n += 1
              }
            }
            let o = dp + (inLine * W + ix) * C
            tapSum(out: o, start: UnsafePointer(o), channels: C, taps: tapList, count: n, x: gp, w: wp)
          }
        }
      }
    }
  }
  if dWeight == nil && dBias == nil { return }
  let lines = g.batch * Ho, chunks = max(1, min(Parallel.threads, lines))
  let stride = (taps + 1) * C  // one chunk's partial: dW as [taps, C], then dBias [C]
  let partial = Tensor.zeros([chunks, stride])
  let pp = partial.data
  Parallel.forRange(chunks) { cr in
    for chunk in cr {
      let dwt = pp + chunk * stride, db = dwt + taps * C
      for line in (lines * chunk / chunks)..<(lines * (chunk + 1) / chunks) {
        let b = line / Ho, oy = line % Ho
        for ox in 0..<Wo {
          let gv = gp + (line * Wo + ox) * C
          for c in 0..<C { db[c] += gv[c] }
          for ky in 0..<kh {
            let iy = oy * s - p + ky * d
            if iy < 0 || iy >= H { continue }
            for kx in 0..<kw {
              let ix = ox * s - p + kx * d
              if ix < 0 || ix >= W { continue }
              let src = xp + ((b * H + iy) * W + ix) * C, acc = dwt + (ky * kw + kx) * C
              for c in 0..<C { acc[c] += gv[c] * src[c] }
            }
          }
        }
      }
    }
  }
  for chunk in 1..<max(1, chunks) {  // fold partials into chunk 0, in order
    let src = pp + chunk * stride
    for i in 0..<stride { pp[i] += src[i] }
  }
  if let dw = dWeight {
    for c in 0..<C { for k in 0..<taps { dw.data[c * taps + k] += pp[k * C + c] } }
  }
  if let db = dBias {
    for c in 0..<C { db.data[c] += pp[taps * C + c] }
  }
}
