// The Swin backbone alone against the reference, where the tiny ECENet cannot
// reach: two blocks per stage (shifted windows and their mask), every stage
// padded to a window multiple, patch merging on odd sizes (40×56 input).
import Foundation
@testable import Models
import NN
import Tensor
import XCTest

final class SwinGoldenTests: XCTestCase {
  func testShiftedWindowsPaddingAndOddMerges() throws {
    let url = goldenDirectory.appendingPathComponent("tiny_swin_shift.safetensors")
    guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("golden \(url.path) not present") }
    let golden = try SafeTensorsFile(contentsOf: url)
    let store = ParameterStore()
    let config = SwinConfig(embedDim: 8, depths: [2, 2, 2, 2], heads: [1, 2, 2, 4], window: 4, dropPath: 0)
    let backbone = SwinBackbone(LayerBuilder(store: store, weights: WeightInit(seed: 0)), "backbone", config: config)
    store.finalize()
    func key(_ name: String) -> String { String(name.dropFirst("backbone.".count)) }
    let refKeys = Set(golden.keys.filter { $0.hasPrefix("param.") }.map { String($0.dropFirst(6)) })
    XCTAssertEqual(Set(store.entries.map { key($0.name) }), refKeys, "parameter names")
    for e in store.entries {
      let t = try golden.tensor("param.\(key(e.name))")
      XCTAssertEqual(t.shape, e.variable.shape, e.name)
      e.variable.value.data.update(from: t.data, count: t.count)
    }
    let image = Var(try golden.tensor("input.image_nhwc"), requiresGrad: true)
    let loss = withGradients { () -> Var in
      let feats = backbone(image, ForwardContext(training: true))
      XCTAssertEqual(feats.map(\.shape), [[2, 10, 14, 8], [2, 5, 7, 16], [2, 3, 4, 32], [2, 2, 2, 64]])
      for s in 0..<4 {
        let err = maxRelativeError(feats[s].value, try! golden.tensor("feat.backbone.\(s)"))
        XCTAssertLessThanOrEqual(err, 1e-4, "feature \(s)")
      }
      return (0..<4).map { (feats[$0] * Var(try! golden.tensor("upstream.backbone.\($0)"))).sum() }.reduce(Var(Tensor(scalar: 0)), +)
    }
    XCTAssertLessThanOrEqual(maxRelativeError(loss.value, try golden.tensor("loss")), 1e-4, "loss")
    loss.backward()
    var worst: Float = 0
    for e in store.entries {
      let err = maxRelativeError(e.variable.grad!, try golden.tensor("grad.\(key(e.name))"))
      worst = max(worst, err)
      XCTAssertLessThanOrEqual(err, 1e-4, "grad \(e.name)")
    }
    XCTAssertLessThanOrEqual(maxRelativeError(image.grad!, try golden.tensor("grad.input.image_nhwc")), 1e-4, "grad input")
    print("SwinGoldenTests: worst gradient relative error \(worst)")
  }

  func testShiftMaskMatchesReference() throws {
    let url = goldenDirectory.appendingPathComponent("tiny_swin_shift.safetensors")
    guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("golden \(url.path) not present") }
    let golden = try SafeTensorsFile(contentsOf: url)
    for (s, (h, w)) in [(12, 16), (8, 8), (4, 4), (4, 4)].enumerated() {
      let ref = try golden.tensor("buf.attn_mask.\(s)")
      let ours = shiftAttentionMask(height: h, width: w, window: 4, shift: 2)
      XCTAssertEqual(ours.shape, ref.shape)
      XCTAssertEqual(ours.toArray(), ref.toArray(), "mask of stage \(s)")
    }
  }
}

/// max |a − b| / max |b|.
func maxRelativeError(_ a: Tensor, _ b: Tensor) -> Float {
  let x = a.toArray(), y = b.toArray()
  precondition(x.count == y.count, "compare \(a.shape) with \(b.shape)")
  var diff: Float = 0, scale: Float = 0
  for i in 0..<y.count { diff = max(diff, abs(x[i] - y[i])); scale = max(scale, abs(y[i])) }
  return diff / max(scale, 1e-30)
}
