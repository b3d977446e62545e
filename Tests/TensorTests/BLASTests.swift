import CShims
import Foundation
import Tensor
import XCTest

/// cblas_sgemm through the shim against a naive triple loop, in every
/// transpose combination and with leading dimensions larger than the matrix
/// (strided sub-matrices), since the kernels use both.
final class BLASTests: XCTestCase {
  func naive(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
             a: [Float], lda: Int, b: [Float], ldb: Int, beta: Float, c: inout [Float], ldc: Int) {
    for i in 0..<m {
      for j in 0..<n {
        var s: Double = 0
        for p in 0..<k {
          let av = transA ? a[p * lda + i] : a[i * lda + p]
          let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
          s += Double(av) * Double(bv)
        }
        c[i * ldc + j] = alpha * Float(s) + beta * c[i * ldc + j]
      }
    }
  }

  func testSgemmMatchesNaiveLoopIncludingTransposesAndStrides() {
    var rng = SystemRandomNumberGenerator()
    for (m, n, k) in [(1, 1, 1), (7, 5, 3), (33, 17, 65), (64, 48, 96)] {
      for transA in [false, true] {
        for transB in [false, true] {
          let pad = 3  // leading dimensions larger than the logical width
          let lda = (transA ? m : k) + pad, ldb = (transB ? k : n) + pad, ldc = n + pad
          let a = (0..<((transA ? k : m) * lda)).map { _ in Float.random(in: -1...1, using: &rng) }
          let b = (0..<((transB ? n : k) * ldb)).map { _ in Float.random(in: -1...1, using: &rng) }
          let c0 = (0..<(m * ldc)).map { _ in Float.random(in: -1...1, using: &rng) }
          var expect = c0, got = c0
          naive(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.75, a: a, lda: lda,
                b: b, ldb: ldb, beta: 0.5, c: &expect, ldc: ldc)
          cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                      Int32(m), Int32(n), Int32(k), 0.75, a, Int32(lda), b, Int32(ldb), 0.5, &got, Int32(ldc))
          for i in 0..<got.count {
            XCTAssertEqual(got[i], expect[i], accuracy: 1e-4 * Float(k),
                           "m\(m) n\(n) k\(k) tA \(transA) tB \(transB) at \(i)")
          }
          // The padding columns of C must be untouched.
          for i in 0..<m { for j in n..<ldc { XCTAssertEqual(got[i * ldc + j], c0[i * ldc + j]) } }
        }
      }
    }
  }

  func testThreadControlRoundTrips() {
    let before = ecenet_blas_get_threads()
    ecenet_blas_set_threads(1)
    XCTAssertEqual(ecenet_blas_get_threads(), 1)
    ecenet_blas_set_threads(before)
    XCTAssertFalse(String(cString: ecenet_blas_corename()).isEmpty)
  }

  /// Many small GEMMs from our own threads at once (attention's per-slice path),
  /// and large GEMMs split over our threads by rows or columns, in every
  /// transpose: each must match the same GEMM run whole on one thread, under
  /// both GEMM threadings, and OpenBLAS's thread count must be as the mode says afterwards.
  func testGemmSplitsAndPerThreadGemmsMatchOneThreadInBothThreadings() {
    var rng = SystemRandomNumberGenerator()
    func rand(_ n: Int) -> [Float] { (0..<n).map { _ in Float.random(in: -1...1, using: &rng) } }
    let saved = Parallel.gemmThreading
    defer { Parallel.gemmThreading = saved }
    for mode in [Parallel.GEMMThreading.ours, .openBLAS] {
      Parallel.gemmThreading = mode
      // 24 independent small slices from inside forRangeCallingBLAS.
      let (slices, m, n, k) = (24, 37, 29, 19)
      let a = rand(slices * m * k), b = rand(slices * k * n)
      var alone = [Float](repeating: 0, count: slices * m * n)
      var together = [Float](repeating: .nan, count: slices * m * n)
      a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
        alone.withUnsafeMutableBufferPointer { cp in
          for s in 0..<slices {
            sgemmOnThisThread(transA: false, transB: true, m: m, n: n, k: k, a: ap.baseAddress! + s * m * k, lda: k,
                             b: bp.baseAddress! + s * k * n, ldb: k, beta: 0, c: cp.baseAddress! + s * m * n, ldc: n)
          }
        }
        together.withUnsafeMutableBufferPointer { cp in
          let c = cp.baseAddress!
          Parallel.forRangeCallingBLAS(slices) { r in
            for s in r {
              sgemmOnThisThread(transA: false, transB: true, m: m, n: n, k: k, a: ap.baseAddress! + s * m * k, lda: k,
                               b: bp.baseAddress! + s * k * n, ldb: k, beta: 0, c: c + s * m * n, ldc: n)
            }
          }
        }
      } }
      XCTAssertEqual(alone, together, "\(mode)")
      // Large enough to be split (m·n·k ≥ 2^18): taller than wide (rows) and wider than tall (columns).
      for (m, n, k) in [(203, 70, 41), (70, 203, 41)] {
        for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
          let (lda, ldb, ldc) = ((ta ? m : k) + 3, (tb ? k : n) + 2, n + 5)
          let a = rand((ta ? k : m) * lda), b = rand((tb ? n : k) * ldb), c0 = rand(m * ldc)
          var whole = c0, split = c0
          a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
            whole.withUnsafeMutableBufferPointer { cp in
              sgemmOnThisThread(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.7, a: ap.baseAddress!, lda: lda,
                               b: bp.baseAddress!, ldb: ldb, beta: 0.5, c: cp.baseAddress!, ldc: ldc)
            }
            split.withUnsafeMutableBufferPointer { cp in
              sgemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: 0.7, a: ap.baseAddress!, lda: lda,
                   b: bp.baseAddress!, ldb: ldb, beta: 0.5, c: cp.baseAddress!, ldc: ldc)
            }
          } }
          let worst = zip(whole, split).map { abs($0 - $1) }.max()!
          XCTAssertLessThan(worst, 1e-5, "\(mode) \(m)×\(n)×\(k) transA \(ta) transB \(tb)")
          // The padding columns of C (j ≥ n) are untouched.
          for i in 0..<m { for j in n..<ldc { XCTAssertEqual(split[i * ldc + j], c0[i * ldc + j]) } }
        }
      }
      XCTAssertEqual(Int(ecenet_blas_get_threads()), mode == .ours ? 1 : Parallel.threads, "\(mode)")
    }
  }

  /// The CPU probes the release build's start-up check relies on agree with the kernel's view.
  func testCPUFeatureProbesAgreeWithProcCpuinfo() throws {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
          let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else {
      throw XCTSkip("no /proc/cpuinfo flags line")
    }
    let flags = Set(line.split(separator: " ").map(String.init))
    XCTAssertEqual(ecenet_cpu_has_avx512f() == 1, flags.contains("avx512f"))
    XCTAssertEqual(ecenet_cpu_has_avx2() == 1, flags.contains("avx2") && flags.contains("fma"))
  }
}
