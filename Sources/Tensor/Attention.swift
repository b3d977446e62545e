// Swin window attention pieces: window partition/reverse and scaled dot-product
// attention with an optional relative-position bias and an additive shift mask.
// Not here: the qkv/proj linears, the bias-table gather (gatherRows, Shape.swift)
// and the cyclic shift (rollSpatial); the Swin block composes them.
// Letters: B batch, H W map size, C channels, w window, nW windows per image,
// B' = B·nW attention batch, heads, Lq Lk query/key tokens, d head dim.

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

// MARK: Small single-threaded GEMM

/// C[m, n] = alpha·op(A)·B + beta·C, row-major, B never transposed (callers
/// transpose a small B into scratch). Single-threaded, so it may run inside
/// Parallel.forRange where OpenBLAS (itself threaded) must not.
/// Fast path: 4×8 tiles of C held in registers (SIMD8) across the whole k loop,
/// so each B vector loaded serves four rows and C is read and written once;
/// edges go through `smallGemmReference`. Sized for attention windows
/// (m, n, k ≤ 144). Tested against `gemm` and the reference (AttentionTests).
public func smallGemm(transA: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  // A[i, p] is a[i·lda + p], or a[p·lda + i] when A is stored transposed.
  let (rowStep, colStep) = transA ? (1, lda) : (lda, 1)
  let m4 = m / 4 * 4, n8 = n / 8 * 8
  var i = 0
  while i < m4 {
    let a0 = a + i * rowStep, a1 = a0 + rowStep, a2 = a1 + rowStep, a3 = a2 + rowStep
    var j = 0
    while j < n8 {
      var c0 = SIMD8<Float>(), c1 = SIMD8<Float>(), c2 = SIMD8<Float>(), c3 = SIMD8<Float>()
      var bp = UnsafeRawPointer(b + j)
      for p in 0..<k {
        let bv = bp.loadUnaligned(as: SIMD8<Float>.self)
        let o = p * colStep
        c0 += bv * a0[o]; c1 += bv * a1[o]; c2 += bv * a2[o]; c3 += bv * a3[o]
        bp += ldb * MemoryLayout<Float>.stride
      }
      @inline(__always) func store(_ acc: SIMD8<Float>, _ r: Int) {
        let dst = UnsafeMutableRawPointer(c + (i + r) * ldc + j)
        var res = acc * alpha
        if beta != 0 { res += dst.loadUnaligned(as: SIMD8<Float>.self) * beta }
        dst.storeBytes(of: res, as: SIMD8<Float>.self)
      }
      store(c0, 0); store(c1, 1); store(c2, 2); store(c3, 3)
      j += 8
    }
    if n8 < n {
      smallGemmReference(transA: transA, m: 4, n: n - n8, k: k, alpha: alpha, a: a + i * rowStep, lda: lda,
                         b: b + n8, ldb: ldb, beta: beta, c: c + i * ldc + n8, ldc: ldc)
    }
    i += 4
  }
  if m4 < m {
    smallGemmReference(transA: transA, m: m - m4, n: n, k: k, alpha: alpha, a: a + m4 * rowStep, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c + m4 * ldc, ldc: ldc)
  }
}

/// The plain loop smallGemm is checked against (and uses for tile edges): an
/// axpy over each contiguous C row.
public func smallGemmReference(transA: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                               a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  let (rowStep, colStep) = transA ? (1, lda) : (lda, 1)
  for i in 0..<m {
    let crow = c + i * ldc
    if beta == 0 {
      crow.update(repeating: 0, count: n)
    } else if beta != 1 {
      for j in 0..<n { crow[j] *= beta }
    }
    for p in 0..<k {
      let av = alpha * a[i * rowStep + p * colStep], brow = b + p * ldb
      for j in 0..<n { crow[j] += av * brow[j] }
    }
  }
}

/// dst[cols, rows] = src[rows, cols]ᵀ (src row stride `lds`).
@inline(__always)
func transposeInto(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, rows: Int, cols: Int, lds: Int) {
  for r in 0..<rows { for c in 0..<cols { dst[c * rows + r] = src[r * lds + c] } }
}

// MARK: Scaled dot-product attention

// Threading: one task per (b, head) slice with smallGemm inside, over
// Parallel.forRange. Measured on a Swin-B-like case (B' = 50 windows of 144
// tokens, 4 heads, d 32), see AttentionTests.testAttentionTiming: MEASURED_NOTE

