// The tiny ECENet against the PyTorch reference (scripts/reference/ecenet_ref.py
// via export_goldens.py): the same weights and batch; logits, every loss term,
// BN running statistics after the step and the gradient of every parameter
// and of the input, by name. The goldens are float64 results rounded to
// float32; we run in float32, so the tolerance is relative to each tensor's
// largest magnitude.
import Foundation
import Models
import NN
import Tensor
import XCTest

let goldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

final class GoldenTests: XCTestCase {
  /// max |a − b| / max |b| over the tensor.
  func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
    let x = a.toArray(), y = b.toArray()
    var diff: Float = 0, scale: Float = 0
    for i in 0..<y.count { diff = max(diff, abs(x[i] - y[i])); scale = max(scale, abs(y[i])) }
    return diff / max(scale, 1e-30)
  }

  func testTinyECENetMatchesReference() throws {
    let url = goldenDirectory.appendingPathComponent("tiny_ecenet.safetensors")
    guard FileManager.default.fileExists(atPath: url.path) else {
      throw XCTSkip("golden \(url.path) not present (written by scripts/reference/export_goldens.py)")
    }
    let golden = try SafeTensorsFile(contentsOf: url)
    var config = try ModelConfig.preset("tiny")
    config.dropout = 0
    let model = ECENet(config: config, seed: 0)
    model.store.finalize()

    // Strict: every parameter and buffer of the model is in the golden, and vice versa.
    let paramKeys = Set(golden.keys.filter { $0.hasPrefix("param.") }.map { String($0.dropFirst(6)) })
    let ours = Set(model.store.entries.map(\.name) + model.store.buffers.map(\.name))
    XCTAssertEqual(ours.subtracting(paramKeys).sorted(), [], "our names missing from the reference")
    XCTAssertEqual(paramKeys.subtracting(ours).sorted(), [], "reference names missing from our model")
    for e in model.store.entries {
      let t = try golden.tensor("param.\(e.name)")
      XCTAssertEqual(t.shape, e.variable.shape, e.name)
      e.variable.value.data.update(from: t.data, count: t.count)
    }
    for b in model.store.buffers {
      let t = try golden.tensor("param.\(b.name)")
      b.tensor.data.update(from: t.data, count: t.count)
    }

    let image = Var(try golden.tensor("input.image_nhwc"), requiresGrad: true)
    let labelT = try golden.tensor("input.label")
    let labels = LabelBatch(values: labelT.toArray().map { Int32($0) }, batch: labelT.shape[0],
                            height: labelT.shape[1], width: labelT.shape[2])
    let ctx = ForwardContext(training: true)
    let (out, losses) = withGradients { () -> (ModelOutput, LossTerms) in
      let out = model(image, ctx)
      return (out, ecenetLosses(out, labels: labels, config: config))
    }
    losses.total.backward()

    var worst: (String, Float) = ("", 0)
    func check(_ name: String, _ ours: Tensor, _ key: String, tolerance: Float = 1e-4) throws {
      let ref = try golden.tensor(key)
      XCTAssertEqual(ours.count, ref.count, "\(name): shape \(ours.shape) vs \(ref.shape)")
      guard ours.count == ref.count else { return }
      let err = relativeError(ours, ref)
      if err > worst.1 { worst = (name, err) }
      XCTAssertLessThanOrEqual(err, tolerance, "\(name): relative error \(err)")
    }
    try check("logits", out.head.logits.value, "out.logits_nhwc")
    try check("logits_up", out.logitsUp.value, "out.logits_up_nhwc")
    try check("class_logits", out.head.classLogits.value, "out.class_logits")
    try check("mask_sum", out.head.maskSum.value, "out.mask_sum_nhwc")
    for s in 0..<4 { try check("feature \(s)", out.features[s].value, "feat.backbone.\(s)") }
    for (k, v) in [("seg", losses.seg), ("cls", losses.cls), ("focal", losses.focal), ("dice", losses.dice),
                   ("div", losses.div), ("total", losses.total)] {
      try check("loss \(k)", v.value, "loss.\(k)")
    }
    for e in model.store.entries { try check("grad \(e.name)", e.variable.grad!, "grad.\(e.name)") }
    try check("grad input", image.grad!, "grad.input.image_nhwc")
    for b in model.store.buffers { try check("state \(b.name)", b.tensor, "state_after.\(b.name)") }
    print("GoldenTests: worst relative error \(worst.1) at \(worst.0)")
  }
}
