// Evaluation (spec §8): whole-image or sliding-window inference, optional
// multi-scale + flip, a confusion matrix per rank over its share of the
// validation set (images r, r+R, …: no image twice, none dropped), summed
// over ranks, and `eval.json` + a per-class table from rank 0.
import Data
import Dist
import Foundation
import Models
import NN
import Tensor

public struct InferenceOptions {
  public var mode = "whole"
  /// Window (crop) size for slide mode; stride is 2/3 of it.
  public var crop = (640, 640)
  /// Scale ratios (1.0 alone = single scale) and horizontal flip.
  public var ratios: [Double] = [1.0]
  public var flip = false
  public init() {}
}

public struct Inference {
  public let model: ECENet
  public let options: InferenceOptions

  public init(model: ECENet, options: InferenceOptions) { self.model = model; self.options = options }

  var numClasses: Int { model.config.numClasses }

  /// Logits of one image [1, h, w, 3] at its own size: [1, h, w, N].
  func logits(_ image: Tensor) -> Tensor {
    options.mode == "slide" ? slide(image) : forward(image)
  }

  /// Network inputs are zero-padded (bottom, right) to a multiple of this and
  /// the logits cropped back, as mmseg's size_divisor=32: the head's ×2/×4/×8
  /// upsampling of the 1/8, 1/16, 1/32 maps only lines up with the 1/4 map then.
  public static let sizeDivisor = 32

  func forward(_ image: Tensor) -> Tensor {
    let (h, w, d) = (image.shape[1], image.shape[2], Inference.sizeDivisor)
    let (pb, pr) = ((d - h % d) % d, (d - w % d) % d)
    return withoutGradients {
      let x = padSpatial(Var(image), bottom: pb, right: pr)                    // [1, h+pb, w+pr, 3]
      let l = model(x, ForwardContext(training: false)).logitsUp               // [1, h+pb, w+pr, N]
      return cropSpatial(l, height: h, width: w).value                         // [1, h, w, N]
    }
  }

  /// mmseg's slide_inference: windows of the crop size at stride 2/3 crop,
  /// overlapping logits averaged.
  func slide(_ image: Tensor) -> Tensor {
    let (h, w) = (image.shape[1], image.shape[2]), n = numClasses
    let (ch, cw) = options.crop
    let (sh, sw) = (max(1, ch * 2 / 3), max(1, cw * 2 / 3))
    let rows = max(h - ch + sh - 1, 0) / sh + 1, cols = max(w - cw + sw - 1, 0) / sw + 1
    let sum = Tensor.zeros([1, h, w, n])
    var count = [Float](repeating: 0, count: h * w)
    for r in 0..<rows {
      for c in 0..<cols {
        let y2 = min(r * sh + ch, h), x2 = min(c * sw + cw, w)
        let y1 = max(y2 - ch, 0), x1 = max(x2 - cw, 0)
        let out = forward(cropBox(image, y1, x1, y2, x2))
        for y in y1..<y2 {
          for x in x1..<x2 {
            let dst = sum.data + (y * w + x) * n, src = out.data + ((y - y1) * (x2 - x1) + (x - x1)) * n
            for k in 0..<n { dst[k] += src[k] }
            count[y * w + x] += 1
          }
        }
      }
    }
    for p in 0..<(h * w) { let d = sum.data + p * n; for k in 0..<n { d[k] /= count[p] } }
    return sum
  }

  /// Class per pixel at the label size [lh, lw].
  public func predict(_ image: Tensor, labelHeight lh: Int, labelWidth lw: Int) -> [Int32] {
    let (h, w) = (image.shape[1], image.shape[2])
    let single = options.ratios == [1.0] && !options.flip
    var acc: Tensor? = nil
    for r in options.ratios {
      let sized = r == 1.0 ? image : withoutGradients {
        resizeBilinear(Var(image), height: max(1, Int((Double(h) * r).rounded())), width: max(1, Int((Double(w) * r).rounded())))
      }.value
      for flipped in options.flip ? [false, true] : [false] {
        var l = logits(flipped ? flipW(sized) : sized)
        if flipped { l = flipW(l) }
        let up = withoutGradients { () -> Tensor in
          let v = resizeBilinear(Var(l), height: lh, width: lw)
          return single ? v.value : softmax(v, axis: -1).value  // ms+flip averages probabilities
        }
        if let a = acc { a.add(up) } else { acc = up.copy() }
      }
    }
    return argmaxLast(acc!)
  }
}

/// [B, H, W, C] → [1, y2-y1, x2-x1, C] (batch 0).
func cropBox(_ t: Tensor, _ y1: Int, _ x1: Int, _ y2: Int, _ x2: Int) -> Tensor {
  let (w, c) = (t.shape[2], t.shape[3])
  let out = Tensor(uninitialized: [1, y2 - y1, x2 - x1, c])
  for y in y1..<y2 {
    (out.data + (y - y1) * (x2 - x1) * c).update(from: t.data + (y * w + x1) * c, count: (x2 - x1) * c)
  }
  return out
}

/// Horizontal flip of [B, H, W, C].
func flipW(_ t: Tensor) -> Tensor {
  let (b, h, w, c) = (t.shape[0], t.shape[1], t.shape[2], t.shape[3])
  let out = Tensor(uninitialized: t.shape)
  for r in 0..<(b * h) { for x in 0..<w {
    (out.data + (r * w + x) * c).update(from: t.data + (r * w + (w - 1 - x)) * c, count: c)
  } }
  return out
}

