// The ResNet-D8 backbone against the PyTorch reference's ResNetV1c
// (scripts/reference/ecenet_ref.py), through the import of an mmcv-layout
// ImageNet checkpoint (export_goldens.py, `export_resnet_official`): a micro
// ResNet (depths 1,1,2,1, stem 8, base 4) on a 2×36×44 input, every stride
// seeing an odd size. Eval mode uses the file's running statistics; training
// mode the batch's, with the input's and every parameter's gradient and the
// running statistics it leaves.
import Foundation
@testable import Models
import NN
import Tensor
import XCTest

final class ResNetImportTests: XCTestCase {
  let checkpointURL = goldenDirectory.appendingPathComponent("tiny_resnet_official.safetensors")
  let runURL = goldenDirectory.appendingPathComponent("tiny_resnet_official_run.safetensors")

  func microBackbone(base: Int = 4, depths: [Int] = [1, 1, 2, 1]) -> (ParameterStore, ResNetBackbone) {
    let store = ParameterStore()
    let bb = ResNetBackbone(LayerBuilder(store: store, weights: WeightInit(seed: 0)), "backbone",
                            config: ResNetConfig(depths: depths, stemChannels: 8, baseChannels: base))
    store.finalize()
    return (store, bb)
  }

  func testImportedBackboneMatchesPyTorchInEvalAndTrainingModes() throws {
    try compareWithReference()
  }

  /// The same with every 3×3 conv of 16+ channels on Winograd, the dilated
  /// ones of stages 3 and 4 (d = 2, 4) on their phases: the micro model's
  /// channels are below the size where `choose` takes it by itself.
  func testWithDilatedConvsOnWinogradItMatchesPyTorchToo() throws {
    let saved = Conv2dTuning.winogradMinimumChannelProduct
    defer { Conv2dTuning.winogradMinimumChannelProduct = saved }
    Conv2dTuning.winogradMinimumChannelProduct = 0
    let g = Conv2dGeometry(input: [2, 5, 6, 16], weight: [16, 16, 3, 3], stride: 1, padding: 2, dilation: 2, groups: 1)
    XCTAssertEqual(Conv2dAlgorithm.choose(for: g), .winograd, "stage 3's dilated conv")
    try compareWithReference()
  }

  func compareWithReference() throws {
    let checkpoint = try SafeTensorsFile(contentsOf: checkpointURL), run = try SafeTensorsFile(contentsOf: runURL)
    let json = try JSONSerialization.jsonObject(
      with: Data(contentsOf: goldenDirectory.appendingPathComponent("tiny_resnet_official.json"))) as! [String: Any]
    let (store, bb) = microBackbone()
    let report = try ResNetCheckpoint.load(file: checkpoint, into: store)

    // What was taken and what was skipped, against the reference's lists;
    // every tensor copied as it is, running statistics included.
    XCTAssertEqual(report.loaded.sorted(), (json["loaded"] as! [String]).map { "backbone." + $0 }.sorted())
    XCTAssertEqual(report.skipped.sorted(), (json["skipped"] as! [String]).sorted())
    XCTAssertTrue(report.keptInit.isEmpty, "\(report.keptInit)")
    XCTAssertTrue(report.description.hasPrefix("ResNet import: \(report.loaded.count) tensors loaded, "), report.description)
    let buffers = Dictionary(uniqueKeysWithValues: store.buffers.map { ($0.name, $0.tensor) })
    for name in report.loaded {
      let ours = store.entry(named: name)?.variable.value ?? buffers[name]!
      XCTAssertEqual(ours.toArray(), try checkpoint.floats(String(name.dropFirst("backbone.".count))), name)
    }
    XCTAssertTrue(report.loaded.contains("backbone.layer4.0.bn3.running_var"))

    let image = try run.tensor("input.image_nhwc")
    let evalFeatures = withoutGradients { bb(Var(image), ForwardContext(training: false)) }
    XCTAssertEqual(evalFeatures.map(\.shape), (json["feat_shapes_nhwc"] as! [[Int]]))
    for s in 0..<4 {
      XCTAssertLessThanOrEqual(maxRelativeError(evalFeatures[s].value, try run.tensor("feat.eval.\(s)")), 1e-4, "eval feature \(s)")
    }

    let x = Var(image, requiresGrad: true)
    let loss = withGradients { () -> Var in
      let feats = bb(x, ForwardContext(training: true))
      for s in 0..<4 {
        XCTAssertLessThanOrEqual(maxRelativeError(feats[s].value, try! run.tensor("feat.train.\(s)")), 1e-4, "training feature \(s)")
      }
      return (0..<4).map { (feats[$0] * Var(try! run.tensor("upstream.\($0)"))).sum() }.reduce(Var(Tensor(scalar: 0)), +)
    }
    XCTAssertLessThanOrEqual(maxRelativeError(loss.value, try run.tensor("loss")), 1e-4, "loss")
    loss.backward()
    var worst: Float = 0
    for e in store.entries {
      let err = maxRelativeError(e.variable.grad!, try run.tensor("grad." + e.name.dropFirst("backbone.".count)))
      XCTAssertLessThanOrEqual(err, 1e-4, "grad \(e.name)")
      worst = max(worst, err)
    }
    XCTAssertLessThanOrEqual(maxRelativeError(x.grad!, try run.tensor("grad.input.image_nhwc")), 1e-4, "grad input")
    for (name, t) in store.buffers {
      XCTAssertLessThanOrEqual(maxRelativeError(t, try run.tensor("running_after." + name.dropFirst("backbone.".count))), 1e-5,
                               "running statistic \(name) after the step")
    }
    print("ResNetImportTests: worst parameter-gradient relative error \(worst)")
  }

