// Initialisers: distributions (bounds, mean, variance against the formulas),
// PyTorch's fan and gain rules, and reproducibility from the seed.
import Foundation
import XCTest
@testable import NN
import Tensor

final class InitializerTests: XCTestCase {
  /// Sample mean and variance in Double.
  func moments(_ t: Tensor) -> (mean: Double, variance: Double) {
    let a = t.toArray().map(Double.init)
    let mean = a.reduce(0, +) / Double(a.count)
    return (mean, a.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(a.count))
  }

  func testConstants() {
    XCTAssertEqual(Init.zeros([2, 3]).toArray(), [Float](repeating: 0, count: 6))
    XCTAssertEqual(Init.ones([4]).toArray(), [1, 1, 1, 1])
    let c = Init.constant([3, 1], -2.5)
    XCTAssertEqual(c.shape, [3, 1])
    XCTAssertEqual(c.toArray(), [-2.5, -2.5, -2.5])
  }

  func testTruncatedNormalSwinDefaultIsPlainNormalWithStd002() {
    var rng = RandomGenerator(seed: 1)
    let t = Init.truncatedNormal([400, 500], std: 0.02, using: &rng)
    XCTAssertEqual(t.shape, [400, 500])
    let (mean, variance) = moments(t)
    XCTAssertEqual(mean, 0, accuracy: 2e-4)
    XCTAssertEqual(variance.squareRoot(), 0.02, accuracy: 2e-4)
  }

  func testTruncatedNormalBoundsAreAbsolute() {
    // std 1 within the absolute bounds ±2: variance of N(0,1) truncated to
    // [−2, 2] is 1 − 2·2·φ(2)/(Φ(2) − Φ(−2)).
    var rng = RandomGenerator(seed: 2)
    let t = Init.truncatedNormal([200_000], std: 1, using: &rng)
    let a = t.toArray()
    XCTAssertLessThanOrEqual(a.max()!, 2)
    XCTAssertGreaterThanOrEqual(a.min()!, -2)
    XCTAssertGreaterThan(a.max()!, 1.95, "the bound is ±2 absolute, not ±2σ scaled differently")
    let phi2 = exp(-2.0) / (2 * Double.pi).squareRoot()
    let mass = erf(2 / 2.0.squareRoot())
    let expected = 1 - 4 * phi2 / mass
    let (mean, variance) = moments(t)
    XCTAssertEqual(mean, 0, accuracy: 0.01)
    XCTAssertEqual(variance, expected, accuracy: 0.01)

    // Asymmetric bounds with a mean: everything in [a, b].
    let u = Init.truncatedNormal([10_000], mean: 0.5, std: 1, a: 0, b: 1, using: &rng).toArray()
    XCTAssertGreaterThanOrEqual(u.min()!, 0)
    XCTAssertLessThanOrEqual(u.max()!, 1)
  }

  func testSameSeedSameValuesDifferentSeedDifferentValues() {
    var r1 = RandomGenerator(seed: 7, keys: 3), r2 = RandomGenerator(seed: 7, keys: 3), r3 = RandomGenerator(seed: 8, keys: 3)
    let a = Init.truncatedNormal([64], std: 0.02, using: &r1).toArray()
    let b = Init.truncatedNormal([64], std: 0.02, using: &r2).toArray()
    let c = Init.truncatedNormal([64], std: 0.02, using: &r3).toArray()
    XCTAssertEqual(a, b)
    XCTAssertNotEqual(a, c)
  }

  func testFansFollowPyTorch() {
    XCTAssertEqual(Init.fans([64, 100]).fanIn, 100)   // Linear [out, in]
    XCTAssertEqual(Init.fans([64, 100]).fanOut, 64)
    let conv = Init.fans([8, 3, 5, 7])                  // Conv2d [out, in/groups, kh, kw]
    XCTAssertEqual(conv.fanIn, 3 * 35)
    XCTAssertEqual(conv.fanOut, 8 * 35)
  }

  func testGains() {
    XCTAssertEqual(Init.Nonlinearity.linear.gain, 1)
    XCTAssertEqual(Init.Nonlinearity.relu.gain, Float(2).squareRoot(), accuracy: 1e-7)
    XCTAssertEqual(Init.Nonlinearity.leakyReLU(0).gain, Float(2).squareRoot(), accuracy: 1e-7)
    XCTAssertEqual(Init.Nonlinearity.leakyReLU(Float(5).squareRoot()).gain, (Float(1) / 3).squareRoot(), accuracy: 1e-7)
  }

  func testKaimingNormalStd() {
    var rng = RandomGenerator(seed: 3)
    let shape = [256, 27, 3, 3]                       // fan_in 243, fan_out 2304
    let t = Init.kaimingNormal(shape, mode: .fanIn, nonlinearity: .relu, using: &rng)
    XCTAssertEqual(t.shape, shape)
    let (mean, variance) = moments(t)
    XCTAssertEqual(mean, 0, accuracy: 2e-3)
    XCTAssertEqual(variance.squareRoot(), (2.0 / 243).squareRoot(), accuracy: 1e-3)
    let fo = Init.kaimingNormal(shape, mode: .fanOut, nonlinearity: .relu, using: &rng)
    XCTAssertEqual(moments(fo).variance.squareRoot(), (2.0 / 2304).squareRoot(), accuracy: 3e-4)
  }

  func testKaimingUniformBound() {
    var rng = RandomGenerator(seed: 4)
    let t = Init.kaimingUniform([300, 200], mode: .fanOut, nonlinearity: .relu, using: &rng).toArray()
    let bound = Float(2).squareRoot() * (Float(3) / 300).squareRoot()
    XCTAssertLessThanOrEqual(t.map(abs).max()!, bound)
    XCTAssertGreaterThan(t.map(abs).max()!, 0.99 * bound)
    let mean = t.reduce(0, +) / Float(t.count)
    XCTAssertEqual(mean, 0, accuracy: 3e-3)
  }

  func testTorchDefaultLinearAndConvInit() {
    // nn.Linear(100, 64): weight and bias uniform(±1/√100).
    var rng = RandomGenerator(seed: 5)
    let w = Init.torchDefaultWeight([64, 100], using: &rng).toArray()
    let b = Init.torchDefaultBias(64, weightShape: [64, 100], using: &rng).toArray()
    XCTAssertLessThanOrEqual(w.map(abs).max()!, 0.1 + 1e-7)
    XCTAssertGreaterThan(w.map(abs).max()!, 0.099)
    XCTAssertEqual(b.count, 64)
    XCTAssertLessThanOrEqual(b.map(abs).max()!, 0.1 + 1e-7)
    XCTAssertGreaterThan(b.map(abs).max()!, 0.08)
    // nn.Conv2d(16, 32, 3, groups=4): weight [32, 4, 3, 3], fan_in 36, bound 1/6.
    let cw = Init.torchDefaultWeight([32, 4, 3, 3], using: &rng).toArray()
    XCTAssertLessThanOrEqual(cw.map(abs).max()!, Float(1) / 6 + 1e-7)
    XCTAssertGreaterThan(cw.map(abs).max()!, 0.16)
    // Variance of uniform(±1/6) is 1/108.
    let m = cw.reduce(0, +) / Float(cw.count)
    let v = cw.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Float(cw.count)
    XCTAssertEqual(v, 1 / 108, accuracy: 1.5e-3)
  }
}
