// Layout ops: permute, concat/split, spatial pad/crop/roll, row gather.
// Each one copies (tensors are always contiguous, see Tensor.swift) and its
// backward is the inverse copy, adding into the input's gradient.
// Not here: reshape (a free view, MatMul.swift), strided slicing, broadcasting.
// Letters: B batch, H W map size, C channels, R rows outside the concat axis.

// MARK: Permute

/// Row-major strides of `shape`.
func contiguousStrides(_ shape: [Int]) -> [Int] {
  var s = [Int](repeating: 1, count: shape.count)
  var acc = 1
  for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
  return s
}

/// out = x.permute(dims): out[i0, i1, …] = x[…] with out axis a taken from x axis dims[a].
/// Walks the output one innermost row at a time; when the innermost axis stays
/// innermost the row is one contiguous copy.
public func permuteForward(out: Tensor, x: Tensor, dims: [Int]) {
  let r = dims.count, n = x.count
  if n == 0 { return }
  if r == 0 { out.data[0] = x.data[0]; return }
  let inStrides = contiguousStrides(x.shape)
  let src = dims.map { inStrides[$0] }   // x stride of each output axis
  let outShape = out.shape
  let inner = outShape[r - 1], innerStride = src[r - 1]
  let o = out.data, xp = x.data
  Parallel.forRange(n / inner, grain: max(1, 4096 / inner)) { rows in
    for row in rows {
      var rem = row, s = 0
      for d in stride(from: r - 2, through: 0, by: -1) {
        s += (rem % outShape[d]) * src[d]
        rem /= outShape[d]
      }
      let dst = o + row * inner
      if innerStride == 1 {
        dst.update(from: xp + s, count: inner)
      } else {
        for j in 0..<inner { dst[j] = xp[s + j * innerStride] }
      }
    }
  }
}

/// torch.permute (copies into the new order). Backward permutes the gradient back.
public func permute(_ x: Var, _ dims: [Int]) -> Var {
  let r = x.shape.count
  precondition(dims.count == r && Set(dims) == Set(0..<r), "permute: dims \(dims) for shape \(x.shape)")
  let out = Tensor(uninitialized: dims.map { x.shape[$0] })
  permuteForward(out: out, x: x.value, dims: dims)
  var inverse = [Int](repeating: 0, count: r)
  for (i, d) in dims.enumerated() { inverse[d] = i }
  let inShape = x.shape
  return makeResult(out, inputs: [x]) { g in
    let dx = Tensor(uninitialized: inShape)
    permuteForward(out: dx, x: g, dims: inverse)
    x.accumulateGrad(owned: dx)
  }
}

// MARK: Concat / split

/// For `rows` rows: dst[row·dstRow + dstOff ..< +width] (+)= src[row·srcRow + srcOff ..< +width].
/// The one copy behind concat, split and both their backwards.
func copyBlocks(dst: UnsafeMutablePointer<Float>, dstRow: Int, dstOff: Int,
                src: UnsafePointer<Float>, srcRow: Int, srcOff: Int,
                rows: Int, width: Int, accumulate: Bool) {
  if rows == 0 || width == 0 { return }
  // Rows wider than 16384 floats go in pieces, so that a few wide rows (Swin's
  // qkv split along axis 0 is one row per piece) still spread over the threads.
  let pieces = (width + 16383) / 16384, pieceWidth = (width + pieces - 1) / pieces
  Parallel.forRange(rows * pieces, grain: max(1, 16384 / pieceWidth)) { rr in
    for t in rr {
      let (row, j0) = (t / pieces, t % pieces * pieceWidth), count = min(pieceWidth, width - j0)
      let d = dst + row * dstRow + dstOff + j0, s = src + row * srcRow + srcOff + j0
      if accumulate { for j in 0..<count { d[j] += s[j] } } else { d.update(from: s, count: count) }
    }
  }
}

/// Normalises a possibly negative axis, failing with the shape in the message.
func normalizedAxis(_ axis: Int, rank: Int, _ what: String) -> Int {
  let a = axis < 0 ? axis + rank : axis
  precondition(a >= 0 && a < rank, "\(what): axis \(axis) out of range for rank \(rank)")
  return a
}

