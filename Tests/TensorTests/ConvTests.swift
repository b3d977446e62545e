// conv2d: every algorithm against a direct reference loop (the F.conv2d
// definition, accumulated in Double), the algorithms against each other, and
// finite-difference gradients of x, weight and bias on small odd shapes.
import Tensor
import XCTest

/// One conv configuration: x [b, h, w, cin], weight [cout, cin/groups, k, k].
private struct ConvCase: CustomStringConvertible {
  var b = 2, h = 7, w = 5, cin = 3, cout = 4, k = 3, stride = 1, padding = 0, dilation = 1, groups = 1
  var bias = true
  var description: String {
    "x[\(b),\(h),\(w),\(cin)] cout \(cout) k \(k) s \(stride) p \(padding) d \(dilation) g \(groups) bias \(bias)"
  }
}

/// y[b, oy, ox, co] = bias[co] + Σ_{ci, ky, kx} x[b, oy·s − p + ky·d, ox·s − p + kx·d, grp·cinG + ci] · w[co, ci, ky, kx]
private func referenceConv(_ x: Tensor, _ w: Tensor, _ bias: Tensor?, stride s: Int, padding p: Int,
                           dilation d: Int, groups: Int) -> Tensor {
  let (B, H, W, Cin) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let (Cout, cinG, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
  let coutG = Cout / groups
  let Ho = (H + 2 * p - d * (kh - 1) - 1) / s + 1, Wo = (W + 2 * p - d * (kw - 1) - 1) / s + 1
  let y = Tensor.zeros([B, Ho, Wo, Cout])
  for b in 0..<B {
    for oy in 0..<Ho {
      for ox in 0..<Wo {
        for co in 0..<Cout {
          var acc = Double(bias?.data[co] ?? 0)
          let grp = co / coutG
          for ci in 0..<cinG {
            for ky in 0..<kh {
              for kx in 0..<kw {
                let iy = oy * s - p + ky * d, ix = ox * s - p + kx * d
                if iy < 0 || iy >= H || ix < 0 || ix >= W { continue }
                let xv = x.data[((b * H + iy) * W + ix) * Cin + grp * cinG + ci]
                let wv = w.data[((co * cinG + ci) * kh + ky) * kw + kx]
                acc += Double(xv) * Double(wv)
              }
            }
          }
          y.data[((b * Ho + oy) * Wo + ox) * Cout + co] = Float(acc)
        }
      }
    }
  }
  return y
}

final class ConvTests: XCTestCase {
  var rng = TestRNG(seed: 3)

  private let cases: [ConvCase] = [
    ConvCase(k: 3, stride: 2, padding: 1, dilation: 2),                       // the odd mix
    ConvCase(k: 3, padding: 1),                                               // 3×3 same
    ConvCase(k: 3, padding: 2, dilation: 2, bias: false),                     // dilated same
    ConvCase(k: 1),                                                           // pointwise
    ConvCase(k: 1, stride: 2),                                                // strided 1×1 (ResNet downsample)
    ConvCase(b: 1, h: 9, w: 13, cin: 3, cout: 5, k: 4, stride: 4),            // Swin patch embed (ragged edge)
    ConvCase(b: 1, h: 11, w: 9, cin: 3, cout: 4, k: 7, stride: 2, padding: 3),// ResNet stem
    ConvCase(cin: 5, cout: 5, k: 3, padding: 1, groups: 5),                   // depthwise 3×3
    ConvCase(cin: 5, cout: 5, k: 3, stride: 2, padding: 2, dilation: 2, groups: 5, bias: false),
    ConvCase(cin: 21, cout: 21, k: 3, padding: 1, groups: 21),                // depthwise: 16-channel vector block + tail
    ConvCase(cin: 83, cout: 83, k: 3, padding: 1, groups: 83),                // depthwise: a 64-channel block, then 16 + tail
    ConvCase(cin: 4, cout: 6, k: 3, padding: 1, groups: 2),                   // general groups
    ConvCase(cin: 3, cout: 6, k: 3, stride: 2, padding: 1, groups: 3),       // depth multiplier 2 (im2col)
    ConvCase(b: 3, h: 6, w: 9, cin: 5, cout: 3, k: 3),                        // valid 3×3 (no padding), 3 images
    ConvCase(b: 2, h: 5, w: 4, cin: 2, cout: 3, k: 5, padding: 3),           // padding wider than the kernel's reach
    ConvCase(b: 2, h: 5, w: 7, cin: 16, cout: 32, k: 3, padding: 1),         // Winograd: odd H and W (partial tiles)
    ConvCase(b: 1, h: 4, w: 6, cin: 32, cout: 16, k: 3, padding: 1, bias: false),  // Winograd: whole tiles
    ConvCase(b: 2, h: 9, w: 11, cin: 16, cout: 32, k: 3, padding: 2, dilation: 2),  // Winograd on phases: odd sizes
    ConvCase(b: 1, h: 10, w: 7, cin: 32, cout: 16, k: 3, padding: 4, dilation: 4, bias: false),  // phases of 3 and 2 rows
  ]

  private func algorithms(for c: ConvCase) -> [Conv2dAlgorithm] {
    var a: [Conv2dAlgorithm] = [.im2col]
    if c.k == 1 && c.stride == 1 && c.padding == 0 && c.groups == 1 { a.append(.pointwise) }
    if c.groups == c.cin && c.groups == c.cout { a.append(.depthwise) }
    if c.stride == 1 && c.groups == 1 { a.append(.shifted) }
    if c.k == 3 && c.stride == 1 && c.padding == c.dilation && c.groups == 1 && c.cin % 16 == 0
      && c.cout % 16 == 0 { a.append(.winograd) }
    return a
  }

  private func inputs(_ c: ConvCase) -> (Tensor, Tensor, Tensor?) {
    (rng.tensor([c.b, c.h, c.w, c.cin]), rng.tensor([c.cout, c.cin / c.groups, c.k, c.k]),
     c.bias ? rng.tensor([c.cout]) : nil)
  }

  func testForwardMatchesReferenceForEveryAlgorithm() {
    for c in cases {
      let (x, w, b) = inputs(c)
      let ref = referenceConv(x, w, b, stride: c.stride, padding: c.padding, dilation: c.dilation, groups: c.groups)
      let auto = conv2d(Var(x), weight: Var(w), bias: b.map { Var($0) }, stride: c.stride, padding: c.padding,
                        dilation: c.dilation, groups: c.groups).value
      XCTAssertEqual(auto.shape, ref.shape, "\(c)")
      assertClose(auto, ref, "auto \(c)")
      for alg in algorithms(for: c) {
        let y = conv2d(Var(x), weight: Var(w), bias: b.map { Var($0) }, stride: c.stride, padding: c.padding,
                       dilation: c.dilation, groups: c.groups, algorithm: alg).value
        assertClose(y, ref, "\(alg) \(c)")
      }
    }
  }

  func testPatchEmbedKnownValues() {
    // 4×4/4 on a 4×8 ramp with an all-ones kernel: each output is the sum of its patch.
    let x = Tensor(shape: [1, 4, 8, 1], values: (0..<32).map(Float.init))
    let w = Tensor.ones([1, 1, 4, 4])
    let y = conv2d(Var(x), weight: Var(w), bias: Var(Tensor(shape: [1], values: [0.5])), stride: 4).value
    XCTAssertEqual(y.shape, [1, 1, 2, 1])
    // Left patch: x[r, 0..<4] for r in 0..<4; right patch: x[r, 4..<8].
    var left: Float = 0, right: Float = 0
    for r in 0..<4 { for c in 0..<4 { left += x.data[r * 8 + c]; right += x.data[r * 8 + 4 + c] } }
    XCTAssertEqual(y.toArray(), [left + 0.5, right + 0.5])
  }

  func testGradientsForEveryAlgorithm() {
    for c in cases {
      let (x, w, b) = inputs(c)
      for alg in algorithms(for: c) {
        let ins = [x, w] + (b.map { [$0] } ?? [])
        checkGradients(ins) { v in
          conv2d(v[0], weight: v[1], bias: c.bias ? v[2] : nil, stride: c.stride, padding: c.padding,
                 dilation: c.dilation, groups: c.groups, algorithm: alg)
        }
      }
    }
  }

  func testBackwardAccumulatesIntoExistingGradients() {
    // x and the weight are used twice: the second backward must add, not overwrite.
    for c in [cases[0], cases[1], cases[3], cases[7], cases[15]] {  // odd mix, 3×3 same (shifted), pointwise, depthwise, Winograd
      let (x, w, b) = inputs(c)
      for alg in algorithms(for: c) {
        checkGradients([x, w, b!]) { v in
          let y1 = conv2d(v[0], weight: v[1], bias: v[2], stride: c.stride, padding: c.padding,
                          dilation: c.dilation, groups: c.groups, algorithm: alg)
          let y2 = conv2d(v[0] * 0.5, weight: v[1], bias: v[2], stride: c.stride, padding: c.padding,
                          dilation: c.dilation, groups: c.groups, algorithm: alg)
          return y1 + y2
        }
      }
    }
  }

  func testIm2colChunkingMatchesUnchunked() {
    // A tiny column budget splits the work into chunks of one or two output lines
    // (chunk edges inside an image and across images), forward and backward.
    let c = ConvCase(b: 3, h: 9, w: 7, cin: 3, cout: 4, k: 3, stride: 1, padding: 1, dilation: 2)
    let (x, w, b) = inputs(c)
    func run() -> [Tensor] {
      let vx = Var(x.copy(), requiresGrad: true), vw = Var(w.copy(), requiresGrad: true), vb = Var(b!.copy(), requiresGrad: true)
      let y = withGradients { conv2d(vx, weight: vw, bias: vb, padding: c.padding, dilation: c.dilation) }
      let r = TestRNG(seed: 11).tensorCopy(y.shape)
      withGradients { (y * Var(r)).sum() }.backward()
      return [y.value, vx.grad!, vw.grad!, vb.grad!]
    }
    let whole = run()
    let saved = Conv2dTuning.im2colBufferFloats
    defer { Conv2dTuning.im2colBufferFloats = saved }
    for lines in [1, 2, 5] {
      Conv2dTuning.im2colBufferFloats = lines * 5 * 27  // lines · Wo · K (Wo = 5, K = 3·3·3)
      let chunked = run()
      for (i, (a, e)) in zip(chunked, whole).enumerated() { assertClose(a, e, "chunks of \(lines) lines, output \(i)") }
    }
  }

  func testDepthwiseAndIm2colAgreeOnLargerMap() {
    // The two algorithms are independent implementations of the same definition.
    let x = rng.tensor([2, 12, 10, 16]), w = rng.tensor([16, 1, 3, 3]), b = rng.tensor([16])
    func run(_ alg: Conv2dAlgorithm) -> [Tensor] {
      let vx = Var(x.copy(), requiresGrad: true), vw = Var(w.copy(), requiresGrad: true), vb = Var(b.copy(), requiresGrad: true)
      let y = withGradients { conv2d(vx, weight: vw, bias: vb, padding: 1, groups: 16, algorithm: alg) }
      withGradients { (y * y).sum() }.backward()
      return [y.value, vx.grad!, vw.grad!, vb.grad!]
    }
    for (i, (a, e)) in zip(run(.depthwise), run(.im2col)).enumerated() { assertClose(a, e, rtol: 1e-4, atol: 1e-4, "output \(i)") }
  }

  func testDepthwise3x3LineKernelsMatchGenericLoops() {
    // The 3×3 same depth-wise conv's line kernels against the generic depth-wise
    // loops: maps wider than two pixel tiles with a ragged last tile, a single row
    // (both neighbour rows outside the image), channel counts with and without a
    // tail after the 16-channel blocks; x used twice so that dx is first written,
    // then added to; one and three threads (the weight sums' line ranges differ).
    // The last two store past the caches (non-temporal stores, any size here).
    let saved = (Conv2dTuning.depthwise3x3Lines, Parallel.threads, Conv2dTuning.nonTemporalStoreMinimumBytes)
    defer { (Conv2dTuning.depthwise3x3Lines, Parallel.threads, Conv2dTuning.nonTemporalStoreMinimumBytes) = saved }
    for (shape, threads, bypass) in [([2, 5, 37, 37], 3, false), ([1, 1, 19, 16], 1, false), ([1, 3, 33, 5], 3, false),
                                     ([3, 4, 16, 48], 1, true), ([2, 6, 9, 32], 2, true)] {
      Conv2dTuning.nonTemporalStoreMinimumBytes = bypass ? 0 : saved.2
      let c = shape[3]
      let x = rng.tensor(shape), w = rng.tensor([c, 1, 3, 3]), b = rng.tensor([c])
      let seed = TestRNG(seed: 5).tensorCopy(shape)
      func run(lines: Bool) -> [Tensor] {
        Conv2dTuning.depthwise3x3Lines = lines
        Parallel.threads = threads
        let vx = Var(x.copy(), requiresGrad: true), vw = Var(w.copy(), requiresGrad: true), vb = Var(b.copy(), requiresGrad: true)
        let y = withGradients {
          conv2d(vx, weight: vw, bias: vb, padding: 1, groups: c) + conv2d(vx * 0.5, weight: vw, bias: nil, padding: 1, groups: c)
        }
        withGradients { (y * Var(seed)).sum() }.backward()
        return [y.value, vx.grad!, vw.grad!, vb.grad!]
      }
      let (fast, generic) = (run(lines: true), run(lines: false))
      for (i, (a, e)) in zip(fast, generic).enumerated() {
        assertClose(a, e, rtol: 1e-5, atol: 1e-5, "x \(shape), \(threads) threads, bypass \(bypass), output \(i)")
      }
    }
  }
}

extension TestRNG {
  /// A tensor from a fresh copy of this generator (so repeated runs see the same values).
  func tensorCopy(_ shape: [Int]) -> Tensor { var r = self; return r.tensor(shape) }
}
