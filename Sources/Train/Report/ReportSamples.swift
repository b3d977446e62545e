// Sample predictions for the run report: samples/sample_K_{image,label,pred}.png
// for K = 0, 1, … (stopping at the first K without an image) and
// samples/palette.json ([[r,g,b], …]). Images are shrunk to at most
// `maxSide` pixels (bilinear for the photo, nearest for label maps, which must
// keep their class indices) and re-encoded as PNG for data URIs; label maps are
// written as indexed PNGs with the palette, so a class index never changes.
// Not a viewer: no overlays, no zoom.
import Data
import Foundation

public struct ReportSample {
  public var index: Int
  public var image: Image8
  public var label: Image8
  public var pred: Image8
  /// Pixel accuracy of `pred` on the labelled pixels (labels < numClasses), nil when none are labelled.
  public var pixelAccuracy: Double?
}

public struct SampleSet {
  public var samples: [ReportSample]
  /// RGB per class index (from palette.json, else generated; see `notes`).
  public var palette: [[UInt8]]
  public var notes: [String] = []
  /// Samples found beyond `limit` and left out.
  public var omitted = 0

  /// Loads samples/ under `dir`; nil when the folder is absent (samples are optional).
  public static func load(dir: String, numClasses: Int?, limit: Int = 12, maxSide: Int = 320) throws -> SampleSet? {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else { return nil }
    var notes: [String] = []
    let palettePath = (dir as NSString).appendingPathComponent("palette.json")
    var palette: [[UInt8]]
    if FileManager.default.fileExists(atPath: palettePath) {
      palette = try loadPalette(path: palettePath)
    } else {
      palette = defaultPalette(max(numClasses ?? 0, 1))
      notes.append("samples/palette.json is missing; label colours are generated, not the dataset's.")
    }
    var samples: [ReportSample] = []
    var k = 0
    func file(_ k: Int, _ part: String) -> String { (dir as NSString).appendingPathComponent("sample_\(k)_\(part).png") }
    while FileManager.default.fileExists(atPath: file(k, "image")) {
      defer { k += 1 }
      if samples.count == limit { continue }  // count the rest, show `limit`
      let image: Image8
      do { image = try PNGCodec.decodeRGB(readPNG(file(k, "image"))) } catch let e as CodecError {
        throw ReportError.malformed(path: file(k, "image"), line: nil, message: e.description)
      }
      let label = try decodeLabel(file(k, "label"))
      let pred = try decodeLabel(file(k, "pred"))
      guard label.width == pred.width, label.height == pred.height else {
        throw ReportError.malformed(path: file(k, "pred"), line: nil,
          message: "prediction is \(pred.width)×\(pred.height) but its label is \(label.width)×\(label.height); they must match")
      }
      let valid = numClasses ?? palette.count
      var hit = 0, total = 0
      for i in 0..<label.pixels.count where Int(label.pixels[i]) < valid {
        total += 1
        if label.pixels[i] == pred.pixels[i] { hit += 1 }
      }
      let (w, h) = fit(width: label.width, height: label.height, maxSide: maxSide)
      samples.append(ReportSample(
        index: k, image: Resize.bilinear(image, width: w, height: h),
        label: nearest(label, width: w, height: h), pred: nearest(pred, width: w, height: h),
        pixelAccuracy: total > 0 ? Double(hit) / Double(total) : nil))
    }
    if samples.isEmpty { notes.append("samples/ holds no sample_0_image.png; no sample predictions to show.") }
    return SampleSet(samples: samples, palette: palette, notes: notes, omitted: k - samples.count)
  }

  static func readPNG(_ path: String) throws -> [UInt8] {
    guard let d = FileManager.default.contents(atPath: path) else {
      throw ReportError.missing(path: path, hint: "each sample_K_image.png needs sample_K_label.png and sample_K_pred.png beside it")
    }
    return [UInt8](d)
  }