/// torch.cat(xs, dim: axis). Shapes must agree except along `axis`.
public func concat(_ xs: [Var], axis: Int) -> Var {
  precondition(!xs.isEmpty, "concat: no inputs")
  let shape0 = xs[0].shape, ax = normalizedAxis(axis, rank: shape0.count, "concat")
  for x in xs {
    precondition(x.shape.count == shape0.count
                   && (0..<shape0.count).allSatisfy { $0 == ax || x.shape[$0] == shape0[$0] },
                 "concat: shapes \(xs.map(\.shape)) differ outside axis \(axis)")
  }
  var outShape = shape0
  outShape[ax] = xs.reduce(0) { $0 + $1.shape[ax] }
  let rows = shape0[..<ax].reduce(1, *)
  let rowOut = outShape[ax...].reduce(1, *)
  let widths = xs.map { $0.shape[ax...].reduce(1, *) }
  var offsets = [Int](), acc = 0
  for w in widths { offsets.append(acc); acc += w }
  let out = Tensor(uninitialized: outShape)
  for (i, x) in xs.enumerated() {
    copyBlocks(dst: out.data, dstRow: rowOut, dstOff: offsets[i], src: x.value.data, srcRow: widths[i], srcOff: 0,
               rows: rows, width: widths[i], accumulate: false)
  }
  return makeResult(out, inputs: xs) { g in
    for (i, x) in xs.enumerated() where x.requiresGrad {
      copyBlocks(dst: x.gradBuffer().data, dstRow: widths[i], dstOff: 0, src: g.data, srcRow: rowOut,
                 srcOff: offsets[i], rows: rows, width: widths[i], accumulate: true)
    }
  }
}

/// torch.split(x, sizes, dim: axis): consecutive pieces of the given sizes (they
/// must add up to the axis length). Each piece records its own backward, which
/// adds its gradient into its slice of x's gradient.
public func split(_ x: Var, sizes: [Int], axis: Int) -> [Var] {
  let shape = x.shape, ax = normalizedAxis(axis, rank: shape.count, "split")
  precondition(sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == shape[ax],
               "split: sizes \(sizes) do not add up to axis \(axis) of \(shape)")
  let rows = shape[..<ax].reduce(1, *)
  let inner = shape[(ax + 1)...].reduce(1, *)
  let rowIn = shape[ax] * inner
  var pieces = [Var](), start = 0
  for size in sizes {
    var pieceShape = shape
    pieceShape[ax] = size
    let off = start * inner, width = size * inner
    let out = Tensor(uninitialized: pieceShape)
    copyBlocks(dst: out.data, dstRow: width, dstOff: 0, src: x.value.data, srcRow: rowIn, srcOff: off,
               rows: rows, width: width, accumulate: false)
    pieces.append(makeResult(out, inputs: [x]) { g in
      copyBlocks(dst: x.gradBuffer().data, dstRow: rowIn, dstOff: off, src: g.data, srcRow: width, srcOff: 0,
                 rows: rows, width: width, accumulate: true)
    })
    start += size
  }
  return pieces
}

// MARK: Spatial pad / crop

/// The top-left height×width of every image: dst[b, h, w, :] (+)= src[b, h, w, :]
/// for h < height, w < width, between two [B, H, W, C] maps of different H, W.
func copyTopLeft(dst: Tensor, src: Tensor, height: Int, width: Int, accumulate: Bool) {
  let (b, c) = (src.shape[0], src.shape[3])
  let (hd, wd, hs, ws) = (dst.shape[1], dst.shape[2], src.shape[1], src.shape[2])
  let d = dst.data, s = src.data, run = width * c
  if run == 0 { return }
  Parallel.forRange(b * height, grain: max(1, 16384 / run)) { rr in
    for r in rr {
      let (bi, h) = (r / height, r % height)
      let dp = d + (bi * hd + h) * wd * c, sp = s + (bi * hs + h) * ws * c
      if accumulate { for j in 0..<run { dp[j] += sp[j] } } else { dp.update(from: sp, count: run) }
    }
  }
}

/// Zero-pads [B, H, W, C] at the bottom and right (Swin's pad to a window multiple,
/// F.pad(x, (0, 0, 0, right, 0, bottom))). Returns x itself when both are 0.
public func padSpatial(_ x: Var, bottom: Int, right: Int) -> Var {
  precondition(x.shape.count == 4 && bottom >= 0 && right >= 0, "padSpatial: \(x.shape) by (\(bottom), \(right))")
  if bottom == 0 && right == 0 { return x }
  let (h, w) = (x.shape[1], x.shape[2])
  let out = Tensor.zeros([x.shape[0], h + bottom, w + right, x.shape[3]])
  copyTopLeft(dst: out, src: x.value, height: h, width: w, accumulate: false)
  return makeResult(out, inputs: [x]) { g in
    copyTopLeft(dst: x.gradBuffer(), src: g, height: h, width: w, accumulate: true)
  }
}

