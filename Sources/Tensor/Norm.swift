// Normalisations on channels-last tensors: LayerNorm over the last axis,
// BatchNorm (with cross-rank SyncBN statistics) and GroupNorm.
// Not here: instance norm, running-stat-free BN eval, affine-free GroupNorm.
//
// Letters: R rows (all positions but the last axis), C channels (last axis),
// B batch, P = H·W positions per sample, G groups, cg = C / G channels per group.
//
// Per-channel sums over many rows (BN, GN) go through `blockedColumnSums`: rows
// are cut into a fixed number of blocks (set by R alone, never by the thread
// count, so results reproduce bit for bit on any machine), each block sums in
// Double, blocks are added in order. Forward and backward then reduce to one
// streaming pass with a per-channel affine map (`channelAffine`).
import CShims
import Foundation

// MARK: Shared helpers

/// Per-column sums over `rows` rows: `body(rowRange, acc)` adds its rows into
/// acc[0..<width] (zero-filled). Blocks are fixed by the shape (`rows`,
/// `width`, `rowCost`), never by the thread count, so the result does not
/// depend on it. `rowCost`: elements of work per row (default `width`), which
/// sets how many blocks a thread takes at once; a loss whose "row" is a whole
/// line of logits must say so, or every block lands on one thread (the
/// upsampled cross-entropy ran serially: 160 ms on 16 cores).
func blockedColumnSums(rows: Int, width: Int, rowCost: Int? = nil,
                       _ body: (Range<Int>, UnsafeMutablePointer<Double>) -> Void) -> [Double] {
  let cost = max(1, rowCost ?? width)
  // Each block's sums start on a 64-byte boundary (the stride is rounded up to
  // 8 Doubles), so the loops' 512-bit loads and stores of them do not straddle
  // cache lines: with malloc's 16-byte alignment each was two line accesses,
  // and BatchNorm 160²×256 forward+backward took a median 5.16 against 4.56 ms
  // (6 alternated processes, BENCHMARKS.md session 14).
  let stride = (width + 7) / 8 * 8
  // Up to 64 blocks, but few enough that their Double partials stay within
  // about an eighth of the input's bytes: a wide, short BatchNorm (the head's
  // 16384-channel upsampler over 512 rows) had 16 MiB of partials for 32 MiB
  // of input, and forward+backward ran 2–3× slower per element than 160²×256.
  let blocks = max(1, min(rows, 64, rows * cost / (16 * max(1, stride))))
  let count = max(1, blocks * stride)
  // The partials come from the buffer pool (64-byte aligned, reused): a
  // malloc'd buffer of this size was mapped and freed on every call, so each
  // call faulted in fresh zeroed pages: 2000 of a Swin-T 256² step's 4576 page
  // faults (session 14).
  let scratch = Storage(count: 2 * count)
  return withExtendedLifetime(scratch) {
    UnsafeMutableRawPointer(scratch.base).withMemoryRebound(to: Double.self, capacity: count) { partial in
      let grain = max(1, (1 << 14) / max(1, (rows / blocks) * cost))
      // Each thread visits its blocks last to first. The sums' input was usually
      // just written first to last (by the op before, or the one after in
      // backward), so its tail is what the caches still hold; and the pass that
      // follows (BN's and GN's affine map) then goes first to last over what this
      // one touched last. BatchNorm 160²×256: forward 1.34 → 1.17 ms, with
      // backward 3.75 → 3.46 ms (medians of 6 alternated runs, BENCHMARKS.md).
      // Each block has its own partial (zeroed by the thread that fills it), so
      // the order changes no result.
      Parallel.forRange(blocks, grain: grain) { r in
        for b in r.reversed() {
          let p = partial + b * stride
          p.initialize(repeating: 0, count: stride)
          body(rows * b / blocks ..< rows * (b + 1) / blocks, p)
        }
      }
      // Blocks added in order for every column; columns in parallel, 512 at a
      // time so that each block's slice is read contiguously.
      var out = [Double](repeating: 0, count: width)
      out.withUnsafeMutableBufferPointer { o in
        let chunk = 512
        Parallel.forRange((width + chunk - 1) / chunk, grain: max(1, (1 << 15) / max(1, blocks * chunk))) { cs in
          for ci in cs {
            let j0 = ci * chunk, j1 = min(width, j0 + chunk)
            for b in 0..<blocks {
              let p = partial + b * stride
              for j in j0..<j1 { o[j] += p[j] }
            }
          }
        }
      }
      return out
    }
  }
}

