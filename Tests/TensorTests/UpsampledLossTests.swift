// The fused upsample + cross-entropy against the two ops it replaces, and
// against finite differences.
@testable import Tensor
import XCTest

final class UpsampledLossTests: XCTestCase {
  var rng = TestRNG(seed: 29)

  private func labels(_ n: Int, classes: Int) -> [Int32] {
    (0..<n).map { i in i % 7 == 3 ? 255 : Int32(truncatingIfNeeded: Int(rng.next() % UInt64(classes))) }
  }

  /// Value and gradient equal crossEntropy(resizeBilinear(x)) — upsampling by a
  /// non-integer factor, downsampling, the same size — with ignored pixels,
  /// two images, and 19 classes (one 16-lane block and a tail).
  func testEqualsCrossEntropyOfResizedLogits() {
    for (h, w, oh, ow) in [(5, 7, 13, 17), (9, 8, 4, 3), (6, 5, 6, 5), (3, 4, 24, 32)] {
      let (b, k) = (2, 19)
      let x = rng.tensor([b, h, w, k], -3, 3)
      let lab = labels(b * oh * ow, classes: k)
      let xa = Var(x.copy(), requiresGrad: true), xb = Var(x.copy(), requiresGrad: true)
      // One tape at a time: backward() replays (and empties) the whole tape.
      let fused = withGradients { upsampledCrossEntropy(logits: xa, height: oh, width: ow, labels: lab, normalizer: 37) }
      fused.backward()
      let plain = withGradients {
        crossEntropy(logits: resizeBilinear(xb, height: oh, width: ow), labels: lab, normalizer: 37)
      }
      plain.backward()
      XCTAssertEqual(fused.value.scalar, plain.value.scalar, accuracy: 1e-6 * max(1, abs(plain.value.scalar)), "\(h)×\(w)→\(oh)×\(ow)")
      let (ga, gb) = (xa.grad!.toArray(), xb.grad!.toArray())
      XCTAssertEqual(ga.count, gb.count)
      let worst = zip(ga, gb).map { abs($0 - $1) }.max()!
      XCTAssertLessThanOrEqual(worst, 1e-7, "\(h)×\(w)→\(oh)×\(ow) gradient")
      XCTAssertGreaterThan(ga.map(abs).max()!, 1e-4, "the gradient is not all zero")
    }
  }

  /// Without a normalizer it is the mean over non-ignored pixels, as crossEntropy.
  func testDefaultNormalizerIsTheValidPixelCount() {
    let x = rng.tensor([1, 3, 3, 4])
    let lab = labels(36, classes: 4)
    let a = upsampledCrossEntropy(logits: Var(x), height: 6, width: 6, labels: lab).value.scalar
    let b = crossEntropy(logits: resizeBilinear(Var(x), height: 6, width: 6), labels: lab).value.scalar
    XCTAssertEqual(a, b, accuracy: 1e-6)
  }

  func testGradientsAgainstFiniteDifferences() {
    let x = rng.tensor([2, 3, 4, 5], -2, 2)
    let lab = labels(2 * 7 * 9, classes: 5)
    checkGradients([x]) { v in upsampledCrossEntropy(logits: v[0], height: 7, width: 9, labels: lab) }
  }
}
