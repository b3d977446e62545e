// The built-in synthetic dataset: procedurally drawn scenes with exact labels,
// so the demo and the tests need no download. Each sample is a pure function of
// (seed, index). Each class has a fixed signature (hue and texture pattern) so
// that a small network can learn it; shapes, positions and a little per-sample
// brightness jitter and noise vary so that it has to generalise.
//
// Not a benchmark of anything: it only has to be learnable and exact.
import Foundation

public struct SyntheticDataset: SegmentationSource {
  public let count: Int
  public let numClasses: Int
  public let width: Int
  public let height: Int
  public let seed: UInt64
  /// Pixels within this many pixels of a class boundary are labelled 255
  /// (ignore), like the void borders of VOC/Cityscapes. 0 = no ignore pixels.
  public let ignoreBorder: Int

  public init(count: Int = 1000, numClasses: Int = 8, width: Int = 128, height: Int = 128,
              seed: UInt64 = 0, ignoreBorder: Int = 0) throws {
    guard count > 0 else { throw DataError.invalidArgument("synthetic dataset: count must be positive, got \(count)") }
    guard (2...255).contains(numClasses) else {
      throw DataError.invalidArgument("synthetic dataset: numClasses must be in 2...255 (255 is the ignore value), got \(numClasses)")
    }
    guard width >= 8, height >= 8 else {
      throw DataError.invalidArgument("synthetic dataset: image size must be at least 8×8, got \(width)×\(height)")
    }
    guard ignoreBorder >= 0 else { throw DataError.invalidArgument("synthetic dataset: ignoreBorder must be >= 0") }
    self.count = count; self.numClasses = numClasses; self.width = width; self.height = height
    self.seed = seed; self.ignoreBorder = ignoreBorder
  }

  /// The signature of a class: its colour and its texture.
  struct ClassStyle {
    var rgb: (Double, Double, Double)
    var pattern: Int   // 0 horizontal stripes, 1 diagonal stripes, 2 checker, 3 dots
    var period: Int
  }

  static func style(of c: Int, numClasses: Int) -> ClassStyle {
    // Hues spread evenly; alternate value/saturation so neighbours in hue differ in tone too.
    let hue = Double(c) / Double(numClasses)
    let sat = c == 0 ? 0.15 : (c % 2 == 0 ? 0.85 : 0.6)
    let val = c == 0 ? 0.55 : (c % 3 == 0 ? 0.95 : 0.75)
    return ClassStyle(rgb: hsvToRGB(hue, sat, val), pattern: c % 4, period: 4 + 2 * ((c / 4) % 3))
  }

