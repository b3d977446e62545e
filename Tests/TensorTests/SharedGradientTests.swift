// A gradient passed whole to several inputs (a residual add's) is one shared
// tensor until one of them writes into its gradient, which then copies it
// first (Var.accumulateGrad, Var.ownedGrad). These tests pin both halves: no
// copy is made for an input that is only read, and a write never reaches
// the other input, the op's output or the caller's seed.
@testable import Tensor
import XCTest

final class SharedGradientTests: XCTestCase {
  var rng = TestRNG(seed: 77)

  func values(_ t: Tensor?) -> [Float] { t?.toArray() ?? [] }

  /// y = a + b from a caller's seed: the seed is copied once, and both inputs share that copy.
  func testAddFromACallerSeedCopiesOnceAndNeverAliasesTheSeed() {
    let s = rng.tensor([4, 5]), seedCopy = s.toArray()
    let a = Var(rng.tensor([4, 5]), requiresGrad: true), b = Var(rng.tensor([4, 5]), requiresGrad: true)
    withGradients {
      let y = a + b
      Tape.shared.backward(from: y, seed: s)
    }
    XCTAssertEqual(values(a.grad), seedCopy)
    XCTAssertEqual(values(b.grad), seedCopy)
    XCTAssertFalse(a.grad!.storage === s.storage, "the caller's seed must never become a gradient")
    XCTAssertTrue(a.grad!.storage === b.grad!.storage, "one copy, shared by both inputs")
    XCTAssertTrue(a.grad!.storage.sharedByGrads)

    // A second backward adds into both gradients: each must copy before writing.
    withGradients {
      let y = a + b
      Tape.shared.backward(from: y, seed: s)
    }
    XCTAssertEqual(values(a.grad), seedCopy.map { $0 + $0 })
    XCTAssertEqual(values(b.grad), seedCopy.map { $0 + $0 })
    XCTAssertFalse(a.grad!.storage === b.grad!.storage)
    XCTAssertEqual(s.toArray(), seedCopy, "the seed is unchanged")
  }

  /// A residual block: x feeds a branch recorded before the add, so its
  /// gradient is written after the add shared it with the branch output.
  func testResidualAddWhoseInputIsWrittenLaterKeepsTheBranchGradient() {
    let x = Var(rng.tensor([3, 6]), requiresGrad: true)
    let w = rng.tensor([6, 6])
    var branchGrad: [Float] = []
    var branch: Var!
    withGradients {
      branch = linear(x, weight: Var(w), bias: nil)
      branch.retainsGrad = true
      let y = x + branch
      let loss = (y * y).sum()
      Tape.shared.backward(from: loss)
    }
    branchGrad = values(branch.grad)
    // d loss/dy = 2y; the branch output's gradient is exactly that, untouched by x's later accumulation.
    let xv = x.value.toArray(), bv = branch.value.toArray()
    let dy = zip(xv, bv).map { 2 * ($0 + $1) }
    for (g, want) in zip(branchGrad, dy) { XCTAssertEqual(g, want, accuracy: 1e-4) }
    // x.grad = dy + dy·w (through the linear), checked against finite differences below.
    checkGradients([x.value]) { v in
      let br = linear(v[0], weight: Var(w), bias: nil)
      let y = v[0] + br
      return (y * y).sum()
    }
  }

  /// The shared path and its copy on write, through an op that adds into a
  /// fresh gradient (layerNorm) and one that accumulates (a second add), with
  /// an input used twice: against finite differences.
  func testSharedGradientsMatchFiniteDifferences() {
    let ln = (rng.tensor([5], 0.5, 1.5), rng.tensor([5]))
    checkGradients([rng.tensor([2, 3, 5]), rng.tensor([2, 3, 5])]) { v in
      let (a, b) = (v[0], v[1])
      let n = layerNorm(a, weight: Var(ln.0), bias: Var(ln.1))  // recorded first: a's gradient written last
      let s = a + b            // a and b share s's gradient
      let t = s + b            // b gets a second contribution: copy on write
      let u = (t + t) * n      // the same Var twice in one add
      return u.sum()
    }
  }
}
