// Tiny on-disk datasets in every layout `pack` reads, written with our codecs
// into a fresh temporary directory, so the tests need no download.
import Data
import Foundation
import XCTest

final class TempDir {
  let path: String
  init() {
    path = NSTemporaryDirectory() + "ecenet-data-" + UUID().uuidString
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  }
  deinit { try? FileManager.default.removeItem(atPath: path) }
  func sub(_ p: String) -> String { (path as NSString).appendingPathComponent(p) }
}

enum Fixture {
  /// A deterministic scene (from the synthetic dataset) of the given size.
  static func scene(_ i: Int, width: Int = 24, height: Int = 16, classes: Int = 5) -> SegSample {
    try! SyntheticDataset(count: 100, numClasses: classes, width: width, height: height, seed: 42).sample(at: i)
  }

  static func write(_ bytes: [UInt8], _ path: String) {
    try! FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent,
                                             withIntermediateDirectories: true)
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)), path)
  }

  static func png(_ img: Image8) -> [UInt8] { try! PNGCodec.encode(img) }
  static func jpg(_ img: Image8) -> [UInt8] { try! JPEGCodec.encode(img, quality: 95) }

  static func labelImage(_ values: [UInt8], like s: SegSample) -> Image8 {
    Image8(width: s.label.width, height: s.label.height, channels: 1, pixels: values)
  }

  /// ADE20K: raw label = class + 1 (0 = unlabelled). Returns the expected mapped labels by name.
  @discardableResult
  static func ade20k(_ root: String, count: Int = 3, split: String = "training") -> [String: [UInt8]] {
    var expected: [String: [UInt8]] = [:]
    for i in 0..<count {
      let s = scene(i)
      let stem = String(format: "ADE_%@_%08d", split == "training" ? "train" : "val", i + 1)
      // Class c -> raw c+1, but mark the first pixel as unlabelled (raw 0 -> 255).
      var raw = s.label.pixels.map { $0 + 1 }
      raw[0] = 0
      write(jpg(s.image), "\(root)/images/\(split)/\(stem).jpg")
      write(png(labelImage(raw, like: s)), "\(root)/annotations/\(split)/\(stem).png")
      var mapped = s.label.pixels
      mapped[0] = 255
      expected["images/\(split)/\(stem).jpg"] = mapped
    }
    return expected
  }

  @discardableResult
  static func cityscapes(_ root: String, split: String = "train") -> [String: [UInt8]] {
    var expected: [String: [UInt8]] = [:]
    for (i, city) in ["aachen", "aachen", "bremen"].enumerated() {
      let s = scene(i + 10)
      let stem = "\(city)_000000_00001\(i)"
      var lab = s.label.pixels
      lab[lab.count - 1] = 255
      write(png(s.image), "\(root)/leftImg8bit/\(split)/\(city)/\(stem)_leftImg8bit.png")
      write(png(labelImage(lab, like: s)), "\(root)/gtFine/\(split)/\(city)/\(stem)_gtFine_labelTrainIds.png")
      expected["leftImg8bit/\(split)/\(city)/\(stem)_leftImg8bit.png"] = lab
    }
    return expected
  }

  @discardableResult
  static func pascalContext(_ root: String) -> [String: [UInt8]] {
    var expected: [String: [UInt8]] = [:]
    let ids = ["2008_000002", "2008_000007", "2010_000001", "2010_000005"]
    for (i, id) in ids.enumerated() {
      let s = scene(i + 20)
      var raw = s.label.pixels.map { $0 + 1 }
      raw[1] = 0
      write(jpg(s.image), "\(root)/JPEGImages/\(id).jpg")
      write(png(labelImage(raw, like: s)), "\(root)/SegmentationClassContext/\(id).png")
      var mapped = s.label.pixels
      mapped[1] = 255
      if i < 3 { expected["JPEGImages/\(id).jpg"] = mapped }
    }
    write(Array((ids[0..<3].joined(separator: "\n") + "\n").utf8), "\(root)/ImageSets/SegmentationContext/train.txt")
    write(Array((ids[3] + "\n").utf8), "\(root)/ImageSets/SegmentationContext/val.txt")
    return expected
  }

  /// folder: PNG and JPEG images, labels with 254 as the ignore value.
  @discardableResult
  static func folder(_ images: String, _ labels: String, count: Int = 5) -> [String: [UInt8]] {
    var expected: [String: [UInt8]] = [:]
    for i in 0..<count {
      let s = scene(i + 30)
      let name = String(format: "img%02d.%@", i, i % 2 == 0 ? "png" : "jpg")
      var lab = s.label.pixels
      lab[2] = 254
      write(i % 2 == 0 ? png(s.image) : jpg(s.image), "\(images)/\(name)")
      write(png(labelImage(lab, like: s)), "\(labels)/" + String(format: "img%02d.png", i))
      var mapped = lab
      mapped[2] = 255
      expected[name] = mapped
    }
    return expected
  }

  static func quiet(threads: Int = 2, perShard: Int = 2, skipBad: Bool = false) -> PackOptions {
    var o = PackOptions()
    o.progress = false; o.threads = threads; o.recordsPerShard = perShard; o.skipBad = skipBad
    return o
  }
}
