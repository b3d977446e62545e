// Pointwise activations (GELU, ReLU, sigmoid) and softmax / log-softmax over
// any axis. Not here: tanh-approximate GELU, in-place variants.
//
// Letters: softmax sees its input as [O, N, I] around the axis (O outer, N the
// softmax axis, I inner). I == 1 (the last axis, attention and CE) is the fast
// path: one contiguous row per task. Otherwise a task is a block of up to 64
// inner columns of one outer index, walked row by row so reads stay contiguous.
import CShims
import Foundation

/// Elements per parallel task of a pointwise loop.
let pointwiseGrain = 1 << 15

// MARK: Vector exp / erf

// libm's expf/erff are one call per element, so loops over them never
// vectorise; these are branch-free polynomials the loop vectoriser turns into
// SIMD code. Measured (`ecenet-dist bench ops --quick`, 2 threads, baseline
// x86-64 build, old and new binaries interleaved): GELU 2304×512 forward
// 2.19 → 0.67 ms, forward+backward 9.65 → 2.57 ms; softmax 9216×144 forward
// 2.99 → 1.07 ms (with rowMax below). See BENCHMARKS.md.

/// e^x with ≤ 1.4 ulp relative error (Cephes expf polynomial after reducing
/// by n·ln2, n = round(x·log2e)); 0 below −87.34 (where expf underflows to
/// subnormals), clamped above 88.376. Matches expf to float rounding.
@inline(__always)
func fastExp(_ x: Float) -> Float {
  let xc = Swift.min(Swift.max(x, -87.33654), 88.37626)
  // 1.5·2²³ + x·log2e rounds to an integer n held in the low mantissa bits.
  let t = xc * 1.442695041 + 12_582_912
  let n = t - 12_582_912
  let r = (xc - n * 0.693359375) - n * -2.12194440e-4
  var p: Float = 1.9875691500e-4
  p = p * r + 1.3981999507e-3
  p = p * r + 8.3334519073e-3
  p = p * r + 4.1665795894e-2
  p = p * r + 1.6666665459e-1
  p = p * r + 5.0000001201e-1
  let y = p * r * r + r + 1
  let scale = Float(bitPattern: (t.bitPattern &- 0x4B40_0000 &+ 127) &<< 23)  // 2ⁿ
  return x < -87.33654 ? 0 : y * scale
}

/// ln(x) for x > 0 normal, ≤ 2 ulp (Cephes logf: x = m·2^e with m in
/// [√½, √2), degree-9 polynomial in m − 1). Branch-free so loops vectorise;
/// no handling of 0, negatives, subnormals, inf or NaN (callers pass x ≥ 1e-37).
@inline(__always)
func fastLog(_ x: Float) -> Float {
  let bits = x.bitPattern
  // m in [0.5, 1), exponent e (frexp).
  var e = Float(Int32(bitPattern: (bits >> 23) & 0xFF) - 126)
  var m = Float(bitPattern: (bits & 0x007F_FFFF) | 0x3F00_0000)
  let small = m < 0.707106781186547524
  e = small ? e - 1 : e
  m = small ? m + m - 1 : m - 1
  let z = m * m
  var y: Float = 7.0376836292e-2
  y = y * m - 1.1514610310e-1
  y = y * m + 1.1676998740e-1
  y = y * m - 1.2420140846e-1
  y = y * m + 1.4249322787e-1
  y = y * m - 1.6668057665e-1
  y = y * m + 2.0000714765e-1
  y = y * m - 2.4999993993e-1
  y = y * m + 3.3333331174e-1
  y = y * m * z
  y += -2.12194440e-4 * e
  y += -0.5 * z
  return m + y + 0.693359375 * e
}

/// ln(1 + x) for x ≥ 0, accurate also for tiny x: log(u)·x/(u − 1) with u = 1 + x
/// rounded (Goldberg's trick: the rounding error of u cancels), x itself when u == 1.
@inline(__always)
func fastLog1p(_ x: Float) -> Float {
  let u = 1 + x, d = u - 1
  return d == 0 ? x : fastLog(u) * (x / d)
}

/// erf(x) to ≤ 4.2e-7 absolute error (Eigen's rational approximation on
/// [−4, 4]; erf(±4) is ±1 in float).
@inline(__always)
func fastErf(_ a: Float) -> Float {
  let x = Swift.min(Swift.max(a, -4), 4), x2 = x * x
  var p: Float = -2.72614225801306e-10
  p = p * x2 + 2.77068142495902e-08
  p = p * x2 - 2.10102402082508e-06
  p = p * x2 - 5.69250639462346e-05
  p = p * x2 - 7.34990630326855e-04
  p = p * x2 - 2.95459980854025e-03
  p = p * x2 - 1.60960333262415e-02
  var q: Float = -1.45660718464996e-05
  q = q * x2 - 2.13374055278905e-04
  q = q * x2 - 1.68282697438203e-03
  q = q * x2 - 7.37332916720468e-03
  q = q * x2 - 1.42647390514189e-02
  return x * p / q
}

