// Output directories (work dir, checkpoints, samples, predict's --out): made
// with their parents, and a failure says which part of the path failed and why.
// A checkpoint path that does not exist is named as such, with what to pass;
// one that does not fit the model names the model keys its run had otherwise.
import Foundation
import Models
import NN
import TestSupport
@testable import Train
import XCTest

final class DirectoryTests: XCTestCase {
  func testMakeDirectoryCreatesParentsAndNamesWhatIsInTheWay() throws {
    let dir = makeTempDir("mkdir")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let nested = dir + "/a/b/c"
    try makeDirectory(nested, for: "work dir")
    try makeDirectory(nested, for: "work dir")  // already there: fine
    var isDirectory: ObjCBool = false
    XCTAssertTrue(FileManager.default.fileExists(atPath: nested, isDirectory: &isDirectory) && isDirectory.boolValue)

    try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/file"))
    XCTAssertThrowsError(try makeDirectory(dir + "/file", for: "work dir")) {
      XCTAssertEqual("\($0)", "\(dir)/file: work dir: a file of that name is in the way; pass a directory")
    }
    XCTAssertThrowsError(try makeDirectory(dir + "/file/sub/x", for: "output directory")) {
      XCTAssertEqual("\($0)", "\(dir)/file/sub/x: cannot create the output directory: \(dir)/file/sub: Not a directory")
    }
  }

  func testTrainNamesAWorkDirThatIsAFile() throws {
    let dir = makeTempDir("workdir-file")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try Data("x".utf8).write(to: URL(fileURLWithPath: dir + "/run"))
    let config = repositoryRoot().appendingPathComponent("configs/debug/synthetic.yaml").path
    let (code, out) = try runProcess(executablePath(), ["train", "--config", config, "--work-dir", dir + "/run", "--iterations", "1"])
    XCTAssertNotEqual(code, 0)
    XCTAssertTrue(out.contains("\(dir)/run: work dir: a file of that name is in the way; pass a directory"), out)
  }

  func testAMissingCheckpointSaysWhatToPass() {
    let store = ParameterStore()
    store.finalize()
    XCTAssertThrowsError(try Checkpoint.loadWeights(path: "/nonexistent/iter_1.safetensors", into: store)) {
      XCTAssertEqual("\($0)", "checkpoint /nonexistent/iter_1.safetensors: no such file; pass a checkpoint file or a run's checkpoints/ directory")
    }
    XCTAssertThrowsError(try Checkpoint.load(path: "/nonexistent", store: store, optimizer: AdamW(store: store))) {
      XCTAssertEqual("\($0)", "checkpoint /nonexistent: no such file; pass a checkpoint file (checkpoints/iter_N.safetensors) or 'auto'")
    }
  }

  func testWeightsThatDoNotFitNameTheModelKeysTheRunHadOtherwise() throws {
    let dir = makeTempDir("fit")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let written = try TrainConfig.load(file: nil, overrides: ["data.dataset=synthetic", "model.backbone=tiny",
                                                              "model.num_classes=6", "model.channels=32"])
    let model = ECENet(config: written.model)
    model.store.finalize()
    let path = try Checkpoint.save(dir: dir, state: TrainerState(iteration: 1, optimizerStep: 1, seed: 0, worldSize: 1),
                                   store: model.store, optimizer: AdamW(store: model.store), config: written.yaml(), keep: 1)
    var other = written
    other.model.numClasses = 7
    let wrong = ECENet(config: other.model)
    wrong.store.finalize()
    XCTAssertThrowsError(try Checkpoint.loadWeights(path: path, into: wrong.store, config: other.yaml())) {
      XCTAssertTrue("\($0)".contains("does not fit this model"), "\($0)")
      XCTAssertTrue("\($0)".hasSuffix("Its run's model differs from this config's: model.num_classes: 6 → 7 (run → this config); "
                                     + "pass that run's config.yaml with --config."), "\($0)")
    }
    // The right config loads, and without a config the message stays as it was.
    XCTAssertNoThrow(try Checkpoint.loadWeights(path: path, into: ECENet(config: written.model).store, config: written.yaml()))
    XCTAssertThrowsError(try Checkpoint.loadWeights(path: path, into: wrong.store)) {
      XCTAssertFalse("\($0)".contains("Its run's model"), "\($0)")
    }
  }
}
