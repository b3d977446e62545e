// The model's structure without running kernels: parameter names (the
// reference's and official Swin's), counts of the built model against the
// analytic count module by module, and the paper's sizes for Swin-B/L.
import Models
import NN
import Tensor
import XCTest

final class ModelSizeTests: XCTestCase {
  func build(_ config: ModelConfig) -> ECENet { ECENet(config: config, seed: 1) }

  /// The built model's parameters grouped by `moduleKey`.
  func builtCounts(_ model: ECENet) -> [String: Int] {
    var counts: [String: Int] = [:]
    for e in model.store.entries { counts[moduleKey(e.name), default: 0] += e.count }
    return counts
  }

  func assertAnalyticMatchesBuilt(_ config: ModelConfig, file: StaticString = #filePath, line: UInt = #line) {
    let model = build(config)
    let built = builtCounts(model)
    let analytic = Complexity.analyze(config, height: 64, width: 64)
    for m in analytic where m.params > 0 || built[m.module] != nil {
      XCTAssertEqual(built[m.module], m.params, "parameters of \(m.module)", file: file, line: line)
    }
    XCTAssertEqual(Set(built.keys), Set(analytic.filter { $0.params > 0 }.map(\.module)), "modules", file: file, line: line)
    XCTAssertEqual(model.store.parameterCount, Complexity.totalParams(analytic), "total", file: file, line: line)
  }