/// probs[B', heads, Lq, Lk] = softmax(q·kᵀ·scale + bias + mask), out = probs·v.
/// q [B', heads, Lq, d], k/v [B', heads, Lk, d], bias [heads, Lq, Lk],
/// mask [nW, Lq, Lk] used for batch b as mask[b % nW].
public func attentionForward(out: Tensor, probs: Tensor, q: Tensor, k: Tensor, v: Tensor,
                             bias: Tensor?, mask: Tensor?, scale: Float) {
  let (bp, heads, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
  let lk = k.shape[2], nW = mask?.shape[0] ?? 1
  let (qp, kp, vp, pp, op) = (q.data, k.data, v.data, probs.data, out.data)
  let biasP = bias?.data, maskP = mask?.data
  Parallel.forRange(bp * heads) { range in
    let kT = UnsafeMutablePointer<Float>.allocate(capacity: max(1, d * lk))
    defer { kT.deallocate() }
    for bh in range {
      let (b, h) = (bh / heads, bh % heads)
      let qs = qp + bh * lq * d, ks = kp + bh * lk * d, vs = vp + bh * lk * d
      let s = pp + bh * lq * lk
      // S = q·kᵀ·scale
      transposeInto(kT, ks, rows: lk, cols: d, lds: d)
      smallGemm(transA: false, m: lq, n: lk, k: d, alpha: scale, a: qs, lda: d, b: kT, ldb: lk, beta: 0, c: s, ldc: lk)
      let bRow = biasP.map { $0 + h * lq * lk }, mRow = maskP.map { $0 + (b % nW) * lq * lk }
      for i in 0..<lq {
        let row = s + i * lk
        if let bb = bRow { for j in 0..<lk { row[j] += bb[i * lk + j] } }
        if let mm = mRow { for j in 0..<lk { row[j] += mm[i * lk + j] } }
        softmaxRowInPlace(row, lk)
      }
      // O = P·v
      smallGemm(transA: false, m: lq, n: d, k: lk, a: s, lda: lk, b: vs, ldb: d, beta: 0, c: op + bh * lq * d, ldc: d)
    }
  }
}

/// Numerically stable softmax of one row, in place.
@inline(__always)
func softmaxRowInPlace(_ row: UnsafeMutablePointer<Float>, _ n: Int) {
  var mx = -Float.infinity
  for j in 0..<n { mx = max(mx, row[j]) }
  var sum: Float = 0
  for j in 0..<n { let e = expf(row[j] - mx); row[j] = e; sum += e }
  let inv = 1 / sum
  for j in 0..<n { row[j] *= inv }
}

/// Backward of attentionForward, adding into dq/dk/dv/dBias (any may be nil):
/// dv += Pᵀ·dO; dP = dO·vᵀ; dS = P ⊙ (dP − rowsum(dP ⊙ P));
/// dq += dS·k·scale; dk += dSᵀ·q·scale; dBias += Σ_b dS.
/// `probs` is overwritten with dS (it is not needed afterwards; this saves a
/// [B', heads, Lq, Lk] buffer for the bias reduction).
public func attentionBackward(dq: Tensor?, dk: Tensor?, dv: Tensor?, dBias: Tensor?, dOut: Tensor,
                              probs: Tensor, q: Tensor, k: Tensor, v: Tensor, scale: Float) {
  let (bp, heads, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
  let lk = k.shape[2]
  let (qp, kp, vp, pp, gp) = (q.data, k.data, v.data, probs.data, dOut.data)
  let dqP = dq?.data, dkP = dk?.data, dvP = dv?.data
  let needS = dq != nil || dk != nil || dBias != nil
  Parallel.forRange(bp * heads) { range in
    let vT = UnsafeMutablePointer<Float>.allocate(capacity: max(1, d * lk))
    let dP = UnsafeMutablePointer<Float>.allocate(capacity: max(1, lq * lk))
    defer { vT.deallocate(); dP.deallocate() }
    for bh in range {
      let qs = qp + bh * lq * d, ks = kp + bh * lk * d, vs = vp + bh * lk * d
      let p = pp + bh * lq * lk, go = gp + bh * lq * d
      if let dvp = dvP {
        smallGemm(transA: true, m: lk, n: d, k: lq, a: p, lda: lk, b: go, ldb: d, beta: 1, c: dvp + bh * lk * d, ldc: d)
      }
      guard needS else { continue }
      transposeInto(vT, vs, rows: lk, cols: d, lds: d)
      smallGemm(transA: false, m: lq, n: lk, k: d, a: go, lda: d, b: vT, ldb: lk, beta: 0, c: dP, ldc: lk)
      for i in 0..<lq {
        let pr = p + i * lk, dr = dP + i * lk
        var dot: Float = 0
        for j in 0..<lk { dot += dr[j] * pr[j] }
        for j in 0..<lk { pr[j] *= dr[j] - dot }   // P row becomes dS row
      }
      if let dqp = dqP {
        smallGemm(transA: false, m: lq, n: d, k: lk, alpha: scale, a: p, lda: lk, b: ks, ldb: d,
                  beta: 1, c: dqp + bh * lq * d, ldc: d)
      }
      if let dkp = dkP {
        smallGemm(transA: true, m: lk, n: d, k: lq, alpha: scale, a: p, lda: lk, b: qs, ldb: d,
                  beta: 1, c: dkp + bh * lk * d, ldc: d)
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
  let (bp, heads, lq) = (q.shape[0], q.shape[1], q.shape[2])
  let lk = k.shape[2]
  if let b = bias {
    precondition(b.shape == [heads, lq, lk], "attention: bias \(b.shape), expected [\(heads), \(lq), \(lk)]")
  }
  if let m = mask {
    precondition(m.shape.count == 3 && m.shape[1] == lq && m.shape[2] == lk && m.shape[0] > 0 && bp % m.shape[0] == 0,
                 "attention: mask \(m.shape), expected [nW, \(lq), \(lk)] with nW dividing \(bp)")
  }
  let out = Tensor(uninitialized: q.shape)
  let probs = Tensor(uninitialized: [bp, heads, lq, lk])
  attentionForward(out: out, probs: probs, q: q.value, k: k.value, v: v.value,
                   bias: bias?.value, mask: mask, scale: scale)
  let (qv, kv, vv) = (q.value, k.value, v.value)
  return makeResult(out, inputs: [q, k, v, bias]) { g in
    attentionBackward(dq: q.requiresGrad ? q.gradBuffer() : nil, dk: k.requiresGrad ? k.gradBuffer() : nil,
                      dv: v.requiresGrad ? v.gradBuffer() : nil,
                      dBias: bias?.requiresGrad == true ? bias!.gradBuffer() : nil,
                      dOut: g, probs: probs, q: qv, k: kv, v: vv, scale: scale)
  }
}
