// The ResNet-D8 backbone (mmseg ResNetV1c, contract_dilation) behind the
// backbone protocol: output shapes and strides, forward/backward through the
// whole ECENet, mmseg/torchvision parameter names, the ResNet-101 parameter
// count against torchvision's, the analytic count against the built model,
// and the config key.
import Foundation
@testable import Models
import NN
import Tensor
import XCTest

final class ResNetTests: XCTestCase {
  func testTinyResNetECENetForwardBackward() throws {
    let config = try ModelConfig.preset("resnet-tiny")
    let model = ECENet(config: config, seed: 3)
    model.store.finalize()
    XCTAssertEqual(model.backbone.stageStrides, [4, 8, 8, 8])
    XCTAssertEqual(model.backbone.stageChannels, [32, 64, 128, 256])
    // Ghost upsampling by stride ratio: 2 for all three 1/8 maps (hidden C·r²/2 = 2C).
    XCTAssertEqual(model.head.up.map(\.factor), [2, 2, 2])
    let (image, labels) = tinyBatch(classes: config.numClasses)
    let (out, losses) = withGradients { () -> (ModelOutput, LossTerms) in
      let out = model(Var(image), ForwardContext(training: true, seed: 5))
      return (out, ecenetLosses(out, labels: labels, config: config))
    }
    XCTAssertEqual(out.features.map(\.shape), [[2, 16, 16, 32], [2, 8, 8, 64], [2, 8, 8, 128], [2, 8, 8, 256]])
    XCTAssertEqual(out.head.logits.shape, [2, 16, 16, 5])
    XCTAssertEqual(out.logitsUp.shape, [2, 64, 64, 5])
    XCTAssertEqual(out.head.masks.map(\.shape), [[2, 8, 8, 5], [2, 8, 8, 5], [2, 8, 8, 5], [2, 16, 16, 5]])
    for (k, v) in losses.values { XCTAssertTrue(v.isFinite && v >= 0, "loss \(k) = \(v)") }
    losses.total.backward()
    for e in model.store.entries where e.name.hasPrefix("backbone.") {
      let g = e.variable.grad!.toArray()
      XCTAssertTrue(g.allSatisfy(\.isFinite), "non-finite gradient in \(e.name)")
      XCTAssertTrue(g.contains { $0 != 0 }, "zero gradient for \(e.name)")
    }
  }

  func testDilationsAndNames() {
    let store = ParameterStore()
    let r = ResNetConfig.presets["resnet101-d8"]!
    let bb = ResNetBackbone(LayerBuilder(store: store, weights: WeightInit(seed: 0)), "backbone", config: r)
    XCTAssertEqual(bb.layers.map(\.count), [3, 4, 23, 3])
    let names = Set(store.entries.map(\.name) + store.buffers.map(\.name))
    for n in ["backbone.stem.0.weight", "backbone.stem.1.weight", "backbone.stem.1.running_var", "backbone.stem.3.weight",
              "backbone.stem.4.bias", "backbone.stem.6.weight", "backbone.stem.7.running_mean",
              "backbone.layer1.0.conv1.weight", "backbone.layer1.0.bn1.weight", "backbone.layer1.0.downsample.0.weight",
              "backbone.layer1.0.downsample.1.running_var", "backbone.layer3.22.conv3.weight", "backbone.layer4.2.bn3.bias"] {
      XCTAssertTrue(names.contains(n), n)
    }
    XCTAssertFalse(names.contains("backbone.layer1.1.downsample.0.weight"))
    XCTAssertEqual(store.entry(named: "backbone.stem.0.weight")!.variable.shape, [32, 3, 3, 3])
    XCTAssertEqual(store.entry(named: "backbone.layer4.0.downsample.0.weight")!.variable.shape, [2048, 1024, 1, 1])
    // contract_dilation: first block of layer3 / layer4 at 1 / 2, the rest 2 / 4; strides 1, 2, 1, 1.
    func conv2(_ s: Int, _ i: Int) -> Conv2d { bb.layers[s][i].c2.conv }
    XCTAssertEqual([conv2(2, 0).dilation, conv2(2, 1).dilation, conv2(2, 22).dilation], [1, 2, 2])
    XCTAssertEqual([conv2(3, 0).dilation, conv2(3, 1).dilation, conv2(3, 2).dilation], [2, 4, 4])
    XCTAssertEqual([conv2(2, 1).padding, conv2(3, 2).padding], [2, 4])
    XCTAssertEqual((0..<4).map { conv2($0, 0).stride }, [1, 2, 1, 1])

    // torchvision resnet101 has 44,549,160 parameters: minus fc (2048·1000 + 1000),
    // minus the 7×7 conv1 (64·3·49) and bn1 (2·64), plus the deep stem
    // (3·32·9 + 32·32·9 + 32·64·9 convs, 2·(32 + 32 + 64) BN) = 42,519,392.
    let expected = 44_549_160 - (2048 * 1000 + 1000) - (64 * 3 * 49 + 2 * 64) + (3 * 32 * 9 + 32 * 32 * 9 + 32 * 64 * 9 + 2 * 128)
    XCTAssertEqual(store.parameterCount, expected)
    XCTAssertEqual(expected, 42_519_392)
  }