  static func hsvToRGB(_ h: Double, _ s: Double, _ v: Double) -> (Double, Double, Double) {
    let h6 = (h - h.rounded(.down)) * 6
    let i = Int(h6) % 6, f = h6 - h6.rounded(.down)
    let p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f))
    switch i {
    case 0: return (v, t, p)
    case 1: return (q, v, p)
    case 2: return (p, v, t)
    case 3: return (p, q, v)
    case 4: return (t, p, v)
    default: return (v, p, q)
    }
  }

  enum Shape { case circle, rect, triangle, blob }

  public func sample(at index: Int) throws -> SegSample {
    guard (0..<count).contains(index) else {
      throw DataError.invalidArgument("synthetic dataset: index \(index) out of range 0..<\(count)")
    }
    var rng = SampleRNG(seed: seed, index: UInt64(index), stream: .synthetic)
    let w = width, h = height
    var label = [UInt8](repeating: 0, count: w * h)
    let shapes = 2 + rng.below(4)
    let minSide = Double(min(w, h))
    // Drawn back to front; shape 0 goes on top, and its class cycles with the
    // index so every class shows up within numClasses-1 consecutive samples.
    var drawn: [(Shape, Int, Double, Double, Double, Double, Double)] = []
    for s in 0..<shapes {
      let cls = s == 0 ? 1 + index % (numClasses - 1) : 1 + rng.below(numClasses - 1)
      let shape: Shape = [.circle, .rect, .triangle, .blob][rng.below(4)]
      let r = minSide * rng.uniform(0.12, 0.3)
      let cx = rng.uniform(0.15, 0.85) * Double(w), cy = rng.uniform(0.15, 0.85) * Double(h)
      let aspect = rng.uniform(0.6, 1.6), phase = rng.uniform(0, 2 * Double.pi)
      drawn.append((shape, cls, r, cx, cy, aspect, phase))
    }
    for (shape, cls, r, cx, cy, aspect, phase) in drawn.reversed() {
      let x0 = max(0, Int(cx - 1.6 * r)), x1 = min(w - 1, Int(cx + 1.6 * r))
      let y0 = max(0, Int(cy - 1.6 * r)), y1 = min(h - 1, Int(cy + 1.6 * r))
      if x0 > x1 || y0 > y1 { continue }
      for y in y0...y1 {
        for x in x0...x1 {
          let dx = Double(x) + 0.5 - cx, dy = Double(y) + 0.5 - cy
          if SyntheticDataset.inside(shape, dx, dy, r, aspect, phase) { label[y * w + x] = UInt8(cls) }
        }
      }
    }
    // Per-sample jitter: brightness shift and a texture phase per class.
    let brightness = rng.uniform(-20, 20)
    let phaseX = rng.below(16), phaseY = rng.below(16)
    let noiseKey = rng.next()
    var pixels = [UInt8](repeating: 0, count: w * h * 3)
    let styles = (0..<numClasses).map { SyntheticDataset.style(of: $0, numClasses: numClasses) }
    for y in 0..<h {
      for x in 0..<w {
        let c = Int(label[y * w + x])
        let st = styles[c]
        let tx = x + phaseX, ty = y + phaseY
        let on: Bool
        switch st.pattern {
        case 0: on = (ty / (st.period / 2)) % 2 == 0
        case 1: on = ((tx + ty) / (st.period / 2)) % 2 == 0
        case 2: on = ((tx / st.period) + (ty / st.period)) % 2 == 0
        default:
          let mx = tx % st.period - st.period / 2, my = ty % st.period - st.period / 2
          on = mx * mx + my * my <= (st.period * st.period) / 8
        }
        let gain = on ? 1.0 : 0.7
        let noise = Double(splitmix64Mix(noiseKey ^ UInt64(y * w + x)) & 15) - 7.5
        let o = (y * w + x) * 3
        pixels[o] = SyntheticDataset.clampByte(st.rgb.0 * 255 * gain + brightness + noise)
        pixels[o + 1] = SyntheticDataset.clampByte(st.rgb.1 * 255 * gain + brightness + noise)
        pixels[o + 2] = SyntheticDataset.clampByte(st.rgb.2 * 255 * gain + brightness + noise)
      }
    }
    if ignoreBorder > 0 { label = SyntheticDataset.markBorders(label, width: w, height: h, radius: ignoreBorder) }
    return SegSample(image: Image8(width: w, height: h, channels: 3, pixels: pixels),
                     label: Image8(width: w, height: h, channels: 1, pixels: label),
                     name: "synthetic/\(index)")
  }

  static func inside(_ shape: Shape, _ dx: Double, _ dy: Double, _ r: Double, _ aspect: Double, _ phase: Double) -> Bool {
    switch shape {
    case .circle: return dx * dx + dy * dy <= r * r
    case .rect: return abs(dx) <= r * aspect && abs(dy) <= r / aspect
    case .triangle:
      // Equilateral triangle of circumradius 1.3 r, rotated by phase; inside = same side of all edges.
      let vs = (0..<3).map { k -> (Double, Double) in
        let a = phase + Double(k) * 2 * Double.pi / 3
        return (1.3 * r * cos(a), 1.3 * r * sin(a))
      }
      var sign = 0.0
      for k in 0..<3 {
        let (ax, ay) = vs[k], (bx, by) = vs[(k + 1) % 3]
        let cross = (bx - ax) * (dy - ay) - (by - ay) * (dx - ax)
        if cross != 0 { if sign == 0 { sign = cross } else if (cross > 0) != (sign > 0) { return false } }
      }
      return true
    case .blob:
      let theta: Double = atan2(dy, dx)
      let wobble: Double = 0.25 * sin(3 * theta + phase) + 0.15 * sin(5 * theta + 2 * phase)
      let rr: Double = r * (1 + wobble)
      return dx * dx + dy * dy <= rr * rr
    }
  }

  @inline(__always) static func clampByte(_ v: Double) -> UInt8 { UInt8(max(0, min(255, v.rounded()))) }

  /// Marks every pixel within `radius` (Chebyshev) of a different class as ignore.
  static func markBorders(_ label: [UInt8], width w: Int, height h: Int, radius: Int) -> [UInt8] {
    var out = label
    for y in 0..<h {
      for x in 0..<w {
        let c = label[y * w + x]
        search: for yy in max(0, y - radius)...min(h - 1, y + radius) {
          for xx in max(0, x - radius)...min(w - 1, x + radius) where label[yy * w + xx] != c {
            out[y * w + x] = ignoreLabel
            break search
          }
        }
      }
    }
    return out
  }
}
