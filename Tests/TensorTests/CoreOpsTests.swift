import Tensor
import XCTest

final class CoreOpsTests: XCTestCase {
  var rng = TestRNG(seed: 1)

  func testBroadcastArithmeticForward() {
    let a = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
    let b = Tensor(shape: [3], values: [10, 20, 30])
    let c = Tensor(shape: [2, 1], values: [100, 200])
    XCTAssertEqual((Var(a) + Var(b)).value.toArray(), [11, 22, 33, 14, 25, 36])
    XCTAssertEqual((Var(a) * Var(c)).value.toArray(), [100, 200, 300, 800, 1000, 1200])
    XCTAssertEqual((Var(b) - Var(c)).value.toArray(), [-90, -80, -70, -190, -180, -170])
    XCTAssertEqual((Var(a) / Var(Tensor(scalar: 2))).value.toArray(), [0.5, 1, 1.5, 2, 2.5, 3])
  }

  func testBroadcastArithmeticBackward() {
    let shapes: [([Int], [Int])] = [([3, 4], [3, 4]), ([2, 3, 5], [5]), ([2, 3, 5], [3, 1]), ([4, 1, 3], [1, 5, 1]), ([3], [])]
    for (sa, sb) in shapes {
      let a = rng.tensor(sa), b = rng.tensor(sb, 0.5, 2)
      checkGradients([a, b]) { $0[0] + $0[1] }
      checkGradients([a, b]) { $0[0] - $0[1] }
      checkGradients([a, b]) { $0[0] * $0[1] }
      checkGradients([a, b]) { $0[0] / $0[1] }
      checkGradients([b, a]) { $0[0] * $0[1] }
    }
    checkGradients([rng.tensor([3, 5])]) { $0[0] * 2.5 + 1 }
  }

  func testBiasGradientColumnSumsSameBitsOnAnyThreadCount() {
    // sumToShape to a suffix (a bias's gradient) and linear's dBias: the row
    // blocks depend only on the row count, so 1, 2 and 3 threads agree bit for
    // bit, and the sums match a Double loop. 200 rows: 64 blocks of 3–4 rows;
    // 37 rows: a block per row; 1 row.
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    for (rows, cols) in [(200, 37), (37, 5), (1, 16)] {
      let g = rng.tensor([rows, cols])
      var expected = [Double](repeating: 0, count: cols)
      for i in 0..<rows { for j in 0..<cols { expected[j] += Double(g.data[i * cols + j]) } }
      var runs: [[Float]] = []
      for threads in [1, 2, 3] {
        Parallel.threads = threads
        runs.append(sumToShape(g, [cols]).toArray())
      }
      XCTAssertEqual(runs[1], runs[0], "\(rows)×\(cols), 2 threads")
      XCTAssertEqual(runs[2], runs[0], "\(rows)×\(cols), 3 threads")
      for j in 0..<cols { XCTAssertEqual(Double(runs[0][j]), expected[j], accuracy: 1e-5 * Double(rows), "column \(j)") }
    }
  }

  func testReductionsForwardAndBackward() {
    let x = Tensor(shape: [2, 3], values: [1, 5, 3, 4, 2, 6])
    XCTAssertEqual(Var(x).sum().value.scalar, 21)
    XCTAssertEqual(Var(x).mean().value.scalar, 3.5)
    XCTAssertEqual(Var(x).sum(axis: 0).value.toArray(), [5, 7, 9])
    XCTAssertEqual(Var(x).mean(axis: 1, keepDims: true).value.shape, [2, 1])
    XCTAssertEqual(Var(x).max(axis: 1).value.toArray(), [5, 6])
    XCTAssertEqual(Var(x).max(axis: -2).value.toArray(), [4, 5, 6])
    for axis in 0..<3 {
      checkGradients([rng.tensor([3, 4, 5])]) { $0[0].sum(axis: axis) }
      checkGradients([rng.tensor([3, 4, 5])]) { $0[0].mean(axis: axis, keepDims: true) }
      // Distinct values 0.1 apart, so a finite-difference step never changes the argmax.
      var vals = (0..<60).map { Float($0) * 0.1 }
      for i in stride(from: 59, to: 0, by: -1) { vals.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
      checkGradients([Tensor(shape: [3, 4, 5], values: vals)]) { $0[0].max(axis: axis) }
    }
    checkGradients([rng.tensor([7])]) { $0[0].mean() }
  }

  func testLinearAgainstNaiveAndGradients() {
    let x = rng.tensor([2, 3, 5]), w = rng.tensor([4, 5]), b = rng.tensor([4])
    let y = linear(Var(x), weight: Var(w), bias: Var(b)).value
    XCTAssertEqual(y.shape, [2, 3, 4])
    for r in 0..<6 {
      for o in 0..<4 {
        var s = b.data[o]
        for i in 0..<5 { s += x.data[r * 5 + i] * w.data[o * 5 + i] }
        XCTAssertEqual(y.data[r * 4 + o], s, accuracy: 1e-5)
      }
    }
    checkGradients([x, w, b]) { linear($0[0], weight: $0[1], bias: $0[2]) }
    checkGradients([x, w]) { linear($0[0], weight: $0[1], bias: nil) }
  }

  func testMatmulAllTransposesAndBatches() {
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
      let a = rng.tensor(ta ? [2, 5, 3] : [2, 3, 5]), b = rng.tensor(tb ? [2, 4, 5] : [2, 5, 4])
      let y = matmul(Var(a), Var(b), transA: ta, transB: tb).value
      XCTAssertEqual(y.shape, [2, 3, 4])
      for bi in 0..<2 {
        for i in 0..<3 {
          for j in 0..<4 {
            var s: Float = 0
            for k in 0..<5 {
              let av = ta ? a.data[bi * 15 + k * 3 + i] : a.data[bi * 15 + i * 5 + k]
              let bv = tb ? b.data[bi * 20 + j * 5 + k] : b.data[bi * 20 + k * 4 + j]
              s += av * bv
            }
            XCTAssertEqual(y.data[bi * 12 + i * 4 + j], s, accuracy: 1e-5)
          }
        }
      }
      checkGradients([a, b]) { matmul($0[0], $0[1], transA: ta, transB: tb) }
      // A shared 2-D right operand.
      let b2 = rng.tensor(tb ? [4, 5] : [5, 4])
      checkGradients([a, b2]) { matmul($0[0], $0[1], transA: ta, transB: tb) }
    }
  }

