// GEMM, batched GEMM and Linear (matches torch.matmul / F.linear).
// Letters: M, N, K the GEMM sizes; B the batch of a batched GEMM.
// The GEMM goes to OpenBLAS's cblas_sgemm (row-major), or on large shapes with
// AVX-512 to our fp32 kernel (GemmF32.swift; rule and figures at
// sgemmUsesF32Kernel), or on small ones (attention slices) to our unpacked small
// kernel (SmallGemm.swift, sgemmUsesSmallKernel). Linear keeps PyTorch's weight
// layout [out, in] so checkpoints load unchanged: y = x·Wᵀ + b is one sgemm with
// B transposed, over all leading dimensions of x as rows.
import CShims

/// What every `gemm` of the engine computes in, for this process (the config's
/// `train.precision`). `.bf16`: op(A) and op(B) rounded to bfloat16, products
/// summed in fp32, fp32 out (GemmBF16.swift) — the GEMM numerics of PyTorch's
/// CPU bf16 autocast for linear, matmul and conv, with fp32 everywhere else
/// (weights, optimizer state, norms, softmax, losses, activations stored).
public enum GEMMPrecision: String, Sendable {
  case fp32, bf16
  /// Set once, before training or evaluation starts (not while GEMMs run).
  nonisolated(unsafe) public static var current: GEMMPrecision = .fp32
}

/// C = alpha·op(A)·op(B) + beta·C, row-major, in `GEMMPrecision.current`:
/// `sgemm` or `gemmBF16`. Must not be called from inside `Parallel.forRange`;
/// use `gemmOnThisThread` there.
@inline(__always)
public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                 a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                 beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  switch GEMMPrecision.current {
  case .fp32: sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                    b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  case .bf16: gemmBF16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  }
}

/// C = op(A)·op(B) + bias, bias [N] added to every row (F.linear's form), in
/// `GEMMPrecision.current`; C is only written. Our AVX-512 kernels add the bias
/// in their store, so it costs no pass over C; where OpenBLAS (or the bf16
/// fallback) runs, C is first filled with bias rows and the GEMM adds into it.
/// Must not be called from inside `Parallel.forRange`.
public func gemmAddingBias(transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                           bias: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int) {
  switch GEMMPrecision.current {
  case .fp32 where sgemmUsesF32Kernel(m: m, n: n, k: k):
    gemmF32Kernel(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb,
                  beta: 0, c: c, ldc: ldc, bias: bias, parallel: true)
  case .bf16 where BF16GEMM.useKernel:
    if gemmFinishedWithoutKernel("gemmBF16", transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1,
                                 lda: lda, ldb: ldb, beta: 0, c: c, ldc: ldc, bias: bias) { return }
    gemmBF16Kernel(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb,
                   beta: 0, c: c, ldc: ldc, bias: bias, parallel: true)
  default:
    Parallel.forRange(m, grain: max(1, 16384 / max(1, n))) { r in
      for i in r { (c + i * ldc).update(from: bias, count: n) }
    }
    gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: 1, c: c, ldc: ldc)
  }
}

/// Our packed AVX-512 kernel for `GEMMPrecision.current` where it may run (fp32:
/// `F32GEMM.routeSgemm` under our threading; bf16: the AVX512_BF16 kernel, or the AMX one
/// where it is in use), else nil:
/// for callers with a kernel-only path of their own (the shifted conv's taps GEMM).
func packedKernelForGEMMPrecision() -> PackedGEMMKernel? {
  switch GEMMPrecision.current {
  case .fp32: return F32GEMM.routeSgemm && Parallel.gemmThreading == .ours ? F32GEMM.kernel : nil
  case .bf16: return BF16GEMM.useKernel ? BF16GEMM.activeKernel : nil
  }
}

