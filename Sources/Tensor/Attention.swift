// Swin window attention pieces: window partition/reverse and scaled dot-product
// attention with an optional relative-position bias and an additive shift mask.
// Not here: the qkv/proj linears, the bias-table gather (gatherRows, Shape.swift)
// and the cyclic shift (rollSpatial); the Swin block composes them.
// Letters: B batch, H W map size, C channels, w window, nW windows per image,
// B' = B·nW attention batch, heads, Lq Lk query/key tokens, d head dim.

import CShims
import Foundation

// MARK: Window partition / reverse

/// Copies between an image [B, H, W, C] and its windows [B·nW, w·w, C], in the
/// direction `toWindows`. Windows are numbered image-major then row-major over
/// the window grid; tokens row-major inside a window; each window row is one
/// contiguous run of w·C floats.
func windowCopy(windows: UnsafeMutablePointer<Float>, image: UnsafeMutablePointer<Float>,
                batch: Int, height: Int, width: Int, channels: Int, window w: Int, toWindows: Bool) {
  let nH = height / w, nWc = width / w, perImage = nH * nWc, run = w * channels
  if run == 0 { return }
  Parallel.forRange(batch * perImage, grain: max(1, 16384 / (run * w))) { wr in
    for win in wr {
      let (b, r) = (win / perImage, win % perImage)
      let (wh, ww) = (r / nWc, r % nWc)
      for i in 0..<w {
        let img = image + ((b * height + wh * w + i) * width + ww * w) * channels
        let tok = windows + (win * w * w + i * w) * channels
        if toWindows { tok.update(from: img, count: run) } else { img.update(from: tok, count: run) }
      }
    }
  }
}

/// [B, H, W, C] → [B·nW, w·w, C], as official Swin's window_partition but
/// channels-last throughout: windows image-major, then row-major over the
/// window grid; tokens row-major within a window. H and W must be multiples of w.
public func windowPartition(_ x: Var, window: Int) -> Var {
  precondition(x.shape.count == 4 && window > 0 && x.shape[1] % window == 0 && x.shape[2] % window == 0,
               "windowPartition: \(x.shape) is not [B, H, W, C] with H, W multiples of window \(window)")
  let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let out = Tensor(uninitialized: [b * (h / window) * (w / window), window * window, c])
  windowCopy(windows: out.data, image: x.value.data, batch: b, height: h, width: w, channels: c,
             window: window, toWindows: true)
  return makeResult(out, inputs: [x]) { g in
    let dx = Tensor(uninitialized: [b, h, w, c])
    windowCopy(windows: g.data, image: dx.data, batch: b, height: h, width: w, channels: c,
               window: window, toWindows: false)
    x.accumulateGrad(owned: dx)
  }
}

/// Inverse of windowPartition: [B·nW, w·w, C] → [B, H, W, C] (official Swin's window_reverse).
public func windowReverse(_ x: Var, window: Int, height: Int, width: Int) -> Var {
  precondition(window > 0 && height % window == 0 && width % window == 0,
               "windowReverse: \(height)×\(width) is not a multiple of window \(window)")
  let nW = (height / window) * (width / window)
  precondition(x.shape.count == 3 && x.shape[1] == window * window && nW > 0 && x.shape[0] % nW == 0,
               "windowReverse: \(x.shape) is not [B·\(nW), \(window * window), C] for \(height)×\(width)")
  let (b, c) = (x.shape[0] / nW, x.shape[2])
  let out = Tensor(uninitialized: [b, height, width, c])
  windowCopy(windows: x.value.data, image: out.data, batch: b, height: height, width: width, channels: c,
             window: window, toWindows: false)
  return makeResult(out, inputs: [x]) { g in
    let dx = Tensor(uninitialized: x.shape)
    windowCopy(windows: dx.data, image: g.data, batch: b, height: height, width: width, channels: c,
               window: window, toWindows: true)
    x.accumulateGrad(owned: dx)
  }
}

// MARK: Scaled dot-product attention

