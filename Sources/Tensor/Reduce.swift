// Reductions: sum and mean over all elements or one axis, and max over an
// axis (with the argmax kept for backward). Sums accumulate in Double: losses
// over a whole batch of pixels would otherwise lose digits.

/// View of a shape as [outer, n, inner] around `axis`.
func splitAround(_ shape: [Int], axis: Int) -> (outer: Int, n: Int, inner: Int) {
  (shape[..<axis].reduce(1, *), shape[axis], shape[(axis + 1)...].reduce(1, *))
}

func normalizeAxis(_ axis: Int, rank: Int) -> Int {
  let a = axis < 0 ? axis + rank : axis
  precondition(a >= 0 && a < rank, "axis \(axis) out of range for rank \(rank)")
  return a
}

/// Sum over `axis` (keeping it as size 1 when `keepDims`).
public func sumForward(_ x: Tensor, axis: Int, keepDims: Bool) -> Tensor {
  let a = normalizeAxis(axis, rank: x.rank)
  let (outer, n, inner) = splitAround(x.shape, axis: a)
  var shape = x.shape
  if keepDims { shape[a] = 1 } else { shape.remove(at: a) }
  let out = Tensor(uninitialized: shape)
  sumMiddleAxis(x.data, outer: outer, n: n, inner: inner, into: out.data)
  return out
}

/// o[i, j] = Σ_k x[i, k, j] over x seen as [outer, n, inner], accumulated in
/// Double. Tasks are (i, block of k, chunk of 64 columns). Splitting over i
/// alone, as before, left all but two threads idle on a global average pool
/// (outer = batch, 1 or 2): 73 ms on 16 cores as on 2. The k blocks are fixed by
/// the shape: each sums its rows into a Double partial, and the partials add up
/// in block order, so the result has the same bits on any thread count. With a
/// single block (many tasks already), every element sums its k in order.
func sumMiddleAxis(_ x: UnsafePointer<Float>, outer: Int, n: Int, inner: Int, into o: UnsafeMutablePointer<Float>) {
  if outer == 0 || inner == 0 { return }
  let chunk = 64, chunks = (inner + chunk - 1) / chunk, columnTasks = outer * chunks
  // About 64 tasks, each over at least 2¹⁴ elements.
  let blocks = Swift.max(1, Swift.min(n, 64 / columnTasks, outer * n * inner / (1 << 14) / columnTasks))
  let partial = UnsafeMutablePointer<Double>.allocate(capacity: blocks > 1 ? outer * blocks * inner : 0)
  defer { partial.deallocate() }
  let perTask = Swift.max(1, n / blocks * Swift.min(chunk, inner))
  Parallel.forRange(columnTasks * blocks, grain: Swift.max(1, (1 << 14) / perTask)) { r in
    withUnsafeTemporaryAllocation(of: Double.self, capacity: chunk) { accBuffer in
      let acc = accBuffer.baseAddress!
      for t in r {
        let (c, ib) = (t % chunks, t / chunks), (i, blk) = (ib / blocks, ib % blocks)
        let j0 = c * chunk, w = Swift.min(chunk, inner - j0)
        for j in 0..<w { acc[j] = 0 }
        for k in (n * blk / blocks)..<(n * (blk + 1) / blocks) {
          let row = x + (i * n + k) * inner + j0
          for j in 0..<w { acc[j] += Double(row[j]) }
        }
        if blocks == 1 {
          for j in 0..<w { o[i * inner + j0 + j] = Float(acc[j]) }
        } else {
          let dst = partial + (i * blocks + blk) * inner + j0
          for j in 0..<w { dst[j] = acc[j] }
        }
      }
    }
  }
  if blocks > 1 {
    for i in 0..<outer {
      for j in 0..<inner {
        var s = 0.0
        for blk in 0..<blocks { s += partial[(i * blocks + blk) * inner + j] }
        o[i * inner + j] = Float(s)
      }
    }
  }
}

extension Var {
  /// Sum of all elements (a scalar).
  public func sum() -> Var {
    var s: Double = 0
    let p = value.data
    for i in 0..<count { s += Double(p[i]) }
    let shape = self.shape
    return makeResult(Tensor(scalar: Float(s)), inputs: [self]) { g in
      self.accumulateGrad(owned: Tensor.filled(shape, g.scalar))
    }
  }

  /// Mean of all elements (a scalar).
  public func mean() -> Var { sum() * (1 / Float(Swift.max(1, count))) }

  public func sum(axis: Int, keepDims: Bool = false) -> Var {
    let a = normalizeAxis(axis, rank: shape.count)
    let shape = self.shape
    return makeResult(sumForward(value, axis: a, keepDims: keepDims), inputs: [self]) { g in
      // Broadcast g back along the reduced axis.
      var kept = shape; kept[a] = 1
      let gk = g.reshaped(kept)
      let (outer, n, inner) = splitAround(shape, axis: a)
      let dx = Tensor(uninitialized: shape)
      let o = dx.data, pg = gk.data
      Parallel.forRange(outer * n, grain: Swift.max(1, 16384 / Swift.max(1, inner))) { r in
        for row in r { (o + row * inner).update(from: pg + row / n * inner, count: inner) }
      }
      self.accumulateGrad(owned: dx)
    }
  }

  public func mean(axis: Int, keepDims: Bool = false) -> Var {
    let a = normalizeAxis(axis, rank: shape.count)
    return sum(axis: a, keepDims: keepDims) * (1 / Float(shape[a]))
  }

  /// Max over `axis`; the gradient flows to the first maximal element.
  public func max(axis: Int, keepDims: Bool = false) -> Var {
    let a = normalizeAxis(axis, rank: shape.count)
    let (outer, n, inner) = splitAround(shape, axis: a)
    var outShape = shape
    if keepDims { outShape[a] = 1 } else { outShape.remove(at: a) }
    let out = Tensor(uninitialized: outShape)
    var argmax = [Int32](repeating: 0, count: outer * inner)
    let o = out.data, p = value.data
    for i in 0..<outer {
      for j in 0..<inner {
        var best = p[i * n * inner + j], bi = 0
        for k in 1..<Swift.max(1, n) where p[(i * n + k) * inner + j] > best { best = p[(i * n + k) * inner + j]; bi = k }
        o[i * inner + j] = best
        argmax[i * inner + j] = Int32(bi)
      }
    }
    let shape = self.shape
    return makeResult(out, inputs: [self]) { g in
      let dx = Tensor.zeros(shape)
      let d = dx.data, pg = g.data
      for i in 0..<outer { for j in 0..<inner { d[(i * n + Int(argmax[i * inner + j])) * inner + j] += pg[i * inner + j] } }
      self.accumulateGrad(owned: dx)
    }
  }
}