/// out[r, c] (=|+=) x[r, c]·scale[s, c] + shift[s, c] with s = r / rowsPerSet:
/// every normalisation's forward (and BN/GN backward, with dy as x) is this map
/// once its statistics are known. `extra` adds aux[r, c]·extraScale[s, c].
///
/// BatchNorm followed by ReLU runs in the same passes (`ReLUFusion`): forward
/// clamps the map's result at zero; backward's `gate` drops x[r, c] (the
/// output gradient) where the forward's pre-activation was not positive.
func channelAffine(out: UnsafeMutablePointer<Float>, accumulate: Bool, x: UnsafePointer<Float>,
                   extra: UnsafePointer<Float>? = nil, extraScale: [Float] = [],
                   rows: Int, C: Int, rowsPerSet: Int, scale: [Float], shift: [Float],
                   relu: ReLUFusion = .none) {
  // Stored past the caches when the pass moves ≥ StreamingStores.minimumPassBytes
  // (x, out and `extra`). BatchNorm 160²×256 (26 MB), 5 alternated rounds:
  // forward 1.54–2.24 → 1.32–1.63 ms, forward+backward 4.43–6.49 → 3.46–4.59 ms.
  let passBytes = rows * C * MemoryLayout<Float>.size * (extra == nil && relu == .none ? 2 : 3)
  let streaming = !accumulate && C % 16 == 0 && Int(bitPattern: out) % 64 == 0
    && passBytes >= StreamingStores.minimumPassBytes
  if relu != .none {
    reluAffine(out: out, accumulate: accumulate, streaming: streaming, x: x, extra: extra, extraScale: extraScale,
               rows: rows, C: C, rowsPerSet: rowsPerSet, scale: scale, shift: shift, relu: relu)
    return
  }
  scale.withUnsafeBufferPointer { sc in
    shift.withUnsafeBufferPointer { sh in
      extraScale.withUnsafeBufferPointer { es in
        Parallel.forRange(rows, grain: max(1, (1 << 15) / max(1, C))) { r in
          if streaming {
            for row in r {
              let s = row / rowsPerSet * C
              streamedAffineRow(out + row * C, x + row * C, extra.map { $0 + row * C }, es.baseAddress.map { $0 + s },
                                C, sc.baseAddress! + s, sh.baseAddress! + s)
            }
            ecenet_store_fence()
            return
          }
          for row in r {
            let s = row / rowsPerSet * C
            let o = out + row * C, xi = x + row * C
            let a = sc.baseAddress! + s, b = sh.baseAddress! + s
            if let e = extra {
              let ei = e + row * C, f = es.baseAddress! + s
              if accumulate {
                for c in 0..<C { o[c] += xi[c] * a[c] + ei[c] * f[c] + b[c] }
              } else {
                for c in 0..<C { o[c] = xi[c] * a[c] + ei[c] * f[c] + b[c] }
              }
            } else if accumulate {
              for c in 0..<C { o[c] += xi[c] * a[c] + b[c] }
            } else {
              for c in 0..<C { o[c] = xi[c] * a[c] + b[c] }
            }
          }
        }
      }
    }
  }
}

/// One row of channelAffine's overwrite, 16 channels at a time, stored past
/// the caches (C % 16 == 0, o 64-byte aligned). The same operations in the
/// same order as the cached loop (x·a + e·f, then + b; no FMA), so both give
/// the same bits.
@inline(__always)
func streamedAffineRow(_ o: UnsafeMutablePointer<Float>, _ xi: UnsafePointer<Float>, _ ei: UnsafePointer<Float>?,
                       _ f: UnsafePointer<Float>?, _ C: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>) {
  var c = 0
  if let ei = ei, let f = f {
    while c < C {
      let v = load16(xi + c) * load16(a + c) + load16(ei + c) * load16(f + c) + load16(b + c)
      ecenet_store16_nontemporal(o + c, v)
      c += 16
    }
  } else {
    while c < C {
      ecenet_store16_nontemporal(o + c, load16(xi + c) * load16(a + c) + load16(b + c))
      c += 16
    }
  }
}

/// ReLU fused into a BatchNorm pass (`channelAffine`'s `relu`).
enum ReLUFusion: Equatable {
  case none
  /// Forward: out = max(x·scale + shift, 0), as `relu` of the unfused output.
  case clamp
  /// Backward: x (the output gradient) counts only where the forward's
  /// pre-activation pre[r, c]·scale + preShift[c] was positive: ReLU's mask,
  /// recomputed from BN's input with the forward's operations, so it has the
  /// forward's bits (one set of statistics: rowsPerSet = rows).
  case gate(pre: UnsafePointer<Float>, preShift: [Float])
}

