import NN
import Tensor
import XCTest

final class ParameterStoreTests: XCTestCase {
  func testFinalizeLaysParametersOutInOneArenaWithGradientViews() {
    let store = ParameterStore()
    let a = store.parameter("a.weight", Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6]))
    let b = store.parameter("a.bias", Tensor(shape: [2], values: [7, 8]), decay: false)
    store.buffer("bn.running_mean", Tensor.zeros([2]))
    store.finalize()
    XCTAssertEqual(store.values!.toArray(), [1, 2, 3, 4, 5, 6, 7, 8])
    XCTAssertEqual(store.entries.map(\.offset), [0, 6])
    // Backward writes straight into the arena.
    let loss = withGradients { (a.sum() + (b * Var(Tensor(shape: [2], values: [3, 4]))).sum()) }
    loss.backward()
    XCTAssertEqual(store.gradients!.toArray(), [1, 1, 1, 1, 1, 1, 3, 4])
    store.zeroGradients()
    XCTAssertEqual(store.gradients!.toArray(), [Float](repeating: 0, count: 8))
    XCTAssertFalse(store.entry(named: "a.bias")!.decay)
  }
}
