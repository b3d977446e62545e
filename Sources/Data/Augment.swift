// The training and validation transforms of spec §7, in mmseg's order and with
// mmseg's rules (mmseg 1.x RandomResize, RandomCrop, RandomFlip,
// PhotoMetricDistortion, then the data preprocessor's normalise and pad):
//
//   random resize (keep ratio, factor U[0.5, 2.0]) → random crop (0.75 rule)
//   → flip p=0.5 → photometric distortion → normalise → pad to the crop
//
// Images stay 8-bit until normalisation, as in mmseg (each step truncates to
// uint8). Images are resized bilinearly, labels by nearest neighbour, so a
// label map only ever holds values it held before. Every random draw comes
// from one SampleRNG keyed by (seed, epoch, sample index), drawn in a fixed
// order, so a sample is the same on any thread, rank count or prefetch depth.
//
// Layout: HWC, RGB. Not bit-exact with OpenCV's fixed-point resize and HSV
// conversion (within ±1 per channel); the rules and ranges are mmseg's.

/// mmseg's ImageNet mean and std (RGB, 0…255 scale).
public let imagenetMean: [Float] = [123.675, 116.28, 103.53]
public let imagenetStd: [Float] = [58.395, 57.12, 57.375]

public struct TrainAugment: Sendable, Equatable {
  /// Base scale (long, short edge) that the random ratio multiplies, e.g. ADE20K 2048×512 at 512² crops, 2560×640 at 640².
  public var scaleLong: Int
  public var scaleShort: Int
  public var ratioRange: ClosedRange<Double> = 0.5...2.0
  public var cropHeight: Int
  public var cropWidth: Int
  /// Retry the crop (up to 10 times) until no class covers this share or more of its non-ignored pixels.
  public var catMaxRatio: Double = 0.75
  public var flipProbability: Double = 0.5
  public var photometric = true
  public var mean = imagenetMean
  public var std = imagenetStd

  public init(scaleLong: Int, scaleShort: Int, cropHeight: Int, cropWidth: Int) {
    self.scaleLong = scaleLong; self.scaleShort = scaleShort; self.cropHeight = cropHeight; self.cropWidth = cropWidth
  }

  /// The spec's per-dataset settings (§7).
  public static let ade20k = TrainAugment(scaleLong: 2560, scaleShort: 640, cropHeight: 640, cropWidth: 640)
  public static let pascalContext = TrainAugment(scaleLong: 520, scaleShort: 520, cropHeight: 480, cropWidth: 480)
  public static let cityscapes = TrainAugment(scaleLong: 2048, scaleShort: 1024, cropHeight: 1024, cropWidth: 1024)

  /// Applies the whole pipeline to one sample; `index` is the record index (not its position in the epoch).
  public func apply(_ s: SegSample, seed: UInt64, epoch: Int, index: Int) -> TrainSample {
    var rng = SampleRNG(seed: seed, epoch: UInt64(epoch), index: UInt64(index), stream: .augment)
    // 1. Random resize: target scale × U[ratio], then mmcv's keep-ratio rescale.
    let ratio = rng.uniform(ratioRange.lowerBound, ratioRange.upperBound)
    let (nw, nh) = Resize.keepRatioSize(width: s.image.width, height: s.image.height,
                                        long: Int(Double(scaleLong) * ratio), short: Int(Double(scaleShort) * ratio))
    var label = Resize.nearest(s.label, width: nw, height: nh)
    // 2. Random crop with the category-ratio rule. The crop is chosen on the
    // resized label alone, so the image is resized only inside the crop: the
    // same pixels as resizing everything and cropping (tested), at a fraction
    // of the cost (ADE20K at ratio 2 resizes ~17 Mpx to keep 0.4 Mpx).
    let box = Crop.choose(label: label, cropHeight: cropHeight, cropWidth: cropWidth, catMaxRatio: catMaxRatio, rng: &rng)
    var image = Resize.bilinear(s.image, width: nw, height: nh, region: box)
    label = Crop.apply(label, box)
    // 3. Horizontal flip.
    if rng.unit() < flipProbability { image = Flip.horizontal(image); label = Flip.horizontal(label) }
    // 4. Photometric distortion (image only).
    if photometric { image = Photometric.distort(image, rng: &rng) }
    // 5. Normalise, 6. pad to the crop (image 0 after normalisation, label 255).
    return TrainSample(image: Normalize.apply(image, mean: mean, std: std, padHeight: cropHeight, padWidth: cropWidth),
                       label: Normalize.padLabel(label, height: cropHeight, width: cropWidth),
                       height: cropHeight, width: cropWidth, index: index, name: s.name)
  }
}

