// Backward kernels that overwrite a fresh gradient (Var.gradDestination) and
// add into an existing one: each op feeds the same input twice, so the first
// backward takes the overwrite path and the second the accumulate path, and
// both must match finite differences. (In debug builds a fresh destination
// starts as NaN, so an element a kernel forgets to write fails every
// gradient test that reaches it.)
@testable import Tensor
import XCTest

final class GradDestinationTests: XCTestCase {
  var rng = TestRNG(seed: 41)

  func testFreshDestinationIsPoisonedInDebugBuilds() {
    #if DEBUG
    let v = Var(Tensor.zeros([3]), requiresGrad: true)
    XCTAssertTrue(v.gradDestination().tensor.toArray().allSatisfy { $0.isNaN })
    XCTAssertTrue(v.gradDestination().accumulate, "the second call adds into the first")
    #else
    throw XCTSkip("poisoning is debug-only")
    #endif
  }

  /// f(x)·R1 + f(x)·R2 through every op that writes a fresh gradient in place.
  func testOverwriteThenAccumulateMatchesFiniteDifferences() {
    let x = rng.tensor([2, 3, 5, 6])
    let w = rng.tensor([7, 6]), b = rng.tensor([7])
    let cw = rng.tensor([4, 6, 1, 1])
    let ln = (rng.tensor([6], 0.5, 1.5), rng.tensor([6]))
    let twice: [(String, (Var) -> Var)] = [
      ("linear", { v in linear(v, weight: Var(w), bias: Var(b)) }),
      ("conv 1×1", { v in conv2d(v, weight: Var(cw), bias: nil) }),
      ("layerNorm", { v in layerNorm(v, weight: Var(ln.0), bias: Var(ln.1)) }),
      ("batchNorm", { v in
        batchNorm(v, weight: Var(ln.0), bias: Var(ln.1), runningMean: .zeros([6]), runningVar: .filled([6], 1),
                  training: true) }),
      ("batchNorm eval", { v in
        batchNorm(v, weight: Var(ln.0), bias: Var(ln.1), runningMean: .zeros([6]), runningVar: .filled([6], 2),
                  training: false) }),
      ("groupNorm", { v in groupNorm(v, groups: 3, weight: Var(ln.0), bias: Var(ln.1)) }),
      ("gelu", { v in gelu(v) }),
      // relu's kink at 0 would break finite differences: x + 0.2·sign(x) keeps every input ≥ 0.2 away.
      ("relu", { v in relu(v + Var(Tensor(shape: x.shape, values: x.toArray().map { $0 < 0 ? -0.2 : 0.2 }))) }),
      ("sigmoid", { v in sigmoid(v) }),
      ("softmax", { v in softmax(v, axis: -1) * Var(w.reshaped([42]).slice(0..<6)) }),
      ("log-softmax", { v in logSoftmax(v, axis: -1) * Var(w.reshaped([42]).slice(0..<6)) }),
      ("softmax over an inner axis", { v in softmax(v, axis: 1) * Var(w.reshaped([42]).slice(0..<6)) }),
      ("dropPath", { v in var g = RandomGenerator(seed: 3); return dropPath(v, p: 0.4, rng: &g) }),
      ("dropout", { v in var g = RandomGenerator(seed: 5); return dropout(v, p: 0.3, rng: &g) }),
      // x as [B', heads, L, d]; q, k, v as three Vars and as one (its gradient is overwritten once, then added to twice).
      ("attention, three inputs", { v in
        scaledDotProductAttention(q: v, k: v * 0.5, v: v + 0.25, bias: nil, mask: nil, scale: 0.7) }),
      ("attention, one input", { v in scaledDotProductAttention(q: v, k: v, v: v, bias: nil, mask: nil, scale: 0.7) }),
    ]
    for (name, f) in twice {
      checkGradients([x]) { v in
        let a = f(v[0]), c = f(v[0])
        XCTAssertFalse(a.value.toArray().contains { $0.isNaN }, name)
        return a * 0.7 + c
      }
      let v = Var(x.copy(), requiresGrad: true)
      withGradients { (f(v) * 0.7 + f(v)).sum().backward() }
      XCTAssertFalse(v.grad!.toArray().contains { $0.isNaN }, "\(name): an element of the fresh gradient was never written")
    }
  }
}

/// Reshapes and residual adds hand their gradient on without a copy; the
/// adopted buffer must never alias another live gradient.
final class GradientHandOffTests: XCTestCase {
  func testReshapeAdoptsAndAddCopiesForItsSecondInput() {
    let x = Var(Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6]), requiresGrad: true)
    let y = Var(Tensor(shape: [6], values: [1, 1, 1, 1, 1, 1]), requiresGrad: true)
    // `+` hands one gradient to r and y. Backward runs s, then t (adding into
    // y's gradient), then r (passing its gradient to x): had r and y adopted
    // one buffer, t's add would reach x.
    withGradients {
      let r = x.reshaped([6])
      let t = y * 2
      let s = r + y
      ((s * s).sum() + (t * t).sum()).backward()
    }
    // s = x + 1, t = 2y: d/dx = 2s, d/dy = 2s + 8y.
    let xs: [Float] = [1, 2, 3, 4, 5, 6]
    XCTAssertEqual(x.grad!.toArray(), xs.map { 2 * ($0 + 1) })
    XCTAssertEqual(y.grad!.toArray(), xs.map { 2 * ($0 + 1) + 8 })
  }

  func testSameInputTwiceThroughAdd() {
    let x = Var(Tensor(shape: [3], values: [1, 2, 3]), requiresGrad: true)
    withGradients { ((x + x) * (x + 1)).sum().backward() }
    // d/dx of 2x(x + 1) = 4x + 2
    XCTAssertEqual(x.grad!.toArray(), [6, 10, 14])
  }

  func testCallersSeedIsNotModified() {
    let x = Var(Tensor(shape: [3], values: [1, 2, 3]), requiresGrad: true)
    let seed = Tensor(shape: [3], values: [1, 1, 1])
    withGradients {
      // y's backward hands its gradient (the seed) to a; a·2's backward then adds into a's gradient.
      let a = x + 0.5
      Tape.shared.backward(from: a + a * 2, seed: seed)
    }
    XCTAssertEqual(seed.toArray(), [1, 1, 1])
    XCTAssertEqual(x.grad!.toArray(), [3, 3, 3])
  }
}