/// `channelAffine` with ReLU fused: 16 channels at a time and a scalar tail,
/// the same operations in the same order as the unfused passes (x·a + e·f,
/// then + b; no FMA; ReLU's `max(v, 0)` and `v > 0 ? g : 0`), so BN + ReLU
/// gives the bits of batchNorm followed by relu.
func reluAffine(out: UnsafeMutablePointer<Float>, accumulate: Bool, streaming: Bool, x: UnsafePointer<Float>,
                extra: UnsafePointer<Float>?, extraScale: [Float], rows: Int, C: Int, rowsPerSet: Int,
                scale: [Float], shift: [Float], relu: ReLUFusion) {
  var pre: UnsafePointer<Float>? = nil, preShift: [Float] = []
  if case .gate(let p, let s) = relu {
    precondition(rowsPerSet == rows && s.count == C, "reluAffine: the gate takes one set of statistics")
    pre = p; preShift = s
  }
  let clamp = relu == .clamp
  scale.withUnsafeBufferPointer { sc in
    shift.withUnsafeBufferPointer { sh in
      extraScale.withUnsafeBufferPointer { es in
        preShift.withUnsafeBufferPointer { ps in
          Parallel.forRange(rows, grain: max(1, (1 << 15) / max(1, C))) { r in
            for row in r {
              let s = row / rowsPerSet * C
              let o = out + row * C, xi = x + row * C, a = sc.baseAddress! + s, b = sh.baseAddress! + s
              let ei = extra.map { $0 + row * C }, f = es.baseAddress.map { $0 + s }
              let pi = pre.map { $0 + row * C }, pb = ps.baseAddress
              var c = 0
              while c + 16 <= C {
                var g = load16(xi + c)
                if let pi = pi { g.replace(with: 0, where: .!(load16(pi + c) * load16(a + c) + load16(pb! + c) .> 0)) }
                var v = g * load16(a + c)
                if let ei = ei { v += load16(ei + c) * load16(f! + c) }
                v += load16(b + c)
                if clamp { v.replace(with: 0, where: v .<= 0) }
                if accumulate { v = load16(o + c) + v }
                if streaming { ecenet_store16_nontemporal(o + c, v) } else { store16(o + c, v) }
                c += 16
              }
              while c < C {
                var g = xi[c]
                if let pi = pi { g = pi[c] * a[c] + pb![c] > 0 ? g : 0 }
                var v = g * a[c]
                if let ei = ei { v += ei[c] * f![c] }
                v += b[c]
                if clamp { v = max(v, 0) }
                o[c] = accumulate ? o[c] + v : v
                c += 1
              }
            }
            if streaming { ecenet_store_fence() }
          }
        }
      }
    }
  }
}

// Row reductions. A float sum in one accumulator is a dependency chain that
// LLVM must keep in order (no fast-math), so it neither vectorises nor
// pipelines; sixteen independent lanes (one SIMD16, a zmm register with
// AVX-512) let it do both. The lanes are added pairwise at the end.

@inline(__always)
func load16(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
  UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
}

@inline(__always)
func store16(_ p: UnsafeMutablePointer<Float>, _ v: SIMD16<Float>) {
  UnsafeMutableRawPointer(p).storeBytes(of: v, as: SIMD16<Float>.self)
}

/// Σ of 16 lanes, pairwise.
@inline(__always)
func laneSum(_ v: SIMD16<Float>) -> Float {
  let a = v.lowHalf + v.highHalf, b = a.lowHalf + a.highHalf, c = b.lowHalf + b.highHalf
  return c[0] + c[1]
}

/// Σ p[0..<n].
@inline(__always)
func rowSum(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
  var acc = SIMD16<Float>()
  var i = 0
  while i + 16 <= n { acc += load16(p + i); i += 16 }
  var s: Float = 0
  while i < n { s += p[i]; i += 1 }
  return laneSum(acc) + s
}

/// Σ (p[i] − m)².
@inline(__always)
func rowSquaredDeviation(_ p: UnsafePointer<Float>, _ n: Int, _ m: Float) -> Float {
  var acc = SIMD16<Float>()
  let mv = SIMD16<Float>(repeating: m)
  var i = 0
  while i + 16 <= n { let d = load16(p + i) - mv; acc += d * d; i += 16 }
  var s: Float = 0
  while i < n { let d = p[i] - m; s += d * d; i += 1 }
  return laneSum(acc) + s
}

/// Σ a[i]·b[i].
@inline(__always)
func rowDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
  var acc = SIMD16<Float>()
  var i = 0
  while i + 16 <= n { acc += load16(a + i) * load16(b + i); i += 16 }
  var s: Float = 0
  while i < n { s += a[i] * b[i]; i += 1 }
  return laneSum(acc) + s
}

// MARK: LayerNorm