/// `gemm` on the calling thread; safe inside `Parallel.forRange`.
@inline(__always)
public func gemmOnThisThread(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  switch GEMMPrecision.current {
  case .fp32: sgemmOnThisThread(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  case .bf16: gemmBF16OnThisThread(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                   b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  }
}

/// fp32 C = alpha·op(A)·op(B) + beta·C: our AVX-512 kernel (GemmF32.swift) on the
/// shapes where it measured faster (`sgemmUsesF32Kernel`), the small kernel
/// (SmallGemm.swift) on GEMMs or split blocks within its bound (`sgemmUsesSmallKernel`),
/// else OpenBLAS. Large OpenBLAS GEMMs are split over our threads by rows of C (or by
/// columns when C is wider than tall), each block one single-threaded sgemm (see
/// Parallel.gemmThreading).
/// Must not be called from inside `Parallel.forRange`; use `sgemmOnThisThread` there.
public func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                 a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                 beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  if sgemmUsesF32Kernel(m: m, n: n, k: k) {
    gemmF32Kernel(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, parallel: true)
    return
  }
  // Below about a quarter MFLOP the fork/join costs more than it saves.
  let threads = Parallel.threads
  if threads == 1 || Parallel.gemmThreading == .openBLAS || m * n * k < gemmSplitMinimum {
    smallOrOpenBLASSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                         b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    return
  }
  // Blocks of 16 rows/columns keep the split points on the kernels' tile edges.
  let byRows = m >= n, extent = byRows ? m : n, tile = 16
  Parallel.forRange((extent + tile - 1) / tile, grain: 2) { r in
    let lo = r.lowerBound * tile, hi = min(extent, r.upperBound * tile)
    if byRows {  // rows lo..<hi of C come from rows lo..<hi of op(A)
      smallOrOpenBLASSgemm(transA: transA, transB: transB, m: hi - lo, n: n, k: k, alpha: alpha,
                           a: a + (transA ? lo : lo * lda), lda: lda, b: b, ldb: ldb,
                           beta: beta, c: c + lo * ldc, ldc: ldc)
    } else {     // columns lo..<hi of C come from columns lo..<hi of op(B)
      smallOrOpenBLASSgemm(transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha,
                           a: a, lda: lda, b: b + (transB ? lo * ldb : lo), ldb: ldb,
                           beta: beta, c: c + lo, ldc: ldc)
    }
  }
}

/// m·n·k below which `gemm` does not split (OpenBLAS's own threshold is similar).
let gemmSplitMinimum = 1 << 18

/// One fp32 sgemm on the calling thread (our kernel where `sgemmUsesF32Kernel`, the
/// small kernel where `sgemmUsesSmallKernel` (SmallGemm.swift: attention's per-slice
/// GEMMs), else OpenBLAS single-threaded under the default Parallel.gemmThreading);
/// safe inside `Parallel.forRangeCallingBLAS`.
@inline(__always)
public func sgemmOnThisThread(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  if sgemmUsesF32Kernel(m: m, n: n, k: k) {
    gemmF32Kernel(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, parallel: false)
    return
  }
  smallOrOpenBLASSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
}

/// Which fp32 GEMMs `sgemm` / `sgemmOnThisThread` give to our AVX-512 kernel: those of
/// at least 2²² multiply-adds with M ≥ 256, when `F32GEMM.routeSgemm` (AVX-512F, an
/// optimized CShims build) under `Parallel.gemmThreading == .ours` (under `.openBLAS`
/// sgemm is the OpenBLAS baseline). Measured on the 2-vCPU Zen 5, quiet machine, one
/// release-built process, 2 threads, best of 10, GFLOP/s kernel vs sgemm (our split of
/// OpenBLAS 0.3.21): 1×1 conv 25600×256×128 NT 206 vs 180, Swin fc1 25600×512×128 NT
/// 211 vs 186, fc1 dx 25600×128×512 NN 198 vs 173, its weight gradient 512×128×25600
/// TN 177 vs 173, 1024³ NN 213 vs 208, Swin stage 2…4 linears and their gradients
/// (M 400…6400, K 256…4096) 0.99…1.10× OpenBLAS's speed. OpenBLAS keeps the small
/// GEMMs, where its unpacked small-matrix kernels win (single-threaded attention
/// slices 144×144×32 NT 0.95×, 144×32×144 NN 0.79×, 49×32×49 NN 0.64×), and short-M
/// long-K ones (128×512×25600 TN 0.92×).
@inline(__always)
func sgemmUsesF32Kernel(m: Int, n: Int, k: Int) -> Bool {
  F32GEMM.routeSgemm && Parallel.gemmThreading == .ours && m >= 256 && m * n * k >= 1 << 22
}

/// One GEMM on the calling thread: the small kernel where `sgemmUsesSmallKernel`, else
/// `openBLASSgemm`.
@inline(__always)
func smallOrOpenBLASSgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                          a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                          beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  if sgemmUsesSmallKernel(m: m, n: n, k: k) {
    smallSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
               b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  } else {
    openBLASSgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
  }
}

/// cblas_sgemm, row-major, on the calling thread (single-threaded under `.ours`).
@inline(__always)
func openBLASSgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                   a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                   beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  if m == 0 || n == 0 { return }
  if k == 0 {
    for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
    return
  }
  cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
              Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

// MARK: Linear

/// y[R, O] = x[R, I] · w[O, I]ᵀ + b[O]
public func linearForward(out y: Tensor, x: Tensor, weight w: Tensor, bias b: Tensor?) {
  let inF = w.shape[1], outF = w.shape[0], rows = x.count / inF
  if let b = b {
    gemmAddingBias(transA: false, transB: true, m: rows, n: outF, k: inF, a: x.data, lda: inF,
                   b: w.data, ldb: inF, bias: b.data, c: y.data, ldc: outF)
  } else {
    gemm(transA: false, transB: true, m: rows, n: outF, k: inF, a: x.data, lda: inF,
         b: w.data, ldb: inF, beta: 0, c: y.data, ldc: outF)
  }
}

