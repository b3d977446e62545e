// `browse` shows exactly what training feeds the model: each sample is its
// record under the trainer's augmentation for epoch 0, turned back into pixels.
import Data
import Foundation
import TestSupport
@testable import Train
import XCTest

final class BrowseTests: XCTestCase {
  func config() throws -> TrainConfig {
    try TrainConfig.load(file: repositoryRoot().appendingPathComponent("configs/debug/synthetic.yaml").path, overrides: [])
  }

  func testSamplesAreTheRecordsUnderTheTrainersAugmentation() throws {
    let c = try config(), datasets = try RunDatasets(config: c)
    let samples = try BrowseSamples.trainingSamples(config: c, datasets: datasets, count: 4)
    XCTAssertEqual(samples.count, 4)
    XCTAssertEqual(Set(samples.map(\.index)).count, 4, "four different records")
    var augment = TrainAugment(scaleLong: c.data.scale[0], scaleShort: c.data.scale[1],
                               cropHeight: c.data.cropSize[0], cropWidth: c.data.cropSize[1])
    augment.catMaxRatio = c.data.catMaxRatio
    augment.photometric = c.data.photometric
    for s in samples {
      let fed = augment.apply(try datasets.train.sample(at: s.index), seed: c.train.seed, epoch: 0, index: s.index)
      XCTAssertEqual([s.image.height, s.image.width, s.labels.height, s.labels.width], [fed.height, fed.width, fed.height, fed.width])
      XCTAssertEqual(s.labels.pixels, fed.label, "record \(s.index): the labels training sees")
      var worst: Float = 0
      for i in fed.image.indices {
        let c = i % 3
        worst = max(worst, abs(Float(s.image.pixels[i]) - min(255, max(0, fed.image[i] * imagenetStd[c] + imagenetMean[c]))))
      }
      XCTAssertLessThanOrEqual(worst, 0.5, "record \(s.index): the image training sees, to rounding")
    }
  }

  func testBrowseCommandWritesImageLabelsAndOverlay() throws {
    let dir = makeTempDir("browse")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let config = repositoryRoot().appendingPathComponent("configs/debug/synthetic.yaml").path
    let (code, out) = try runProcess(executablePath(), ["browse", "--config", config, "--count", "2", "--out", dir,
                                                        "data.photometric=false"])
    XCTAssertEqual(code, 0, out)
    XCTAssertTrue(out.contains("wrote 2 training sample(s) (64×64, after augmentation) to \(dir)"), out)
    let files = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
    XCTAssertEqual(files.count, 6, "\(files)")
    let label = try XCTUnwrap(files.first { $0.hasPrefix("000_") && $0.hasSuffix("_label.png") })
    let labels = try PNGCodec.decodeLabel([UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + label))))
    XCTAssertEqual([labels.width, labels.height], [64, 64])
    XCTAssertTrue(Set(labels.pixels).isSubset(of: Set((0..<6).map(UInt8.init) + [255])), "classes 0…5 and 255")
    let image = try PNGCodec.decodeRGB([UInt8](try Data(contentsOf: URL(fileURLWithPath: dir + "/" + label.replacingOccurrences(of: "_label", with: "")))))
    XCTAssertEqual([image.width, image.height, image.channels], [64, 64, 3])
    XCTAssertTrue(files.contains { $0.hasPrefix("001_") && $0.hasSuffix("_overlay.jpg") })
  }
}