/// y = (x − mean)·rstd·w + b per row of C; saves mean[R] and rstd[R].
/// Two-pass statistics (mean, then centred variance) on a row that stays in L1,
/// so memory is streamed once for reading and once for writing.
public func layerNormForward(out y: Tensor, mean: Tensor, rstd: Tensor, x: Tensor,
                             weight: Tensor?, bias: Tensor?, eps: Float) {
  let C = x.shape.last!, rows = x.count / max(1, C)
  let yp = y.data, xp = x.data, mp = mean.data, rp = rstd.data
  let wp = weight?.data, bp = bias?.data
  Parallel.forRange(rows, grain: max(1, (1 << 14) / max(1, C))) { r in
    for row in r {
      let xi = xp + row * C, yi = yp + row * C
      let m = rowSum(xi, C) / Float(C)
      let v = rowSquaredDeviation(xi, C, m) / Float(C)
      let s = 1 / (v + eps).squareRoot()
      mp[row] = m; rp[row] = s
      switch (wp, bp) {
      case let (w?, b?): for c in 0..<C { yi[c] = (xi[c] - m) * s * w[c] + b[c] }
      case let (w?, nil): for c in 0..<C { yi[c] = (xi[c] - m) * s * w[c] }
      case let (nil, b?): for c in 0..<C { yi[c] = (xi[c] - m) * s + b[c] }
      case (nil, nil): for c in 0..<C { yi[c] = (xi[c] - m) * s }
      }
    }
  }
}

/// With x̂ = (x − mean)·rstd and g = dy·w:
///   dx (+)= rstd·(g − mean_C(g) − x̂·mean_C(g·x̂)) ; dw += Σ_R dy·x̂ ; db += Σ_R dy
/// (dx overwritten unless `accumulateDx`).
public func layerNormBackward(dx: Tensor?, accumulateDx: Bool = true, dWeight: Tensor?, dBias: Tensor?, dy: Tensor,
                              mean: Tensor, rstd: Tensor, x: Tensor, weight: Tensor?) {
  let C = x.shape.last!, rows = x.count / max(1, C)
  let gp = dy.data, xp = x.data, mp = mean.data, rp = rstd.data
  let wp = weight?.data, dxp = dx?.data
  let wantW = dWeight != nil, wantB = dBias != nil
  let width = (wantW || wantB) ? 2 * C : 0
  let sums = blockedColumnSums(rows: rows, width: width) { r, acc in
    for row in r {
      let xi = xp + row * C, gi = gp + row * C
      let m = mp[row], s = rp[row]
      if width > 0 {
        for c in 0..<C { let d = Double(gi[c]); acc[c] += d * Double((xi[c] - m) * s); acc[C + c] += d }
      }
      guard let dxp = dxp else { continue }
      // a = mean_C(g), b = mean_C(g·x̂) with g = dy·w, in 16 lanes (see rowSum).
      var av = SIMD16<Float>(), bv = SIMD16<Float>()
      let mv = SIMD16<Float>(repeating: m), sv = SIMD16<Float>(repeating: s)
      var c = 0
      while c + 16 <= C {
        var g = load16(gi + c)
        if let w = wp { g *= load16(w + c) }
        av += g; bv += g * ((load16(xi + c) - mv) * sv)
        c += 16
      }
      var a0 = laneSum(av), b0 = laneSum(bv)
      while c < C {
        let g = gi[c] * (wp?[c] ?? 1)
        a0 += g; b0 += g * ((xi[c] - m) * s); c += 1
      }
      let a = a0 / Float(C), b = b0 / Float(C)
      let di = dxp + row * C
      switch (wp, accumulateDx) {
      case let (w?, true): for c in 0..<C { di[c] += s * (gi[c] * w[c] - a - (xi[c] - m) * s * b) }
      case let (w?, false): for c in 0..<C { di[c] = s * (gi[c] * w[c] - a - (xi[c] - m) * s * b) }
      case (nil, true): for c in 0..<C { di[c] += s * (gi[c] - a - (xi[c] - m) * s * b) }
      case (nil, false): for c in 0..<C { di[c] = s * (gi[c] - a - (xi[c] - m) * s * b) }
      }
    }
  }
  if let dw = dWeight { for c in 0..<C { dw.data[c] += Float(sums[c]) } }
  if let db = dBias { for c in 0..<C { db.data[c] += Float(sums[C + c]) } }
}

/// F.layer_norm over the last axis (eps inside the square root, biased variance).
public func layerNorm(_ x: Var, weight: Var?, bias: Var?, eps: Float = 1e-5) -> Var {
  let C = x.shape.last ?? 0
  precondition(weight == nil || weight!.shape == [C], "layerNorm: weight \(weight!.shape) for input \(x.shape)")
  precondition(bias == nil || bias!.shape == [C], "layerNorm: bias \(bias!.shape) for input \(x.shape)")
  let rows = x.count / max(1, C)
  let y = Tensor(uninitialized: x.shape)
  let mean = Tensor(uninitialized: [rows]), rstd = Tensor(uninitialized: [rows])
  let (xv, wv) = (x.value, weight?.value)
  layerNormForward(out: y, mean: mean, rstd: rstd, x: xv, weight: wv, bias: bias?.value, eps: eps)
  return makeResult(y, inputs: [x, weight, bias]) { g in
    let dx = x.requiresGrad ? x.gradDestination() : nil
    layerNormBackward(dx: dx?.tensor, accumulateDx: dx?.accumulate ?? true,
                      dWeight: weight?.requiresGrad == true ? weight!.gradBuffer() : nil,
                      dBias: bias?.requiresGrad == true ? bias!.gradBuffer() : nil,
                      dy: g, mean: mean, rstd: rstd, x: xv, weight: wv)
  }
}

