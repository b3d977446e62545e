// `model.pretrained` through the real trainer: the backbone starts from the
// file's weights (here a ResNet file in mmcv's layout; the importers
// themselves are tested against PyTorch in ModelsTests).
import Foundation
import Models
import NN
import TestSupport
import Tensor
@testable import Train
import XCTest

final class PretrainedTests: XCTestCase {
  func testTrainStartsAResNetBackboneFromThePretrainedFile() throws {
    let dir = makeTempDir("pretrained")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // An "ImageNet" checkpoint of the resnet-tiny backbone: other weights than
    // the trainer's own init (seed 7), mmcv's key names, and a classifier.
    let source = ECENet(config: try .preset("resnet-tiny"), seed: 7)
    source.store.finalize()
    var tensors = source.store.entries.filter { $0.name.hasPrefix("backbone.") }.map { (String($0.name.dropFirst(9)), $0.variable.value) }
    tensors += source.store.buffers.filter { $0.name.hasPrefix("backbone.") }.map { (String($0.name.dropFirst(9)), $0.tensor) }
    tensors.append(("fc.weight", Tensor.zeros([10, 256])))
    let file = dir + "/resnet_tiny_v1c.safetensors"
    try SafeTensors.encode(tensors).write(to: URL(fileURLWithPath: file))

    // lr 0: one step leaves every parameter as it started, so the checkpoint shows the start.
    let config = repoRoot() + "/configs/debug/synthetic.yaml"
    let (code, out) = try runRanks(1, ["train", "--config", config, "--work-dir", dir + "/run", "--iterations", "1",
                                       "model.backbone=resnet-tiny", "model.pretrained=\(file)", "optimizer.lr=0",
                                       "train.global_batch=2", "train.checkpoint_every=1", "train.eval_every=0",
                                       "evaluation.samples=0", "data.synthetic.train_count=8", "data.synthetic.val_count=2",
                                       "--threads", "1"])
    XCTAssertEqual(code, 0, out)
    let loaded = tensors.count - 1
    XCTAssertTrue(out.contains("pretrained: ResNet import: \(loaded) tensors loaded, 1 skipped (fc.weight)"), out)
    let checkpoint = try SafeTensorsFile(contentsOf: URL(fileURLWithPath: dir + "/run/checkpoints/iter_00000001.safetensors"))
    let ownInit = ECENet(config: try .preset("resnet-tiny"), seed: 0)
    ownInit.store.finalize()
    for e in source.store.entries where e.name.hasPrefix("backbone.") {
      XCTAssertEqual(try checkpoint.floats(e.name), e.variable.value.toArray(), e.name)
    }
    XCTAssertNotEqual(try checkpoint.floats("backbone.stem.0.weight"),
                      ownInit.store.entry(named: "backbone.stem.0.weight")!.variable.value.toArray(), "the file differs from the init")
  }

  func testAFullSizeBackboneWithoutPretrainedWeightsIsPointedOut() throws {
    let note = try XCTUnwrap(Trainer.noPretrainedNote(try .preset("swin-b"), resuming: false))
    XCTAssertTrue(note.hasPrefix("pretrained: none, so the swin-b backbone starts from random weights"), note)
    XCTAssertNotNil(Trainer.noPretrainedNote(try .preset("resnet101-d8"), resuming: false))
    XCTAssertNil(Trainer.noPretrainedNote(try .preset("swin-b"), resuming: true), "a resumed run has its weights")
    XCTAssertNil(Trainer.noPretrainedNote(try .preset("tiny"), resuming: false), "the debug model has no ImageNet weights")
    XCTAssertNil(Trainer.noPretrainedNote(try .preset("resnet-tiny"), resuming: false))
    var given = try ModelConfig.preset("swin-t")
    given.pretrained = "w.safetensors"
    XCTAssertNil(Trainer.noPretrainedNote(given, resuming: false))
  }
}
