// The compute thread count and a parallel-for over index ranges.
//
// One number governs both our kernels and OpenBLAS: `ECENET_THREADS`, else the
// cores this process may run on (sched_getaffinity, so mpirun's binding and
// cgroup limits are respected). OpenBLAS is told the same count and is never
// called from inside `forRange`, so the two never oversubscribe the cores —
// except through `forRangeCallingBLAS`, which tells OpenBLAS to use one thread
// (the caller's) while our threads each run their own small GEMMs.
import CShims
import Foundation

public enum Parallel {
  public static var threads: Int = defaultThreads() {
    didSet { threads = max(1, threads); ecenet_blas_set_threads(Int32(threads)) }
  }

  static func defaultThreads() -> Int {
    let n: Int
    if let s = ProcessInfo.processInfo.environment["ECENET_THREADS"], let v = Int(s), v > 0 {
      n = v
    } else {
      n = ProcessInfo.processInfo.activeProcessorCount
    }
    ecenet_blas_set_threads(Int32(n))
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

  /// `forRange` whose body may call `gemm`: for its duration OpenBLAS runs
  /// single-threaded, on whichever of our threads calls it. For many small
  /// independent GEMMs (attention's per-window slices) this beats OpenBLAS
  /// splitting each small GEMM over the threads, and it keeps each slice's
  /// data in the cache of the thread that works on it.
  public static func forRangeCallingBLAS(_ n: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
    if n <= 0 { return }
    if threads == 1 || n <= grain { body(0..<n); return }
    ecenet_blas_set_threads(1)
    defer { ecenet_blas_set_threads(Int32(threads)) }
    forRange(n, grain: grain, body)
  }
}