/// dx (+)= dy·w ; dw += dyᵀ·x ; db += Σ_rows dy   (any of the three may be
/// skipped; dx is overwritten unless `accumulateDx`).
public func linearBackward(dx: Tensor?, accumulateDx: Bool = true, dWeight: Tensor?, dBias: Tensor?, dy: Tensor,
                           x: Tensor, weight w: Tensor) {
  let inF = w.shape[1], outF = w.shape[0], rows = x.count / inF
  if let dw = dWeight, let groups = fusedLinearBackwardGroups(rows: rows, outFeatures: outF, inFeatures: inF) {
    F32GEMM.kernel.linearBackward(groups: groups, rows: rows, outFeatures: outF, inFeatures: inF, dy: dy.data,
                                  x: x.data, weight: w.data, dx: dx?.data, dxBeta: accumulateDx ? 1 : 0,
                                  dWeight: dw.data)
  } else {
    if let dx = dx {
      gemm(transA: false, transB: false, m: rows, n: inF, k: outF, a: dy.data, lda: outF,
           b: w.data, ldb: inF, beta: accumulateDx ? 1 : 0, c: dx.data, ldc: inF)
    }
    if let dw = dWeight {
      gemm(transA: true, transB: false, m: outF, n: inF, k: rows, a: dy.data, lda: outF,
           b: x.data, ldb: inF, beta: 1, c: dw.data, ldc: inF)
    }
  }
  if let db = dBias { addColumnSums(into: db.data, of: dy.data, rows: rows, columns: outF) }
}

/// The row groups of the fused linear backward (`PackedGEMMKernel.linearBackward`:
/// dx and dW in one pass over dy) where it runs, else nil: in fp32, where our kernel
/// would run either GEMM and the shape has enough rows (`linearBackwardGroups`).
/// 1×1 conv 160²×128→256 backward, 2 threads: 19.1–19.4 → 17.7–17.9 ms.
func fusedLinearBackwardGroups(rows: Int, outFeatures: Int, inFeatures: Int) -> Int? {
  guard GEMMPrecision.current == .fp32, F32GEMM.fuseLinearBackward,
        sgemmUsesF32Kernel(m: outFeatures, n: inFeatures, k: rows)
          || sgemmUsesF32Kernel(m: rows, n: inFeatures, k: outFeatures) else { return nil }
  let groups = F32GEMM.kernel.linearBackwardGroups(rows: rows, outFeatures: outFeatures, inFeatures: inFeatures)
  return groups > 1 ? groups : nil
}

/// F.linear: x[..., in] · weight[out, in]ᵀ + bias[out].
public func linear(_ x: Var, weight: Var, bias: Var?) -> Var {
  precondition(x.shape.last == weight.shape[1], "linear: input \(x.shape) vs weight \(weight.shape) (\(weight.name ?? ""))")
  let outShape = Array(x.shape.dropLast()) + [weight.shape[0]]
  let y = Tensor(uninitialized: outShape)
  linearForward(out: y, x: x.value, weight: weight.value, bias: bias?.value)
  let (xv, wv) = (x.value, weight.value)
  return makeResult(y, inputs: [x, weight, bias]) { g in
    let dx = x.requiresGrad ? x.gradDestination() : nil
    linearBackward(dx: dx?.tensor, accumulateDx: dx?.accumulate ?? true,
                   dWeight: weight.requiresGrad ? weight.gradBuffer() : nil,
                   dBias: bias?.requiresGrad == true ? bias!.gradBuffer() : nil,
                   dy: g, x: xv, weight: wv)
  }
}

// MARK: Batched matmul

/// C_i = op(A_i)·op(B_i) + beta·C_i for i in 0..<batch, each operand at its
/// own stride per slice (0: every slice reads the same A or B). With at least
/// as many slices as threads, slices run in parallel, each GEMM on one thread
/// (as attention's): splitting each GEMM instead left the SAU's long-K slices
/// (M 150, N 32, K 16384) to OpenBLAS, which repacked B in every row block. A
/// shared C (strideC 0) sums the slices in order, one GEMM at a time.
func batchedGemm(batch: Int, transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
                 a: UnsafePointer<Float>, lda: Int, strideA: Int, b: UnsafePointer<Float>, ldb: Int, strideB: Int,
                 beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, strideC: Int) {
  if strideC == 0 || batch < Parallel.threads {
    for i in 0..<batch {
      gemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a + i * strideA, lda: lda, b: b + i * strideB,
           ldb: ldb, beta: strideC == 0 && i > 0 ? 1 : beta, c: c + i * strideC, ldc: ldc)
    }
    return
  }
  Parallel.forRangeCallingBLAS(batch) { r in
    for i in r {
      gemmOnThisThread(transA: transA, transB: transB, m: m, n: n, k: k, a: a + i * strideA, lda: lda,
                       b: b + i * strideB, ldb: ldb, beta: beta, c: c + i * strideC, ldc: ldc)
    }
  }
}

