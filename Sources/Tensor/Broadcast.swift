// Broadcasting elementwise arithmetic (NumPy rules: shapes align on the right,
// size-1 or missing dimensions repeat) and the one central place where a
// gradient is summed back to a broadcast input's shape (`sumToShape`).

import CShims
import Foundation

/// The broadcast shape of two shapes, or a precondition failure naming both.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int] {
  let n = max(a.count, b.count)
  let pa = [Int](repeating: 1, count: n - a.count) + a
  let pb = [Int](repeating: 1, count: n - b.count) + b
  return (0..<n).map { i in
    precondition(pa[i] == pb[i] || pa[i] == 1 || pb[i] == 1, "shapes \(a) and \(b) do not broadcast")
    return max(pa[i], pb[i])
  }
}

/// Element strides of `shape` seen inside `outShape` (0 on broadcast dimensions).
func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
  let padded = [Int](repeating: 1, count: outShape.count - shape.count) + shape
  var strides = [Int](repeating: 0, count: outShape.count)
  var s = 1
  for i in stride(from: outShape.count - 1, through: 0, by: -1) {
    strides[i] = padded[i] == 1 && outShape[i] != 1 ? 0 : s
    s *= padded[i]
  }
  return strides
}

/// True when `small` equals the trailing dimensions of `big` (bias-like broadcast).
func isSuffix(_ small: [Int], of big: [Int]) -> Bool {
  let s = small.drop { $0 == 1 }  // leading 1s do not change the layout
  return s.count <= big.count && Array(big.suffix(s.count)) == Array(s)
}

/// `small` broadcast to `big` seen as [outer, n, inner] → [outer, 1, inner]:
/// the two agree except on one contiguous run of axes where `small` is 1 (a
/// per-channel scale [B, 1, 1, C] of a [B, H, W, C] map; the gradient of a
/// global average pool). Nil when the shapes are equal or the broadcast axes are
/// not contiguous.
func middleBroadcast(_ small: [Int], to big: [Int]) -> (outer: Int, n: Int, inner: Int)? {
  guard small.count <= big.count else { return nil }
  let s = [Int](repeating: 1, count: big.count - small.count) + small
  let differs = big.indices.filter { s[$0] != big[$0] }
  guard let lo = differs.first, let hi = differs.last, (lo...hi).allSatisfy({ s[$0] == 1 }) else { return nil }
  return (big[..<lo].reduce(1, *), big[lo...hi].reduce(1, *), big[(hi + 1)...].reduce(1, *))
}

