// Winograd F(2×2, 3×3) for the 3×3, stride-1, padding-1 convolutions (the FR
// fuse conv, ResNet's 3×3s): each 2×2 block of outputs (a tile) comes from the
// 4×4 input patch around it through 16 products instead of 36, so the GEMMs do
// 16/36 of the direct conv's multiply-adds (Lavin & Gray 2016, as cuDNN and
// NNPACK use it). Per tile and channel:
//   V = Bᵀ·d·B   (d the 4×4 input patch, zero outside the image)
//   M_ξ = V_ξ·U_ξ over channels, one GEMM [tiles, Cin]·[Cin, Cout] per ξ < 16
//   y = Aᵀ·M·A   (the 2×2 outputs)
// with U = G·g·Gᵀ the 4×4 transform of each 3×3 filter g:
//   Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1]
//   G  = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
//   Aᵀ = [1 1 1 0; 0 1 −1 −1]
// The transforms add and subtract only (and halve, exactly), so the result
// differs from the direct sum by float rounding of a few more terms
// (WinogradTests: within 2e-5 of the direct conv's largest value).
//
// Channels-last makes every transform a loop over contiguous channels, 16 at
// a time (Cin and Cout multiples of 16). Tiles run in chunks whose 16
// transformed inputs [16, T, Cin] stay near the caches (≈ 16 MB).
//
// dx of the same conv is this conv of dy with the filters rotated by 180° and
// Cin/Cout swapped (`winogradFilters(..., transposed: true)`); dW goes through
// the same transforms (`winogradWeightGradient`: dU_ξ = Σ_tiles V_ξᵀ·E_ξ with
// E = A·dY·Aᵀ, then dW = Gᵀ·dU·G).
//
// Measured on the FR fuse conv (160²×1024 → 256, 2 threads; BENCHMARKS.md,
// session 9): forward 568 → 332–342 ms, forward + backward 1718 → 976–1000 ms;
// the Swin-T 512² b2 training step 6.23–6.29 → 5.25–5.42 s.
// Dilated convs (padding = dilation) run on their phases (WinogradPhases).
// Not here: F(4×4, 3×3) (fewer products still, but transforms with 4 and
// 1/4 that lose more precision), strided convs, bf16.
import Foundation

extension Conv2dGeometry {
  /// Winograd F(2×2, 3×3) applies: 3×3, stride 1, padding = dilation ("same"
  /// size), groups 1, channels multiples of 16. A dilated one runs on its
  /// phases (`WinogradPhases`).
  var winogradApplies: Bool {
    kernelH == 3 && kernelW == 3 && stride == 1 && padding == dilation && dilation >= 1 && groups == 1
      && inChannels % 16 == 0 && outChannels % 16 == 0
  }
}

/// A 3×3 conv with dilation d and padding d is d² ordinary 3×3 / padding 1
/// convs, one per phase (p, q): the pixels (p + d·i, q + d·j) only ever meet
/// pixels of their own phase, d apart. ResNet-D8's stages 3 and 4 (d = 2, 4)
/// run their 3×3 convs this way on Winograd: the phases stacked as images
/// [B·d², ⌈H/d⌉, ⌈W/d⌉, C], padded with zeros where H or W is not a multiple
/// of d (the conv's own zero padding, so the valid outputs do not change).
struct WinogradPhases {
  let d: Int, batch: Int, height: Int, width: Int
  var phaseHeight: Int { (height + d - 1) / d }
  var phaseWidth: Int { (width + d - 1) / d }
  var phaseBatch: Int { batch * d * d }

  /// The phases of a dilated conv; nil when it is not dilated (nothing to split).
  init?(dilated g: Conv2dGeometry) {
    guard g.dilation > 1 else { return nil }
    d = g.dilation; batch = g.batch; height = g.height; width = g.width
  }

  /// (batch, height, width) of the phases as one map.
  var extent: (Int, Int, Int) { (phaseBatch, phaseHeight, phaseWidth) }

  /// An uninitialised (pooled) phase map of `channels`.
  func phaseTensor(channels C: Int) -> Tensor { Tensor(uninitialized: [phaseBatch, phaseHeight, phaseWidth, C]) }

