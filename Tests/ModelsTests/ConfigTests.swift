// ModelConfig decoding: presets by name, a variant with overrides, explicit
// sizes, unknown keys rejected, and an encode → decode round trip (the Train
// config loader merges YAML over the encoded defaults).
import Foundation
import Models
import XCTest

final class ConfigTests: XCTestCase {
  func decode(_ json: String) throws -> ModelConfig { try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8)) }

  func testPresetVariantAndExplicit() throws {
    let a = try decode(#"{"backbone": "swin-l", "num_classes": 59, "alpha": 1.4142135623730951}"#)
    XCTAssertEqual(a.backbone, SwinConfig.presets["swin-l"])
    XCTAssertEqual(a.numClasses, 59)
    XCTAssertEqual(a.eceLevels, 11)
    XCTAssertEqual(a.norm, .syncbn)
    XCTAssertEqual(a.updater, .gated)
    XCTAssertEqual(a.loss.focal, 20)
    let b = try decode(#"{"backbone": {"variant": "swin-b", "drop_path": 0.2}, "updater": "plus", "loss": {"div": 0.5}}"#)
    XCTAssertEqual(b.backbone.embedDim, 128)
    XCTAssertEqual(b.backbone.dropPath, 0.2)
    XCTAssertEqual(b.updater, .plus)
    XCTAssertEqual(b.loss.div, 0.5)
    let c = try decode(#"{"backbone": {"embed_dim": 64, "depths": [1, 1, 2, 1], "heads": [2, 4, 8, 16], "window": 8, "drop_path": 0}}"#)
    XCTAssertEqual(c.backbone.stageChannels, [64, 128, 256, 512])
  }

  func testUnknownKeysAndBadValuesAreErrors() {
    XCTAssertThrowsError(try decode(#"{"backbone": "swin-b", "num_clases": 150}"#)) { e in
      XCTAssertTrue("\(e)".contains("num_clases"), "\(e)")
    }
    XCTAssertThrowsError(try decode(#"{"backbone": "swin-x"}"#)) { e in XCTAssertTrue("\(e)".contains("swin-x"), "\(e)") }
    XCTAssertThrowsError(try decode(#"{"backbone": "swin-b", "loss": {"focus": 1}}"#))
    XCTAssertThrowsError(try decode(#"{"backbone": {"embed_dim": 64}}"#))
    XCTAssertThrowsError(try decode(#"{"backbone": "swin-b", "sau_heads": 7}"#))
  }

  func testEncodeDecodeRoundTrip() throws {
    var c = try ModelConfig.preset("swin-b", numClasses: 19)
    c.alpha = 3; c.norm = .gn
    XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: try JSONEncoder().encode(c)), c)
    c.backbone.window = 8  // no longer a preset: encoded as explicit fields
    XCTAssertEqual(try JSONDecoder().decode(ModelConfig.self, from: try JSONEncoder().encode(c)), c)
  }
}
