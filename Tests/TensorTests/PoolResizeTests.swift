// Pooling, resizing and pixel shuffle: forward against direct reference loops
// written from the PyTorch definitions, a few values known from PyTorch, and
// finite-difference gradients on odd shapes.
import Tensor
import XCTest

/// x[b, y, x, c] of a channels-last tensor.
private func at(_ t: Tensor, _ b: Int, _ y: Int, _ x: Int, _ c: Int) -> Float {
  t.data[((b * t.shape[1] + y) * t.shape[2] + x) * t.shape[3] + c]
}

private func referenceAdaptiveAvg(_ x: Tensor, _ oh: Int, _ ow: Int) -> Tensor {
  let (B, H, W, C) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let y = Tensor.zeros([B, oh, ow, C])
  for b in 0..<B { for oy in 0..<oh { for ox in 0..<ow { for c in 0..<C {
    let y0 = Int((Double(oy * H) / Double(oh)).rounded(.down)), y1 = Int((Double((oy + 1) * H) / Double(oh)).rounded(.up))
    let x0 = Int((Double(ox * W) / Double(ow)).rounded(.down)), x1 = Int((Double((ox + 1) * W) / Double(ow)).rounded(.up))
    var s = 0.0
    for iy in y0..<y1 { for ix in x0..<x1 { s += Double(at(x, b, iy, ix, c)) } }
    y.data[((b * oh + oy) * ow + ox) * C + c] = Float(s / Double((y1 - y0) * (x1 - x0)))
  } } } }
  return y
}

private func referenceMaxPool(_ x: Tensor, k: Int, s: Int, p: Int) -> Tensor {
  let (B, H, W, C) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let ho = (H + 2 * p - k) / s + 1, wo = (W + 2 * p - k) / s + 1
  let y = Tensor.zeros([B, ho, wo, C])
  for b in 0..<B { for oy in 0..<ho { for ox in 0..<wo { for c in 0..<C {
    var m = -Float.infinity  // padding is -inf
    for ky in 0..<k { for kx in 0..<k {
      let iy = oy * s - p + ky, ix = ox * s - p + kx
      if iy >= 0 && iy < H && ix >= 0 && ix < W { m = max(m, at(x, b, iy, ix, c)) }
    } }
    y.data[((b * ho + oy) * wo + ox) * C + c] = m
  } } } }
  return y
}

/// PyTorch's bilinear (align_corners=False) written per output element, 2-D directly.
private func referenceBilinear(_ x: Tensor, _ oh: Int, _ ow: Int) -> Tensor {
  let (B, H, W, C) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  func source(_ dst: Int, _ n: Int, _ m: Int) -> (Int, Int, Float) {
    let src = max(Float(n) / Float(m) * (Float(dst) + 0.5) - 0.5, 0)
    let i0 = Int(src.rounded(.down))
    return (i0, i0 < n - 1 ? i0 + 1 : i0, src - Float(i0))
  }
  let y = Tensor.zeros([B, oh, ow, C])
  for b in 0..<B { for oy in 0..<oh { for ox in 0..<ow { for c in 0..<C {
    let (y0, y1, ly) = source(oy, H, oh), (x0, x1, lx) = source(ox, W, ow)
    let v = (1 - ly) * ((1 - lx) * at(x, b, y0, x0, c) + lx * at(x, b, y0, x1, c))
      + ly * ((1 - lx) * at(x, b, y1, x0, c) + lx * at(x, b, y1, x1, c))
    y.data[((b * oh + oy) * ow + ox) * C + c] = v
  } } } }
  return y
}

private func referenceNearest(_ x: Tensor, _ oh: Int, _ ow: Int) -> Tensor {
  let (B, H, W, C) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let y = Tensor.zeros([B, oh, ow, C])
  for b in 0..<B { for oy in 0..<oh { for ox in 0..<ow { for c in 0..<C {
    let iy = min(Int((Double(oy) * Double(H) / Double(oh)).rounded(.down)), H - 1)
    let ix = min(Int((Double(ox) * Double(W) / Double(ow)).rounded(.down)), W - 1)
    y.data[((b * oh + oy) * ow + ox) * C + c] = at(x, b, iy, ix, c)
  } } } }
  return y
}

