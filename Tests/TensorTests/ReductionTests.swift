// Sums over one axis (sumMiddleAxis: sum(axis:), mean(axis:), and the gradient
// of a broadcast), broadcasting against a [outer, 1, inner] operand, and block
// copies of wide rows: against naive loops, on shapes that take every path, with
// the same bits on any thread count.
import XCTest

@testable import Tensor

final class ReductionTests: XCTestCase {
  private func randomTensor(_ shape: [Int], seed: UInt64) -> Tensor {
    var g = TestRNG(seed: seed)
    return Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in g.uniform() })
  }

  /// Σ_k x[i, k, j] in Double, k in order.
  private func naiveMiddleSum(_ x: Tensor, outer: Int, n: Int, inner: Int) -> [Float] {
    (0..<(outer * inner)).map { e in
      let (i, j) = (e / inner, e % inner)
      var s = 0.0
      for k in 0..<n { s += Double(x.data[(i * n + k) * inner + j]) }
      return Float(s)
    }
  }

  private func withThreads<T>(_ n: Int, _ body: () -> T) -> T {
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    Parallel.threads = n
    return body()
  }

  /// One block (many column tasks, or little work): each element sums its k in
  /// order, exactly the naive sum. Several blocks (a global pool: outer 1–2, few
  /// columns, long k): within float rounding of it. Both: the same bits on 1 and 3 threads.
  func testSumMiddleAxisMatchesNaiveSumOnEveryPath() {
    let cases: [(outer: Int, n: Int, inner: Int, blocks: Bool)] = [
      (3, 5, 7, false), (1, 1, 1, false), (2, 0, 4, false), (130, 9, 70, false),  // small or many tasks: one block
      (2, 4096, 96, true), (1, 40000, 3, true), (2, 2000, 130, true),           // pooled maps: k split in blocks
    ]
    for (ci, c) in cases.enumerated() {
      let x = randomTensor([c.outer, c.n, c.inner], seed: UInt64(10 + ci))
      let naive = naiveMiddleSum(x, outer: c.outer, n: c.n, inner: c.inner)
      let runs = [1, 3].map { t in
        withThreads(t) { () -> [Float] in
          let o = Tensor.filled([c.outer, c.inner], .nan)
          sumMiddleAxis(x.data, outer: c.outer, n: c.n, inner: c.inner, into: o.data)
          return Array(UnsafeBufferPointer(start: o.data, count: o.count))
        }
      }
      XCTAssertEqual(runs[0].map(\.bitPattern), runs[1].map(\.bitPattern), "\(c): 1 vs 3 threads")
      for (e, (got, want)) in zip(runs[0], naive).enumerated() {
        if c.blocks {
          XCTAssertEqual(got, want, accuracy: 1e-6 * Float(c.n), "\(c) element \(e)")
        } else {
          XCTAssertEqual(got.bitPattern, want.bitPattern, "\(c) element \(e): \(got) vs \(want)")
        }
      }
    }
  }

  func testSumAxisForwardAndBackwardOnAPooledShape() {
    // FR's global average pool: [B, H·W, C].mean(axis: 1), B = 2.
    let x = randomTensor([2, 3000, 40], seed: 3), w = randomTensor([2, 40], seed: 4)
    let v = Var(x, requiresGrad: true)
    withGradients {
      let m = v.mean(axis: 1)
      XCTAssertEqual(m.shape, [2, 40])
      let naive = naiveMiddleSum(x, outer: 2, n: 3000, inner: 40)
      for e in 0..<80 { XCTAssertEqual(m.value.data[e], naive[e] / 3000, accuracy: 1e-6) }
      (m * Var(w)).sum().backward()
    }
    let g = v.grad!
    for (i, k, j) in [(0, 0, 0), (1, 2999, 39), (0, 1500, 17), (1, 7, 3)] {
      XCTAssertEqual(g.data[(i * 3000 + k) * 40 + j], w.data[i * 40 + j] / 3000, accuracy: 1e-9, "(\(i), \(k), \(j))")
    }
  }

  /// Same-shape arithmetic above StreamingStores.minimumPassBytes
  /// runs 16 lanes at a time with stores past the caches, the last n mod 16
  /// elements one by one. Each op must give the same bits as the cached loop.
  func testStreamedElementwiseStoresMatchCachedStores() {
    defer { StreamingStores.minimumPassBytes = 32 << 20 }
    for n in [5, 16, 16 * 37 + 11] {
      let a = randomTensor([n], seed: UInt64(n)), b = randomTensor([n], seed: UInt64(n) + 1)
      for (name, op) in [("+", { (x: Var, y: Var) in x + y }), ("-", { $0 - $1 }), ("*", { $0 * $1 }), ("/", { $0 / $1 })] {
        StreamingStores.minimumPassBytes = .max
        let cached = op(Var(a), Var(b)).value.toArray()
        StreamingStores.minimumPassBytes = 0
        let streamed = op(Var(a), Var(b)).value.toArray()
        XCTAssertEqual(streamed.map(\.bitPattern), cached.map(\.bitPattern), "a \(name) b over \(n) elements")
        let expect = (0..<n).map { i -> Float in
          switch name { case "+": a.data[i] + b.data[i]; case "-": a.data[i] - b.data[i]
                        case "*": a.data[i] * b.data[i]; default: a.data[i] / b.data[i] }
        }
        XCTAssertEqual(streamed.map(\.bitPattern), expect.map(\.bitPattern), "a \(name) b over \(n) elements, against a plain loop")
      }
    }
  }

  func testMiddleBroadcastViews() {
    XCTAssertTrue(middleBroadcast([2, 1, 1, 4], to: [2, 3, 5, 4])! == (2, 15, 4))
    XCTAssertTrue(middleBroadcast([4], to: [2, 3, 4])! == (1, 6, 4))          // leading axes
    XCTAssertTrue(middleBroadcast([2, 3, 1], to: [2, 3, 4])! == (6, 4, 1))    // trailing axis
    XCTAssertTrue(middleBroadcast([2, 1, 1, 1], to: [2, 3, 1, 4])! == (2, 12, 1))  // a size-1 axis inside the run
    XCTAssertNil(middleBroadcast([1, 3, 1], to: [2, 3, 4]))   // two runs
    XCTAssertNil(middleBroadcast([2, 3, 4], to: [2, 3, 4]))   // no broadcast
  }

  /// x ⊙ s with s [B, 1, 1, C] (channel attention) and its gradients: the middle
  /// fast paths against index formulas, in both operand orders.
  func testChannelScaleBroadcastAndItsGradient() {
    let (b, h, w, c) = (2, 5, 7, 6)
    let x = randomTensor([b, h, w, c], seed: 5), s = randomTensor([b, 1, 1, c], seed: 6)
    for scaleFirst in [false, true] {
      let xv = Var(x, requiresGrad: true), sv = Var(s, requiresGrad: true)
      withGradients {
        let y = scaleFirst ? sv * xv : xv * sv
        XCTAssertEqual(y.shape, [b, h, w, c])
        for e in 0..<x.count {
          let (bi, ci) = (e / (h * w * c), e % c)
          XCTAssertEqual(y.value.data[e], x.data[e] * s.data[bi * c + ci], "y[\(e)] scaleFirst \(scaleFirst)")
        }
        y.sum().backward()
      }
      for bi in 0..<b {
        for ci in 0..<c {
          var want = 0.0
          for p in 0..<(h * w) { want += Double(x.data[(bi * h * w + p) * c + ci]) }
          XCTAssertEqual(sv.grad!.data[bi * c + ci], Float(want), accuracy: 1e-5, "ds[\(bi), \(ci)]")
        }
      }
      for e in 0..<x.count { XCTAssertEqual(xv.grad!.data[e], s.data[e / (h * w * c) * c + e % c]) }
    }
  }

  /// Split and concat along axis 0 of rows wider than one copy piece (16384
  /// floats, and not a multiple of it): every element lands where it belongs.
  func testSplitAndConcatOfWideRows() {
    let x = randomTensor([3, 2, 20011], seed: 7)
    let v = Var(x, requiresGrad: true), w = randomTensor([3, 2, 20011], seed: 8)
    let inner = 2 * 20011
    withGradients {
      let parts = split(v, sizes: [1, 2], axis: 0)
      for e in 0..<inner {
        XCTAssertEqual(parts[0].value.data[e], x.data[e])
        XCTAssertEqual(parts[1].value.data[e], x.data[inner + e])
        XCTAssertEqual(parts[1].value.data[inner + e], x.data[2 * inner + e])
      }
      let joined = concat([parts[1], parts[0]], axis: 0)
      for e in 0..<inner {
        XCTAssertEqual(joined.value.data[e], x.data[inner + e])
        XCTAssertEqual(joined.value.data[2 * inner + e], x.data[e])
      }
      (joined * Var(w)).sum().backward()
    }
    // x's rows 1, 2 became joined's rows 0, 1; x's row 0 became joined's row 2.
    for e in stride(from: 0, to: inner, by: 997) {
      XCTAssertEqual(v.grad!.data[e], w.data[2 * inner + e])
      XCTAssertEqual(v.grad!.data[inner + e], w.data[e])
      XCTAssertEqual(v.grad!.data[2 * inner + e], w.data[inner + e])
    }
  }
}