/// One augmented training sample: HWC float image and HW label, both crop-sized.
public struct TrainSample: Sendable {
  public var image: [Float]
  public var label: [UInt8]
  public var height: Int
  public var width: Int
  public var index: Int
  public var name: String
}

/// Validation: resize to the test scale keeping ratio, normalise; no randomness.
/// The label stays at the original size, because the metric is computed there.
public struct EvalAugment: Sendable, Equatable {
  public var scaleLong: Int
  public var scaleShort: Int
  public var mean = imagenetMean
  public var std = imagenetStd

  public init(scaleLong: Int, scaleShort: Int) { self.scaleLong = scaleLong; self.scaleShort = scaleShort }

  public static let ade20k = EvalAugment(scaleLong: 2560, scaleShort: 640)
  public static let pascalContext = EvalAugment(scaleLong: 520, scaleShort: 520)
  public static let cityscapes = EvalAugment(scaleLong: 2048, scaleShort: 1024)

  public func apply(_ s: SegSample, index: Int) -> EvalSample {
    let (w, h) = Resize.keepRatioSize(width: s.image.width, height: s.image.height, long: scaleLong, short: scaleShort)
    let img = Resize.bilinear(s.image, width: w, height: h)
    return EvalSample(image: Normalize.apply(img, mean: mean, std: std, padHeight: h, padWidth: w), height: h, width: w,
                      label: s.label.pixels, labelHeight: s.label.height, labelWidth: s.label.width, index: index, name: s.name)
  }
}

public struct EvalSample: Sendable {
  /// HWC float at the test scale.
  public var image: [Float]
  public var height: Int
  public var width: Int
  /// HW labels at the original size.
  public var label: [UInt8]
  public var labelHeight: Int
  public var labelWidth: Int
  public var index: Int
  public var name: String
}

public enum Resize {
  /// mmcv.rescale_size: the largest factor that fits (long, short) on the (long, short) edges; int(x·f + 0.5).
  public static func keepRatioSize(width w: Int, height h: Int, long: Int, short: Int) -> (Int, Int) {
    let f = min(Double(max(long, short)) / Double(max(w, h)), Double(min(long, short)) / Double(min(w, h)))
    return (max(1, Int(Double(w) * f + 0.5)), max(1, Int(Double(h) * f + 0.5)))
  }

  /// Bilinear with half-pixel centres (cv2 INTER_LINEAR / align_corners=False), rounded to uint8.
  /// With `region`, only that box of the dw×dh result is computed and returned
  /// (each output pixel depends only on its own position, so it equals a crop of the full result).
  public static func bilinear(_ src: Image8, width dw: Int, height dh: Int, region: Crop.Box? = nil) -> Image8 {
    let box = region ?? Crop.Box(x: 0, y: 0, width: dw, height: dh)
    if dw == src.width && dh == src.height { return region == nil ? src : Crop.apply(src, box) }
    let c = src.channels, sw = src.width, sh = src.height
    let sx = Double(sw) / Double(dw), sy = Double(sh) / Double(dh)
    let ow = box.width
    // Per-column source positions and weights, computed once.
    var x0 = [Int](repeating: 0, count: ow), x1 = x0, fx = [Float](repeating: 0, count: ow)
    for x in 0..<ow {
      let p = max(0, (Double(x + box.x) + 0.5) * sx - 0.5)
      let i = min(Int(p), sw - 1)
      x0[x] = i; x1[x] = min(i + 1, sw - 1); fx[x] = Float(p - Double(i))
    }
    var out = [UInt8](repeating: 0, count: ow * box.height * c)
    src.pixels.withUnsafeBufferPointer { s in
      out.withUnsafeMutableBufferPointer { o in
        for y in 0..<box.height {
          let p = max(0, (Double(y + box.y) + 0.5) * sy - 0.5)
          let y0 = min(Int(p), sh - 1), y1 = min(y0 + 1, sh - 1)
          let fy = Float(p - Double(y0))
          let r0 = y0 * sw * c, r1 = y1 * sw * c, ro = y * ow * c
          for x in 0..<ow {
            let a = x0[x] * c, b = x1[x] * c, f = fx[x]
            for k in 0..<c {
              let top = Float(s[r0 + a + k]) * (1 - f) + Float(s[r0 + b + k]) * f
              let bot = Float(s[r1 + a + k]) * (1 - f) + Float(s[r1 + b + k]) * f
              o[ro + x * c + k] = UInt8(min(255, max(0, (top * (1 - fy) + bot * fy).rounded())))
            }
          }
        }
      }
    }
    return Image8(width: ow, height: box.height, channels: c, pixels: out)
  }

