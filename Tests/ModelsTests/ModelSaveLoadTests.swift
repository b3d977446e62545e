// Whole-model save and load: ParameterStore.save(to:) of a trained-looking
// model (parameters moved by a step, BN running statistics updated), loaded
// into a fresh model built from another seed, gives bit-identical logits.
import Foundation
import Models
import NN
import Tensor
import XCTest

final class ModelSaveLoadTests: XCTestCase {
  func testSaveThenLoadGivesIdenticalLogits() throws {
    let config = try ModelConfig.preset("tiny")
    let (image, labels) = tinyBatch(classes: config.numClasses, batch: 2, size: 64)
    let a = ECENet(config: config, seed: 1)
    a.store.finalize()
    // One SGD-like step and a train-mode forward: parameters leave their init
    // and the BN buffers move, so both must be saved.
    let losses = withGradients { ecenetLosses(a(Var(image), ForwardContext(training: true, seed: 2)), labels: labels, config: config) }
    losses.total.backward()
    let v = a.store.values!, g = a.store.gradients!
    for i in 0..<v.count { v.data[i] -= 0.01 * g.data[i] }

    let url = FileManager.default.temporaryDirectory.appendingPathComponent("modelsaveload-\(getpid()).safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try a.store.save(to: url, metadata: ["preset": "tiny"])

    let b = ECENet(config: config, seed: 99)
    b.store.finalize()
    let logits = { (m: ECENet) in withoutGradients { m(Var(image), ForwardContext(training: false)).logitsUp.value.toArray() } }
    let ref = logits(a)
    XCTAssertNotEqual(logits(b), ref, "a fresh model must differ before loading")
    try b.store.load(from: url)
    XCTAssertEqual(logits(b), ref, "logits after save → load")
    for ((n1, t1), (n2, t2)) in zip(a.store.namedTensors, b.store.namedTensors) {
      XCTAssertEqual(n1, n2)
      XCTAssertEqual(t1.toArray(), t2.toArray(), n1)
    }
    XCTAssertEqual(try SafeTensorsFile(contentsOf: url).metadata["preset"], "tiny")
  }
}
