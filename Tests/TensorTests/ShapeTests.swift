// Layout ops (Shape.swift): forward against explicit index formulas, backward
// against finite differences.
import Tensor
import XCTest

/// Row-major flat offset of a multi-index.
func flatIndex(_ idx: [Int], _ shape: [Int]) -> Int {
  var o = 0
  for (i, n) in zip(idx, shape) { o = o * n + i }
  return o
}

/// Every multi-index of `shape`, row-major.
func allIndices(_ shape: [Int]) -> [[Int]] {
  var out: [[Int]] = [[]]
  for n in shape { out = out.flatMap { p in (0..<n).map { p + [$0] } } }
  return out
}

final class ShapeTests: XCTestCase {
  var rng = TestRNG(seed: 3)

  func testPermuteForwardMatchesIndexFormula() {
    let cases: [([Int], [Int])] = [([2, 3, 4], [2, 0, 1]), ([2, 3, 4, 5], [2, 0, 3, 1]), ([3, 4], [1, 0]),
                                   ([2, 3, 5], [0, 1, 2]), ([2, 1, 3, 2, 2], [4, 2, 0, 3, 1]), ([5], [0])]
    for (shape, dims) in cases {
      let x = rng.tensor(shape)
      let y = permute(Var(x), dims).value
      let outShape = dims.map { shape[$0] }
      XCTAssertEqual(y.shape, outShape, "permute \(shape) by \(dims)")
      for oi in allIndices(outShape) {
        var xi = [Int](repeating: 0, count: shape.count)
        for (a, d) in dims.enumerated() { xi[d] = oi[a] }  // out axis a is x axis dims[a]
        XCTAssertEqual(y.data[flatIndex(oi, outShape)], x.data[flatIndex(xi, shape)], "permute \(shape) \(dims) at \(oi)")
      }
    }
  }

  func testPermuteBackward() {
    checkGradients([rng.tensor([2, 3, 4])]) { permute($0[0], [2, 0, 1]) }
    checkGradients([rng.tensor([3, 5])]) { permute($0[0], [1, 0]) }
    checkGradients([rng.tensor([2, 3, 1, 5])], expectShape: [5, 1, 2, 3]) { permute($0[0], [3, 2, 0, 1]) }
    checkGradients([rng.tensor([2, 3, 4, 3])]) { permute($0[0], [0, 2, 1, 3]) }
  }

  func testConcatForwardEveryAxis() {
    let base = [2, 3, 4]
    for axis in [0, 1, 2, -1] {
      let ax = axis < 0 ? axis + 3 : axis
      let sizes = [1, 3, 2]
      let xs = sizes.map { s -> Tensor in var sh = base; sh[ax] = s; return rng.tensor(sh) }
      let y = concat(xs.map { Var($0) }, axis: axis).value
      var outShape = base
      outShape[ax] = sizes.reduce(0, +)
      XCTAssertEqual(y.shape, outShape)
      for oi in allIndices(outShape) {
        // Which input holds position oi[ax], and where inside it.
        var piece = 0, pos = oi[ax]
        while pos >= sizes[piece] { pos -= sizes[piece]; piece += 1 }
        var xi = oi
        xi[ax] = pos
        XCTAssertEqual(y.data[flatIndex(oi, outShape)], xs[piece].data[flatIndex(xi, xs[piece].shape)],
                       "concat axis \(axis) at \(oi)")
      }
    }
  }

  func testConcatBackward() {
    checkGradients([rng.tensor([2, 1, 3]), rng.tensor([2, 4, 3]), rng.tensor([2, 2, 3])]) { concat($0, axis: 1) }
    checkGradients([rng.tensor([3, 2]), rng.tensor([1, 2])], expectShape: [4, 2]) { concat($0, axis: 0) }
    checkGradients([rng.tensor([2, 3, 1]), rng.tensor([2, 3, 5])]) { concat($0, axis: -1) }
  }

  func testSplitForwardEveryAxis() {
    let shape = [3, 6, 5]
    for (axis, sizes) in [(0, [1, 2]), (1, [2, 1, 3]), (2, [4, 0, 1]), (-1, [5])] {
      let ax = axis < 0 ? axis + 3 : axis
      let x = rng.tensor(shape)
      let pieces = split(Var(x), sizes: sizes, axis: axis)
      XCTAssertEqual(pieces.count, sizes.count)
      var start = 0
      for (p, size) in zip(pieces, sizes) {
        var ps = shape
        ps[ax] = size
        XCTAssertEqual(p.shape, ps)
        for pi in allIndices(ps) {
          var xi = pi
          xi[ax] += start
          XCTAssertEqual(p.value.data[flatIndex(pi, ps)], x.data[flatIndex(xi, shape)], "split axis \(axis) at \(pi)")
        }
        start += size
      }
    }
  }