/// The function of an elementwise op as a type, so that `broadcastBinary` is
/// specialised for it and its loops vectorise. Passed as a closure, it stayed
/// one indirect call per element: a residual add ran at 2.75× the time to
/// stream its bytes, 4.7× PyTorch's time (BENCHMARKS.md, session 7).
/// `vector`: the same function on 16 lanes (the same IEEE operation per lane,
/// so the same bits), for the loop that stores past the caches; nil where
/// there is none.
protocol BinaryElementwise {
  func callAsFunction(_ x: Float, _ y: Float) -> Float
  var vector: ((SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>)? { get }
}
struct AddElements: BinaryElementwise {
  @inline(__always) func callAsFunction(_ x: Float, _ y: Float) -> Float { x + y }
  var vector: ((SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>)? { { $0 + $1 } }
}
struct SubtractElements: BinaryElementwise {
  @inline(__always) func callAsFunction(_ x: Float, _ y: Float) -> Float { x - y }
  var vector: ((SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>)? { { $0 - $1 } }
}
struct MultiplyElements: BinaryElementwise {
  @inline(__always) func callAsFunction(_ x: Float, _ y: Float) -> Float { x * y }
  var vector: ((SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>)? { { $0 * $1 } }
}
struct DivideElements: BinaryElementwise {
  @inline(__always) func callAsFunction(_ x: Float, _ y: Float) -> Float { x / y }
  var vector: ((SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>)? { { $0 / $1 } }
}
/// Any other function, for the rare ops off the hot path.
struct ClosureElements: BinaryElementwise {
  let f: (Float, Float) -> Float
  func callAsFunction(_ x: Float, _ y: Float) -> Float { f(x, y) }
  var vector: ((SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>)? { nil }
}

func broadcastBinary(_ a: Tensor, _ b: Tensor, _ f: @escaping (Float, Float) -> Float) -> Tensor {
  broadcastBinary(a, b, ClosureElements(f: f))
}

/// out[i] = f(a[ia], b[ib]) over the broadcast shape.
func broadcastBinary<F: BinaryElementwise>(_ a: Tensor, _ b: Tensor, _ f: F) -> Tensor {
  let shape = broadcastShape(a.shape, b.shape)
  let out = Tensor(uninitialized: shape)
  let n = out.count, o = out.data, pa = a.data, pb = b.data
  if a.count == n && b.count == n, let v = f.vector, 3 * n * MemoryLayout<Float>.size >= StreamingStores.minimumPassBytes {
    // Past the caches (StreamingStores), 16 lanes at a time; out is 64-byte
    // aligned (a fresh pool buffer), so every 16th element starts a line.
    let full = n / 16
    Parallel.forRange(full, grain: (1 << 15) / 16) { r in
      for k in r { ecenet_store16_nontemporal(o + 16 * k, v(load16(pa + 16 * k), load16(pb + 16 * k))) }
      ecenet_store_fence()
    }
    for i in 16 * full..<n { o[i] = f(pa[i], pb[i]) }
  } else if a.count == n && b.count == n {
    Parallel.forRange(n, grain: 1 << 15) { r in for i in r { o[i] = f(pa[i], pb[i]) } }
  } else if b.count == 1 {
    let bv = pb[0]
    Parallel.forRange(n, grain: 1 << 15) { r in for i in r { o[i] = f(pa[i], bv) } }
  } else if a.count == 1 {
    let av = pa[0]
    Parallel.forRange(n, grain: 1 << 15) { r in for i in r { o[i] = f(av, pb[i]) } }
  } else if a.count == n, let v = middleBroadcast(b.shape, to: shape) {
    // One operand repeated over a run of axes (a bias row is the run of all
    // leading axes: outer 1), the other full.
    let (rowsPer, inner) = (v.n, v.inner)
    Parallel.forRange(v.outer * rowsPer, grain: max(1, (1 << 15) / inner)) { r in
      for row in r {
        let base = row * inner, bb = pb + row / rowsPer * inner
        for j in 0..<inner { o[base + j] = f(pa[base + j], bb[j]) }
      }
    }
  } else if b.count == n, let v = middleBroadcast(a.shape, to: shape) {
    let (rowsPer, inner) = (v.n, v.inner)
    Parallel.forRange(v.outer * rowsPer, grain: max(1, (1 << 15) / inner)) { r in
      for row in r {
        let base = row * inner, ab = pa + row / rowsPer * inner
        for j in 0..<inner { o[base + j] = f(ab[j], pb[base + j]) }
      }
    }
  } else {
    // General case: walk the output in row-major order carrying both offsets.
    let sa = broadcastStrides(a.shape, to: shape), sb = broadcastStrides(b.shape, to: shape)
    var idx = [Int](repeating: 0, count: shape.count)
    var ia = 0, ib = 0
    for i in 0..<n {
      o[i] = f(pa[ia], pb[ib])
      var d = shape.count - 1
      while d >= 0 {
        idx[d] += 1; ia += sa[d]; ib += sb[d]
        if idx[d] < shape[d] { break }
        ia -= sa[d] * shape[d]; ib -= sb[d] * shape[d]; idx[d] = 0
        d -= 1
      }
    }
  }
  return out
}

/// out[j] += Σ_i m[i, j] for a row-major [rows, columns] matrix (a bias's
/// gradient): up to 64 blocks of contiguous rows, each summed into its own
/// partial (vectorised over columns) in parallel, the partials then added in
/// block order. The blocks depend only on `rows`, so the result has the same
/// bits on any thread count.
func addColumnSums(into out: UnsafeMutablePointer<Float>, of m: UnsafePointer<Float>, rows: Int, columns: Int) {
  if rows <= 0 || columns <= 0 { return }
  let blocks = min(rows, 64)
  let partial = Tensor.zeros([blocks, columns])
  let pp = partial.data
  Parallel.forRange(blocks, grain: max(1, (1 << 14) / max(1, rows / blocks * columns))) { br in
    for blk in br {
      let acc = pp + blk * columns
      for i in (rows * blk / blocks)..<(rows * (blk + 1) / blocks) {
        let src = m + i * columns
        for j in 0..<columns { acc[j] += src[j] }
      }
    }
  }
  for blk in 0..<blocks { let acc = pp + blk * columns; for j in 0..<columns { out[j] += acc[j] } }
}

/// Sums `g` (of a broadcast shape) down to `shape`: the gradient of a broadcast.
public func sumToShape(_ g: Tensor, _ shape: [Int]) -> Tensor {
  if g.shape == shape { return g }
  let n = g.count, m = shape.reduce(1, *)
  if m == n { return g.reshaped(shape) }
  let out = Tensor.zeros(shape)
  let o = out.data, pg = g.data
  if m == 1 {
    var s: Double = 0
    for i in 0..<n { s += Double(pg[i]) }
    o[0] = Float(s)
  } else if isSuffix(shape, of: g.shape) {
    addColumnSums(into: o, of: pg, rows: n / m, columns: m)  // bias-like: sum the rows
  } else if let v = middleBroadcast(shape, to: g.shape) {
    sumMiddleAxis(pg, outer: v.outer, n: v.n, inner: v.inner, into: o)
  } else {
    let s = broadcastStrides(shape, to: g.shape)
    var idx = [Int](repeating: 0, count: g.rank)
    var io = 0
    for i in 0..<n {
      o[io] += pg[i]
      var d = g.rank - 1
      while d >= 0 {
        idx[d] += 1; io += s[d]
        if idx[d] < g.shape[d] { break }
        io -= s[d] * g.shape[d]; idx[d] = 0
        d -= 1
      }
    }
  }
  return out
}

// MARK: - Differentiable arithmetic on Vars

public func + (a: Var, b: Var) -> Var {
  let (sa, sb) = (a.shape, b.shape)
  return makeResult(broadcastBinary(a.value, b.value, AddElements()), inputs: [a, b]) { g in
    if a.requiresGrad { a.accumulateGrad(sumToShape(g, sa)) }
    if b.requiresGrad { b.accumulateGrad(sumToShape(g, sb)) }
  }
}

public func - (a: Var, b: Var) -> Var {
  let (sa, sb) = (a.shape, b.shape)
  return makeResult(broadcastBinary(a.value, b.value, SubtractElements()), inputs: [a, b]) { g in
    if a.requiresGrad { a.accumulateGrad(sumToShape(g, sa)) }
    if b.requiresGrad { b.accumulateGrad(owned: scaled(sumToShape(g, sb), -1)) }
  }
}

public func * (a: Var, b: Var) -> Var {
  let (av, bv) = (a.value, b.value)
  return makeResult(broadcastBinary(av, bv, MultiplyElements()), inputs: [a, b]) { g in
    if a.requiresGrad { a.accumulateGrad(owned: sumToShape(broadcastBinary(g, bv, MultiplyElements()), av.shape)) }
    if b.requiresGrad { b.accumulateGrad(owned: sumToShape(broadcastBinary(g, av, MultiplyElements()), bv.shape)) }
  }
}

public func / (a: Var, b: Var) -> Var {
  let (av, bv) = (a.value, b.value)
  return makeResult(broadcastBinary(av, bv, DivideElements()), inputs: [a, b]) { g in
    if a.requiresGrad { a.accumulateGrad(owned: sumToShape(broadcastBinary(g, bv, DivideElements()), av.shape)) }
    if b.requiresGrad {
      // d(a/b)/db = -a/b²
      let t = broadcastBinary(broadcastBinary(g, av, MultiplyElements()), bv) { x, y in -x / (y * y) }
      b.accumulateGrad(owned: sumToShape(t, bv.shape))
    }
  }
}

/// x · s for a constant s.
public func * (a: Var, s: Float) -> Var {
  makeResult(scaled(a.value, s), inputs: [a]) { g in a.accumulateGrad(owned: scaled(g, s)) }
}
public func * (s: Float, a: Var) -> Var { a * s }

/// x + s for a constant s.
public func + (a: Var, s: Float) -> Var {
  let out = Tensor(uninitialized: a.shape)
  let o = out.data, x = a.value.data
  Parallel.forRange(out.count, grain: 1 << 16) { r in for i in r { o[i] = x[i] + s } }
  return makeResult(out, inputs: [a]) { g in a.accumulateGrad(g) }
}

/// A new tensor t·s.
public func scaled(_ t: Tensor, _ s: Float) -> Tensor {
  let out = Tensor(uninitialized: t.shape)
  let o = out.data, x = t.data
  Parallel.forRange(t.count, grain: 1 << 16) { r in for i in r { o[i] = x[i] * s } }
  return out
}