// MARK: BatchNorm / SyncBN

/// Sums Double buffers over ranks in place (SyncBN); nil = this rank only.
public typealias StatsReducer = (UnsafeMutableBufferPointer<Double>) -> Void

/// Per-channel [Σx (C), Σx² (C)] over the rows of a [R, C] block.
func channelMoments(_ x: UnsafePointer<Float>, rows: Int, C: Int) -> [Double] {
  blockedColumnSums(rows: rows, width: 2 * C) { r, acc in
    columnTiles(C) { c0, c1 in
      for row in r {
        let xi = x + row * C
        for c in c0..<c1 { let v = Double(xi[c]); acc[c] += v; acc[C + c] += v * v }
      }
    }
  }
}

/// Calls `body(c0, c1)` for column tiles of at most 1024 channels, in order.
/// The per-channel sums walk a block's rows one tile at a time, so the tile's
/// Double sums (16 KiB) stay in L1 while the rows stream past; a row of a
/// 16384-channel BatchNorm otherwise read and wrote 256 KiB of sums from L2.
/// Each channel still adds its rows in order: the same bits.
@inline(__always)
func columnTiles(_ C: Int, _ body: (Int, Int) -> Void) {
  var c0 = 0
  repeat { let c1 = min(C, c0 + 1024); body(c0, c1); c0 = c1 } while c0 < C
}

