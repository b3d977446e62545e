// Official Swin checkpoint import against the reference: the window-7
// official-layout golden loaded into the same micro Swin at window 4 must give
// the reference's resized position tables, the file's other tensors unchanged,
// the reference's key lists and its backbone features; wrong checkpoints fail
// with messages naming keys and shapes, and write nothing.
import Foundation
@testable import Models
import NN
import Tensor
import XCTest

final class SwinImportTests: XCTestCase {
  let officialURL = goldenDirectory.appendingPathComponent("tiny_swin_official.safetensors")
  let importURL = goldenDirectory.appendingPathComponent("tiny_swin_official_import.safetensors")

  /// The golden's micro Swin (embed 8, depths 2,2,2,2, heads 1,2,2,4) under a small head.
  func microModel(embed: Int = 8, depths: [Int] = [2, 2, 2, 2], heads: [Int] = [1, 2, 2, 4], window: Int = 4) -> ECENet {
    var c = ModelConfig(backbone: SwinConfig(embedDim: embed, depths: depths, heads: heads, window: window, dropPath: 0),
                        numClasses: 3)
    c.channels = 16; c.norm = .bn; c.dropout = 0
    let m = ECENet(config: c, seed: 1)
    m.store.finalize()
    return m
  }

  func goldens() throws -> (SafeTensorsFile, SafeTensorsFile, [String: Any]) {
    guard FileManager.default.fileExists(atPath: officialURL.path) else { throw XCTSkip("golden \(officialURL.path) not present") }
    let json = try JSONSerialization.jsonObject(
      with: Data(contentsOf: goldenDirectory.appendingPathComponent("tiny_swin_official.json"))) as! [String: Any]
    return (try SafeTensorsFile(contentsOf: officialURL), try SafeTensorsFile(contentsOf: importURL), json)
  }

  func testImportMatchesReferenceWithResizedTables() throws {
    let (official, expected, json) = try goldens()
    let model = microModel()
    let report = try SwinCheckpoint.load(path: officialURL.path, into: model)

    // The reference's key lists.
    let refLoaded = (json["loaded"] as! [String]).map { "backbone." + $0 }
    XCTAssertEqual(report.loaded.sorted(), refLoaded.sorted())
    XCTAssertEqual(report.skipped.sorted(), (json["skipped"] as! [String]).sorted())
    XCTAssertEqual(report.keptInit.sorted(), (json["kept_init"] as! [String]).map { "backbone." + $0 }.sorted())
    XCTAssertEqual(report.interpolated.count, 8, "every table 13² → 7²")

    // Every imported tensor: tables against the reference's bicubic resize, the rest unchanged.
    var tables = 0, worstTable: Float = 0, worstFeature: Float = 0
    for name in report.loaded {
      let key = String(name.dropFirst("backbone.".count))
      let ours = model.store.entry(named: name)!.variable.value
      if key.hasSuffix("relative_position_bias_table") {
        let ref = try expected.tensor("interp." + key)
        XCTAssertEqual(ours.shape, ref.shape, key)
        XCTAssertEqual(ours.shape[0], 49)
        let diff = zip(ours.toArray(), ref.toArray()).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(diff, 1e-5, "resized table \(key)")
        worstTable = max(worstTable, diff)
        tables += 1
      } else {
        XCTAssertEqual(ours.toArray(), try official.floats(key), "\(key) copied unchanged")
      }
    }
    XCTAssertEqual(tables, 8)
    for s in 0..<4 {
      XCTAssertEqual(model.store.entry(named: "backbone.norm\(s).weight")!.variable.value.toArray().allSatisfy { $0 == 1 }, true)
      XCTAssertEqual(model.store.entry(named: "backbone.norm\(s).bias")!.variable.value.toArray().allSatisfy { $0 == 0 }, true)
    }

    // The imported backbone computes the reference's features (float64 there).
    let feats = withoutGradients { model.backbone(Var(try! expected.tensor("input.image_nhwc")), ForwardContext(training: false)) }
    for s in 0..<4 {
      let err = maxRelativeError(feats[s].value, try expected.tensor("feat.backbone.\(s)"))
      XCTAssertLessThanOrEqual(err, 1e-4, "feature \(s)")
      worstFeature = max(worstFeature, err)
    }
    print("SwinImportTests: resized tables max |diff| \(worstTable), features max relative error \(worstFeature)")
    XCTAssertTrue(report.description.contains("8 position tables resized"), report.description)
  }

  func testSameWindowCopiesTablesUnchanged() throws {
    let (official, _, _) = try goldens()
    let model = microModel(window: 7)
    let report = try SwinCheckpoint.load(file: official, into: model)
    XCTAssertTrue(report.interpolated.isEmpty)
    let key = "layers.3.blocks.1.attn.relative_position_bias_table"
    XCTAssertEqual(model.store.entry(named: "backbone." + key)!.variable.value.toArray(), try official.floats(key))
  }