func argmaxLast(_ t: Tensor) -> [Int32] {
  let n = t.shape.last!, rows = t.count / n
  var out = [Int32](repeating: 0, count: rows)
  for i in 0..<rows {
    let p = t.data + i * n
    var best = p[0], bi = 0
    for k in 1..<n where p[k] > best { best = p[k]; bi = k }
    out[i] = Int32(bi)
  }
  return out
}

public struct EvalResult {
  public let iteration: Int
  public let matrix: ConfusionMatrix
  public let classNames: [String]
  public let images: Int

  public var json: [String: Any] {
    let (iou, acc) = (matrix.iou, matrix.accuracy)
    return [
      "iteration": iteration, "mIoU": matrix.meanIoU, "aAcc": matrix.allAccuracy, "images": images,
      "classes": (0..<matrix.numClasses).map { c -> [String: Any] in
        ["name": c < classNames.count ? classNames[c] : "class\(c)", "iou": iou[c] ?? NSNull(), "acc": acc[c] ?? NSNull()]
      },
      "confusion": ["num_classes": matrix.numClasses, "counts": matrix.counts],
    ]
  }

  /// Rank 0 writes eval.json (atomically) in the work dir.
  public func write(workDir: String) throws {
    let data = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
    try Checkpoint.writeAtomically(data, to: (workDir as NSString).appendingPathComponent("eval.json"))
  }
}

public enum Evaluator {
  /// Evaluates `model` on this rank's share of `source` and reduces over ranks.
  /// Rank 0 saves the first `samples` predictions under samplesDir (for the report).
  public static func run(model: ECENet, source: any SegmentationSource, world: Communicator, config: TrainConfig,
                         options: InferenceOptions, iteration: Int, classNames: [String], palette: [[Int]],
                         samplesDir: String?, progress: Bool) throws -> EvalResult {
    let n = config.model.numClasses
    let mine = Array(stride(from: world.rank, to: source.count, by: world.worldSize))
    let augment = EvalAugment(scaleLong: config.data.testScale[0], scaleShort: config.data.testScale[1])
    let stream = try DataLoader.validation(source: source, indices: mine, augment: augment, workers: config.data.workers)
    let inference = Inference(model: model, options: options)
    var matrix = ConfusionMatrix(numClasses: n)
    var done = 0
    let start = Date()
    if let dir = samplesDir, world.rank == 0 {
      try makeDirectory(dir, for: "samples directory")
      let pal = try JSONSerialization.data(withJSONObject: palette)
      try pal.write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("palette.json")))
    }
    while let batch = try stream.next() {
      for s in batch {
        let img = Tensor(shape: [1, s.height, s.width, 3], values: s.image)
        let pred = inference.predict(img, labelHeight: s.labelHeight, labelWidth: s.labelWidth)
        matrix.add(prediction: pred, label: s.label)
        if let dir = samplesDir, world.rank == 0, done < config.evaluation.samples {
          try writeSample(dir: dir, k: done, sample: s, prediction: pred, palette: palette, mean: augment.mean, std: augment.std)
        }
        done += 1
        if progress && world.rank == 0 && isatty(STDERR_FILENO) != 0 {
          let rate = Double(done) / max(1e-9, Date().timeIntervalSince(start))
          FileHandle.standardError.write(Data(String(format: "\r\u{1B}[Keval %d/%d (rank 0)  %.1f img/s", done, mine.count, rate).utf8))
        }
      }
    }
    if progress && world.rank == 0 && isatty(STDERR_FILENO) != 0 { FileHandle.standardError.write(Data("\n".utf8)) }
    try matrix.counts.withUnsafeMutableBufferPointer { try world.allreduceSum($0) }
    var images = [Int64(done)]
    try images.withUnsafeMutableBufferPointer { try world.allreduceSum($0) }
    return EvalResult(iteration: iteration, matrix: matrix, classNames: classNames, images: Int(images[0]))
  }

  static func writeSample(dir: String, k: Int, sample s: EvalSample, prediction: [Int32], palette: [[Int]],
                          mean: [Float], std: [Float]) throws {
    var rgb = [UInt8](repeating: 0, count: s.height * s.width * 3)
    for i in 0..<(s.height * s.width) { for c in 0..<3 {
      rgb[i * 3 + c] = UInt8(max(0, min(255, (s.image[i * 3 + c] * std[c] + mean[c]).rounded())))
    } }
    var pal = [UInt8](repeating: 0, count: 256 * 3)
    for (i, p) in palette.prefix(255).enumerated() { for c in 0..<3 { pal[i * 3 + c] = UInt8(clamping: p[c]) } }
    func save(_ name: String, _ bytes: [UInt8]) throws {
      try Data(bytes).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("sample_\(k)_\(name).png")))
    }
    try save("image", PNGCodec.encode(Image8(width: s.width, height: s.height, channels: 3, pixels: rgb)))
    try save("label", PNGCodec.encode(Image8(width: s.labelWidth, height: s.labelHeight, channels: 1, pixels: s.label), palette: pal))
    try save("pred", PNGCodec.encode(Image8(width: s.labelWidth, height: s.labelHeight, channels: 1,
                                            pixels: prediction.map { UInt8(clamping: $0) }), palette: pal))
  }
}
