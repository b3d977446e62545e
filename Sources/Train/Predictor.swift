// Segmenting arbitrary images (`ecenet-dist predict`): decode → resize to the
// config's test scale keeping ratio → normalise (exactly as EvalAugment does
// for validation) → Inference (whole/slide, optional multi-scale + flip) →
// argmax at the ORIGINAL image size. Also the pieces that turn a label map into
// something to look at: the palette PNG, a colour image, an overlay.
//
// Any image size: Inference.forward pads every network input to a multiple
// of 32 and crops the logits back (mmseg's size_divisor=32), so predict and
// eval share one inference path.
//
// Not here: reading a dataset, metrics (Evaluator.swift), the command line
// (Sources/ecenet-dist/PredictCommand.swift).
//
// Images are Image8 in HWC RGB; label maps are 1-channel Image8 whose pixel
// value is the class index.
import Data
import Foundation
import Models
import Tensor

public struct Predictor {
  public let inference: Inference
  /// The test-scale resize and normalisation of validation (data.test_scale).
  public let augment: EvalAugment

  public init(model: ECENet, options: InferenceOptions, augment: EvalAugment) {
    inference = Inference(model: model, options: options)
    self.augment = augment
  }

  /// The network input of one image: resized to the test scale keeping its
  /// ratio, normalised, [1, h, w, 3]. The same numbers as EvalAugment.apply.
  public static func preprocess(_ image: Image8, augment: EvalAugment) -> Tensor {
    precondition(image.channels == 3, "Predictor.preprocess: image has \(image.channels) channels, expected RGB (3)")
    let (w, h) = Resize.keepRatioSize(width: image.width, height: image.height,
                                      long: augment.scaleLong, short: augment.scaleShort)
    let resized = Resize.bilinear(image, width: w, height: h)
    let values = Normalize.apply(resized, mean: augment.mean, std: augment.std, padHeight: h, padWidth: w)
    return Tensor(shape: [1, h, w, 3], values: values)
  }

  /// Class per pixel at the image's own size: a 1-channel map, value = class index.
  public func predict(_ image: Image8) -> Image8 {
    let input = Predictor.preprocess(image, augment: augment)
    let classes = predict(input, labelHeight: image.height, labelWidth: image.width)
    return Image8(width: image.width, height: image.height, channels: 1, pixels: classes.map { UInt8(clamping: $0) })
  }

  /// Class per pixel at lh × lw of a normalised [1, h, w, 3] image: exactly
  /// the evaluator's inference (scales, flips, padding to a multiple of 32).
  public func predict(_ image: Tensor, labelHeight lh: Int, labelWidth lw: Int) -> [Int32] {
    inference.predict(image, labelHeight: lh, labelWidth: lw)
  }

  // MARK: - Palettes and pictures

  /// The palette of a run without opening its dataset: the packed manifest's
  /// (data.root/train or val) when there is one, else ClassNames.defaultPalette,
  /// which is also what the synthetic dataset uses. A manifest with fewer
  /// colours than classes is completed from the default palette.
  public static func palette(config: TrainConfig) -> [[Int]] {
    let n = config.model.numClasses
    let fallback = ClassNames.defaultPalette(n)
    guard config.data.dataset == "packed", !config.data.root.isEmpty else { return fallback }
    for split in ["train", "val"] {
      let dir = (config.data.root as NSString).appendingPathComponent(split)
      if let m = try? Manifest.load(directory: dir), !m.palette.isEmpty {
        return (0..<n).map { $0 < m.palette.count && m.palette[$0].count >= 3 ? m.palette[$0] : fallback[$0] }
      }
    }
    return fallback
  }

