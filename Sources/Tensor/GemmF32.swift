// fp32 GEMM on our own AVX-512F kernel: the fast path of `sgemm` on the
// shapes where it measured faster than OpenBLAS (see `sgemmUsesF32Kernel` in
// MatMul.swift). Letters: M, N, K the GEMM sizes (op(A) is M×K, op(B) K×N,
// C M×N).
//
// Same sums as cblas_sgemm in a different fp32 order (each element's K sum
// runs in k order, one fused multiply-add per k). Not a replacement for
// OpenBLAS everywhere: callers check `f32GEMMKernelAvailable` and the routing
// rule in MatMul.swift picks the shapes.
//
// Kernel: CShims/f32_gemm.c (packed 32-column B panels, 14×32 register tile),
// the fp32 twin of the bf16 kernel, driven by the same Swift code
// (PackedGEMM.swift: Swift owns the threads and the memory).
// `gemmF32KernelOnThisThread` does it all on the calling thread, for GEMMs
// issued from inside a parallel loop.
import CShims
import Foundation

/// True when this CPU (and OS) runs the AVX-512F kernel; `gemmF32Kernel` may only be called then.
public let f32GEMMKernelAvailable: Bool = ecenet_cpu_has_avx512f() != 0

/// Whether `sgemm` routes to one of our AVX-512F kernels by default: only where the
/// CPU has AVX-512F, and then when its C was compiled `optimized` (SwiftPM debug
/// builds compile C at -O0, where our kernels lose to OpenBLAS), unless the
/// `environment` variable says `0` (off) or `1` (on).
func avx512KernelRoute(environment variable: String, optimized: Bool) -> Bool {
  guard f32GEMMKernelAvailable else { return false }
  switch ProcessInfo.processInfo.environment[variable] {
  case "0": return false
  case "1": return true
  default: return optimized
  }
}

enum F32GEMM {
  /// Whether `sgemm` / `sgemmOnThisThread` may use the kernel (on the shapes of
  /// `sgemmUsesF32Kernel`, and only under `Parallel.gemmThreading == .ours`): AVX-512F
  /// and CShims compiled with optimization (a debug build's -O0 kernel is ~40× slower
  /// than OpenBLAS). `ECENET_SGEMM_KERNEL=0` / `=1` forces it off / on (on still needs
  /// AVX-512F; for A/B benchmarks and debug-build test runs). Tests may set it.
  nonisolated(unsafe) static var routeSgemm: Bool =
    avx512KernelRoute(environment: "ECENET_SGEMM_KERNEL", optimized: ecenet_f32_gemm_optimized() != 0)
  static let kernel = PackedGEMMKernel(
    mr: Int(ecenet_f32_gemm_mr()), nr: Int(ecenet_f32_gemm_nr()),
    scratchFloats: (Int(ecenet_f32_gemm_a_scratch_bytes()) + 63) / 64 * 16,
    packedBBytes: ecenet_f32_gemm_packed_b_bytes, packB: ecenet_f32_gemm_pack_b, compute: ecenet_f32_gemm_compute,
    tapsScratchBytes: ecenet_f32_gemm_taps_scratch_bytes, tapsCompute: ecenet_f32_gemm_taps_compute,
    kTapsScratchBytes: ecenet_f32_gemm_ktaps_scratch_bytes, kTapsCompute: ecenet_f32_gemm_ktaps_compute,
    rowBlock: Int(ecenet_f32_gemm_mc()), computeStreaming: ecenet_f32_gemm_compute_streaming)
  /// Whether `linearBackward` may fuse its two GEMMs (`PackedGEMMKernel.linearBackward`)
  /// where the kernel runs them; `ECENET_FUSED_LINEAR_BACKWARD=0` turns it off (A/B runs).
  /// Tests may set it.
  nonisolated(unsafe) static var fuseLinearBackward: Bool =
    ProcessInfo.processInfo.environment["ECENET_FUSED_LINEAR_BACKWARD"] != "0"
}

/// C = alpha·op(A)·op(B) + beta·C in fp32 on the AVX-512F kernel: cblas_sgemm's
/// semantics (row-major) and `gemm`'s signature; beta == 0 never reads C. Splits the
/// work over `Parallel.threads`; must not be called from inside `Parallel.forRange`
/// (use `gemmF32KernelOnThisThread` there). Requires `f32GEMMKernelAvailable`.
public func gemmF32Kernel(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                          a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                          beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  gemmF32Kernel(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                beta: beta, c: c, ldc: ldc, parallel: true)
}

/// `gemmF32Kernel` on the calling thread only, for GEMMs inside `Parallel.forRange`.
/// Bit-identical to `gemmF32Kernel` (the thread split never changes a sum's order).
public func gemmF32KernelOnThisThread(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  gemmF32Kernel(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
                beta: beta, c: c, ldc: ldc, parallel: false)
}

/// With `bias`, C also gets bias[j] added to column j of every row (in the
/// kernel's store: `gemmAddingBias`).
func gemmF32Kernel(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                   a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                   beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil,
                   parallel: Bool) {
  precondition(f32GEMMKernelAvailable, "gemmF32Kernel: this CPU has no AVX-512F")
  if gemmFinishedWithoutKernel("gemmF32Kernel", transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                               lda: lda, ldb: ldb, beta: beta, c: c, ldc: ldc, bias: bias) { return }
  F32GEMM.kernel.run(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                     b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, bias: bias, parallel: parallel)
}
