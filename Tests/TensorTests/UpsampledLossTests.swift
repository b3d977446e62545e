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

/// The fused focal + dice of upsampled masks against the ops it replaces
/// (resizeBilinear, a 0/1 target tensor, sigmoidFocalLossSum, diceLoss), and
/// against finite differences.
final class UpsampledMaskLossTests: XCTestCase {
  var rng = TestRNG(seed: 31)

  /// Labels [B, H, W] in 0..<classes with some ignored (255) pixels.
  private func labels(_ b: Int, _ h: Int, _ w: Int, classes: Int) -> [Int32] {
    (0..<(b * h * w)).map { i in i % 11 == 5 ? 255 : Int32(truncatingIfNeeded: Int(rng.next() % UInt64(classes))) }
  }

  /// The unfused path of ecenetLosses: (Σ focal, Σ dice).
  private func unfused(_ x: Var, _ oh: Int, _ ow: Int, _ lab: [Int32], _ targets: [MaskTarget],
                       alpha: Float, gamma: Float) -> (Var, Var) {
    let (m, h, w) = (x.shape[0], x.shape[1], x.shape[2])
    let z = resizeBilinear(x.reshaped([m, h, w, 1]), height: oh, width: ow).reshaped([m, oh * ow])
    let t = Tensor(uninitialized: [m, oh * ow])
    for (i, tg) in targets.enumerated() {
      for j in 0..<(oh * ow) { t.data[i * oh * ow + j] = lab[tg.image * oh * ow + j] == tg.cls ? 1 : 0 }
    }
    return (sigmoidFocalLossSum(logits: z, targets: t, alpha: alpha, gamma: gamma), diceLoss(logits: z, targets: t).sum())
  }

  /// Values and gradients equal the unfused ops' (to summation order) for
  /// upsampling by integer and non-integer factors, downsampling, the same
  /// size and a tall/wide mix; γ = 2 (the fast path) and γ = 1.5, α < 0;
  /// targets from two images, one class absent from its image.
  func testEqualsUnfusedFocalAndDice() {
    let shapes = [(5, 7, 20, 28), (9, 8, 4, 3), (6, 5, 6, 5), (3, 4, 29, 130), (32, 32, 128, 128)]
    for (h, w, oh, ow) in shapes {
      for (alpha, gamma) in [(Float(0.25), Float(2)), (-1, 1.5)] {
        let lab = labels(2, oh, ow, classes: 4)
        let targets = [MaskTarget(image: 0, cls: 0), MaskTarget(image: 1, cls: 2), MaskTarget(image: 0, cls: 3),
                       MaskTarget(image: 1, cls: 1), MaskTarget(image: 1, cls: 7)]  // class 7: all-zero target
        let x = rng.tensor([targets.count, h, w], -4, 4)
        let xa = Var(x.copy(), requiresGrad: true), xb = Var(x.copy(), requiresGrad: true)
        // Weights 0.7 and 1.3 so a swapped focal/dice gradient would show.
        let fused = withGradients {
          let r = upsampledMaskLosses(masks: xa, height: oh, width: ow, labels: lab, targets: targets, alpha: alpha, gamma: gamma)
          (r.focal * 0.7 + r.dice * 1.3).backward()
          return r
        }
        let plain = withGradients {
          let r = unfused(xb, oh, ow, lab, targets, alpha: alpha, gamma: gamma)
          (r.0 * 0.7 + r.1 * 1.3).backward()
          return r
        }
        let tag = "\(h)×\(w)→\(oh)×\(ow) α \(alpha) γ \(gamma)"
        XCTAssertEqual(fused.focal.value.scalar, plain.0.value.scalar, accuracy: 1e-5 * abs(plain.0.value.scalar), tag)
        XCTAssertEqual(fused.dice.value.scalar, plain.1.value.scalar, accuracy: 1e-5 * abs(plain.1.value.scalar), tag)
        let (ga, gb) = (xa.grad!.toArray(), xb.grad!.toArray())
        let scale = gb.map(abs).max()!
        XCTAssertGreaterThan(scale, 1e-3, "\(tag): the gradient is not all zero")
        XCTAssertLessThanOrEqual(zip(ga, gb).map { abs($0 - $1) }.max()!, 1e-5 * scale, "\(tag) gradient")
      }
    }
  }

  /// Bands are fixed by the sizes, so one and three threads give the same bits.
  func testSameBitsOnAnyThreadCount() {
    let (h, w, oh, ow) = (40, 24, 160, 96)
    let lab = labels(1, oh, ow, classes: 3)
    let targets = (0..<3).map { MaskTarget(image: 0, cls: Int32($0)) }
    let x = rng.tensor([3, h, w], -3, 3)
    func run(threads: Int) -> ([Float], [Float]) {
      let saved = Parallel.threads
      Parallel.threads = threads
      defer { Parallel.threads = saved }
      let v = Var(x.copy(), requiresGrad: true)
      let r = withGradients {
        let r = upsampledMaskLosses(masks: v, height: oh, width: ow, labels: lab, targets: targets)
        (r.focal + r.dice).backward()
        return r
      }
      return ([r.focal.value.scalar, r.dice.value.scalar], v.grad!.toArray())
    }
    let (one, three) = (run(threads: 1), run(threads: 3))
    XCTAssertEqual(one.0, three.0)
    XCTAssertEqual(one.1, three.1)
  }

  func testGradientsAgainstFiniteDifferences() {
    let lab = labels(2, 7, 9, classes: 3)
    let targets = [MaskTarget(image: 0, cls: 1), MaskTarget(image: 1, cls: 0), MaskTarget(image: 1, cls: 2)]
    let x = rng.tensor([3, 3, 4], -2, 2)
    checkGradients([x]) { v in
      let r = upsampledMaskLosses(masks: v[0], height: 7, width: 9, labels: lab, targets: targets)
      return r.focal * 0.05 + r.dice
    }
    checkGradients([x]) { v in
      upsampledMaskLosses(masks: v[0], height: 7, width: 9, labels: lab, targets: targets, alpha: -1, gamma: 1.5).focal * 0.05
    }
  }
}