  /// Nearest neighbour as cv2 INTER_NEAREST: source = floor(dst · src/dst). Never invents a value.
  public static func nearest(_ src: Image8, width dw: Int, height dh: Int) -> Image8 {
    if dw == src.width && dh == src.height { return src }
    let c = src.channels
    let xs = (0..<dw).map { min(src.width - 1, Int(Double($0) * Double(src.width) / Double(dw))) }
    var out = [UInt8](repeating: 0, count: dw * dh * c)
    for y in 0..<dh {
      let sy = min(src.height - 1, Int(Double(y) * Double(src.height) / Double(dh)))
      for x in 0..<dw { for k in 0..<c { out[(y * dw + x) * c + k] = src.pixels[(sy * src.width + xs[x]) * c + k] } }
    }
    return Image8(width: dw, height: dh, channels: c, pixels: out)
  }
}

public enum Crop {
  public struct Box: Equatable, Sendable {
    public var x: Int, y: Int, width: Int, height: Int
    public init(x: Int, y: Int, width: Int, height: Int) { self.x = x; self.y = y; self.width = width; self.height = height }
  }

  /// mmseg RandomCrop: a random box; while the tried box has one class covering ≥ catMaxRatio
  /// of its non-ignored pixels (or fewer than two classes), draw another, at most 10 times;
  /// after 10 failures the last drawn box is used, as in mmseg.
  public static func choose(label: Image8, cropHeight: Int, cropWidth: Int, catMaxRatio: Double,
                            rng: inout SampleRNG) -> Box {
    func draw() -> Box {
      let mh = max(label.height - cropHeight, 0), mw = max(label.width - cropWidth, 0)
      let oy = rng.int(0, through: mh), ox = rng.int(0, through: mw)
      return Box(x: ox, y: oy, width: min(cropWidth, label.width), height: min(cropHeight, label.height))
    }
    var box = draw()
    if catMaxRatio < 1 {
      for _ in 0..<10 {
        if passes(label, box, catMaxRatio) { break }
        box = draw()
      }
    }
    return box
  }

  /// The 0.75 rule for one box: at least two classes and none with ≥ catMaxRatio of the counted pixels (255 not counted).
  public static func passes(_ label: Image8, _ b: Box, _ catMaxRatio: Double) -> Bool {
    var counts = [Int](repeating: 0, count: 256)
    for y in b.y..<(b.y + b.height) {
      let row = y * label.width
      for x in b.x..<(b.x + b.width) { counts[Int(label.pixels[row + x])] += 1 }
    }
    counts[Int(ignoreLabel)] = 0
    let present = counts.filter { $0 > 0 }
    let total = present.reduce(0, +)
    return present.count > 1 && Double(present.max()!) / Double(total) < catMaxRatio
  }

  public static func apply(_ img: Image8, _ b: Box) -> Image8 {
    let c = img.channels
    var out = [UInt8]()
    out.reserveCapacity(b.width * b.height * c)
    for y in b.y..<(b.y + b.height) {
      let s = (y * img.width + b.x) * c
      out += img.pixels[s..<(s + b.width * c)]
    }
    return Image8(width: b.width, height: b.height, channels: c, pixels: out)
  }
}

public enum Flip {
  public static func horizontal(_ img: Image8) -> Image8 {
    let c = img.channels, w = img.width
    var out = img.pixels
    for y in 0..<img.height {
      for x in 0..<w { for k in 0..<c { out[(y * w + x) * c + k] = img.pixels[(y * w + (w - 1 - x)) * c + k] } }
    }
    return Image8(width: w, height: img.height, channels: c, pixels: out)
  }
}

/// mmseg's PhotoMetricDistortion (defaults: brightness ±32, contrast 0.5–1.5,
/// saturation 0.5–1.5, hue ±18 in OpenCV's 0–180 hue units). Each step happens
/// with probability 1/2; contrast comes either second or last (mode drawn
/// once). Each step converts back to uint8 by truncation, as mmseg's `convert`.
public enum Photometric {
  public static func distort(_ image: Image8, rng: inout SampleRNG,
                             brightnessDelta: Double = 32, contrast: ClosedRange<Double> = 0.5...1.5,
                             saturation: ClosedRange<Double> = 0.5...1.5, hueDelta: Int = 18) -> Image8 {
    precondition(image.channels == 3, "photometric distortion needs RGB")
    var px = image.pixels
    if rng.below(2) == 1 { convert(&px, alpha: 1, beta: Float(rng.uniform(-brightnessDelta, brightnessDelta))) }
    let mode = rng.below(2)
    func contrastStep() {
      if rng.below(2) == 1 { convert(&px, alpha: Float(rng.uniform(contrast.lowerBound, contrast.upperBound)), beta: 0) }
    }
    if mode == 1 { contrastStep() }
    if rng.below(2) == 1 {
      let alpha = Float(rng.uniform(saturation.lowerBound, saturation.upperBound))
      mapHSV(&px) { h, s, v in (h, truncByte(Float(s) * alpha), v) }
    }
    if rng.below(2) == 1 {
      // numpy randint(-d, d) excludes d: the shift is in -d ... d-1.
      let shift = rng.int(-hueDelta, through: hueDelta - 1)
      mapHSV(&px) { h, s, v in (UInt8(((Int(h) + shift) % 180 + 180) % 180), s, v) }
    }
    if mode == 0 { contrastStep() }
    return Image8(width: image.width, height: image.height, channels: 3, pixels: px)
  }