// Threading. Each (b, head) slice is a few small GEMMs (Swin: 144×144×32) and
// a softmax over its scores. Slices run in parallel, one task per range of
// slices, with OpenBLAS single-threaded on the task's own thread
// (Parallel.forRangeCallingBLAS); a slice's softmax runs right after the GEMM
// that wrote its scores, while they are in that core's cache. The earlier
// design (commit 89bfdea and before) called OpenBLAS slice after slice and let
// it split each small GEMM over the threads, with the softmax in a separate
// parallel pass: 2.5× slower forward on the bench's Swin shapes (BENCHMARKS.md).

/// Where the (b, head) slices of one attention operand lie in its buffer: slice
/// (b, head) starts at `offset + b·batchStride + head·headStride` and its
/// rows are `rowStride` floats apart. `contiguous` is [B', heads, L, d]; Swin's
/// qkv linear output [B', n, 3, heads, d] holds q, k and v at offsets 0, C, 2C
/// with rows 3·C apart (`windowAttention`).
public struct AttentionLayout: Sendable {
  public var offset: Int, batchStride: Int, headStride: Int, rowStride: Int

  public init(offset: Int = 0, batchStride: Int, headStride: Int, rowStride: Int) {
    self.offset = offset; self.batchStride = batchStride; self.headStride = headStride; self.rowStride = rowStride
  }

  /// [B', heads, rows, d], row-major.
  public static func contiguous(heads: Int, rows: Int, d: Int) -> AttentionLayout {
    AttentionLayout(batchStride: heads * rows * d, headStride: rows * d, rowStride: d)
  }

  /// [B', rows, parts, heads, d] (parts = 3 for qkv, 1 for the output), part `part`.
  static func tokenMajor(part: Int, parts: Int, heads: Int, rows: Int, d: Int) -> AttentionLayout {
    AttentionLayout(offset: part * heads * d, batchStride: rows * parts * heads * d, headStride: d,
                    rowStride: parts * heads * d)
  }

  @inline(__always) func at(_ b: Int, _ h: Int) -> Int { offset + b * batchStride + h * headStride }
}

/// The sizes of one attention call: B' slices of `heads` heads, Lq queries,
/// Lk keys, head dim d.
struct AttentionDims {
  let bp: Int, heads: Int, lq: Int, lk: Int, d: Int

  /// The bias must be [heads, Lq, Lk] and the mask [nW, Lq, Lk] with nW dividing B'.
  func checkBiasAndMask(_ bias: Var?, _ mask: Tensor?, op: String) {
    if let b = bias { precondition(b.shape == [heads, lq, lk], "\(op): bias \(b.shape), expected [\(heads), \(lq), \(lk)]") }
    if let m = mask {
      precondition(m.shape.count == 3 && m.shape[1] == lq && m.shape[2] == lk && m.shape[0] > 0 && bp % m.shape[0] == 0,
                   "\(op): mask \(m.shape), expected [nW, \(lq), \(lk)] with nW dividing \(bp)")
    }
  }
}

/// probs[B', heads, Lq, Lk] = softmax(q·kᵀ·scale + bias + mask), out = probs·v.
/// q [B', heads, Lq, d], k/v [B', heads, Lk, d], bias [heads, Lq, Lk],
/// mask [nW, Lq, Lk] used for batch b as mask[b % nW].
public func attentionForward(out: Tensor, probs: Tensor, q: Tensor, k: Tensor, v: Tensor,
                             bias: Tensor?, mask: Tensor?, scale: Float) {
  let dims = AttentionDims(bp: q.shape[0], heads: q.shape[1], lq: q.shape[2], lk: k.shape[2], d: q.shape[3])
  let lq = AttentionLayout.contiguous(heads: dims.heads, rows: dims.lq, d: dims.d)
  let lk = AttentionLayout.contiguous(heads: dims.heads, rows: dims.lk, d: dims.d)
  attentionForward(dims, out: (out.data, lq), probs: probs.data, q: (q.data, lq), k: (k.data, lk), v: (v.data, lk),
                   bias: bias?.data, mask: mask, scale: scale)
}