/// Largest element of p[0..<n] (n ≥ 1): eight independent scalar lanes, which
/// LLVM turns into vector max instructions (SIMD8's pointwiseMax was measured
/// slower: it keeps IEEE NaN semantics lane by lane).
@inline(__always)
func rowMax(_ p: UnsafePointer<Float>, _ n: Int) -> Float {
  // 16 lanes (one zmm); a lane keeps its value unless the new one is greater,
  // so NaNs are skipped as a scalar `x > m ? x : m` would skip them.
  var acc = SIMD16<Float>(repeating: -.infinity)
  var i = 0
  while i + 16 <= n { let v = load16(p + i); acc.replace(with: v, where: v .> acc); i += 16 }
  var m = -Float.infinity
  for l in 0..<16 { m = acc[l] > m ? acc[l] : m }
  while i < n { m = p[i] > m ? p[i] : m; i += 1 }
  return m
}

/// out[i] = e^(x[i] − shift) over 0..<n (out may be x), returning Σ out in 16
/// lanes: a running Float sum would be one serial chain that keeps the loop scalar.
@inline(__always)
func expShifted(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, _ n: Int, _ shift: Float) -> Float {
  for j in 0..<n { out[j] = fastExp(x[j] - shift) }
  return rowSum(out, n)
}

// MARK: GELU

public enum GELUTuning {
  /// GELU forward and backward on the AVX-512 kernels of gelu.c where the CPU
  /// has them: Φ(x) and Φ(x) + x·φ(x) as piecewise polynomials whose
  /// coefficients vpermt2ps picks (gelu_tables.h), no erf or exp evaluated.
  /// Tests turn it off to compare with the Swift loops below. Swin-B's
  /// 25600×512 map, 2 threads, alternated with the session-10 kernel (a
  /// rational erf, compute-bound at 2.44–2.50 / 6.88–7.02 ms): forward
  /// 1.72–1.80 ms, with backward 4.12–4.40 ms in the fast memory mode; in the
  /// slow one the op is now memory-bound, at 2.33–2.54 / 6.11–6.44 ms
  /// (BENCHMARKS.md, session 11).
  nonisolated(unsafe) public static var avx512 = ecenet_cpu_has_avx512f() != 0
}

/// F.gelu (exact): y = x·Φ(x) = ½x(1 + erf(x/√2)).
public func gelu(_ x: Var) -> Var {
  let xv = x.value, n = xv.count
  let y = Tensor(uninitialized: xv.shape)
  let xp = xv.data, yp = y.data
  let invSqrt2 = Float(0.5).squareRoot()
  let kernel = GELUTuning.avx512
  Parallel.forRange(n, grain: pointwiseGrain) { r in
    if kernel { ecenet_gelu_forward(xp + r.lowerBound, yp + r.lowerBound, r.count); return }
    for i in r { let v = xp[i]; yp[i] = 0.5 * v * (1 + fastErf(v * invSqrt2)) }
  }
  return makeResult(y, inputs: [x]) { g in
    // dy/dx = Φ(x) + x·φ(x)
    let (dt, accumulate) = x.gradDestination()
    let d = dt.data, gp = g.data, xp = xv.data  // via xv: the closure keeps the storage alive
    if kernel {
      Parallel.forRange(n, grain: pointwiseGrain) { r in
        let o = r.lowerBound
        ecenet_gelu_backward(xp + o, gp + o, d + o, r.count, accumulate ? 1 : 0)
      }
      return
    }
    let invSqrt2Pi = 1 / (2 * Float.pi).squareRoot()
    @inline(__always) func slope(_ v: Float) -> Float { 0.5 * (1 + fastErf(v * invSqrt2)) + v * invSqrt2Pi * fastExp(-0.5 * v * v) }
    // Two loops, not one with a branch or a closure per element: only literal loops vectorise.
    Parallel.forRange(n, grain: pointwiseGrain) { r in
      if accumulate { for i in r { d[i] += gp[i] * slope(xp[i]) } } else { for i in r { d[i] = gp[i] * slope(xp[i]) } }
    }
  }
}

// MARK: ReLU

