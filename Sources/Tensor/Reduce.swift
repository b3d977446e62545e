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
  let o = out.data, p = x.data
  Parallel.forRange(outer, grain: Swift.max(1, 4096 / Swift.max(1, n * inner))) { r in
    var acc = [Double](repeating: 0, count: inner)
    for i in r {
      for j in 0..<inner { acc[j] = 0 }
      for k in 0..<n { let base = (i * n + k) * inner; for j in 0..<inner { acc[j] += Double(p[base + j]) } }
      for j in 0..<inner { o[i * inner + j] = Float(acc[j]) }
    }
  }
  return out
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
      for i in 0..<outer { for k in 0..<n { for j in 0..<inner { o[(i * n + k) * inner + j] = pg[i * inner + j] } } }
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
