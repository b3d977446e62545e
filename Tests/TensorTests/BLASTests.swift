import CShims
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
}