  func testBicubicResizeProperties() {
    // Same size: PyTorch's weights at t = 0 are [0, 1, 0, 0], the identity.
    let grid = (0..<25).map { Double(($0 * 37) % 11) - 5 }
    XCTAssertEqual(bicubicResize(grid, from: 5, to: 5), grid)
    // The weights sum to one: a constant stays constant; a linear ramp stays
    // linear away from the clamped border.
    XCTAssertTrue(bicubicResize([Double](repeating: 2.5, count: 169), from: 13, to: 7).allSatisfy { abs($0 - 2.5) < 1e-12 })
    for t in [0.0, 0.25, 0.5, 0.9] { XCTAssertEqual(cubicWeights(t).reduce(0, +), 1, accuracy: 1e-12) }
    // 13 → 7 of the ramp f(y, x) = x: the centre column samples x = 6 exactly
    // (t = 0); the kernel is symmetric, so out(d) + out(6 − d) = 12; A = −0.75
    // (not −0.5) does not reproduce a ramp, so d = 1 lies above (d + ½)·13/7 − ½.
    let ramp = (0..<169).map { Double($0 % 13) }
    let out = bicubicResize(ramp, from: 13, to: 7)
    XCTAssertEqual(out[3 * 7 + 3], 6, accuracy: 1e-12)
    for d in 0..<7 { XCTAssertEqual(out[2 * 7 + d] + out[2 * 7 + 6 - d], 12, accuracy: 1e-9) }
    XCTAssertGreaterThan(out[7 + 1], 1.5 * 13 / 7 - 0.5 + 1e-3)
  }

  func testShapeMismatchNamesKeysAndShapesAndWritesNothing() throws {
    let (official, _, _) = try goldens()
    let wide = microModel(embed: 16)
    let before = wide.store.values!.toArray()
    XCTAssertThrowsError(try SwinCheckpoint.load(file: official, into: wide)) { e in
      let m = "\(e)"
      XCTAssertTrue(m.contains("patch_embed.proj.weight: file [8, 3, 4, 4], model backbone.patch_embed.proj.weight [16, 3, 4, 4]"), m)
      XCTAssertTrue(m.contains("layers.0.blocks.0.mlp.fc1.weight: file [32, 8]"), m)
    }
    XCTAssertEqual(wide.store.values!.toArray(), before, "a failed import must not write")

    // Heads differ: the table cannot be resized.
    XCTAssertThrowsError(try SwinCheckpoint.load(file: official, into: microModel(heads: [1, 2, 2, 8]))) { e in
      let m = "\(e)"
      XCTAssertTrue(m.contains("layers.3.blocks.0.attn.relative_position_bias_table: file [169, 4], model"), m)
      XCTAssertTrue(m.contains("[49, 8]") && m.contains("4 heads in the file, 8 in the model"), m)
    }
    // Depths differ: unexpected keys one way, missing parameters the other.
    XCTAssertThrowsError(try SwinCheckpoint.load(file: official, into: microModel(depths: [2, 2, 1, 2]))) { e in
      XCTAssertTrue("\(e)".contains("keys the model does not have (13): layers.2.blocks.1."), "\(e)")
    }
    XCTAssertThrowsError(try SwinCheckpoint.load(file: official, into: microModel(depths: [2, 2, 3, 2]))) { e in
      let m = "\(e)"
      XCTAssertTrue(m.contains("backbone parameters the file lacks (13): backbone.layers.2.blocks.2.norm1.weight"), m)
      XCTAssertFalse(m.contains("backbone.norm0"), "output norms are not missing: \(m)")
    }
  }

  func testNotASwinCheckpoint() throws {
    // A whole-model ECENet checkpoint (our names, `backbone.` prefix).
    let model = microModel()
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("swinimport-\(getpid())-ecenet.safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try model.store.save(to: url)
    XCTAssertThrowsError(try SwinCheckpoint.load(path: url.path, into: microModel())) { e in
      let m = "\(e)"
      XCTAssertEqual(e as? SwinImportError, .notASwinCheckpoint(file: url.path, firstKeys: Array(model.store.namedTensors.prefix(5).map(\.name))))
      XCTAssertTrue(m.contains("not an official Swin checkpoint") && m.contains("backbone.patch_embed.proj.weight"), m)
    }
    // Some other network entirely.
    let other = SafeTensors.encode([("conv1.weight", Tensor.zeros([4, 3, 3, 3])), ("fc.bias", Tensor.zeros([10]))])
    XCTAssertThrowsError(try SwinCheckpoint.load(file: SafeTensorsFile(data: other, path: "resnet.safetensors"), into: microModel())) { e in
      XCTAssertTrue("\(e)".contains("resnet.safetensors: not an official Swin checkpoint") && "\(e)".contains("conv1.weight"), "\(e)")
    }
  }

  func testPretrainedConfigKey() throws {
    let c = try JSONDecoder().decode(ModelConfig.self, from: Data(#"{"backbone": "swin-t", "pretrained": "w/swin_t.safetensors"}"#.utf8))
    XCTAssertEqual(c.pretrained, "w/swin_t.safetensors")
    XCTAssertEqual(try ModelConfig.preset("swin-b").pretrained, "")
    XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: try JSONEncoder().encode(c)), c)
  }
}
