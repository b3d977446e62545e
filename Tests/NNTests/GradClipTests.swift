// Global-norm clipping: the norm against a plain Double sum, clipping to the
// limit without changing direction, no-ops below it and for non-finite norms,
// and independence from the thread count.
import Foundation
import XCTest
@testable import NN
import Tensor

final class GradClipTests: XCTestCase {
  func norm(_ a: [Float]) -> Double { a.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot() }

  func testGlobalNormMatchesDoubleSum() {
    // Several reduction blocks plus a ragged tail.
    let a = randomValues(3 * GradClip.block + 12_345, seed: 11, scale: 0.3)
    let t = Tensor(shape: [a.count], values: a)
    XCTAssertEqual(GradClip.globalNorm(t), norm(a), accuracy: 1e-12 * norm(a))
    XCTAssertEqual(GradClip.globalNorm(Tensor(shape: [2], values: [3, 4])), 5)
    XCTAssertEqual(GradClip.globalNorm(Tensor(shape: [0], values: [])), 0)
  }

  func testClipScalesToMaxNormKeepingDirection() {
    let a = randomValues(50_001, seed: 12)
    let t = Tensor(shape: [a.count], values: a)
    let before = norm(a)
    let returned = GradClip.clip(t, maxNorm: 1.0)
    XCTAssertEqual(returned, before, accuracy: 1e-12 * before, "returns the norm before clipping, like torch")
    let after = t.toArray()
    XCTAssertEqual(norm(after), 1.0, accuracy: 1e-5)
    let coef = Float(1.0 / (before + 1e-6))
    assertAllClose(after, a.map { $0 * coef }, rtol: 1e-6, "clipped values")
  }

  func testBelowLimitAndNonFiniteLeaveGradientsUnchanged() {
    let a: [Float] = [0.1, -0.2, 0.3]
    let t = Tensor(shape: [3], values: a)
    XCTAssertEqual(GradClip.clip(t, maxNorm: 1), norm(a), accuracy: 1e-15)
    XCTAssertEqual(t.toArray(), a)
    let bad = Tensor(shape: [3], values: [1, .infinity, 2])
    XCTAssertEqual(GradClip.clip(bad, maxNorm: 1), .infinity)
    XCTAssertEqual(bad.toArray(), [1, .infinity, 2])
    let nan = Tensor(shape: [2], values: [.nan, 2])
    XCTAssertTrue(GradClip.clip(nan, maxNorm: 1).isNaN)
    XCTAssertEqual(nan.toArray()[1], 2)
  }

  func testNormIndependentOfThreadCount() {
    let a = randomValues(7 * GradClip.block + 3, seed: 13)
    let t = Tensor(shape: [a.count], values: a)
    let n1 = withThreads(1) { GradClip.globalNorm(t) }
    let n3 = withThreads(3) { GradClip.globalNorm(t) }
    XCTAssertEqual(n1.bitPattern, n3.bitPattern)
  }

  func testClipsTheStoreGradientArena() {
    let store = ParameterStore()
    let w = store.parameter("w", Tensor.zeros([2, 2]))
    let b = store.parameter("b", Tensor.zeros([2]), decay: false)
    store.finalize()
    w.grad!.data.update(from: [3, 0, 0, 0], count: 4)
    b.grad!.data.update(from: [0, 4], count: 2)
    XCTAssertEqual(GradClip.clip(store, maxNorm: 1), 5)
    XCTAssertEqual(w.grad!.toArray()[0], 0.6, accuracy: 1e-6)
    XCTAssertEqual(b.grad!.toArray()[1], 0.8, accuracy: 1e-6)
  }
}
