// `ecenet-dist info` reads a config as `train` does: through `base:` files,
// from the config.yaml a run saves, and with the loader's errors.
import Foundation
import TestSupport
@testable import Train
import XCTest

final class InfoCommandTests: XCTestCase {
  /// `info --json`'s parameter and GFLOP totals (and input size) for `args`.
  func infoTotals(_ args: [String]) throws -> [String: Double] {
    let (code, out) = try runProcess(executablePath(), ["info", "--json"] + args)
    XCTAssertEqual(code, 0, out)
    let line = out.split(separator: "\n").first { $0.hasPrefix("{") }.map(String.init) ?? ""
    let json = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
    let input = json["input"] as? [Int] ?? []
    return ["params": (json["params"] as? Double) ?? Double(json["params"] as? Int ?? -1),
            "gflops": json["gflops"] as? Double ?? -1, "height": Double(input.first ?? -1)]
  }

  func testInfoFollowsBaseFilesAndReadsASavedConfig() throws {
    let dir = makeTempDir("info")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    // The model in a base file, the crop in the file that names it. (The
    // tiny preset also sets the head's width and norm; a config's
    // `backbone: tiny` picks the backbone alone.)
    try "model:\n  backbone: tiny\n  num_classes: 6\n  channels: 32\n  norm: bn\n".write(toFile: dir + "/base.yaml", atomically: true, encoding: .utf8)
    try "base: base.yaml\ndata:\n  crop_size: [96, 96]\n".write(toFile: dir + "/child.yaml", atomically: true, encoding: .utf8)
    let preset = try infoTotals(["--preset", "tiny", "--classes", "6", "--crop", "96"])
    XCTAssertGreaterThan(preset["params"]!, 0)
    XCTAssertEqual(try infoTotals(["--config", dir + "/child.yaml"]), preset)

    // The config a run saves (TrainConfig.yaml(), as config.yaml) describes the same model.
    let shipped = repositoryRoot().appendingPathComponent("configs/debug/synthetic.yaml").path
    try TrainConfig.load(file: shipped, overrides: []).yaml().write(toFile: dir + "/saved.yaml", atomically: true, encoding: .utf8)
    let original = try infoTotals(["--config", shipped])
    XCTAssertEqual(original["height"], 64)
    XCTAssertEqual(try infoTotals(["--config", dir + "/saved.yaml"]), original)
  }

  func testInfoNamesTheFileAndTheKeyAtFault() throws {
    let dir = makeTempDir("info-bad")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    try "model:\n  backbone: tiny\n  num_clases: 6\n".write(toFile: dir + "/bad.yaml", atomically: true, encoding: .utf8)
    let (code, out) = try runProcess(executablePath(), ["info", "--config", dir + "/bad.yaml"])
    XCTAssertNotEqual(code, 0)
    XCTAssertTrue(out.contains("config \(dir)/bad.yaml: unknown key 'model.num_clases'; did you mean 'model.num_classes'?"), out)
  }
}
