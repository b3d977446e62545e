// The compute thread count and a parallel-for over index ranges.
//
// One number governs our kernels and the GEMMs: `ECENET_THREADS`, else the
// cores this process may run on (sched_getaffinity, so mpirun's binding and
// cgroup limits are respected).
//
// GEMM threading (`gemmThreading`). By default OpenBLAS runs single-threaded
// and `gemm` splits each large GEMM over *our* threads (MatMul.swift). When
// OpenBLAS threads itself instead, its idle workers spin in sched_yield for
// up to 2^28 cycles after every call (OPENBLAS_THREAD_TIMEOUT, read only at
// library load), competing with our own threads for the cores during every
// elementwise kernel between two GEMMs: ≈ 11% of a training step here
// (perf, BENCHMARKS.md). `.openBLAS` restores OpenBLAS's own threading (the
// benchmark's sgemm baseline uses it).
import CShims
import Foundation

public enum Parallel {
  public static var threads: Int = defaultThreads() {
    didSet { threads = max(1, threads); applyBLASThreads() }
  }

  /// Who splits a GEMM over the threads: we (OpenBLAS single-threaded) or OpenBLAS.
  public enum GEMMThreading: String { case ours, openBLAS = "openblas" }

  /// `ECENET_GEMM_THREADING=openblas` selects OpenBLAS's threading; default `.ours`.
  public static var gemmThreading: GEMMThreading =
    GEMMThreading(rawValue: ProcessInfo.processInfo.environment["ECENET_GEMM_THREADING"] ?? "") ?? .ours {
    didSet { applyBLASThreads() }
  }

  static func applyBLASThreads() {
    ecenet_blas_set_threads(Int32(gemmThreading == .ours ? 1 : threads))
  }

  static func defaultThreads() -> Int {
    let n: Int
    if let s = ProcessInfo.processInfo.environment["ECENET_THREADS"], let v = Int(s), v > 0 {
      n = v
    } else {
      n = ProcessInfo.processInfo.activeProcessorCount
    }
    ecenet_blas_set_threads(Int32(gemmThreading == .ours ? 1 : n))
    return n
  }

  /// Splits 0..<n into at most `threads` contiguous chunks of at least `grain`
  /// items and runs `body` on each, concurrently. Small loops run inline.
  @inlinable
  public static func forRange(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    if n <= 0 { return }
    let chunks = min(threads, max(1, n / max(1, grain)))
    if chunks == 1 { body(0..<n); return }
    DispatchQueue.concurrentPerform(iterations: chunks) { c in
      let lo = n * c / chunks, hi = n * (c + 1) / chunks
      if lo < hi { body(lo..<hi) }
    }
  }

  /// `forRange` whose body calls `gemmOnThisThread`: for its duration OpenBLAS
  /// runs single-threaded, on whichever of our threads calls it. For many small
  /// independent GEMMs (attention's per-window slices) this beats splitting
  /// each small GEMM over the threads, and it keeps each slice's data in the
  /// cache of the thread that works on it.
  public static func forRangeCallingBLAS(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    if n <= 0 { return }
    if threads == 1 || n <= grain { body(0..<n); return }
    if gemmThreading == .ours { forRange(n, grain: grain, body); return }  // OpenBLAS is single-threaded already
    ecenet_blas_set_threads(1)
    defer { applyBLASThreads() }
    forRange(n, grain: grain, body)
  }
}