  func testResNet101BackboneForwardBackwardAt64() {
    let store = ParameterStore()
    let bb = ResNetBackbone(LayerBuilder(store: store, weights: WeightInit(seed: 0)), "backbone",
                            config: ResNetConfig.presets["resnet101-d8"]!)
    store.finalize()
    var g = RandomGenerator(seed: 4)
    let image = Tensor(uninitialized: [1, 64, 64, 3])
    for i in 0..<image.count { image.data[i] = g.uniform(-2, 2) }
    let x = Var(image, requiresGrad: true)
    let loss = withGradients { () -> Var in
      let feats = bb(x, ForwardContext(training: true))
      XCTAssertEqual(feats.map(\.shape), [[1, 16, 16, 256], [1, 8, 8, 512], [1, 8, 8, 1024], [1, 8, 8, 2048]])
      return feats.map { $0.mean() }.reduce(Var(Tensor(scalar: 0)), +)
    }
    loss.backward()
    XCTAssertTrue(loss.value.scalar.isFinite)
    XCTAssertTrue(x.grad!.toArray().contains { $0 != 0 })
    XCTAssertTrue(store.entry(named: "backbone.stem.0.weight")!.variable.grad!.toArray().contains { $0 != 0 })
  }

  func testAnalyticCountsMatchBuiltModel() throws {
    for name in ["resnet-tiny", "resnet101-d8"] {
      let config = try ModelConfig.preset(name)
      let model = ECENet(config: config, seed: 1)
      var built: [String: Int] = [:]
      for e in model.store.entries { built[moduleKey(e.name), default: 0] += e.count }
      let analytic = Complexity.analyze(config, height: 64, width: 64)
      for m in analytic where m.params > 0 { XCTAssertEqual(built[m.module], m.params, "\(name): \(m.module)") }
      XCTAssertEqual(Set(built.keys), Set(analytic.filter { $0.params > 0 }.map(\.module)), name)
      XCTAssertEqual(model.store.parameterCount, Complexity.totalParams(analytic), name)
    }
    // Backbone FLOPs at 512² (ResNet-101-D8): printed for the record, checked against the conv formula's size.
    let costs = Complexity.analyze(try ModelConfig.preset("resnet101-d8"), height: 512, width: 512)
    let bb = costs.filter { $0.module.hasPrefix("backbone") }
    print("ResNetTests: resnet101-d8 backbone \(Complexity.totalParams(bb)) params, \(Complexity.totalFlops(bb) / 1e9) GFLOPs at 512²; "
          + "whole model \(Complexity.totalParams(costs)) params, \(Complexity.totalFlops(costs) / 1e9) GFLOPs")
  }

  func testConfigKey() throws {
    let c = try JSONDecoder().decode(ModelConfig.self, from: Data(#"{"backbone": "resnet101-d8", "num_classes": 150}"#.utf8))
    XCTAssertEqual(c.resnet, ResNetConfig.presets["resnet101-d8"])
    XCTAssertEqual(c.stageStrides, [4, 8, 8, 8])
    XCTAssertEqual(c.stageChannels, [256, 512, 1024, 2048])
    XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: try JSONEncoder().encode(c)), c)
    let swin = try ModelConfig.preset("swin-b")
    XCTAssertNil(swin.resnet)
    XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: try JSONEncoder().encode(swin)), swin)
    XCTAssertThrowsError(try SwinCheckpoint.load(path: "/nonexistent", into: ECENet(config: try .preset("resnet-tiny")))) { e in
      XCTAssertTrue("\(e)".contains("not a Swin") || "\(e)".contains("nonexistent"), "\(e)")
    }
  }
}