  /// [B, H, W, C] → its phases [B·d², ⌈H/d⌉, ⌈W/d⌉, C] (pooled; zero where out of range).
  func split(_ x: UnsafePointer<Float>, channels C: Int) -> Tensor {
    let out = phaseTensor(channels: C)
    let o = out.data
    Parallel.forRange(phaseBatch * phaseHeight, grain: max(1, 16384 / max(1, phaseWidth * C))) { rows in
      for r in rows {
        let (image, i) = (r / phaseHeight, r % phaseHeight), (b, p, q) = (image / (d * d), image / d % d, image % d)
        let dst = o + r * phaseWidth * C, y = p + d * i
        guard y < height else { dst.update(repeating: 0, count: phaseWidth * C); continue }
        for j in 0..<phaseWidth {
          let xj = q + d * j
          if xj < width { (dst + j * C).update(from: x + ((b * height + y) * width + xj) * C, count: C) }
          else { (dst + j * C).update(repeating: 0, count: C) }
        }
      }
    }
    return out
  }

  /// Phases [B·d², ⌈H/d⌉, ⌈W/d⌉, C] → y [B, H, W, C] (= or += when `accumulate`); padding dropped.
  func merge(_ phases: Tensor, into y: UnsafeMutablePointer<Float>, channels C: Int, accumulate: Bool) {
    let src = phases.data
    Parallel.forRange(batch * height, grain: max(1, 16384 / max(1, width * C))) { rows in
      for r in rows {
        let (b, yy) = (r / height, r % height), (p, i) = (yy % d, yy / d)
        for xx in 0..<width {
          let (q, j) = (xx % d, xx / d)
          let from = src + (((b * d + p) * d + q) * phaseHeight + i) * phaseWidth * C + j * C
          let to = y + (r * width + xx) * C
          if accumulate { for c in 0..<C { to[c] += from[c] } } else { to.update(from: from, count: C) }
        }
      }
    }
  }
}

typealias S16 = SIMD16<Float>

/// Bᵀ·(a, b, c, d): the input transform along one axis.
@inline(__always)
func winogradBT(_ a: S16, _ b: S16, _ c: S16, _ d: S16) -> (S16, S16, S16, S16) { (a - c, b + c, c - b, b - d) }

/// Aᵀ·(a, b, c, d): the output transform along one axis.
@inline(__always)
func winogradAT(_ a: S16, _ b: S16, _ c: S16, _ d: S16) -> (S16, S16) { (a + b + c, b - c - d) }

/// The 2×2 tiles of a [B, H, W, ·] map (the last row and column of tiles
/// cut by the edge when H or W is odd), numbered image by image, row by row.
struct WinogradTiles {
  let rows, columns, count: Int

  init(batch: Int, height: Int, width: Int) {
    rows = (height + 1) / 2; columns = (width + 1) / 2; count = batch * rows * columns
  }

  /// Image, tile row and tile column of tile t.
  @inline(__always)
  func position(_ t: Int) -> (b: Int, ty: Int, tx: Int) { (t / (rows * columns), (t / columns) % rows, t % columns) }

  /// Tiles per chunk for `channels` transformed channels: 16·T·channels floats
  /// (Conv2dTuning.winogradChunkFloats), at least 64 tiles.
  func chunk(channels: Int) -> Int { min(count, max(64, Conv2dTuning.winogradChunkFloats / (16 * channels))) }
}