/// `attentionForward` over operands in any `AttentionLayout` (probs contiguous).
func attentionForward(_ dims: AttentionDims, out: (UnsafeMutablePointer<Float>, AttentionLayout),
                      probs pp: UnsafeMutablePointer<Float>, q: (UnsafeMutablePointer<Float>, AttentionLayout),
                      k: (UnsafeMutablePointer<Float>, AttentionLayout), v: (UnsafeMutablePointer<Float>, AttentionLayout),
                      bias biasP: UnsafeMutablePointer<Float>?, mask: Tensor?, scale: Float) {
  let (heads, lq, lk, d) = (dims.heads, dims.lq, dims.lk, dims.d)
  let nW = mask?.shape[0] ?? 1, maskP = mask?.data
  Parallel.forRangeCallingBLAS(dims.bp * heads) { range in
    for bh in range {
      let (b, h) = (bh / heads, bh % heads)
      let p = pp + bh * lq * lk
      // S = q·kᵀ·scale
      gemmOnThisThread(transA: false, transB: true, m: lq, n: lk, k: d, alpha: scale, a: q.0 + q.1.at(b, h),
                       lda: q.1.rowStride, b: k.0 + k.1.at(b, h), ldb: k.1.rowStride, beta: 0, c: p, ldc: lk)
      for i in 0..<lq {
        let row = p + i * lk
        if let bb = biasP { let br = bb + (h * lq + i) * lk; for j in 0..<lk { row[j] += br[j] } }
        if let mm = maskP { let mr = mm + ((b % nW) * lq + i) * lk; for j in 0..<lk { row[j] += mr[j] } }
        softmaxRowInPlace(row, lk)
      }
      // O = P·v
      gemmOnThisThread(transA: false, transB: false, m: lq, n: d, k: lk, a: p, lda: lk,
                       b: v.0 + v.1.at(b, h), ldb: v.1.rowStride, beta: 0, c: out.0 + out.1.at(b, h),
                       ldc: out.1.rowStride)
    }
  }
}

/// Numerically stable softmax of one row, in place.
@inline(__always)
func softmaxRowInPlace(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
  if SoftmaxTuning.avx512Rows { ecenet_softmax_rows(row, row, 1, n, n, n); return }
  let inv = 1 / expShifted(row, into: row, n, rowMax(row, n))
  for j in 0..<n { row[j] *= inv }
}

/// Backward of attentionForward, adding into dq/dk/dv/dBias (any may be nil):
/// dv += Pᵀ·dO; dP = dO·vᵀ; dS = P ⊙ (dP − rowsum(dP ⊙ P));
/// dq += dS·k·scale; dk += dSᵀ·q·scale; dBias += Σ_b dS.
/// `probs` is overwritten with dS (it is not needed afterwards; this saves a
/// [B', heads, Lq, Lk] buffer for the bias reduction). `accumulate` false for
/// dq, dk or dv: that gradient is overwritten instead (each slice's block is
/// written by one GEMM).
public func attentionBackward(dq: Tensor?, dk: Tensor?, dv: Tensor?, dBias: Tensor?, dOut: Tensor,
                              probs: Tensor, q: Tensor, k: Tensor, v: Tensor, scale: Float,
                              accumulate: (q: Bool, k: Bool, v: Bool) = (true, true, true)) {
  let dims = AttentionDims(bp: q.shape[0], heads: q.shape[1], lq: q.shape[2], lk: k.shape[2], d: q.shape[3])
  let lq = AttentionLayout.contiguous(heads: dims.heads, rows: dims.lq, d: dims.d)
  let lk = AttentionLayout.contiguous(heads: dims.heads, rows: dims.lk, d: dims.d)
  attentionBackward(dims, dq: dq.map { ($0.data, lq) }, dk: dk.map { ($0.data, lk) }, dv: dv.map { ($0.data, lk) },
                    dBias: dBias, dOut: (dOut.data, lq), probs: probs.data, q: (q.data, lq), k: (k.data, lk),
                    v: (v.data, lk), scale: scale, accumulate: accumulate)
}