  func testTinyParameterNames() throws {
    let model = build(try .preset("tiny"))
    let names = Set(model.store.entries.map(\.name))
    var expected = [
      "backbone.patch_embed.proj.weight", "backbone.patch_embed.proj.bias",
      "backbone.patch_embed.norm.weight", "backbone.patch_embed.norm.bias",
    ]
    for s in 0..<4 {
      let blk = "backbone.layers.\(s).blocks.0"
      for p in ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                "attn.relative_position_bias_table", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                "mlp.fc2.weight", "mlp.fc2.bias"] { expected.append("\(blk).\(p)") }
      if s < 3 {
        expected += ["backbone.layers.\(s).downsample.norm.weight", "backbone.layers.\(s).downsample.norm.bias",
                     "backbone.layers.\(s).downsample.reduction.weight"]
      }
      expected += ["backbone.norm\(s).weight", "backbone.norm\(s).bias"]
      let fr = "head.fr.\(s)"
      expected += ["\(fr).primary.conv.weight", "\(fr).primary.norm.weight", "\(fr).primary.norm.bias",
                   "\(fr).cheap.conv.weight", "\(fr).cheap.norm.weight", "\(fr).se.fc1.weight", "\(fr).se.fc1.bias",
                   "\(fr).se.fc2.weight", "\(fr).se.fc2.bias", "\(fr).proj.conv.weight", "\(fr).proj.norm.bias",
                   "\(fr).unify.conv.weight", "\(fr).unify.norm.weight"]
      expected.append("head.ece.\(s).fc.weight")
    }
    for j in 0..<3 {
      for p in ["norm_x", "norm_g", "q", "k", "v", "o", "ffn_norm", "ffn_fc1", "ffn_dw", "ffn_fc2", "upd_w3", "upd_w4",
                "upd_fc", "upd_norm_u", "upd_fc_g", "upd_norm_g"] {
        expected += ["head.sau.\(j).\(p).weight", "head.sau.\(j).\(p).bias"]
      }
      expected += ["head.up.\(j).primary.conv.weight", "head.up.\(j).primary.norm.weight",
                   "head.up.\(j).cheap.conv.weight", "head.up.\(j).cheap.norm.bias"]
    }
    expected += ["head.init_mask.conv1.weight", "head.init_mask.conv1.bias", "head.init_mask.conv2.weight",
                 "head.init_mask.conv2.bias", "head.fuse.conv.weight", "head.fuse.norm.weight", "head.cls_seg.weight",
                 "head.cls_seg.bias", "head.class_head.weight", "head.class_head.bias"]
    for name in expected { XCTAssertTrue(names.contains(name), "missing parameter \(name)") }
    // Convs inside ConvModules have no bias; patch merging's reduction has none either.
    XCTAssertFalse(names.contains("head.fr.0.primary.conv.bias"))
    XCTAssertFalse(names.contains("backbone.layers.0.downsample.reduction.bias"))
    // BN buffers are named as PyTorch's.
    XCTAssertTrue(model.store.buffers.contains { $0.name == "head.fuse.norm.running_var" })
  }

  func testTinyShapesAndDecayFlags() throws {
    let model = build(try .preset("tiny"))
    func shape(_ n: String) -> [Int]? { model.store.entry(named: n)?.variable.shape }
    XCTAssertEqual(shape("backbone.patch_embed.proj.weight"), [32, 3, 4, 4])
    XCTAssertEqual(shape("backbone.layers.1.blocks.0.attn.relative_position_bias_table"), [49, 2])
    XCTAssertEqual(shape("backbone.layers.0.downsample.reduction.weight"), [64, 128])
    XCTAssertEqual(shape("head.fr.3.se.fc1.weight"), [32, 128])      // C_4/2 = 128 → C_4/8 = 32
    XCTAssertEqual(shape("head.fr.0.cheap.conv.weight"), [16, 1, 3, 3])
    XCTAssertEqual(shape("head.ece.2.fc.weight"), [32, 5])          // S = round(√5) = 2 → 1 + 4 bins
    XCTAssertEqual(shape("head.sau.0.ffn_dw.weight"), [128, 1, 3, 3])
    XCTAssertEqual(shape("head.up.2.primary.conv.weight"), [32 * 64 / 2, 32, 1, 1])
    XCTAssertEqual(shape("head.fuse.conv.weight"), [32, 128, 3, 3])
    XCTAssertEqual(shape("head.class_head.weight"), [6, 32])
    for e in model.store.entries {
      let noDecay = e.name.hasSuffix(".bias") || e.name.hasSuffix("relative_position_bias_table")
        || e.name.contains("norm") && !e.name.contains(".conv.") && e.variable.shape.count == 1
      XCTAssertEqual(e.decay, !noDecay, "decay flag of \(e.name)")
    }
  }

  func testSeededInitIsReproducibleAndNamed() throws {
    let a = build(try .preset("tiny")), b = ECENet(config: try .preset("tiny"), seed: 1)
    let c = ECENet(config: try .preset("tiny"), seed: 2)
    let name = "head.sau.1.q.weight"
    XCTAssertEqual(a.store.entry(named: name)!.variable.value.toArray(), b.store.entry(named: name)!.variable.value.toArray())
    XCTAssertNotEqual(a.store.entry(named: name)!.variable.value.toArray(), c.store.entry(named: name)!.variable.value.toArray())
    // Swin linears: trunc-normal std 0.02; head linears: U(±1/√fan_in).
    let qkv = a.store.entry(named: "backbone.layers.2.blocks.0.attn.qkv.weight")!.variable.value.toArray()
    let std = (qkv.map { $0 * $0 }.reduce(0, +) / Float(qkv.count)).squareRoot()
    XCTAssertEqual(std, 0.02, accuracy: 0.002)
    let fc = a.store.entry(named: "head.sau.0.q.weight")!.variable.value.toArray()
    XCTAssertLessThanOrEqual(fc.map(abs).max()!, 1 / Float(32).squareRoot())
    XCTAssertGreaterThan(fc.map(abs).max()!, 0.9 / Float(32).squareRoot())
  }

  func testAnalyticCountEqualsBuiltModel() throws {
    assertAnalyticMatchesBuilt(try .preset("tiny"))
    var plus = try ModelConfig.preset("tiny")
    plus.updater = .plus; plus.norm = .gn
    assertAnalyticMatchesBuilt(plus)
    assertAnalyticMatchesBuilt(try .preset("swin-t", numClasses: 19))
  }

  func testSwinBAndSwinLMatchThePaper() throws {
    for (preset, paperParams, paperGFlops, specGFlops) in [("swin-b", 96.7, 243.3, 243.0), ("swin-l", 208.3, 425.7, 425.5)] {
      let config = try ModelConfig.preset(preset, numClasses: 150)
      assertAnalyticMatchesBuilt(config)
      let costs = Complexity.analyze(config, height: 640, width: 640)
      let params = Double(Complexity.totalParams(costs)) / 1e6, gflops = Complexity.totalFlops(costs) / 1e9
      XCTAssertEqual(params, paperParams, accuracy: paperParams * 0.1, "\(preset) parameters (M)")
      XCTAssertEqual(gflops, paperGFlops, accuracy: paperGFlops * 0.1, "\(preset) GFLOPs")
      // The spec's independent count (ECENET_SPEC.md §8), to 1%.
      XCTAssertEqual(gflops, specGFlops, accuracy: specGFlops * 0.01, "\(preset) GFLOPs vs the spec's count")
      if preset == "swin-b" {
        let backbone = costs.filter { $0.module.hasPrefix("backbone") }.reduce(0) { $0 + $1.flops } / 1e9
        let sau1 = costs.first { $0.module == "head.sau.2" }!.flops / 1e9
        let fuse = costs.first { $0.module == "head.fuse" }!.flops / 1e9
        XCTAssertEqual(backbone, 148.8, accuracy: 1.5, "Swin-B backbone GFLOPs")
        XCTAssertEqual(sau1, 19.2, accuracy: 0.2, "stage-1 SAU GFLOPs")
        XCTAssertEqual(fuse, 60.5, accuracy: 0.2, "fuse GFLOPs")
      } else {
        XCTAssertEqual(params, 210.4, accuracy: 2.1, "Swin-L parameters vs the spec's count")
      }
    }
  }

  func testECELevels() throws {
    var c = try ModelConfig.preset("swin-b", numClasses: 150)
    XCTAssertEqual(c.eceLevels, 12)
    c.numClasses = 59; c.alpha = 2.0.squareRoot()
    XCTAssertEqual(c.eceLevels, 11)
    c.numClasses = 19; c.alpha = 3
    XCTAssertEqual(c.eceLevels, 13)
    XCTAssertEqual(c.eceBins, (1...13).map { $0 * $0 }.reduce(0, +))
  }
}