/// Keeps the top-left height×width of [B, H, W, C] (x[:, :height, :width, :]).
/// Returns x itself when nothing is cropped.
public func cropSpatial(_ x: Var, height: Int, width: Int) -> Var {
  precondition(x.shape.count == 4 && height >= 0 && width >= 0 && height <= x.shape[1] && width <= x.shape[2],
               "cropSpatial: \(x.shape) to \(height)×\(width)")
  if height == x.shape[1] && width == x.shape[2] { return x }
  let out = Tensor(uninitialized: [x.shape[0], height, width, x.shape[3]])
  copyTopLeft(dst: out, src: x.value, height: height, width: width, accumulate: false)
  return makeResult(out, inputs: [x]) { g in
    copyTopLeft(dst: x.gradBuffer(), src: g, height: height, width: width, accumulate: true)
  }
}

// MARK: Roll

/// out[b, h, w, :] = x[b, (h − shiftH) mod H, (w − shiftW) mod W, :], i.e.
/// torch.roll(x, shifts=(shiftH, shiftW), dims=(1, 2)). Each output row is two
/// contiguous copies.
public func rollSpatialForward(out: Tensor, x: Tensor, shiftH: Int, shiftW: Int) {
  let (b, h, w, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  if x.count == 0 { return }
  let sh = ((shiftH % h) + h) % h, sw = ((shiftW % w) + w) % w
  let o = out.data, xp = x.data, rowLen = w * c
  Parallel.forRange(b * h, grain: max(1, 16384 / rowLen)) { rr in
    for r in rr {
      let (bi, hi) = (r / h, r % h)
      let dst = o + r * rowLen, src = xp + (bi * h + (hi - sh + h) % h) * rowLen
      // out[0 ..< sw] = x[W − sw ..< W]; out[sw ..< W] = x[0 ..< W − sw]
      dst.update(from: src + (w - sw) * c, count: sw * c)
      (dst + sw * c).update(from: src, count: (w - sw) * c)
    }
  }
}

/// torch.roll on the H and W axes of [B, H, W, C]; shifts may be negative.
/// Backward rolls the gradient back by the opposite shifts.
public func rollSpatial(_ x: Var, shiftH: Int, shiftW: Int) -> Var {
  precondition(x.shape.count == 4, "rollSpatial: expects [B, H, W, C], got \(x.shape)")
  let out = Tensor(uninitialized: x.shape)
  rollSpatialForward(out: out, x: x.value, shiftH: shiftH, shiftW: shiftW)
  return makeResult(out, inputs: [x]) { g in
    let dx = Tensor(uninitialized: g.shape)
    rollSpatialForward(out: dx, x: g, shiftH: -shiftH, shiftW: -shiftW)
    x.accumulateGrad(owned: dx)
  }
}

// MARK: Gather

/// Rows of a table: out[i] = table[indices[i]] (table [n, D] → out [m, D]; any
/// trailing shape works, D is everything after the first axis), as
/// table[indices] in PyTorch (Swin's relative_position_bias_table[index]).
/// Backward scatter-adds: repeated indices sum their gradients.
public func gatherRows(_ table: Var, indices: [Int32]) -> Var {
  precondition(table.shape.count >= 1, "gatherRows: table must have rank ≥ 1, got \(table.shape)")
  let n = table.shape[0], d = table.shape.dropFirst().reduce(1, *)
  for (i, ix) in indices.enumerated() {
    precondition(ix >= 0 && Int(ix) < n, "gatherRows: indices[\(i)] = \(ix) outside table \(table.shape)")
  }
  let out = Tensor(uninitialized: [indices.count] + table.shape.dropFirst())
  let o = out.data, t = table.value.data
  indices.withUnsafeBufferPointer { idx in
    Parallel.forRange(indices.count, grain: max(1, 16384 / max(1, d))) { rr in
      for i in rr { (o + i * d).update(from: t + Int(idx[i]) * d, count: d) }
    }
  }
  return makeResult(out, inputs: [table]) { g in
    // Sequential: indices repeat (Swin's index has each entry w² times), so rows
    // would race; the work is m·D additions, tiny next to the attention itself.
    let dt = table.gradBuffer().data, gp = g.data
    for (i, ix) in indices.enumerated() {
      let dst = dt + Int(ix) * d, src = gp + i * d
      for j in 0..<d { dst[j] += src[j] }
    }
  }
}