/// `attentionBackward` over operands in any `AttentionLayout` (each gradient in
/// its operand's layout, dOut in the output's; probs contiguous).
func attentionBackward(_ dims: AttentionDims, dq: (UnsafeMutablePointer<Float>, AttentionLayout)?,
                       dk: (UnsafeMutablePointer<Float>, AttentionLayout)?,
                       dv: (UnsafeMutablePointer<Float>, AttentionLayout)?, dBias: Tensor?,
                       dOut: (UnsafeMutablePointer<Float>, AttentionLayout), probs pp: UnsafeMutablePointer<Float>,
                       q: (UnsafeMutablePointer<Float>, AttentionLayout), k: (UnsafeMutablePointer<Float>, AttentionLayout),
                       v: (UnsafeMutablePointer<Float>, AttentionLayout), scale: Float,
                       accumulate: (q: Bool, k: Bool, v: Bool)) {
  let (betaQ, betaK, betaV): (Float, Float, Float) = (accumulate.q ? 1 : 0, accumulate.k ? 1 : 0, accumulate.v ? 1 : 0)
  let (bp, heads, lq, lk, d) = (dims.bp, dims.heads, dims.lq, dims.lk, dims.d)
  let needS = dq != nil || dk != nil || dBias != nil
  Parallel.forRangeCallingBLAS(bp * heads) { range in
    let dPBuf = Tensor(uninitialized: [needS ? lq * lk : 0])  // this task's dP scratch
    let dP = dPBuf.data
    for bh in range {
      let (b, h) = (bh / heads, bh % heads)
      let p = pp + bh * lq * lk, go = dOut.0 + dOut.1.at(b, h), ldo = dOut.1.rowStride
      if let dv = dv {  // dv += Pᵀ·dO
        gemmOnThisThread(transA: true, transB: false, m: lk, n: d, k: lq, a: p, lda: lk, b: go, ldb: ldo,
                         beta: betaV, c: dv.0 + dv.1.at(b, h), ldc: dv.1.rowStride)
      }
      guard needS else { continue }
      // dP = dO·vᵀ
      gemmOnThisThread(transA: false, transB: true, m: lq, n: lk, k: d, a: go, lda: ldo, b: v.0 + v.1.at(b, h),
                       ldb: v.1.rowStride, beta: 0, c: dP, ldc: lk)
      for i in 0..<lq {
        let pr = p + i * lk, dr = dP + i * lk
        let dot = rowDot(dr, pr, lk)
        for j in 0..<lk { pr[j] *= dr[j] - dot }  // the P row becomes the dS row
      }
      if let dq = dq {  // dq += dS·k·scale
        gemmOnThisThread(transA: false, transB: false, m: lq, n: d, k: lk, alpha: scale, a: p, lda: lk,
                         b: k.0 + k.1.at(b, h), ldb: k.1.rowStride, beta: betaQ, c: dq.0 + dq.1.at(b, h),
                         ldc: dq.1.rowStride)
      }
      if let dk = dk {  // dk += dSᵀ·q·scale
        gemmOnThisThread(transA: true, transB: false, m: lk, n: d, k: lq, alpha: scale, a: p, lda: lk,
                         b: q.0 + q.1.at(b, h), ldb: q.1.rowStride, beta: betaK, c: dk.0 + dk.1.at(b, h),
                         ldc: dk.1.rowStride)
      }
    }
  }
  if let db = dBias {
    // Σ over the batch, in parallel over the bias elements (batches would race).
    let per = heads * lq * lk, dbp = db.data
    Parallel.forRange(per, grain: 4096) { r in
      for b in 0..<bp { let s = pp + b * per; for e in r { dbp[e] += s[e] } }
    }
  }
}