  func testMismatchNamesKeysAndShapesAndWritesNothing() throws {
    let checkpoint = try SafeTensorsFile(contentsOf: checkpointURL)
    let (wide, _) = microBackbone(base: 8)
    let before = wide.values!.toArray(), beforeStats = wide.buffers.map { $0.tensor.toArray() }
    XCTAssertThrowsError(try ResNetCheckpoint.load(file: checkpoint, into: wide)) { e in
      let m = "\(e)"
      XCTAssertTrue(m.contains("ResNet checkpoint does not fit the model's backbone"), m)
      XCTAssertTrue(m.contains("layer1.0.conv1.weight: file [4, 8, 1, 1], model backbone.layer1.0.conv1.weight [8, 8, 1, 1]"), m)
      XCTAssertTrue(m.contains("layer1.0.bn1.running_mean: file [4], model backbone.layer1.0.bn1.running_mean [8]"), m)
      XCTAssertTrue(m.contains("hint: does the checkpoint's depth"), m)
    }
    XCTAssertEqual(wide.values!.toArray(), before, "a failed import must not write parameters")
    XCTAssertEqual(wide.buffers.map { $0.tensor.toArray() }, beforeStats, "nor running statistics")

    // A deeper model: the blocks the file lacks are named, parameters and statistics.
    let (deeper, _) = microBackbone(depths: [1, 1, 3, 1])
    XCTAssertThrowsError(try ResNetCheckpoint.load(file: checkpoint, into: deeper)) { e in
      let m = "\(e)"
      XCTAssertTrue(m.contains("parameters the file lacks") && m.contains("backbone.layer3.2.conv1.weight")
                      && m.contains("backbone.layer3.2.bn1.running_var"), m)
    }
  }

  func testOtherCheckpointsAndModelsAreRefusedWithTheReason() throws {
    // A torchvision ResNet (7×7 conv1, no deep stem).
    let tv = SafeTensors.encode([("conv1.weight", Tensor.zeros([64, 3, 7, 7])), ("bn1.weight", Tensor.ones([64]))])
    XCTAssertThrowsError(try ResNetCheckpoint.load(file: SafeTensorsFile(data: tv, path: "tv.safetensors"), into: microBackbone().0)) { e in
      XCTAssertEqual(e as? ResNetImportError, .notAResNetV1cCheckpoint(file: "tv.safetensors", firstKeys: ["conv1.weight", "bn1.weight"]))
      XCTAssertTrue("\(e)".contains("torchvision's ResNets (7×7 conv1) do not fit"), "\(e)")
    }
    // model.pretrained picks the importer by backbone: a Swin model refuses a ResNet file, and the reverse.
    var swin = ModelConfig(backbone: SwinConfig(embedDim: 8, depths: [1, 1, 1, 1], heads: [1, 1, 1, 1], window: 4, dropPath: 0), numClasses: 3)
    swin.channels = 16
    XCTAssertThrowsError(try BackboneCheckpoint.load(path: checkpointURL.path, into: ECENet(config: swin))) { e in
      XCTAssertTrue("\(e)".contains("not an official Swin checkpoint"), "\(e)")
    }
    let resnet = ECENet(config: try .preset("resnet-tiny"))
    XCTAssertThrowsError(try BackboneCheckpoint.load(path: checkpointURL.path, into: resnet)) { e in
      XCTAssertTrue("\(e)".contains("ResNet checkpoint does not fit"), "\(e)")   // resnet-tiny is wider than the micro file
    }
  }
}