  @inline(__always) static func truncByte(_ v: Float) -> UInt8 { UInt8(min(255, max(0, v))) }

  static func convert(_ px: inout [UInt8], alpha: Float, beta: Float) {
    for i in 0..<px.count { px[i] = truncByte(Float(px[i]) * alpha + beta) }
  }

  /// Converts each pixel to OpenCV's 8-bit HSV (H 0…179, S and V 0…255), applies `f`, converts back.
  static func mapHSV(_ px: inout [UInt8], _ f: (UInt8, UInt8, UInt8) -> (UInt8, UInt8, UInt8)) {
    for i in stride(from: 0, to: px.count, by: 3) {
      let (h, s, v) = rgbToHSV(px[i], px[i + 1], px[i + 2])
      let (h2, s2, v2) = f(h, s, v)
      (px[i], px[i + 1], px[i + 2]) = hsvToRGB(h2, s2, v2)
    }
  }

  static func rgbToHSV(_ r: UInt8, _ g: UInt8, _ b: UInt8) -> (UInt8, UInt8, UInt8) {
    let rf = Float(r), gf = Float(g), bf = Float(b)
    let v = max(rf, gf, bf), mn = min(rf, gf, bf), d = v - mn
    let s: Float = v == 0 ? 0 : 255 * d / v
    var h: Float = 0
    if d > 0 {
      if v == rf { h = 60 * (gf - bf) / d } else if v == gf { h = 120 + 60 * (bf - rf) / d } else { h = 240 + 60 * (rf - gf) / d }
      if h < 0 { h += 360 }
    }
    return (UInt8(Int((h / 2).rounded()) % 180), UInt8(s.rounded()), UInt8(v))
  }

  static func hsvToRGB(_ h: UInt8, _ s: UInt8, _ v: UInt8) -> (UInt8, UInt8, UInt8) {
    let hh = Float(h) * 2 / 60, sf = Float(s) / 255, vf = Float(v)
    let i = Int(hh) % 6, f = hh - Float(Int(hh))
    let p = vf * (1 - sf), q = vf * (1 - sf * f), t = vf * (1 - sf * (1 - f))
    let (r, g, b): (Float, Float, Float)
    switch i {
    case 0: (r, g, b) = (vf, t, p)
    case 1: (r, g, b) = (q, vf, p)
    case 2: (r, g, b) = (p, vf, t)
    case 3: (r, g, b) = (p, q, vf)
    case 4: (r, g, b) = (t, p, vf)
    default: (r, g, b) = (vf, p, q)
    }
    func byte(_ x: Float) -> UInt8 { UInt8(min(255, max(0, x.rounded()))) }
    return (byte(r), byte(g), byte(b))
  }
}

public enum Normalize {
  /// (x − mean) / std per channel into a padH×padW×3 float buffer; padding is 0 (mmseg pads after normalising).
  public static func apply(_ img: Image8, mean: [Float], std: [Float], padHeight: Int, padWidth: Int) -> [Float] {
    precondition(img.channels == 3 && padHeight >= img.height && padWidth >= img.width)
    var out = [Float](repeating: 0, count: padHeight * padWidth * 3)
    let inv = std.map { 1 / $0 }
    for y in 0..<img.height {
      for x in 0..<img.width {
        let s = (y * img.width + x) * 3, d = (y * padWidth + x) * 3
        for k in 0..<3 { out[d + k] = (Float(img.pixels[s + k]) - mean[k]) * inv[k] }
      }
    }
    return out
  }

  /// Copies the label into a height×width map padded (bottom and right) with 255.
  public static func padLabel(_ label: Image8, height: Int, width: Int) -> [UInt8] {
    var out = [UInt8](repeating: ignoreLabel, count: height * width)
    for y in 0..<label.height {
      for x in 0..<label.width { out[y * width + x] = label.pixels[y * label.width + x] }
    }
    return out
  }
}
