import XCTest

@testable import Tensor

/// `releasingIntermediates` / `Tape.releaseValues`: a module's intermediate
/// outputs lose their values when it returns, which frees those no backward
/// captured, while backward gives bit-identical gradients.
final class ReleaseValuesTests: XCTestCase {
  var rng = TestRNG(seed: 5)

  /// x·2 and its permute keep no input for backward, so nothing holds them once
  /// released; gelu keeps its input (the permute's storage stays captured).
  func module(_ x: Var) -> Var {
    let a = x * 2
    let b = permute(a, [0, 2, 1])
    let c = b * 3
    return gelu(c) + c
  }

  func testReleasedIntermediatesFreeMemoryAndKeepGradients() {
    let x0 = rng.tensor([6, 40, 50])
    let bytes = x0.count * 4
    func run(release: Bool) -> (grad: [UInt32], liveAfterForward: Int, released: [Bool], output: Var) {
      let x = Var(x0, requiresGrad: true)
      let pool = BufferPool.shared
      var live = 0, flags: [Bool] = []
      var out: Var!
      let loss = withGradients { () -> Var in
        let mark = Tape.shared.count
        out = release ? releasingIntermediates { module(x) } : module(x)
        live = pool.bytesLive
        flags = Tape.shared.entries[mark...].map { $0.output.valueReleased }
        return out.sum()
      }
      loss.backward()
      return (x.grad!.toArray().map(\.bitPattern), live, flags, out)
    }
    let kept = run(release: false), freed = run(release: true)
    XCTAssertEqual(freed.grad, kept.grad, "gradients with released intermediates")
    XCTAssertEqual(kept.released, Array(repeating: false, count: kept.released.count))
    // Every intermediate released, the output (last entry) kept and readable.
    XCTAssertEqual(freed.released, Array(repeating: true, count: freed.released.count - 1) + [false])
    XCTAssertEqual(freed.output.value.shape, [6, 50, 40])
    // a (x·2) and the permute of it: nobody captured them; c and gelu's input do stay.
    XCTAssertLessThanOrEqual(freed.liveAfterForward, kept.liveAfterForward - 2 * bytes,
                             "live bytes after forward: \(freed.liveAfterForward) vs \(kept.liveAfterForward)")
  }

  func testNothingIsReleasedWithoutRecording() {
    let x = Var(rng.tensor([3, 4, 5]), requiresGrad: true)
    var inner: Var!
    let out = withoutGradients { releasingIntermediates { () -> Var in inner = x * 2; return inner + 1 } }
    XCTAssertFalse(inner.valueReleased)
    XCTAssertEqual(inner.value.toArray(), x.value.toArray().map { $0 * 2 })
    XCTAssertEqual(out.shape, [3, 4, 5])
  }
}
