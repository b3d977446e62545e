@testable import Train
import XCTest

final class ConfigLoaderTests: XCTestCase {
  struct Opt: Codable, Equatable { var lr: Double = 6e-5; var weightDecay: Double = 0.01 }
  struct Cfg: Codable, Equatable { var seed: Int = 0; var name: String = "x"; var optimizer = Opt() }

  func write(_ text: String, _ name: String = "c.yaml") -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let p = dir.appendingPathComponent(name).path
    try! text.write(toFile: p, atomically: true, encoding: .utf8)
    return p
  }

  func testFileAndOverridesApplyOverDefaults() throws {
    let f = write("seed: 3\noptimizer:\n  lr: 0.001\n")
    let c = try ConfigLoader.load(Cfg(), file: f, overrides: ["optimizer.weightDecay=0.5", "name=run1"])
    XCTAssertEqual(c, Cfg(seed: 3, name: "run1", optimizer: Opt(lr: 0.001, weightDecay: 0.5)))
  }

  func testBaseFileIsMergedUnderTheFile() throws {
    let base = write("seed: 9\noptimizer:\n  lr: 0.5\n", "base.yaml")
    let dir = URL(fileURLWithPath: base).deletingLastPathComponent()
    let f = dir.appendingPathComponent("child.yaml").path
    try "base: base.yaml\noptimizer:\n  weightDecay: 0.2\n".write(toFile: f, atomically: true, encoding: .utf8)
    let c = try ConfigLoader.load(Cfg(), file: f, overrides: [])
    XCTAssertEqual(c, Cfg(seed: 9, name: "x", optimizer: Opt(lr: 0.5, weightDecay: 0.2)))
  }

  func testUnknownKeySuggestsTheNearest() {
    let f = write("optimizer:\n  weight_decay: 0.1\n")
    XCTAssertThrowsError(try ConfigLoader.load(Cfg(), file: f, overrides: [])) {
      XCTAssertTrue("\($0)".contains("unknown key 'optimizer.weight_decay'"), "\($0)")
      XCTAssertTrue("\($0)".contains("did you mean 'optimizer.weightDecay'"), "\($0)")
    }
    XCTAssertThrowsError(try ConfigLoader.load(Cfg(), file: nil, overrides: ["sed=1"])) {
      XCTAssertTrue("\($0)".contains("did you mean 'seed'"), "\($0)")
    }
    // Nothing near in its own section: the nearest key of any section.
    XCTAssertThrowsError(try ConfigLoader.load(Cfg(), file: nil, overrides: ["optimizer.seeed=1"])) {
      XCTAssertTrue("\($0)".contains("did you mean 'seed'?"), "\($0)")
    }
    XCTAssertThrowsError(try ConfigLoader.load(Cfg(), file: nil, overrides: ["optimizer.momentum=0.9"])) {
      XCTAssertFalse("\($0)".contains("did you mean"), "\($0)")
    }
  }

  /// The trainer's config: a key in the wrong section, and mmsegmentation's
  /// names, lead to ours.
  func testUnknownTrainKeysSuggestTheirKeyInAnySectionOrMmsegsName() {
    let cases = [("train.iteratons=5", "schedule.iterations"), ("data.max_iters=5", "schedule.iterations"),
                 ("train.batch_size=4", "train.global_batch"), ("train.samples_per_gpu=2", "train.per_rank_batch"),
                 ("data.data_root=/x", "data.root"), ("schedule.lr=1", "optimizer.lr"), ("optimizer.sed=1", "train.seed")]
    for (override, meant) in cases {
      XCTAssertThrowsError(try TrainConfig.load(file: nil, overrides: [override])) {
        XCTAssertTrue("\($0)".hasSuffix("did you mean '\(meant)'?"), "\(override): \($0)")
      }
    }
  }

  /// What resume reports: the keys whose values changed since the checkpoint.
  func testDifferencesNameTheChangedKeysAndIgnoreTheOldNumberFormat() throws {
    let config = try TrainConfig.load(file: nil, overrides: ["data.dataset=synthetic"])
    let changed = try TrainConfig.load(file: nil, overrides: ["data.dataset=synthetic", "optimizer.lr=0.001",
                                                              "data.crop_size=[32, 48]", "data.photometric=false"])
    XCTAssertEqual(ConfigLoader.differences(from: config.yaml(), to: config.yaml()), [])
    XCTAssertEqual(ConfigLoader.differences(from: config.yaml(), to: changed.yaml()),
                   ["data.crop_size: [640, 640] → [32, 48]", "data.photometric: true → false", "optimizer.lr: 6e-05 → 0.001"])
    // Checkpoints before session 16 recorded numbers and booleans as floats: the same config.
    let oldStyle = config.yaml().replacingOccurrences(of: "global_batch: 16", with: "global_batch: 1.6e+1")
      .replacingOccurrences(of: "photometric: true", with: "photometric: 1e+0")
    XCTAssertNotEqual(oldStyle, config.yaml())
    XCTAssertEqual(ConfigLoader.differences(from: oldStyle, to: config.yaml()), [])
    XCTAssertEqual(ConfigLoader.differences(from: "", to: config.yaml()), [], "nothing recorded: nothing to say")
  }

  /// A string key takes a command-line scalar as written; other keys parse it.
  func testStringOverridesKeepTheirText() throws {
    let custom = try TrainConfig.load(file: nil, overrides: [
      "data.root=my data: v1", "model.backbone={embed_dim: 16, depths: [1, 1, 1, 1], heads: [1, 1, 1, 1], window: 4}"])
    XCTAssertEqual(custom.data.root, "my data: v1")
    XCTAssertEqual(custom.model.backbone.embedDim, 16, "a flow mapping stays a mapping (a custom Swin)")
    let c = try ConfigLoader.load(Cfg(), file: nil, overrides: ["name=2024", "seed=7"])
    XCTAssertEqual(c, Cfg(seed: 7, name: "2024"))
    XCTAssertEqual(try ConfigLoader.load(Cfg(), file: nil, overrides: ["name='no'"]).name, "no")
    XCTAssertEqual(try ConfigLoader.load(Cfg(), file: nil, overrides: ["name=no"]).name, "no")
  }

  func testWrongTypeNamesKeyAndBadOverrideIsExplained() {
    XCTAssertThrowsError(try ConfigLoader.load(Cfg(), file: nil, overrides: ["seed=abc"])) {
      XCTAssertTrue("\($0)".contains("key 'seed' expects Int"), "\($0)")
    }
    XCTAssertThrowsError(try ConfigLoader.load(Cfg(), file: write("name: 2024\n"), overrides: [])) {
      XCTAssertTrue("\($0)".hasSuffix("key 'name' expects String, found 2024; quote it ('…') to make it a string"), "\($0)")
    }
    XCTAssertEqual(try ConfigLoader.load(Cfg(), file: write("name: '2024'\n"), overrides: []).name, "2024")
    XCTAssertThrowsError(try ConfigLoader.load(Cfg(), file: nil, overrides: ["seed"])) {
      XCTAssertTrue("\($0)".contains("expected KEY=VALUE"), "\($0)")
    }
    XCTAssertThrowsError(try ConfigLoader.load(Cfg(), file: "/nonexistent.yaml", overrides: [])) {
      XCTAssertTrue("\($0)".contains("no such file"), "\($0)")
    }
  }
}