/// F.relu; the gradient at 0 is 0, as in PyTorch.
public func relu(_ x: Var) -> Var {
  let xv = x.value, n = xv.count
  let y = Tensor(uninitialized: xv.shape)
  let xp = xv.data, yp = y.data
  Parallel.forRange(n, grain: pointwiseGrain) { r in for i in r { yp[i] = max(xp[i], 0) } }
  return makeResult(y, inputs: [x]) { g in
    let (dt, accumulate) = x.gradDestination()
    let d = dt.data, gp = g.data, xp = xv.data
    // A select, not `where`: the conditional store kept the loop scalar.
    Parallel.forRange(n, grain: pointwiseGrain) { r in
      if accumulate { for i in r { d[i] += xp[i] > 0 ? gp[i] : 0 } } else { for i in r { d[i] = xp[i] > 0 ? gp[i] : 0 } }
    }
  }
}

// MARK: Sigmoid

/// σ(x) without overflow: exp of a non-positive number only.
@inline(__always)
func stableSigmoid(_ v: Float) -> Float {
  if v >= 0 { return 1 / (1 + expf(-v)) }
  let e = expf(v)
  return e / (1 + e)
}

/// stableSigmoid with fastExp, branch-free (one exp of −|v|), so loops over it
/// vectorise; within 2 ulp of stableSigmoid. Used by sigmoid and the dice loss.
@inline(__always)
func fastSigmoid(_ v: Float) -> Float {
  let e = fastExp(-abs(v)), inv = 1 / (1 + e)
  return v >= 0 ? inv : e * inv
}

/// torch.sigmoid (numerically stable for large |x|).
public func sigmoid(_ x: Var) -> Var {
  let xv = x.value, n = xv.count
  let y = Tensor(uninitialized: xv.shape)
  let xp = xv.data, yp = y.data
  // stableSigmoid, not fastSigmoid: with fastSigmoid here the reduced
  // gradients of N ranks drifted from the union batch's by 2e-3 of scale
  // (DistributedTrainingTests.testReducedGradientsEqualTheUnionBatchGradients),
  // and it bought no measurable step time.
  Parallel.forRange(n, grain: pointwiseGrain) { r in for i in r { yp[i] = stableSigmoid(xp[i]) } }
  return makeResult(y, inputs: [x]) { g in
    let (dt, accumulate) = x.gradDestination()
    let d = dt.data, gp = g.data, yp = y.data
    Parallel.forRange(n, grain: pointwiseGrain) { r in
      if accumulate { for i in r { d[i] += gp[i] * yp[i] * (1 - yp[i]) } } else { for i in r { d[i] = gp[i] * yp[i] * (1 - yp[i]) } }
    }
  }
}

// MARK: Softmax / log-softmax

/// Column blocks of the general (inner > 1) path.
let softmaxColumns = 64

/// Runs body(o, j0..<j1) over [O, I] in tasks of one outer index and up to 64 inner columns.
@inline(__always)
func forColumnBlocks(outer: Int, n: Int, inner: Int, _ body: (Int, Range<Int>) -> Void) {
  let per = (inner + softmaxColumns - 1) / softmaxColumns
  Parallel.forRange(outer * per, grain: max(1, (1 << 14) / max(1, n * min(inner, softmaxColumns)))) { r in
    for t in r {
      let o = t / per, j0 = (t % per) * softmaxColumns
      body(o, j0..<min(inner, j0 + softmaxColumns))
    }
  }
}

public enum SoftmaxTuning {
  /// Contiguous softmax rows (the last axis, attention scores) on the AVX-512
  /// kernel `ecenet_softmax_rows` (FMAs, vscalefps, masked tails) where the CPU
  /// has it; tests turn it off to compare with the Swift rows. Swin-B 640²
  /// stage-1 scores 112896×144, forward 4.65–4.68 → 3.17–3.35 ms; window
  /// attention s1 forward 17.9–18.0 → 16.5 ms (alternated runs, BENCHMARKS.md).
  nonisolated(unsafe) public static var avx512Rows = ecenet_cpu_has_avx512f() != 0
}