  func testSplitBackwardEachPieceOwnSlice() {
    // Pieces used with different weights, one unused: each must land in its own slice.
    let w0 = rng.tensor([3, 2, 5]), w2 = rng.tensor([3, 3, 5])
    checkGradients([rng.tensor([3, 6, 5])]) { v in
      let p = split(v[0], sizes: [2, 1, 3], axis: 1)
      return (p[0] * Var(w0)).sum() + (p[2] * Var(w2)).sum()
    }
    checkGradients([rng.tensor([4, 7])]) { v in
      let p = split(v[0], sizes: [3, 4], axis: -1)
      return concat([p[1], p[0] * 3], axis: 1)
    }
    checkGradients([rng.tensor([5, 3])]) { v in
      let p = split(v[0], sizes: [2, 3], axis: 0)
      return p[1] * 2 + p[1]
    }
  }

  func testPadAndCropForward() {
    let x = rng.tensor([2, 3, 4, 3])
    let p = padSpatial(Var(x), bottom: 2, right: 1).value
    XCTAssertEqual(p.shape, [2, 5, 5, 3])
    for i in allIndices(p.shape) {
      let expected: Float = i[1] < 3 && i[2] < 4 ? x.data[flatIndex(i, x.shape)] : 0
      XCTAssertEqual(p.data[flatIndex(i, p.shape)], expected, "pad at \(i)")
    }
    let c = cropSpatial(Var(x), height: 2, width: 3).value
    XCTAssertEqual(c.shape, [2, 2, 3, 3])
    for i in allIndices(c.shape) {
      XCTAssertEqual(c.data[flatIndex(i, c.shape)], x.data[flatIndex(i, x.shape)], "crop at \(i)")
    }
    XCTAssertEqual(cropSpatial(padSpatial(Var(x), bottom: 1, right: 3), height: 3, width: 4).value.toArray(), x.toArray())
    XCTAssertEqual(padSpatial(Var(x), bottom: 0, right: 2).value.shape, [2, 3, 6, 3])
  }

  func testPadAndCropBackward() {
    checkGradients([rng.tensor([2, 3, 2, 3])], expectShape: [2, 4, 5, 3]) { padSpatial($0[0], bottom: 1, right: 3) }
    checkGradients([rng.tensor([1, 3, 3, 2])]) { padSpatial($0[0], bottom: 2, right: 0) }
    checkGradients([rng.tensor([2, 4, 5, 2])], expectShape: [2, 3, 2, 2]) { cropSpatial($0[0], height: 3, width: 2) }
  }

  func testRollForwardHandCase() {
    // torch.roll(arange(9).view(1,3,3,1), shifts=(1,1), dims=(1,2)).flatten()
    let x = Tensor(shape: [1, 3, 3, 1], values: (0..<9).map(Float.init))
    XCTAssertEqual(rollSpatial(Var(x), shiftH: 1, shiftW: 1).value.toArray(), [8, 6, 7, 2, 0, 1, 5, 3, 4])
    XCTAssertEqual(rollSpatial(Var(x), shiftH: -1, shiftW: 0).value.toArray(), [3, 4, 5, 6, 7, 8, 0, 1, 2])
  }

  func testRollForwardMatchesIndexFormula() {
    let shape = [2, 4, 5, 3]
    let x = rng.tensor(shape)
    for (sh, sw) in [(1, 2), (-3, -1), (5, -7), (0, 0), (-2, 3)] {
      let y = rollSpatial(Var(x), shiftH: sh, shiftW: sw).value
      XCTAssertEqual(y.shape, shape)
      for i in allIndices(shape) {
        let h = ((i[1] - sh) % 4 + 4) % 4, w = ((i[2] - sw) % 5 + 5) % 5
        XCTAssertEqual(y.data[flatIndex(i, shape)], x.data[flatIndex([i[0], h, w, i[3]], shape)], "roll (\(sh), \(sw)) at \(i)")
      }
      XCTAssertEqual(rollSpatial(Var(y), shiftH: -sh, shiftW: -sw).value.toArray(), x.toArray(), "roll back (\(sh), \(sw))")
    }
  }

  func testRollBackward() {
    checkGradients([rng.tensor([2, 3, 5, 2])]) { rollSpatial($0[0], shiftH: -1, shiftW: 2) }
    checkGradients([rng.tensor([1, 4, 3, 3])]) { rollSpatial($0[0], shiftH: 3, shiftW: -4) }
  }

  func testGatherRowsForwardAndBackward() {
    let table = rng.tensor([5, 3])
    let idx: [Int32] = [4, 0, 0, 2, 4, 4, 1]
    let y = gatherRows(Var(table), indices: idx).value
    XCTAssertEqual(y.shape, [7, 3])
    for i in 0..<7 { for j in 0..<3 { XCTAssertEqual(y.data[i * 3 + j], table.data[Int(idx[i]) * 3 + j]) } }
    // Repeated indices must sum; row 3 is never gathered and gets zero gradient.
    checkGradients([table], expectShape: [7, 3]) { gatherRows($0[0], indices: idx) }
    checkGradients([rng.tensor([4, 2, 3])], expectShape: [3, 2, 3]) { gatherRows($0[0], indices: [1, 3, 1]) }
  }
}