final class ShippedConfigTests: XCTestCase {
  /// Every config under configs/ loads, validates and carries the paper's numbers.
  func testEveryShippedConfigLoadsWithThePapersRecipe() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let expect: [(String, Int, Int, Int, [Int], Int)] = [  // file, classes, iterations, global batch, crop, S levels
      ("configs/ade20k/ecenet_swin-t_640x640_160k.yaml", 150, 160_000, 16, [640, 640], 12),
      ("configs/ade20k/ecenet_swin-b_640x640_160k.yaml", 150, 160_000, 16, [640, 640], 12),
      ("configs/ade20k/ecenet_swin-l_640x640_160k.yaml", 150, 160_000, 16, [640, 640], 12),
      ("configs/pascal_context/ecenet_swin-l_480x480_80k.yaml", 59, 80_000, 16, [480, 480], 11),
      ("configs/cityscapes/ecenet_swin-l_1024x1024_160k.yaml", 19, 160_000, 8, [1024, 1024], 13),
    ]
    for (file, n, iters, batch, crop, levels) in expect {
      let c = try TrainConfig.load(file: root.appendingPathComponent(file).path, overrides: [])
      XCTAssertEqual(c.model.numClasses, n, file)
      XCTAssertEqual(c.schedule.iterations, iters, file)
      XCTAssertEqual(c.train.globalBatch, batch, file)
      XCTAssertEqual(c.data.cropSize, crop, file)
      XCTAssertEqual(c.model.eceLevels, levels, file)
      XCTAssertEqual(c.optimizer.lr, 6e-5, file)
      let split = try c.batchSplit(worldSize: 8)
      XCTAssertEqual(split.perRank * split.accumulation * 8, batch, file)
    }
    let debug = try TrainConfig.load(file: root.appendingPathComponent("configs/debug/synthetic.yaml").path, overrides: [])
    XCTAssertEqual(debug.data.dataset, "synthetic")
    XCTAssertTrue(debug.yaml().contains("\n  global_batch: 8\n"), debug.yaml())
  }

  /// The config.yaml a run saves is a config file again, giving the same
  /// config: integers stay integers and booleans booleans (they were written
  /// as floats, `photometric: 1e+0`, which `train --config` then rejected),
  /// and a string that would read back as another type is quoted.
  func testTheSavedConfigLoadsBackAsTheSameConfig() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let runs: [(String, [String])] = [
      ("configs/ade20k/ecenet_swin-b_640x640_160k.yaml", []),
      ("configs/cityscapes/ecenet_swin-l_1024x1024_160k.yaml", ["data.root=my data: v1 #2, [x]", "model.pretrained=''"]),
      ("configs/debug/synthetic.yaml", ["data.photometric=false", "data.root=yes", "model.pretrained='001'",
                                        "optimizer.lr=1.25e-7", "model.backbone=resnet-tiny"]),
    ]
    for (file, overrides) in runs {
      let config = try TrainConfig.load(file: root.appendingPathComponent(file).path, overrides: overrides)
      let saved = FileManager.default.temporaryDirectory.appendingPathComponent("saved-\(UUID().uuidString).yaml").path
      defer { try? FileManager.default.removeItem(atPath: saved) }
      try config.yaml().write(toFile: saved, atomically: true, encoding: .utf8)
      XCTAssertEqual(try TrainConfig.load(file: saved, overrides: []), config, "\(file) \(overrides)\n\(config.yaml())")
      XCTAssertFalse(config.yaml().contains("e+"), "numbers written as floats: \(config.yaml())")
    }
    let debug = try TrainConfig.load(file: root.appendingPathComponent("configs/debug/synthetic.yaml").path,
                                     overrides: ["data.root=yes"]).yaml()
    for line in ["  photometric: true\n", "  num_classes: 6\n", "  crop_size: [64, 64]\n", "  lr: 0.002\n", "  root: 'yes'\n"] {
      XCTAssertTrue(debug.contains(line), "\(line) missing from\n\(debug)")
    }
  }
}