/// softmax(q·kᵀ·scale + bias + mask)·v. q [B', heads, Lq, d], k/v [B', heads, Lk, d];
/// bias [heads, Lq, Lk] (relative position bias, differentiable) or nil; mask
/// [nW, Lq, Lk] additive (not differentiated), applied to batch b with window b % nW.
/// Matches F.scaled_dot_product_attention(q, k, v, attn_mask=bias+mask, scale=scale)
/// and official Swin's WindowAttention core (windows of one image are consecutive,
/// so window b of the flattened B·nW batch is b % nW).
public func scaledDotProductAttention(q: Var, k: Var, v: Var, bias: Var?, mask: Tensor?, scale: Float) -> Var {
  precondition(q.shape.count == 4 && k.shape.count == 4 && v.shape == k.shape
                 && k.shape[0] == q.shape[0] && k.shape[1] == q.shape[1] && k.shape[3] == q.shape[3],
               "attention: q \(q.shape), k \(k.shape), v \(v.shape) are not [B', heads, L, d] alike")
  let dims = AttentionDims(bp: q.shape[0], heads: q.shape[1], lq: q.shape[2], lk: k.shape[2], d: q.shape[3])
  dims.checkBiasAndMask(bias, mask, op: "attention")
  let out = Tensor(uninitialized: q.shape)
  let probs = Tensor(uninitialized: [dims.bp, dims.heads, dims.lq, dims.lk])
  attentionForward(out: out, probs: probs, q: q.value, k: k.value, v: v.value,
                   bias: bias?.value, mask: mask, scale: scale)
  let (qv, kv, vv) = (q.value, k.value, v.value)
  return makeResult(out, inputs: [q, k, v, bias]) { g in
    // In the order the backward writes them (dv, dq, dk per slice): if q, k and v
    // are one Var, the first write overwrites its fresh gradient and the others add.
    let dv = v.requiresGrad ? v.gradDestination() : nil
    let dq = q.requiresGrad ? q.gradDestination() : nil, dk = k.requiresGrad ? k.gradDestination() : nil
    attentionBackward(dq: dq?.tensor, dk: dk?.tensor, dv: dv?.tensor,
                      dBias: bias?.requiresGrad == true ? bias!.gradBuffer() : nil,
                      dOut: g, probs: probs, q: qv, k: kv, v: vv, scale: scale,
                      accumulate: (dq?.accumulate ?? true, dk?.accumulate ?? true, dv?.accumulate ?? true))
  }
}

/// Swin's window attention straight from its qkv linear: qkv [B', n, 3·C] read
/// as [B', n, 3, heads, d] (C = heads·d) → [B', n, C] read as [B', n, heads, d].
/// Equal to splitting qkv into q, k, v [B', heads, n, d], running
/// `scaledDotProductAttention` and permuting its output back to [B', n, C]
/// (official Swin's `qkv.reshape(…).permute(2, 0, 3, 1, 4)` and
/// `(attn @ v).transpose(1, 2).reshape(…)`), but the slices' GEMMs read and
/// write those layouts in place (`AttentionLayout`), so the four copies and
/// their backward copies are gone: permute and split were 2.9% of the Swin-T
/// 512² step. bias [heads, n, n] or nil, mask [nW, n, n] or nil, as there.
public func windowAttention(qkv: Var, heads: Int, bias: Var?, mask: Tensor?, scale: Float) -> Var {
  precondition(qkv.shape.count == 3 && heads > 0 && qkv.shape[2] % (3 * heads) == 0,
               "windowAttention: qkv \(qkv.shape) is not [B', n, 3·heads·d] for \(heads) heads")
  let (bp, n, c) = (qkv.shape[0], qkv.shape[1], qkv.shape[2] / 3)
  let d = c / heads
  let dims = AttentionDims(bp: bp, heads: heads, lq: n, lk: n, d: d)
  dims.checkBiasAndMask(bias, mask, op: "windowAttention")
  let part = { (i: Int) in AttentionLayout.tokenMajor(part: i, parts: 3, heads: heads, rows: n, d: d) }
  let outLayout = AttentionLayout.tokenMajor(part: 0, parts: 1, heads: heads, rows: n, d: d)
  let out = Tensor(uninitialized: [bp, n, c])
  let probs = Tensor(uninitialized: [bp, heads, n, n])
  let x = qkv.value
  attentionForward(dims, out: (out.data, outLayout), probs: probs.data, q: (x.data, part(0)), k: (x.data, part(1)),
                   v: (x.data, part(2)), bias: bias?.value.data, mask: mask, scale: scale)
  return makeResult(out, inputs: [qkv, bias]) { g in
    // dq, dk and dv are disjoint thirds of one gradient: each written once
    // (fresh) or added (accumulating) by its slice's GEMM.
    let dx = qkv.requiresGrad ? qkv.gradDestination() : nil
    attentionBackward(dims, dq: dx.map { ($0.tensor.data, part(0)) }, dk: dx.map { ($0.tensor.data, part(1)) },
                      dv: dx.map { ($0.tensor.data, part(2)) },
                      dBias: bias?.requiresGrad == true ? bias!.gradBuffer() : nil, dOut: (g.data, outLayout),
                      probs: probs.data, q: (x.data, part(0)), k: (x.data, part(1)), v: (x.data, part(2)),
                      scale: scale, accumulate: (dx?.accumulate ?? true, dx?.accumulate ?? true, dx?.accumulate ?? true))
  }
}
