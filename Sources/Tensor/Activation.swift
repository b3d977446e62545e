// Pointwise activations (GELU, ReLU, sigmoid) and softmax / log-softmax over
// any axis. Not here: tanh-approximate GELU, in-place variants.
//
// Letters: softmax sees its input as [O, N, I] around the axis (O outer, N the
// softmax axis, I inner). I == 1 (the last axis, attention and CE) is the fast
// path: one contiguous row per task. Otherwise a task is a block of up to 64
// inner columns of one outer index, walked row by row so reads stay contiguous.
import Foundation

/// Elements per parallel task of a pointwise loop.
let pointwiseGrain = 1 << 15

// MARK: GELU

/// F.gelu (exact): y = x·Φ(x) = ½x(1 + erf(x/√2)).
public func gelu(_ x: Var) -> Var {
  let xv = x.value, n = xv.count
  let y = Tensor(uninitialized: xv.shape)
  let xp = xv.data, yp = y.data
  Parallel.forRange(n, grain: pointwiseGrain) { r in
    for i in r { let v = xp[i]; yp[i] = 0.5 * v * (1 + erff(v * Float(0.5).squareRoot())) }
  }
  return makeResult(y, inputs: [x]) { g in
    // dy/dx = Φ(x) + x·φ(x)
    let d = x.gradBuffer().data, gp = g.data, xp = xv.data  // via xv: the closure keeps the storage alive
    let invSqrt2 = Float(0.5).squareRoot(), invSqrt2Pi = 1 / (2 * Float.pi).squareRoot()
    Parallel.forRange(n, grain: pointwiseGrain) { r in
      for i in r {
        let v = xp[i]
        d[i] += gp[i] * (0.5 * (1 + erff(v * invSqrt2)) + v * invSqrt2Pi * expf(-0.5 * v * v))
      }
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
    let d = x.gradBuffer().data, gp = g.data, xp = xv.data
    Parallel.forRange(n, grain: pointwiseGrain) { r in for i in r where xp[i] > 0 { d[i] += gp[i] } }
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

/// torch.sigmoid (numerically stable for large |x|).
public func sigmoid(_ x: Var) -> Var {
  let xv = x.value, n = xv.count
  let y = Tensor(uninitialized: xv.shape)
  let xp = xv.data, yp = y.data
  Parallel.forRange(n, grain: pointwiseGrain) { r in for i in r { yp[i] = stableSigmoid(xp[i]) } }
  return makeResult(y, inputs: [x]) { g in
    let d = x.gradBuffer().data, gp = g.data, yp = y.data
    Parallel.forRange(n, grain: pointwiseGrain) { r in for i in r { let s = yp[i]; d[i] += gp[i] * s * (1 - s) } }
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

/// y = softmax (or log-softmax) of x over N in the [O, N, I] view.
public func softmaxForward(out y: Tensor, x: Tensor, outer: Int, n: Int, inner: Int, log: Bool) {
  let xp = x.data, yp = y.data
  if inner == 1 {
    Parallel.forRange(outer, grain: max(1, (1 << 14) / max(1, n))) { r in
      for row in r {
        let xi = xp + row * n, yi = yp + row * n
        var m = -Float.infinity
        for k in 0..<n { m = max(m, xi[k]) }
        var s: Float = 0
        if log {
          for k in 0..<n { s += expf(xi[k] - m) }
          let lse = m + logf(s)
          for k in 0..<n { yi[k] = xi[k] - lse }
        } else {
          for k in 0..<n { let e = expf(xi[k] - m); yi[k] = e; s += e }
          let inv = 1 / s
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
          for j in 0..<w { s[j] += expf(xi[j] - m[j]) }
        } else {
          for j in 0..<w { let e = expf(xi[j] - m[j]); yi[j] = e; s[j] += e }
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

/// softmax:     dx += y·(g − Σ_N g·y)
/// log-softmax: dx += g − exp(y)·Σ_N g
public func softmaxBackward(dx: Tensor, dy: Tensor, y: Tensor, outer: Int, n: Int, inner: Int, log: Bool) {
  let dp = dx.data, gp = dy.data, yp = y.data
  if inner == 1 {
    Parallel.forRange(outer, grain: max(1, (1 << 14) / max(1, n))) { r in
      for row in r {
        let gi = gp + row * n, yi = yp + row * n, di = dp + row * n
        var s: Float = 0
        if log {
          for k in 0..<n { s += gi[k] }
          for k in 0..<n { di[k] += gi[k] - expf(yi[k]) * s }
        } else {
          for k in 0..<n { s += gi[k] * yi[k] }
          for k in 0..<n { di[k] += yi[k] * (gi[k] - s) }
        }
      }
    }
    return
  }
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
          for j in 0..<w { di[j] += gi[j] - expf(yi[j]) * s[j] }
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
    softmaxBackward(dx: x.gradBuffer(), dy: g, y: y, outer: outer, n: n, inner: inner, log: log)
  }
}

/// F.softmax over any axis (negative axes count from the end).
public func softmax(_ x: Var, axis: Int) -> Var { softmaxOp(x, axis: axis, log: false) }

/// F.log_softmax over any axis (log-sum-exp with the maximum subtracted).
public func logSoftmax(_ x: Var, axis: Int) -> Var { softmaxOp(x, axis: axis, log: true) }