/// Distinct values 0.1 apart in random order, so a finite-difference step never changes an argmax.
private func distinctValues(_ shape: [Int], _ rng: inout TestRNG, offset: Float = 0) -> Tensor {
  let n = shape.reduce(1, *)
  var vals = (0..<n).map { Float($0) * 0.1 + offset }
  for i in stride(from: n - 1, to: 0, by: -1) { vals.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
  return Tensor(shape: shape, values: vals)
}

final class PoolResizeTests: XCTestCase {
  var rng = TestRNG(seed: 5)
  // (H, W) → (Ho, Wo): down, up, mixed, identity, and from/to a single pixel.
  let sizes: [((Int, Int), (Int, Int))] = [((7, 5), (3, 2)), ((7, 5), (13, 11)), ((7, 5), (4, 9)), ((6, 6), (6, 6)),
                                           ((4, 4), (8, 8)), ((1, 1), (3, 2)), ((5, 7), (1, 1))]

  func testAdaptiveAvgPool() {
    for ((h, w), (oh, ow)) in sizes {
      let x = rng.tensor([2, h, w, 3])
      let y = adaptiveAvgPool2d(Var(x), outputHeight: oh, outputWidth: ow).value
      XCTAssertEqual(y.shape, [2, oh, ow, 3])
      assertClose(y, referenceAdaptiveAvg(x, oh, ow), "adaptive \(h)×\(w)→\(oh)×\(ow)")
      checkGradients([x]) { adaptiveAvgPool2d($0[0], outputHeight: oh, outputWidth: ow) }
    }
    // Overlapping bins, known from PyTorch: adaptive_avg_pool1d([0, 1, 2, 3, 4], 3) = [0.5, 2, 3.5].
    let x = Tensor(shape: [1, 1, 5, 1], values: [0, 1, 2, 3, 4])
    XCTAssertEqual(adaptiveAvgPool2d(Var(x), outputHeight: 1, outputWidth: 3).value.toArray(), [0.5, 2, 3.5])
  }

  func testMaxPool() {
    // All-negative inputs make zero padding (a classic bug) visible.
    for (h, w, k, s, p) in [(7, 5, 3, 2, 1), (8, 6, 2, 2, 0), (7, 5, 3, 1, 1), (9, 7, 3, 2, 0)] {
      let x = distinctValues([2, h, w, 3], &rng, offset: -Float(2 * h * w * 3) * 0.1 - 1)
      let y = maxPool2d(Var(x), kernel: k, stride: s, padding: p).value
      let ref = referenceMaxPool(x, k: k, s: s, p: p)
      XCTAssertEqual(y.shape, ref.shape)
      assertClose(y, ref, "maxpool \(h)×\(w) k\(k) s\(s) p\(p)")
      checkGradients([x]) { maxPool2d($0[0], kernel: k, stride: s, padding: p) }
    }
  }

  func testBilinear() {
    for ((h, w), (oh, ow)) in sizes {
      let x = rng.tensor([2, h, w, 3])
      let y = resizeBilinear(Var(x), height: oh, width: ow).value
      XCTAssertEqual(y.shape, [2, oh, ow, 3])
      assertClose(y, referenceBilinear(x, oh, ow), "bilinear \(h)×\(w)→\(oh)×\(ow)")
      checkGradients([x]) { resizeBilinear($0[0], height: oh, width: ow) }
    }
    // Known from PyTorch: F.interpolate([[1, 2], [3, 4]], size=4, mode="bilinear", align_corners=False).
    let x = Tensor(shape: [1, 2, 2, 1], values: [1, 2, 3, 4])
    XCTAssertEqual(resizeBilinear(Var(x), height: 4, width: 4).value.toArray(),
                   [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4])
    // Same size is the identity.
    let z = rng.tensor([1, 5, 3, 2])
    XCTAssertEqual(resizeBilinear(Var(z), height: 5, width: 3).value.toArray(), z.toArray())
  }

  func testNearest() {
    for ((h, w), (oh, ow)) in sizes {
      let x = rng.tensor([2, h, w, 3])
      let y = resizeNearest(Var(x), height: oh, width: ow).value
      XCTAssertEqual(y.shape, [2, oh, ow, 3])
      assertClose(y, referenceNearest(x, oh, ow), rtol: 0, atol: 0, "nearest \(h)×\(w)→\(oh)×\(ow)")
      checkGradients([x]) { resizeNearest($0[0], height: oh, width: ow) }
    }
    // Known from PyTorch: F.interpolate([[1, 2], [3, 4]], size=3, mode="nearest").
    let x = Tensor(shape: [1, 2, 2, 1], values: [1, 2, 3, 4])
    XCTAssertEqual(resizeNearest(Var(x), height: 3, width: 3).value.toArray(), [1, 1, 2, 1, 1, 2, 3, 3, 4])
  }

  func testPixelShuffle() {
    for (b, h, w, c, r) in [(2, 3, 5, 2, 2), (1, 2, 3, 3, 3), (2, 3, 2, 4, 1)] {
      let x = rng.tensor([b, h, w, c * r * r])
      let y = pixelShuffle(Var(x), factor: r).value
      XCTAssertEqual(y.shape, [b, h * r, w * r, c])
      // out[b, h·r + i, w·r + j, c] = in[b, h, w, c·r² + i·r + j]
      for bb in 0..<b { for hh in 0..<h { for ww in 0..<w { for cc in 0..<c { for i in 0..<r { for j in 0..<r {
        XCTAssertEqual(at(y, bb, hh * r + i, ww * r + j, cc), at(x, bb, hh, ww, cc * r * r + i * r + j))
      } } } } } }
      checkGradients([x]) { pixelShuffle($0[0], factor: r) }
    }
  }
}