/// Per-channel [Σdy (C), Σdy·x̂ (C)] with x̂ = (x − mean[c])·rstd[c].
/// With `reluGate` (BatchNorm fused with ReLU), dy counts only where the
/// forward's pre-activation x·scale + shift was positive (ReLU's mask, with the
/// forward's operations).
func channelGradMoments(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, rows: Int, C: Int,
                        mean: [Float], rstd: [Float], reluGate: (scale: [Float], shift: [Float])? = nil) -> [Double] {
  let gateScale = reluGate?.scale ?? [], gateShift = reluGate?.shift ?? []
  return mean.withUnsafeBufferPointer { mb in
    rstd.withUnsafeBufferPointer { rb in
      gateScale.withUnsafeBufferPointer { gs in
        gateShift.withUnsafeBufferPointer { gb in
          blockedColumnSums(rows: rows, width: 2 * C) { r, acc in
            let m = mb.baseAddress!, s = rb.baseAddress!
            // Two loops, not a test per element: the ungated one stays as tight as before.
            if reluGate != nil {
              let a = gs.baseAddress!, b = gb.baseAddress!
              columnTiles(C) { c0, c1 in
                for row in r {
                  let xi = x + row * C, gi = dy + row * C
                  for c in c0..<c1 {
                    let d = Double(xi[c] * a[c] + b[c] > 0 ? gi[c] : 0)
                    acc[c] += d; acc[C + c] += d * Double((xi[c] - m[c]) * s[c])
                  }
                }
              }
            } else {
              columnTiles(C) { c0, c1 in
                for row in r {
                  let xi = x + row * C, gi = dy + row * C
                  for c in c0..<c1 {
                    let d = Double(gi[c])
                    acc[c] += d; acc[C + c] += d * Double((xi[c] - m[c]) * s[c])
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

/// F.batch_norm over every axis but the last (channels-last), as
/// torch.nn.BatchNorm2d / torch.nn.SyncBatchNorm. In training, batch statistics
/// are used (biased variance) and the running stats are updated in place with
/// running = (1 − momentum)·running + momentum·stat (unbiased variance). With
/// `reduce`, the per-channel [Σx, Σx², count] are summed over ranks (in Double)
/// before mean/var are formed, and in backward [Σdy, Σdy·x̂] are summed too, so
/// dx on N ranks equals one process on the union batch. Weight/bias gradients
/// stay local (the data-parallel allreduce sums them), as in SyncBatchNorm.
/// In eval the running stats are used and backward is a per-channel affine map.
///
/// `relu`: the output is relu(batchNorm(x)), made in the same passes (the
/// same bits as calling `relu` after, without its two extra passes over the
/// tensor and its stored input).
public func batchNorm(_ x: Var, weight: Var, bias: Var, runningMean: Tensor, runningVar: Tensor,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5,
                      reduce: StatsReducer? = nil, relu: Bool = false) -> Var {
  batchNormGroup([x], weights: [weight], biases: [bias], runningMeans: [runningMean], runningVars: [runningVar],
                 training: training, momentum: momentum, eps: eps, reduce: reduce, relu: [relu])[0]
}

/// `batchNorm` on several independent inputs at once (each with its own
/// parameters and running stats), with one `reduce` call for all of them in
/// forward and one in backward instead of one each: SyncBN's cross-rank
/// round trips are a synchronisation point apiece, which costs at 8 ranks
/// (BENCHMARKS.md, session 5), and the head has 23 SyncBN layers. Each output
/// equals `batchNorm` on its own input bit for bit, given the same reduced
/// sums: the buffer reduced is the members' buffers placed end to end (an MPI
/// allreduce may add a longer buffer's ranks in another order).
///
/// Backward: every member's tape entry is recorded here, one after another,
/// and nothing can consume an output before this returns, so when the tape
/// reaches the last member (its first backward) every member's output
/// gradient is complete. That entry sums all of them and reduces once
/// (`BatchNormGroupBackward`); the others use the stored sums.
///
/// `relu[i]`: member i's output is followed by ReLU, fused (see `batchNorm`);
/// nil: none is.
public func batchNormGroup(_ xs: [Var], weights: [Var], biases: [Var], runningMeans: [Tensor], runningVars: [Tensor],
                           training: Bool, momentum: Float = 0.1, eps: Float = 1e-5,
                           reduce: StatsReducer? = nil, relu: [Bool]? = nil) -> [Var] {
  let n = xs.count
  precondition(weights.count == n && biases.count == n && runningMeans.count == n && runningVars.count == n
                 && (relu?.count ?? n) == n,
               "batchNormGroup: \(n) inputs, \(weights.count) weights, \(biases.count) biases, \(runningMeans.count)/\(runningVars.count) running stats, \(relu?.count ?? n) ReLU flags")
  let members = (0..<n).map { i -> BatchNormMember in
    let C = xs[i].shape.last ?? 0
    precondition(weights[i].shape == [C] && biases[i].shape == [C] && runningMeans[i].count == C && runningVars[i].count == C,
                 "batchNorm: input \(xs[i].shape), weight \(weights[i].shape), bias \(biases[i].shape), running \(runningMeans[i].shape)/\(runningVars[i].shape)")
    return BatchNormMember(x: xs[i].value, C: C, rows: xs[i].count / max(1, C), relu: relu?[i] ?? false)
  }
  if training {
    // [Σx (C), Σx² (C), count] per member, end to end: one reduction for all.
    var buf = members.flatMap { channelMoments($0.x.data, rows: $0.rows, C: $0.C) + [Double($0.rows)] }
    buf.withUnsafeMutableBufferPointer { reduce?($0) }
    var at = 0
    for (i, m) in members.enumerated() {
      m.setBatchStatistics(Array(buf[at..<at + 2 * m.C + 1]), runningMean: runningMeans[i], runningVar: runningVars[i],
                           momentum: momentum, eps: eps, input: xs[i].shape)
      at += 2 * m.C + 1
    }
  } else {
    for (i, m) in members.enumerated() { m.setRunningStatistics(runningMeans[i], runningVars[i], eps: eps) }
  }
  let group = BatchNormGroupBackward(members: members, reduce: reduce)
  return (0..<n).map { i in
    let m = members[i], x = xs[i], weight = weights[i], bias = biases[i]
    m.affine(weight: weight.value, bias: bias.value)
    let y = Tensor(uninitialized: x.shape)
    channelAffine(out: y.data, accumulate: false, x: m.x.data, rows: m.rows, C: m.C, rowsPerSet: m.rows,
                  scale: m.scale, shift: m.shift, relu: m.relu ? .clamp : .none)
    // The profile names the fused op apart: its time includes ReLU's.
    let op: StaticString = m.relu ? "batchNorm+relu" : "batchNorm(_:weight:bias:runningMean:runningVar:training:momentum:eps:reduce:relu:)"
    let out = makeResult(y, inputs: [x, weight, bias], op: op) { g in
      let (local, sums) = group.sums(member: i, g: g, training: training)
      let C = m.C
      if weight.requiresGrad { let d = weight.gradBuffer().data; for c in 0..<C { d[c] += Float(local[C + c]) } }
      if bias.requiresGrad { let d = bias.gradBuffer().data; for c in 0..<C { d[c] += Float(local[c]) } }
      guard x.requiresGrad else { return }
      let dx = x.gradDestination()
      if !training {
        // y is affine in x with slope w·rstd.
        channelAffine(out: dx.tensor.data, accumulate: dx.accumulate, x: g.data, rows: m.rows, C: C,
                      rowsPerSet: m.rows, scale: m.scale, shift: [Float](repeating: 0, count: C), relu: m.gate)
        return
      }
      // dx = w·rstd·(dy − Σdy/N − x̂·Σdy·x̂/N) = α·dy + β·x + γ per channel.
      var beta = [Float](repeating: 0, count: C), gamma = [Float](repeating: 0, count: C)
      for c in 0..<C {
        let a = Double(m.scale[c]), r = Double(m.rstd[c]), mu = Double(m.mean[c])
        let s1 = sums[c] / m.count, s2 = sums[C + c] / m.count
        beta[c] = Float(-a * r * s2)
        gamma[c] = Float(-a * s1 + a * r * s2 * mu)
      }
      channelAffine(out: dx.tensor.data, accumulate: dx.accumulate, x: g.data, extra: m.x.data, extraScale: beta,
                    rows: m.rows, C: C, rowsPerSet: m.rows, scale: m.scale, shift: gamma, relu: m.gate)
    }
    group.outputs.append(out)
    return out
  }
}

/// One input of `batchNormGroup`: its value and the statistics forward formed.
final class BatchNormMember {
  let x: Tensor, C: Int, rows: Int
  /// Followed by a fused ReLU.
  let relu: Bool
  var mean: [Float], rstd: [Float], scale: [Float] = [], shift: [Float] = []
  /// Values per channel over all ranks (rows when nothing is reduced).
  var count: Double

  init(x: Tensor, C: Int, rows: Int, relu: Bool) {
    self.x = x; self.C = C; self.rows = rows; self.relu = relu
    mean = [Float](repeating: 0, count: C); rstd = mean
    count = Double(rows)
  }

  /// Mean and rstd from reduced [Σx, Σx², count]; updates the running stats.
  func setBatchStatistics(_ buf: [Double], runningMean: Tensor, runningVar: Tensor, momentum: Float, eps: Float,
                          input: [Int]) {
    count = buf[2 * C]
    precondition(count > 1, "batchNorm: training needs more than one value per channel, got \(count) for input \(input)")
    let rm = runningMean.data, rv = runningVar.data
    for c in 0..<C {
      let m = buf[c] / count
      let v = max(0, buf[C + c] / count - m * m)
      mean[c] = Float(m); rstd[c] = Float(1 / (v + Double(eps)).squareRoot())
      rm[c] = (1 - momentum) * rm[c] + momentum * Float(m)
      rv[c] = (1 - momentum) * rv[c] + momentum * Float(v * count / (count - 1))
    }
  }

  func setRunningStatistics(_ runningMean: Tensor, _ runningVar: Tensor, eps: Float) {
    for c in 0..<C {
      mean[c] = runningMean.data[c]
      rstd[c] = 1 / (runningVar.data[c] + eps).squareRoot()
    }
  }

  /// y = x·scale + shift per channel.
  func affine(weight: Tensor, bias: Tensor) {
    scale = (0..<C).map { weight.data[$0] * rstd[$0] }
    shift = (0..<C).map { bias.data[$0] - mean[$0] * scale[$0] }
  }

  /// Backward's ReLU mask, from the forward's pre-activation x·scale + shift.
  var gate: ReLUFusion { relu ? .gate(pre: UnsafePointer(x.data), preShift: shift) : .none }

  /// Local [Σdy, Σdy·x̂] for output gradient `dy` (masked by the fused ReLU).
  func gradMoments(_ dy: Tensor) -> [Double] {
    channelGradMoments(dy: dy.data, x: x.data, rows: rows, C: C, mean: mean, rstd: rstd,
                       reluGate: relu ? (scale, shift) : nil)
  }
}

/// The backward sums of a `batchNormGroup`: each member's local [Σdy, Σdy·x̂]
/// (its weight and bias gradients) and, in training, the same sums reduced
/// over ranks in one call for all members, formed when the first member's
/// backward asks for them.
final class BatchNormGroupBackward {
  let members: [BatchNormMember]
  let reduce: StatsReducer?
  /// The members' output Vars, whose complete gradients the first backward reads.
  var outputs: [Var] = []
  private var local: [[Double]] = [], reduced: [[Double]] = []

  init(members: [BatchNormMember], reduce: StatsReducer?) { self.members = members; self.reduce = reduce }

  /// (local, reduced) sums of member `i`, whose output gradient is `g`.
  func sums(member i: Int, g: Tensor, training: Bool) -> (local: [Double], reduced: [Double]) {
    if members.count == 1 || reduce == nil || !training {
      // Nothing to share: this member's sums alone (and its own reduction).
      let own = members[i].gradMoments(g)
      var all = own
      if training { all.withUnsafeMutableBufferPointer { reduce?($0) } }
      return (own, all)
    }
    if local.isEmpty {
      // The first backward of the group: every output's gradient is final (the
      // tape runs entries in reverse and all consumers came after the group).
      // A member whose output received none contributes zeros, on every rank alike.
      local = members.enumerated().map { j, m in
        let dy = j == i ? g : outputs[j].grad
        guard let dy = dy else { return [Double](repeating: 0, count: 2 * m.C) }
        return m.gradMoments(dy)
      }
      var buf = local.flatMap { $0 }
      buf.withUnsafeMutableBufferPointer { reduce?($0) }
      var at = 0
      reduced = members.map { m in defer { at += 2 * m.C }; return Array(buf[at..<at + 2 * m.C]) }
    }
    return (local[i], reduced[i])
  }
}

// MARK: GroupNorm

/// F.group_norm on [B, H, W, C] (any [B, ..., C]): channels are split into
/// `groups` contiguous blocks; mean and biased variance per sample and group.
public func groupNorm(_ x: Var, groups: Int, weight: Var, bias: Var, eps: Float = 1e-5) -> Var {
  let C = x.shape.last ?? 0
  precondition(x.shape.count >= 2 && groups > 0 && C % groups == 0,
               "groupNorm: input \(x.shape) with \(groups) groups (C must divide)")
  precondition(weight.shape == [C] && bias.shape == [C], "groupNorm: weight \(weight.shape), bias \(bias.shape) for input \(x.shape)")
  let B = x.shape[0], P = x.count / max(1, B * C), cg = C / groups
  let n = Double(P * cg)
  let xv = x.value, wv = weight.value, bv = bias.value
  // Per (sample, channel) copies of the group statistics, so forward and
  // backward are the same per-channel affine pass as BatchNorm.
  var mean = [Float](repeating: 0, count: B * C), rstd = [Float](repeating: 0, count: B * C)
  var scale = [Float](repeating: 0, count: B * C), shift = [Float](repeating: 0, count: B * C)
  for b in 0..<B {
    let mom = channelMoments(xv.data + b * P * C, rows: P, C: C)
    for gi in 0..<groups {
      var s1 = 0.0, s2 = 0.0
      for c in gi * cg..<(gi + 1) * cg { s1 += mom[c]; s2 += mom[C + c] }
      let m = s1 / n, v = max(0, s2 / n - m * m), r = 1 / (v + Double(eps)).squareRoot()
      for c in gi * cg..<(gi + 1) * cg {
        mean[b * C + c] = Float(m); rstd[b * C + c] = Float(r)
        scale[b * C + c] = wv.data[c] * Float(r)
        shift[b * C + c] = bv.data[c] - Float(m) * scale[b * C + c]
      }
    }
  }
  let y = Tensor(uninitialized: x.shape)
  channelAffine(out: y.data, accumulate: false, x: xv.data, rows: B * P, C: C, rowsPerSet: P,
                scale: scale, shift: shift)
  return makeResult(y, inputs: [x, weight, bias]) { g in
    var beta = [Float](repeating: 0, count: B * C), gamma = [Float](repeating: 0, count: B * C)
    let dw = weight.requiresGrad ? weight.gradBuffer().data : nil
    let db = bias.requiresGrad ? bias.gradBuffer().data : nil
    for b in 0..<B {
      let off = b * P * C
      let mom = channelGradMoments(dy: g.data + off, x: xv.data + off, rows: P, C: C,
                                   mean: Array(mean[b * C..<(b + 1) * C]), rstd: Array(rstd[b * C..<(b + 1) * C]))
      if let dw = dw { for c in 0..<C { dw[c] += Float(mom[C + c]) } }
      if let db = db { for c in 0..<C { db[c] += Float(mom[c]) } }
      // dx = rstd·(w·dy − Σ_g w·dy/n − x̂·Σ_g w·dy·x̂/n) = α·dy + β·x + γ per (sample, channel).
      for gi in 0..<groups {
        var s1 = 0.0, s2 = 0.0
        for c in gi * cg..<(gi + 1) * cg { s1 += Double(wv.data[c]) * mom[c]; s2 += Double(wv.data[c]) * mom[C + c] }
        s1 /= n; s2 /= n
        let r = Double(rstd[b * C + gi * cg]), m = Double(mean[b * C + gi * cg])
        for c in gi * cg..<(gi + 1) * cg {
          beta[b * C + c] = Float(-r * r * s2)
          gamma[b * C + c] = Float(-r * s1 + r * r * s2 * m)
        }
      }
    }
    guard x.requiresGrad else { return }
    let dx = x.gradDestination()
    channelAffine(out: dx.tensor.data, accumulate: dx.accumulate, x: g.data, extra: xv.data, extraScale: beta,
                  rows: B * P, C: C, rowsPerSet: P, scale: scale, shift: gamma)
  }
}
