import Foundation
import XCTest

@testable import Tensor

/// OpProfile (bench step --profile): rows per recording function, forward time
/// charged to the op that records next, backward closures timed; nothing
/// recorded while off or outside a recording forward.
final class OpProfileTests: XCTestCase {
  override func tearDown() { OpProfile.enabled = false; OpProfile.reset() }

  func forwardBackward(sleepBeforeGelu: Double = 0) {
    var rng = TestRNG(seed: 4)
    let w = Var(rng.tensor([8, 16]), requiresGrad: true, name: "w")
    let x = Var(rng.tensor([32, 16]))
    let loss = withGradients { () -> Var in
      let h = linear(x, weight: w, bias: nil)
      if sleepBeforeGelu > 0 { Thread.sleep(forTimeInterval: sleepBeforeGelu) }  // untaped work before gelu
      return gelu(h).sum()
    }
    loss.backward()
  }

  func testRowsNameTheRecordingOpsAndChargeUntapedWorkToTheNextOp() throws {
    OpProfile.enabled = true
    OpProfile.reset()
    forwardBackward(sleepBeforeGelu: 0.05)
    let rows = Dictionary(uniqueKeysWithValues: OpProfile.rows().map { ($0.op, $0) })
    for op in ["linear", "gelu", "sum"] {
      let r = try XCTUnwrap(rows[op], "no row for \(op): \(rows.keys.sorted())")
      XCTAssertEqual(r.calls, 1, op)
      XCTAssertGreaterThan(r.backward, 0, op)
    }
    XCTAssertGreaterThanOrEqual(rows["gelu"]!.forward, 0.05, "the sleep before gelu is gelu's forward")
    XCTAssertLessThan(rows["linear"]!.forward, 0.05)
    // A second pass adds to the same rows.
    forwardBackward()
    XCTAssertEqual(OpProfile.rows().first { $0.op == "linear" }?.calls, 2)
  }

  func testConvolutionsGetOneRowPerAlgorithm() {
    OpProfile.enabled = true
    OpProfile.reset()
    var rng = TestRNG(seed: 6)
    let x = Var(rng.tensor([1, 6, 6, 4]), requiresGrad: true)
    let loss = withGradients { () -> Var in
      let a = conv2d(x, weight: Var(rng.tensor([4, 4, 1, 1]), requiresGrad: true, name: "p"), bias: nil)
      let b = conv2d(a, weight: Var(rng.tensor([4, 4, 3, 3]), requiresGrad: true, name: "s"), bias: nil, padding: 1)
      return b.sum()
    }
    loss.backward()
    let names = Set(OpProfile.rows().map(\.op))
    XCTAssertTrue(names.isSuperset(of: ["conv2d 1×1", "conv2d shifted taps"]), "\(names.sorted())")
  }

  func testNothingRecordedWhenOffOrWithoutGradients() {
    OpProfile.enabled = false
    OpProfile.reset()
    forwardBackward()
    XCTAssertTrue(OpProfile.rows().isEmpty)
    OpProfile.enabled = true
    var rng = TestRNG(seed: 5)
    _ = withoutGradients { gelu(Var(rng.tensor([4, 4]), requiresGrad: true)) }
    XCTAssertTrue(OpProfile.rows().isEmpty, "\(OpProfile.rows())")
  }
}