  /// The 256-entry RGB table (768 bytes) of an indexed PNG; entries past the palette are black.
  public static func pngPalette(_ palette: [[Int]]) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: 256 * 3)
    for (i, p) in palette.prefix(256).enumerated() {
      for c in 0..<min(3, p.count) { out[i * 3 + c] = UInt8(clamping: p[c]) }
    }
    return out
  }

  /// A label map as an 8-bit palette PNG: pixel value = class index, shown in the class colours.
  public static func encodeLabels(_ labels: Image8, palette: [[Int]]) throws -> [UInt8] {
    precondition(labels.channels == 1, "Predictor.encodeLabels: label map has \(labels.channels) channels, expected 1")
    return try PNGCodec.encode(labels, palette: pngPalette(palette))
  }

  /// The label map in the class colours (RGB). A value without a colour is black.
  public static func colourise(_ labels: Image8, palette: [[Int]]) -> Image8 {
    precondition(labels.channels == 1, "Predictor.colourise: label map has \(labels.channels) channels, expected 1")
    let table = pngPalette(palette)
    var out = [UInt8](repeating: 0, count: labels.width * labels.height * 3)
    for (i, v) in labels.pixels.enumerated() where Int(v) < palette.count {
      for c in 0..<3 { out[i * 3 + c] = table[Int(v) * 3 + c] }
    }
    return Image8(width: labels.width, height: labels.height, channels: 3, pixels: out)
  }

  /// The image blended with the class colours: (1 − alpha)·image + alpha·colour,
  /// rounded (mmseg's show_result with opacity alpha). Pixels whose value has no
  /// colour (e.g. 255, ignore) keep the image.
  public static func overlay(_ image: Image8, labels: Image8, palette: [[Int]], alpha: Double = 0.5) -> Image8 {
    precondition(image.channels == 3 && labels.channels == 1 && image.width == labels.width && image.height == labels.height,
                 "Predictor.overlay: image \(image.width)×\(image.height)×\(image.channels) and labels "
                 + "\(labels.width)×\(labels.height)×\(labels.channels): expected RGB and a 1-channel map of the same size")
    precondition((0...1).contains(alpha), "Predictor.overlay: alpha \(alpha) outside 0...1")
    let table = pngPalette(palette)
    var out = image.pixels
    for (i, v) in labels.pixels.enumerated() where Int(v) < palette.count {
      for c in 0..<3 {
        let mixed = (1 - alpha) * Double(image.pixels[i * 3 + c]) + alpha * Double(table[Int(v) * 3 + c])
        out[i * 3 + c] = UInt8(min(255, max(0, mixed.rounded())))
      }
    }
    return Image8(width: image.width, height: image.height, channels: 3, pixels: out)
  }

  // MARK: - Inputs and output names

  public static let imageExtensions: Set<String> = ["jpg", "jpeg", "png"]

  /// The images to segment: the file itself, or a directory's *.jpg, *.jpeg and
  /// *.png files (any case, not recursive), sorted by name.
  public static func inputFiles(_ path: String) throws -> [String] {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
      throw TrainError.io(path: path, message: "no such file or directory")
    }
    guard isDir.boolValue else { return [path] }
    let names: [String]
    do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
      throw TrainError.io(path: path, message: "cannot list the directory: \(error.localizedDescription)")
    }
    let images = names.filter { name in
      var sub: ObjCBool = false
      return imageExtensions.contains((name as NSString).pathExtension.lowercased())
        && FileManager.default.fileExists(atPath: (path as NSString).appendingPathComponent(name), isDirectory: &sub) && !sub.boolValue
    }.sorted()
    guard !images.isEmpty else {
      throw TrainError.io(path: path, message: "no *.jpg, *.jpeg or *.png files in the directory")
    }
    return images.map { (path as NSString).appendingPathComponent($0) }
  }

  /// Output stem per input: the file name without its extension; inputs that
  /// share a stem (a.jpg, a.png) keep their extension in it (a_jpg, a_png), so
  /// no output overwrites another.
  public static func outputStems(_ files: [String]) -> [String] {
    let stems = files.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension }
    var seen: [String: Int] = [:]
    for s in stems { seen[s, default: 0] += 1 }
    return zip(files, stems).map { file, stem in
      guard seen[stem]! > 1 else { return stem }
      let ext = ((file as NSString).lastPathComponent as NSString).pathExtension
      return ext.isEmpty ? stem : stem + "_" + ext
    }
  }
}
