// fp32 GEMM for small operands on our AVX-512F kernel without packing: the fast
// path of `sgemm` / `sgemmOnThisThread` for window attention's per-(window, head)
// GEMMs (Swin: 49×49×32, 49×32×49, 144×144×32, 144×32×144 in all four trans
// combinations), where OpenBLAS's per-call overhead and packing dominate.
// Letters: M, N, K the GEMM sizes (op(A) M×K, op(B) K×N, C M×N).
//
// Same sums as cblas_sgemm: each element's K sum in k order, one FMA per k,
// except the last N mod 16 ≤ 3 columns of A·Bᵀ (N = 49), summed as dot products
// (16 partial sums, then added).
// Bounded: op(B), N rounded up to 16, at most 8192 floats (32 KiB, an L1), so
// K ≤ 512; M any. Not threaded; no allocation.
//
// Kernel: CShims/small_gemm.c (register tiles of up to 4 zmm × 6…16 rows held
// over the whole K loop, A broadcast in place, op(B) read in place or, when
// transposed, transposed once into a stack buffer).
import CShims
import Foundation

/// Floats of op(B) (N rounded up to 16) that `smallSgemm` takes.
public let smallSgemmMaxBFloats: Int = ecenet_small_sgemm_max_b_floats()

/// Whether `smallSgemm` takes these sizes: K · roundup(N, 16) ≤ `smallSgemmMaxBFloats`
/// (the kernel's own rule, so the two cannot disagree).
@inline(__always)
public func smallSgemmSupports(m: Int, n: Int, k: Int) -> Bool {
  ecenet_small_sgemm_supported(m, n, k) != 0
}

enum SmallGEMM {
  /// Whether `sgemm` / `sgemmOnThisThread` may use the small kernel (on the shapes of
  /// `sgemmUsesSmallKernel`, only under `Parallel.gemmThreading == .ours`): AVX-512F and
  /// CShims compiled with optimization (the -O0 kernel of a debug build is slower than
  /// OpenBLAS). `ECENET_SMALL_GEMM=0` / `=1` forces it off / on (on still needs AVX-512F;
  /// for A/B benchmarks and debug-build runs). Tests may set it.
  nonisolated(unsafe) static var route: Bool =
    avx512KernelRoute(environment: "ECENET_SMALL_GEMM", optimized: ecenet_small_sgemm_optimized() != 0)
  #if DEBUG
  /// Test hook (debug builds only): called with (M, N, K) by every `smallSgemm` that
  /// runs the kernel, from the calling thread. The kernel gives OpenBLAS's bits on
  /// most of attention's shapes (both sum each element in k order with one FMA per k),
  /// so this is how tests see the route.
  nonisolated(unsafe) static var onCall: ((Int, Int, Int) -> Void)?
  #endif
}

/// Which fp32 GEMMs `sgemm` / `sgemmOnThisThread` give to the small kernel: M ≤ 256 and
/// op(B) within the kernel's bound (`smallSgemmSupports`), when `SmallGEMM.route` under
/// `Parallel.gemmThreading == .ours`. These never overlap `sgemmUsesF32Kernel`'s (M ≥ 256
/// and ≥ 2²² multiply-adds; here M·N·K ≤ 256·8192 = 2²¹). Measured on the 2-vCPU Zen 5
/// (one thread, C at -O2, 64 slices' operands in rotation, best of 7, µs per call,
/// OpenBLAS 0.3.21 cblas_sgemm vs kernel): 49×49×32 NT (q·kᵀ) 2.37 vs 1.85 (1.28×),
/// 49×32×49 NN 1.45 vs 1.44, TN 1.49 vs 1.46; 144×144×32 NT 15.9 vs 13.8 (1.16×),
/// 144×32×144 NN 12.0 vs 12.2 (0.98×), TN 12.2 vs 12.1. OpenBLAS's small-matrix
/// kernels already run NN and TN at the FMA peak (≈ 105…110 GFLOP/s); the gain is A·Bᵀ,
/// where OpenBLAS loses to the transposed access and N = 49's tail (dot products here).
@inline(__always)
func sgemmUsesSmallKernel(m: Int, n: Int, k: Int) -> Bool {
  SmallGEMM.route && Parallel.gemmThreading == .ours && m <= 256 && smallSgemmSupports(m: m, n: n, k: k)
}

/// C = alpha·op(A)·op(B) + beta·C in fp32 on the small AVX-512F kernel, on the calling
/// thread: cblas_sgemm's semantics (row-major) and `gemm`'s signature; beta == 0 never
/// reads C. Requires `f32GEMMKernelAvailable` and `smallSgemmSupports(m:n:k:)`.
public func smallSgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                       a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                       beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  precondition(f32GEMMKernelAvailable, "smallSgemm: this CPU has no AVX-512F")
  precondition(smallSgemmSupports(m: m, n: n, k: k),
               "smallSgemm: m \(m) n \(n) k \(k) over the bound k·roundup(n, 16) ≤ \(smallSgemmMaxBFloats)")
  if gemmFinishedWithoutKernel("smallSgemm", transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                               lda: lda, ldb: ldb, beta: beta, c: c, ldc: ldc) { return }
  #if DEBUG
  SmallGEMM.onCall?(m, n, k)
  #endif
  ecenet_small_sgemm(transA ? 1 : 0, transB ? 1 : 0, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
