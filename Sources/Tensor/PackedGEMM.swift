// The Swift side of our packed-panel GEMM kernels (CShims/bf16_gemm.c and
// CShims/f32_gemm.c): both expose the same C shape — pack op(B) into 32-column
// panels (any column range), and compute any row × column block of C from the
// packed B with a caller-provided A scratch — so one driver owns the threads
// and the memory for both. It packs op(B) once into pooled scratch (its panels
// split over the threads), then splits C over `Parallel.forRange`, each task
// with its own A scratch. Letters: M, N, K the GEMM sizes (op(A) M×K, op(B)
// K×N, C M×N); MR, NR the kernel's register tile.
import CShims

/// The checks and trivial cases both packed-GEMM entry points (`gemmBF16`,
/// `gemmF32Kernel`) keep before any kernel runs, with cblas semantics: sizes
/// checked; an empty C returns before anything else; k == 0 or alpha == 0
/// leaves C = beta·C (beta 0 writes zeros without reading C), plus the bias row
/// if any; A's and B's leading dimensions are checked only when they will be
/// read. True when C is already final.
func gemmFinishedWithoutKernel(_ name: String, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                               lda: Int, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                               bias: UnsafePointer<Float>? = nil) -> Bool {
  precondition(m >= 0 && n >= 0 && k >= 0, "\(name): negative size m \(m) n \(n) k \(k)")
  if m == 0 || n == 0 { return true }
  precondition(ldc >= n, "\(name): ldc \(ldc) < n \(n)")
  if k == 0 || alpha == 0 {
    for i in 0..<m {
      let row = c + i * ldc
      if beta == 0 { row.update(repeating: 0, count: n) } else { for j in 0..<n { row[j] *= beta } }
      if let bias = bias { for j in 0..<n { row[j] += bias[j] } }
    }
    return true
  }
  precondition(lda >= (transA ? m : k), "\(name): lda \(lda) < \(transA ? "m" : "k") (m \(m) k \(k), transA \(transA))")
  precondition(ldb >= (transB ? k : n), "\(name): ldb \(ldb) < \(transB ? "k" : "n") (k \(k) n \(n), transB \(transB))")
  return false
}

struct PackedGEMMKernel {
  typealias PackB = @convention(c) (Int32, Int, Int, UnsafePointer<Float>?, Int, Int, Int, UnsafeMutableRawPointer?) -> Void
  typealias Compute = @convention(c) (Int32, Int, Int, Int, Float, UnsafePointer<Float>?, Int, UnsafeRawPointer?, Float,
                                      UnsafeMutablePointer<Float>?, Int, UnsafePointer<Float>?, Int, Int, Int, Int,
                                      UnsafeMutableRawPointer?) -> Void
  let mr: Int, nr: Int
  /// Floats of A scratch per task, rounded up to 64 bytes so every task's slice stays aligned.
  let scratchFloats: Int
  let packedBBytes: @convention(c) (Int, Int) -> Int
  let packB: PackB
  let compute: Compute

  /// C = alpha·op(A)·op(B) + beta·C (+ bias[j] in every row's column j) for k ≥ 1,
  /// m, n ≥ 1 (callers handle the rest), on the calling thread only unless `parallel`.
  func run(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil, parallel: Bool) {
    let packed = Tensor(uninitialized: [(packedBBytes(k, n) + 3) / 4])
    let pb = UnsafeMutableRawPointer(packed.data)
    let panels = (n + nr - 1) / nr
    // A panel is 32·K copies; below ~32k per chunk a thread hand-off costs more than it saves.
    if parallel {
      Parallel.forRange(panels, grain: max(1, 32768 / (nr * k))) { r in
        packB(transB ? 1 : 0, k, n, b, ldb, r.lowerBound * nr, min(n, r.upperBound * nr), pb)
      }
    } else {
      packB(transB ? 1 : 0, k, n, b, ldb, 0, n, pb)
    }
    // C is split over the tasks by whole MR-row strips, or by NR-column panels when C
    // is wider than tall or has fewer strips than threads (small M); a task reads all
    // of op(B) when split by rows, all of op(A) by columns, so the split keeps the
    // larger operand divided (the M 128 N 512 K 25600 weight gradient gained ≈ 5%).
    // Products under 2²¹ multiply-adds (≈10 µs on one thread) stay on one thread:
    // two threads were no faster at 2²¹ and half as fast at 2¹⁹. Every split sums
    // each element in the same order, so the thread count never changes the result.
    let strips = (m + mr - 1) / mr
    let threads = !parallel || m * n * k < 1 << 21 ? 1 : Parallel.threads
    let byRows = (strips >= threads && (m >= n || panels < threads)) || strips >= panels
    let tasks = max(1, min(threads, byRows ? strips : panels))
    let scratch = Tensor(uninitialized: [tasks * scratchFloats])
    let sp = scratch.data
    let body = { (r: Range<Int>) in
      for t in r {
        let (m0, m1, n0, n1) = byRows
          ? (min(m, strips * t / tasks * mr), min(m, strips * (t + 1) / tasks * mr), 0, n)
          : (0, m, panels * t / tasks * nr, min(n, panels * (t + 1) / tasks * nr))
        compute(transA ? 1 : 0, m, n, k, alpha, a, lda, pb, beta, c, ldc, bias, m0, m1, n0, n1,
                UnsafeMutableRawPointer(sp + t * scratchFloats))
      }
    }
    if tasks == 1 { body(0..<1) } else { Parallel.forRange(tasks, body) }
    withExtendedLifetime((packed, scratch)) {}
  }
}