/// U [16, I, O] (ξ = 4·row + column of the 4×4 transform) of weight [Cout,
/// Cin, 3, 3]: I = Cin, O = Cout for the forward; `transposed` (dx): I = Cout,
/// O = Cin, each filter rotated by 180°.
func winogradFilters(_ weight: Tensor, cout: Int, cin: Int, transposed: Bool) -> Tensor {
  let (I, O) = transposed ? (cout, cin) : (cin, cout)
  let u = Tensor(uninitialized: [16, I, O])
  let w = weight.data, up = u.data
  Parallel.forRange(cout, grain: max(1, 4096 / max(1, cin))) { r in
    for co in r {
      for ci in 0..<cin {
        let f = w + (co * cin + ci) * 9
        @inline(__always) func g(_ ky: Int, _ kx: Int) -> Float { transposed ? f[(2 - ky) * 3 + 2 - kx] : f[ky * 3 + kx] }
        // G·g (4×3), then (G·g)·Gᵀ (4×4), one row of G·g at a time.
        @inline(__always) func gcol(_ a: Float, _ b: Float, _ c: Float) -> (Float, Float, Float, Float) {
          (a, (a + b + c) * 0.5, (a - b + c) * 0.5, c)
        }
        let c0 = gcol(g(0, 0), g(1, 0), g(2, 0)), c1 = gcol(g(0, 1), g(1, 1), g(2, 1)), c2 = gcol(g(0, 2), g(1, 2), g(2, 2))
        let (i, o) = transposed ? (co, ci) : (ci, co)
        @inline(__always) func put(_ row: Int, _ a: Float, _ b: Float, _ c: Float) {
          let v = gcol(a, b, c), q = up + (4 * row * I + i) * O + o
          q[0] = v.0; q[I * O] = v.1; q[2 * I * O] = v.2; q[3 * I * O] = v.3
        }
        put(0, c0.0, c1.0, c2.0); put(1, c0.1, c1.1, c2.1); put(2, c0.2, c1.2, c2.2); put(3, c0.3, c1.3, c2.3)
      }
    }
  }
  return u
}

/// y (=, or += when `accumulate`) conv3×3(x) + bias, padding 1: x [B, H, W, I],
/// y [B, H, W, O], filters u = winogradFilters(...) [16, I, O].
func winogradConv3x3(out y: UnsafeMutablePointer<Float>, accumulate: Bool, x: UnsafePointer<Float>,
                     batch B: Int, height H: Int, width W: Int, inChannels I: Int, outChannels O: Int,
                     filters u: Tensor, bias: UnsafePointer<Float>?) {
  precondition(I % 16 == 0 && O % 16 == 0 && u.count == 16 * I * O, "winogradConv3x3: channels \(I) → \(O), filters \(u.shape)")
  let tiling = WinogradTiles(batch: B, height: H, width: W), tiles = tiling.count, T = tiling.chunk(channels: I)
  let v = Tensor(uninitialized: [16 * T * I]), m = Tensor(uninitialized: [16 * T * O])
  let vp = v.data, mp = m.data, up = u.data
  // On our kernel each U_ξ is packed once for all chunks (gemm would pack it
  // per call: 16 MB per chunk for the fuse conv, 20% of its GEMM time).
  let kernel = packedKernelForGEMMPrecision()
  let packedU = kernel.map { k in (0..<16).map { k.packedOnce(transB: false, k: I, n: O, b: up + $0 * I * O, ldb: O) } } ?? []
  var t0 = 0
  while t0 < tiles {
    let n = min(T, tiles - t0)
    winogradInputTiles(x, tiling, height: H, width: W, channels: I, tiles: t0..<(t0 + n), stride: T, into: vp)
    for xi in 0..<16 {
      if let kernel = kernel {
        kernel.runPacked(transA: false, m: n, n: O, k: I, a: vp + xi * T * I, lda: I, packed: packedU[xi],
                         beta: 0, c: mp + xi * T * O, ldc: O)
      } else {
        gemm(transA: false, transB: false, m: n, n: O, k: I, a: vp + xi * T * I, lda: I,
             b: up + xi * I * O, ldb: O, beta: 0, c: mp + xi * T * O, ldc: O)
      }
    }
    // y = Aᵀ·M·A on each tile's 16 products: on each column, then on each row.
    Parallel.forRange(n, grain: max(1, 8192 / O)) { r in
      for t in r {
        let (b, ty, tx) = tiling.position(t0 + t)
        let rowsOut = min(2, H - 2 * ty), colsOut = min(2, W - 2 * tx)
        let src = mp + t * O
        var c = 0
        while c < O {
          @inline(__always) func column(_ j: Int) -> (S16, S16) {
            let q = src + j * T * O + c
            return winogradAT(load16(q), load16(q + 4 * T * O), load16(q + 8 * T * O), load16(q + 12 * T * O))
          }
          let (s00, s10) = column(0), (s01, s11) = column(1), (s02, s12) = column(2), (s03, s13) = column(3)
          let bv = bias.map { load16($0 + c) } ?? .zero
          @inline(__always) func write(_ i: Int, _ v: (S16, S16)) {
            let line = y + ((b * H + 2 * ty + i) * W + 2 * tx) * O + c
            store16(line, accumulate ? load16(line) + (v.0 + bv) : v.0 + bv)
            if colsOut == 2 { store16(line + O, accumulate ? load16(line + O) + (v.1 + bv) : v.1 + bv) }
          }
          write(0, winogradAT(s00, s01, s02, s03))
          if rowsOut == 2 { write(1, winogradAT(s10, s11, s12, s13)) }
          c += 16
        }
      }
    }
    t0 += n
  }
  withExtendedLifetime((v, m, u, packedU)) {}
}