/// y = softmax (or log-softmax) of x over N in the [O, N, I] view.
public func softmaxForward(out y: Tensor, x: Tensor, outer: Int, n: Int, inner: Int, log: Bool) {
  let xp = x.data, yp = y.data
  if inner == 1 {
    Parallel.forRange(outer, grain: max(1, (1 << 14) / max(1, n))) { r in
      if !log && SoftmaxTuning.avx512Rows {
        ecenet_softmax_rows(xp + r.lowerBound * n, yp + r.lowerBound * n, r.count, n, n, n)
        return
      }
      for row in r {
        let xi = xp + row * n, yi = yp + row * n
        let m = rowMax(xi, n)
        let sum = expShifted(xi, into: yi, n, m)  // log: y as scratch for the exponentials
        if log {
          let lse = m + logf(sum)
          for k in 0..<n { yi[k] = xi[k] - lse }
        } else {
          let inv = 1 / sum
          for k in 0..<n { yi[k] *= inv }
        }
      }
    }
    return
  }
  forColumnBlocks(outer: outer, n: n, inner: inner) { o, cols in
    let w = cols.count
    withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * w) { tmp in
      let m = tmp.baseAddress!, s = m + w
      let base = o * n * inner + cols.lowerBound
      for j in 0..<w { m[j] = -Float.infinity; s[j] = 0 }
      for k in 0..<n { let xi = xp + base + k * inner; for j in 0..<w { m[j] = max(m[j], xi[j]) } }
      for k in 0..<n {
        let xi = xp + base + k * inner, yi = yp + base + k * inner
        if log {
          for j in 0..<w { s[j] += fastExp(xi[j] - m[j]) }
        } else {
          for j in 0..<w { let e = fastExp(xi[j] - m[j]); yi[j] = e; s[j] += e }
        }
      }
      if log {
        for j in 0..<w { m[j] += logf(s[j]) }  // m becomes the log-sum-exp
        for k in 0..<n { let xi = xp + base + k * inner, yi = yp + base + k * inner; for j in 0..<w { yi[j] = xi[j] - m[j] } }
      } else {
        for j in 0..<w { s[j] = 1 / s[j] }
        for k in 0..<n { let yi = yp + base + k * inner; for j in 0..<w { yi[j] *= s[j] } }
      }
    }
  }
}

/// softmax:     dx (+)= y·(g − Σ_N g·y)
/// log-softmax: dx (+)= g − exp(y)·Σ_N g
/// (dx overwritten unless `accumulate`).
public func softmaxBackward(dx: Tensor, accumulate: Bool = true, dy: Tensor, y: Tensor, outer: Int, n: Int, inner: Int,
                            log: Bool) {
  let dp = dx.data, gp = dy.data, yp = y.data
  if inner == 1 {
    Parallel.forRange(outer, grain: max(1, (1 << 14) / max(1, n))) { r in
      for row in r {
        let gi = gp + row * n, yi = yp + row * n, di = dp + row * n
        switch (log, accumulate) {
        case (true, true): let s = rowSum(gi, n); for k in 0..<n { di[k] += gi[k] - fastExp(yi[k]) * s }
        case (true, false): let s = rowSum(gi, n); for k in 0..<n { di[k] = gi[k] - fastExp(yi[k]) * s }
        case (false, true): let s = rowDot(gi, yi, n); for k in 0..<n { di[k] += yi[k] * (gi[k] - s) }
        case (false, false): let s = rowDot(gi, yi, n); for k in 0..<n { di[k] = yi[k] * (gi[k] - s) }
        }
      }
    }
    return
  }
  if !accumulate { dx.zero() }  // the column-block path adds
  forColumnBlocks(outer: outer, n: n, inner: inner) { o, cols in
    let w = cols.count
    withUnsafeTemporaryAllocation(of: Float.self, capacity: w) { tmp in
      let s = tmp.baseAddress!
      let base = o * n * inner + cols.lowerBound
      for j in 0..<w { s[j] = 0 }
      for k in 0..<n {
        let gi = gp + base + k * inner, yi = yp + base + k * inner
        if log { for j in 0..<w { s[j] += gi[j] } } else { for j in 0..<w { s[j] += gi[j] * yi[j] } }
      }
      for k in 0..<n {
        let gi = gp + base + k * inner, yi = yp + base + k * inner, di = dp + base + k * inner
        if log {
          for j in 0..<w { di[j] += gi[j] - fastExp(yi[j]) * s[j] }
        } else {
          for j in 0..<w { di[j] += yi[j] * (gi[j] - s[j]) }
        }
      }
    }
  }
}

func softmaxOp(_ x: Var, axis: Int, log: Bool) -> Var {
  let a = normalizeAxis(axis, rank: x.shape.count)
  let (outer, n, inner) = splitAround(x.shape, axis: a)
  let y = Tensor(uninitialized: x.shape)
  softmaxForward(out: y, x: x.value, outer: outer, n: n, inner: inner, log: log)
  return makeResult(y, inputs: [x]) { g in
    let dx = x.gradDestination()
    softmaxBackward(dx: dx.tensor, accumulate: dx.accumulate, dy: g, y: y, outer: outer, n: n, inner: inner, log: log)
  }
}

/// F.softmax over any axis (negative axes count from the end).
public func softmax(_ x: Var, axis: Int) -> Var { softmaxOp(x, axis: axis, log: false) }

/// F.log_softmax over any axis (log-sum-exp with the maximum subtracted).
public func logSoftmax(_ x: Var, axis: Int) -> Var { softmaxOp(x, axis: axis, log: true) }