  /// batchedGemm runs slices in parallel (batch ≥ threads) or splits each GEMM
  /// (batch < threads), and sums a shared operand's gradient slice by slice:
  /// forward and gradients agree across 1, 2 and 8 threads and with a Double
  /// reference, for every transpose, a shared 2-D right operand, and a left
  /// operand used twice (its second gradient adds into the first).
  func testMatmulSlicePathsAgreeAcrossThreadCounts() {
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    var g = TestRNG(seed: 41)
    func random(_ shape: [Int]) -> Tensor { Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in g.uniform() }) }
    for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
      for shared in [false, true] {
        let (bsz, m, k, n) = (3, 6, 40, 5)
        let a = random(ta ? [bsz, k, m] : [bsz, m, k])
        let b = random(shared ? (tb ? [n, k] : [k, n]) : (tb ? [bsz, n, k] : [bsz, k, n]))
        let seed = random([bsz, m, n])
        var runs: [[[Float]]] = []
        for threads in [1, 2, 8] {
          Parallel.threads = threads
          let av = Var(a.copy(), requiresGrad: true), bv = Var(b.copy(), requiresGrad: true)
          withGradients {
            let y = matmul(av, bv, transA: ta, transB: tb)
            let loss = (y * Var(seed)).sum() + (matmul(av, bv, transA: ta, transB: tb) * 0.5).sum()
            loss.backward()
            runs.append([y.value, av.grad!, bv.grad!].map { Array(UnsafeBufferPointer(start: $0.data, count: $0.count)) })
          }
        }
        for r in runs.dropFirst() {
          for (t, name) in ["y", "dA", "dB"].enumerated() {
            for (x, y) in zip(r[t], runs[0][t]) {
              XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(y)), "\(name) ta \(ta) tb \(tb) shared \(shared)")
            }
          }
        }
        // dA[s, i, q] = Σ_j (seed[s, i, j] + 0.5) · op(B_s)[q, j], in Double.
        for s in 0..<bsz {
          for i in 0..<m {
            for q in 0..<k {
              var want = 0.0
              for j in 0..<n {
                let bq = shared ? (tb ? b.data[j * k + q] : b.data[q * n + j])
                                : (tb ? b.data[(s * n + j) * k + q] : b.data[(s * k + q) * n + j])
                want += (Double(seed.data[(s * m + i) * n + j]) + 0.5) * Double(bq)
              }
              let got = runs[0][1][s * m * k + (ta ? q * m + i : i * k + q)]
              XCTAssertEqual(Double(got), want, accuracy: 1e-4, "dA[\(s), \(i), \(q)] ta \(ta) tb \(tb) shared \(shared)")
            }
          }
        }
      }
    }
  }

  func testGradientsAccumulateOverFanOutAndTapeReleases() {
    let x = Var(Tensor(shape: [3], values: [1, 2, 3]), requiresGrad: true)
    let y = withGradients { (x * x + x).sum() }
    XCTAssertEqual(Tape.shared.count, 3)
    y.backward()
    XCTAssertEqual(x.grad!.toArray(), [3, 5, 7])
    XCTAssertEqual(Tape.shared.count, 0)
    // No recording outside withGradients: evaluation costs no tape.
    _ = (x * x).sum()
    XCTAssertEqual(Tape.shared.count, 0)
  }

  func testPoolReusesBuffers() {
    let before = BufferPool.shared.mallocCount
    for _ in 0..<10 { _ = Tensor.zeros([12_345]) }
    XCTAssertLessThanOrEqual(BufferPool.shared.mallocCount - before, 1)
  }

}

final class TapeHookTests: XCTestCase {
  func testParameterReadyFiresAfterLastUse() {
    let w = Var(Tensor(shape: [2], values: [1, 2]), requiresGrad: true, name: "w")
    let u = Var(Tensor(shape: [2], values: [3, 4]), requiresGrad: true, name: "u")
    let x = Var(Tensor(shape: [2], values: [5, 6]))
    var order: [String] = []
    var gradAtReady: [Float] = []
    Tape.shared.onParameterGradientReady = { p in
      order.append(p.name!)
      if p.name == "w" { gradAtReady = p.grad!.toArray() }
    }
    defer { Tape.shared.onParameterGradientReady = nil }
    // w is used twice (first and last op), u once in the middle.
    let loss = withGradients { ((x * w) * u + w).sum() }
    loss.backward()
    XCTAssertEqual(order, ["u", "w"])
    // At the moment w is reported ready its gradient is complete: x·u + 1.
    XCTAssertEqual(gradAtReady, [16, 25])
  }
}