  static func decodeLabel(_ path: String) throws -> Image8 {
    let img: Image8
    do { img = try PNGCodec.decodeLabel(readPNG(path)) } catch let e as CodecError {
      throw ReportError.malformed(path: path, line: nil, message: e.description)
    }
    guard img.channels == 1 else {
      throw ReportError.malformed(path: path, line: nil, message: "has \(img.channels) channels; expected a one-channel (palette or grey) label map of class indices")
    }
    return img
  }

  static func loadPalette(path: String) throws -> [[UInt8]] {
    guard let bytes = FileManager.default.contents(atPath: path) else { throw ReportError.io(path: path, message: "cannot read") }
    let obj: Any
    do { obj = try JSONSerialization.jsonObject(with: bytes) } catch {
      throw ReportError.malformed(path: path, line: EvalSnapshot.lineOfParseError(error, in: bytes), message: "not valid JSON")
    }
    guard let rows = obj as? [Any] else { throw ReportError.malformed(path: path, line: nil, message: "expected [[r,g,b], …]") }
    return try rows.enumerated().map { (i, row) in
      guard let rgb = row as? [NSNumber], rgb.count == 3, rgb.allSatisfy({ (0...255).contains($0.intValue) && !isJSONBool($0) }) else {
        throw ReportError.malformed(path: path, line: nil, message: "entry \(i) is \(row); expected [r,g,b] with 0…255")
      }
      return rgb.map { UInt8($0.intValue) }
    }
  }

  /// Distinct colours from the bits of the index, spread over the high bits (the PASCAL VOC colormap).
  static func defaultPalette(_ n: Int) -> [[UInt8]] {
    (0..<n).map { i in
      var (r, g, b) = (0, 0, 0), c = i
      for j in 0..<8 {
        r |= ((c >> 0) & 1) << (7 - j); g |= ((c >> 1) & 1) << (7 - j); b |= ((c >> 2) & 1) << (7 - j)
        c >>= 3
      }
      return [UInt8(r), UInt8(g), UInt8(b)]
    }
  }

  static func fit(width: Int, height: Int, maxSide: Int) -> (Int, Int) {
    let s = min(1, Double(maxSide) / Double(max(width, height)))
    return (max(1, Int((Double(width) * s).rounded())), max(1, Int((Double(height) * s).rounded())))
  }

  /// Nearest-neighbour resize (pixel centres), for label maps whose values are class indices.
  static func nearest(_ src: Image8, width: Int, height: Int) -> Image8 {
    if width == src.width && height == src.height { return src }
    var out = [UInt8](repeating: 0, count: width * height * src.channels)
    for y in 0..<height {
      let sy = min(src.height - 1, Int((Double(y) + 0.5) * Double(src.height) / Double(height)))
      for x in 0..<width {
        let sx = min(src.width - 1, Int((Double(x) + 0.5) * Double(src.width) / Double(width)))
        for c in 0..<src.channels { out[(y * width + x) * src.channels + c] = src.pixels[(sy * src.width + sx) * src.channels + c] }
      }
    }
    return Image8(width: width, height: height, channels: src.channels, pixels: out)
  }

  /// `data:image/png;base64,…` for an RGB image.
  static func dataURI(rgb image: Image8) throws -> String {
    "data:image/png;base64," + Data(try PNGCodec.encode(image)).base64EncodedString()
  }

  /// `data:image/png;base64,…` for a label map, as an indexed PNG: indices beyond the palette (255 = ignore) are black.
  func dataURI(label: Image8) throws -> String {
    var pal = [UInt8](repeating: 0, count: 256 * 3)
    for (i, c) in palette.prefix(256).enumerated() { pal[i * 3] = c[0]; pal[i * 3 + 1] = c[1]; pal[i * 3 + 2] = c[2] }
    return "data:image/png;base64," + Data(try PNGCodec.encode(label, palette: pal)).base64EncodedString()
  }
}