/// V_ξ[t, c] = (Bᵀ·d·B)_ξ of tiles t0..<t1 of x [B, H, W, I] (tile t − t0 at
/// vp + (ξ·T + t − t0)·I, T = `stride`): the transform on each column of d,
/// then on each row of the result (ξ = 4·row + column).
func winogradInputTiles(_ x: UnsafePointer<Float>, _ tiling: WinogradTiles, height H: Int, width W: Int, channels I: Int,
                        tiles: Range<Int>, stride T: Int, into vp: UnsafeMutablePointer<Float>) {
  Parallel.forRange(tiles.count, grain: max(1, 8192 / I)) { r in
    for t in r {
      let (b, ty, tx) = tiling.position(tiles.lowerBound + t)
      let y0 = 2 * ty - 1, x0 = 2 * tx - 1
      @inline(__always) func row(_ i: Int) -> UnsafePointer<Float>? {
        y0 + i >= 0 && y0 + i < H ? x + (b * H + y0 + i) * W * I : nil
      }
      let (p0, p1, p2, p3) = (row(0), row(1), row(2), row(3))
      @inline(__always) func offset(_ j: Int) -> Int { x0 + j >= 0 && x0 + j < W ? (x0 + j) * I : -1 }
      let (o0, o1, o2, o3) = (offset(0), offset(1), offset(2), offset(3))
      let dst = vp + t * I
      var c = 0
      while c < I {
        @inline(__always) func column(_ o: Int) -> (S16, S16, S16, S16) {
          guard o >= 0 else { return (.zero, .zero, .zero, .zero) }
          @inline(__always) func at(_ p: UnsafePointer<Float>?) -> S16 { p.map { load16($0 + o + c) } ?? .zero }
          return winogradBT(at(p0), at(p1), at(p2), at(p3))
        }
        let (t00, t10, t20, t30) = column(o0), (t01, t11, t21, t31) = column(o1)
        let (t02, t12, t22, t32) = column(o2), (t03, t13, t23, t33) = column(o3)
        @inline(__always) func put(_ i: Int, _ v: (S16, S16, S16, S16)) {
          let q = dst + 4 * i * T * I + c
          store16(q, v.0); store16(q + T * I, v.1); store16(q + 2 * T * I, v.2); store16(q + 3 * T * I, v.3)
        }
        put(0, winogradBT(t00, t01, t02, t03)); put(1, winogradBT(t10, t11, t12, t13))
        put(2, winogradBT(t20, t21, t22, t23)); put(3, winogradBT(t30, t31, t32, t33))
        c += 16
      }
    }
  }
}

/// A·(p, q) = (p, p + q, p − q, −q): the output transform's transpose along
/// one axis, which takes a 2×2 tile of dy to the 4×4 products' gradient.
@inline(__always)
func winogradA(_ p: S16, _ q: S16) -> (S16, S16, S16, S16) { (p, p + q, p - q, -q) }