/// out[B, M, N] = op(a)[B, M, K] · op(b)[B, K, N]; b may have batch 1 (shared).
public func bmmForward(out: Tensor, a: Tensor, b: Tensor, transA: Bool, transB: Bool) {
  let batch = out.rank == 3 ? out.shape[0] : 1
  let m = out.shape[out.rank - 2], n = out.shape[out.rank - 1]
  let k = transA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
  batchedGemm(batch: batch, transA: transA, transB: transB, m: m, n: n, k: k, a: a.data, lda: transA ? m : k,
              strideA: m * k, b: b.data, ldb: transB ? k : n, strideB: b.count == k * n ? 0 : k * n,
              beta: 0, c: out.data, ldc: n, strideC: m * n)
}

/// torch.matmul for rank-2 or rank-3 operands (equal batch, or a shared 2-D b).
public func matmul(_ a: Var, _ b: Var, transA: Bool = false, transB: Bool = false) -> Var {
  let ar = a.shape.count, br = b.shape.count
  let m = transA ? a.shape[ar - 1] : a.shape[ar - 2]
  let k = transA ? a.shape[ar - 2] : a.shape[ar - 1]
  let kb = transB ? b.shape[br - 1] : b.shape[br - 2]
  let n = transB ? b.shape[br - 2] : b.shape[br - 1]
  precondition(k == kb, "matmul: \(a.shape)\(transA ? "ᵀ" : "") · \(b.shape)\(transB ? "ᵀ" : "")")
  let batch = ar == 3 ? a.shape[0] : 1
  precondition(br == 2 || b.shape[0] == batch, "matmul: batch of \(b.shape) vs \(a.shape)")
  let outShape = ar == 3 ? [batch, m, n] : [m, n]
  let y = Tensor(uninitialized: outShape)
  bmmForward(out: y, a: a.value, b: b.value, transA: transA, transB: transB)
  let (av, bv) = (a.value, b.value)
  return makeResult(y, inputs: [a, b]) { g in
    let ga = g.reshaped([batch, m, n])
    // Each gradient is written whole by its GEMMs (beta 0 into a fresh buffer)
    // or added into the existing one: no zero fill.
    let sB = br == 2 ? 0 : k * n  // B's slice stride (0: shared by every slice)
    if a.requiresGrad {
      // dA = dC·op(B)ᵀ (or its transpose when A was used transposed)
      let (da, acc) = a.gradDestination()
      if transA {  // A is [K, M]: dA = op(B)·dCᵀ
        batchedGemm(batch: batch, transA: transB, transB: true, m: k, n: m, k: n, a: bv.data, lda: transB ? k : n,
                    strideA: sB, b: ga.data, ldb: n, strideB: m * n, beta: acc ? 1 : 0, c: da.data, ldc: m,
                    strideC: m * k)
      } else {
        batchedGemm(batch: batch, transA: false, transB: !transB, m: m, n: k, k: n, a: ga.data, lda: n,
                    strideA: m * n, b: bv.data, ldb: transB ? k : n, strideB: sB, beta: acc ? 1 : 0, c: da.data,
                    ldc: k, strideC: m * k)
      }
    }
    if b.requiresGrad {
      // A shared B (rank 2) sums every slice's product into one gradient (strideC 0).
      let (db, acc) = b.gradDestination()
      if transB {  // B is [N, K]: dB = dCᵀ·op(A)
        batchedGemm(batch: batch, transA: true, transB: transA, m: n, n: k, k: m, a: ga.data, lda: n,
                    strideA: m * n, b: av.data, ldb: transA ? m : k, strideB: m * k, beta: acc ? 1 : 0,
                    c: db.data, ldc: k, strideC: sB)
      } else {
        batchedGemm(batch: batch, transA: !transA, transB: false, m: k, n: n, k: m, a: av.data, lda: transA ? m : k,
                    strideA: m * k, b: ga.data, ldb: n, strideB: m * n, beta: acc ? 1 : 0, c: db.data, ldc: n,
                    strideC: sB)
      }
    }
  }
}

extension Var {
  /// Same values, new shape (one dimension may be -1). No copy.
  public func reshaped(_ shape: [Int]) -> Var {
    let old = self.shape
    return makeResult(value.reshaped(shape), inputs: [self]) { g in self.accumulateGrad(g.reshaped(old)) }
  }
}
