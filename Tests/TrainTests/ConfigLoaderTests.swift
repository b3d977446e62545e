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
  }

  func testWrongTypeNamesKeyAndBadOverrideIsExplained() {
    XCTAssertThrowsError(try ConfigLoader.load(Cfg(), file: nil, overrides: ["seed=abc"])) {
      XCTAssertTrue("\($0)".contains("key 'seed' expects Int"), "\($0)")
    }
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
    XCTAssertTrue(debug.yaml().contains("global_batch: 8"))
  }
}