/// dW [Cout, Cin, 3, 3] += ∂/∂w of the 3×3 / padding 1 conv of x [B, H, W, Cin]
/// with output gradient dy [B, H, W, Cout], through the same transforms: with
/// V = Bᵀ·d·B (the forward's) and E = A·dY·Aᵀ per tile, dU_ξ = Σ_tiles V_ξᵀ·E_ξ
/// (16 GEMMs [Cin, tiles]·[tiles, Cout], summed over the chunks) and dW =
/// Gᵀ·dU·G per filter. 16/36 of the direct weight gradient's multiply-adds.
func winogradWeightGradient(_ dW: Tensor, x: UnsafePointer<Float>, dy: UnsafePointer<Float>,
                            batch B: Int, height H: Int, width W: Int, inChannels I: Int, outChannels O: Int) {
  precondition(I % 16 == 0 && O % 16 == 0 && dW.count == O * I * 9, "winogradWeightGradient: channels \(I) → \(O), dW \(dW.shape)")
  let tiling = WinogradTiles(batch: B, height: H, width: W), tiles = tiling.count, T = tiling.chunk(channels: I)
  let v = Tensor(uninitialized: [16 * T * I]), e = Tensor(uninitialized: [16 * T * O]), du = Tensor(uninitialized: [16, I, O])
  let vp = v.data, ep = e.data, dup = du.data
  var t0 = 0
  while t0 < tiles {
    let n = min(T, tiles - t0)
    winogradInputTiles(x, tiling, height: H, width: W, channels: I, tiles: t0..<(t0 + n), stride: T, into: vp)
    // E_ξ[t, c] = (A·dY·Aᵀ)_ξ, dY the tile's 2×2 outputs (zero past the map's edge).
    Parallel.forRange(n, grain: max(1, 8192 / O)) { r in
      for t in r {
        let (b, ty, tx) = tiling.position(t0 + t)
        let rowsIn = min(2, H - 2 * ty), colsIn = min(2, W - 2 * tx)
        let line0 = dy + ((b * H + 2 * ty) * W + 2 * tx) * O
        let dst = ep + t * O
        var c = 0
        while c < O {
          @inline(__always) func g(_ i: Int, _ j: Int) -> S16 { i < rowsIn && j < colsIn ? load16(line0 + (i * W + j) * O + c) : .zero }
          let (e00, e10, e20, e30) = winogradA(g(0, 0), g(1, 0)), (e01, e11, e21, e31) = winogradA(g(0, 1), g(1, 1))
          @inline(__always) func put(_ i: Int, _ v: (S16, S16, S16, S16)) {
            let q = dst + 4 * i * T * O + c
            store16(q, v.0); store16(q + T * O, v.1); store16(q + 2 * T * O, v.2); store16(q + 3 * T * O, v.3)
          }
          put(0, winogradA(e00, e01)); put(1, winogradA(e10, e11)); put(2, winogradA(e20, e21)); put(3, winogradA(e30, e31))
          c += 16
        }
      }
    }
    for xi in 0..<16 {
      gemm(transA: true, transB: false, m: I, n: O, k: n, a: vp + xi * T * I, lda: I,
           b: ep + xi * T * O, ldb: O, beta: t0 == 0 ? 0 : 1, c: dup + xi * I * O, ldc: O)
    }
    t0 += n
  }
  // dW[co, ci] += Gᵀ·dU·G: Gᵀ·(a, b, c, d) = (a + ½b + ½c, ½b − ½c, ½b + ½c + d) on each axis.
  let dw = dW.data
  Parallel.forRange(O, grain: max(1, 4096 / I)) { r in
    for co in r {
      for ci in 0..<I {
        @inline(__always) func u(_ xi: Int) -> Float { dup[(xi * I + ci) * O + co] }
        @inline(__always) func gt(_ a: Float, _ b: Float, _ c: Float, _ d: Float) -> (Float, Float, Float) {
          (a + 0.5 * b + 0.5 * c, 0.5 * b - 0.5 * c, 0.5 * b + 0.5 * c + d)
        }
        // Columns first (Gᵀ on each column j of the 4×4), then rows.
        let c0 = gt(u(0), u(4), u(8), u(12)), c1 = gt(u(1), u(5), u(9), u(13))
        let c2 = gt(u(2), u(6), u(10), u(14)), c3 = gt(u(3), u(7), u(11), u(15))
        let f = dw + (co * I + ci) * 9
        @inline(__always) func add(_ ky: Int, _ v: (Float, Float, Float)) { f[3 * ky] += v.0; f[3 * ky + 1] += v.1; f[3 * ky + 2] += v.2 }
        add(0, gt(c0.0, c1.0, c2.0, c3.0)); add(1, gt(c0.1, c1.1, c2.1, c3.1)); add(2, gt(c0.2, c1.2, c2.2, c3.2))
      }
    }
  }
  withExtendedLifetime((v, e, du)) {}
}
