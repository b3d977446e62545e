// LayerNorm, BatchNorm (train, eval, SyncBN) and GroupNorm: forward against
// naive Double loops, backward against finite differences for every input.
@testable import Tensor
import XCTest

/// Naive normalisation reference: rows grouped by `key(row, channel)` share
/// statistics (biased variance, eps inside the root), then y = x̂·w[c] + b[c].
private func referenceNorm(_ x: Tensor, C: Int, w: Tensor?, b: Tensor?, eps: Double,
                           key: (Int, Int) -> Int, stats: [Int: (Double, Double)]? = nil) -> [Double] {
  let rows = x.count / C
  var s1 = [Int: Double](), s2 = [Int: Double](), n = [Int: Double]()
  for r in 0..<rows {
    for c in 0..<C {
      let k = key(r, c), v = Double(x.data[r * C + c])
      s1[k, default: 0] += v; s2[k, default: 0] += v * v; n[k, default: 0] += 1
    }
  }
  var out = [Double](repeating: 0, count: x.count)
  for r in 0..<rows {
    for c in 0..<C {
      let k = key(r, c)
      let (m, v) = stats?[k] ?? { let m = s1[k]! / n[k]!; return (m, s2[k]! / n[k]! - m * m) }()
      var y = (Double(x.data[r * C + c]) - m) / (v + eps).squareRoot()
      if let w = w { y *= Double(w.data[c]) }
      if let b = b { y += Double(b.data[c]) }
      out[r * C + c] = y
    }
  }
  return out
}

private func assertCloseD(_ a: Tensor, _ b: [Double], tol: Double = 1e-4, _ what: String,
                          file: StaticString = #filePath, line: UInt = #line) {
  XCTAssertEqual(a.count, b.count, what, file: file, line: line)
  for i in 0..<min(a.count, b.count) where abs(Double(a.data[i]) - b[i]) > tol * (1 + abs(b[i])) {
    XCTFail("\(what): element \(i): \(a.data[i]) vs reference \(b[i])", file: file, line: line)
    return
  }
}

final class NormTests: XCTestCase {
  var rng = TestRNG(seed: 11)

  // MARK: LayerNorm

  func testLayerNormForwardMatchesReference() {
    for C in [1, 7, 37] {
      let x = rng.tensor([3, 5, C], -2, 3), w = rng.tensor([C], 0.5, 1.5), b = rng.tensor([C])
      let ref = referenceNorm(x, C: C, w: w, b: b, eps: 1e-5) { r, _ in r }
      assertCloseD(layerNorm(Var(x), weight: Var(w), bias: Var(b)).value, ref, "layerNorm C=\(C)")
      let refPlain = referenceNorm(x, C: C, w: nil, b: nil, eps: 1e-3) { r, _ in r }
      assertCloseD(layerNorm(Var(x), weight: nil, bias: nil, eps: 1e-3).value, refPlain, "layerNorm plain C=\(C)")
    }
  }

  func testLayerNormGradients() {
    for C in [5, 37] {
      let x = rng.tensor([2, 3, C]), w = rng.tensor([C], 0.5, 1.5), b = rng.tensor([C])
      checkGradients([x, w, b], expectShape: [2, 3, C]) { layerNorm($0[0], weight: $0[1], bias: $0[2]) }
      checkGradients([x]) { layerNorm($0[0], weight: nil, bias: nil) }
      checkGradients([x, w]) { layerNorm($0[0], weight: $0[1], bias: nil) }
    }
  }

  // MARK: BatchNorm

  func testBatchNormTrainForwardAndRunningStats() {
    let C = 5
    let x = rng.tensor([2, 3, 4, C], -1, 2), w = rng.tensor([C], 0.5, 1.5), b = rng.tensor([C])
    let rm0 = rng.tensor([C]), rv0 = rng.tensor([C], 0.5, 2)
    let rm = rm0.copy(), rv = rv0.copy()
    let y = batchNorm(Var(x), weight: Var(w), bias: Var(b), runningMean: rm, runningVar: rv,
                      training: true, momentum: 0.3)
    assertCloseD(y.value, referenceNorm(x, C: C, w: w, b: b, eps: 1e-5) { _, c in c }, "batchNorm train")
    // running = (1 − m)·running + m·stat with the unbiased variance.
    let rows = x.count / C
    for c in 0..<C {
      let v = (0..<rows).map { Double(x.data[$0 * C + c]) }
      let mean = v.reduce(0, +) / Double(rows)
      let unbiased = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(rows - 1)
      XCTAssertEqual(Double(rm.data[c]), 0.7 * Double(rm0.data[c]) + 0.3 * mean, accuracy: 1e-5)
      XCTAssertEqual(Double(rv.data[c]), 0.7 * Double(rv0.data[c]) + 0.3 * unbiased, accuracy: 1e-5)
    }
  }

  func testBatchNormEvalUsesRunningStats() {
    let C = 4
    let x = rng.tensor([3, 2, C]), w = rng.tensor([C], 0.5, 1.5), b = rng.tensor([C])
    let rm = rng.tensor([C]), rv = rng.tensor([C], 0.5, 2)
    let (rmBefore, rvBefore) = (rm.toArray(), rv.toArray())
    let stats = Dictionary(uniqueKeysWithValues: (0..<C).map { ($0, (Double(rm.data[$0]), Double(rv.data[$0]))) })
    let y = batchNorm(Var(x), weight: Var(w), bias: Var(b), runningMean: rm, runningVar: rv, training: false)
    assertCloseD(y.value, referenceNorm(x, C: C, w: w, b: b, eps: 1e-5, key: { _, c in c }, stats: stats), "batchNorm eval")
    XCTAssertEqual(rm.toArray(), rmBefore, "eval must not touch running mean")
    XCTAssertEqual(rv.toArray(), rvBefore, "eval must not touch running var")
  }

  func testBatchNormGradientsTrainAndEval() {
    for shape in [[2, 3, 5], [7, 3]] {
      let C = shape.last!
      let x = rng.tensor(shape), w = rng.tensor([C], 0.5, 1.5), b = rng.tensor([C])
      let rm = rng.tensor([C]), rv = rng.tensor([C], 0.5, 2)
      checkGradients([x, w, b], expectShape: shape) {
        batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: rm.copy(), runningVar: rv.copy(), training: true)
      }
      checkGradients([x, w, b], expectShape: shape) {
        batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: rm, runningVar: rv, training: false)
      }
    }
  }

  /// BN's and GN's affine passes store past the caches above
  /// StreamingStores.minimumPassBytes (C a multiple of 16). That path
  /// must give the same bits as the cached one: forward output and every
  /// gradient, with and without the `extra` term (BN/GN training backward).
  func testStreamedAffineStoresMatchCachedStores() {
    defer { StreamingStores.minimumPassBytes = 32 << 20 }
    let shape = [3, 5, 7, 32], C = 32
    let x = rng.tensor(shape, -1, 2), w = rng.tensor([C], 0.5, 1.5), b = rng.tensor([C]), seed = rng.tensor(shape)
    func run(_ op: (Var, Var, Var) -> Var) -> [[Float]] {
      let xv = Var(x.copy(), requiresGrad: true), wv = Var(w.copy(), requiresGrad: true), bv = Var(b.copy(), requiresGrad: true)
      let y = withGradients { () -> Var in
        let y = op(xv, wv, bv)
        Tape.shared.backward(from: y, seed: seed)
        return y
      }
      XCTAssertEqual(Int(bitPattern: y.value.data) % 64, 0, "outputs are 64-byte aligned, so the streamed path runs")
      return [y.value.toArray(), xv.grad!.toArray(), wv.grad!.toArray(), bv.grad!.toArray()]
    }
    let ops: [(String, (Var, Var, Var) -> Var)] = [
      ("batchNorm train", { batchNorm($0, weight: $1, bias: $2, runningMean: .zeros([C]), runningVar: .ones([C]), training: true) }),
      ("batchNorm eval", { batchNorm($0, weight: $1, bias: $2, runningMean: .zeros([C]), runningVar: .ones([C]), training: false) }),
      ("groupNorm", { groupNorm($0, groups: 4, weight: $1, bias: $2) }),
    ]
    for (name, op) in ops {
      StreamingStores.minimumPassBytes = .max
      let cached = run(op)
      StreamingStores.minimumPassBytes = 0
      let streamed = run(op)
      for (i, part) in ["y", "dx", "dw", "db"].enumerated() {
        if let j = streamed[i].indices.first(where: { streamed[i][$0].bitPattern != cached[i][$0].bitPattern }) {
          XCTFail("\(name): \(part)[\(j)] is \(streamed[i][j]) streamed, \(cached[i][j]) cached")
        }
        XCTAssertEqual(streamed[i].count, cached[i].count, "\(name): \(part)")
      }
    }
  }

  /// Two ranks simulated in one process: each half's reducer adds the other
  /// half's buffers, captured by replaying the op (forward sums first, then
  /// backward sums once the forward statistics are right). The halves must
  /// then reproduce the single-process op on the union batch: outputs, input
  /// gradients, the sum of the weight/bias gradients, and the running stats.
  func testSyncBatchNormTwoRanksMatchUnionBatch() {
    let C = 3
    let xa = rng.tensor([2, 5, C], -1, 2), xb = rng.tensor([3, 5, C], 0, 3)  // unequal halves, different stats
    let ra = rng.tensor([2, 5, C]), rb = rng.tensor([3, 5, C])  // upstream gradients
    let w = rng.tensor([C], 0.5, 1.5), b = rng.tensor([C])
    let rm0 = rng.tensor([C]), rv0 = rng.tensor([C], 0.5, 2)

    func run(_ x: Tensor, _ r: Tensor, rm: Tensor, rv: Tensor, reduce: StatsReducer?)
      -> (y: Tensor, dx: Tensor, dw: Tensor, db: Tensor) {
      let vx = Var(x.copy(), requiresGrad: true), vw = Var(w.copy(), requiresGrad: true), vb = Var(b.copy(), requiresGrad: true)
      let y = withGradients { batchNorm(vx, weight: vw, bias: vb, runningMean: rm, runningVar: rv, training: true, reduce: reduce) }
      withGradients { (y * Var(r)).sum() }.backward()
      return (y.value, vx.grad!, vw.grad!, vb.grad!)
    }
    // Reducer that records this rank's buffers (call 0: forward, 1: backward) and adds the peer's.
    final class Rank {
      var own: [[Double]] = [], peer: [[Double]] = []
      var reducer: StatsReducer {
        var call = 0
        return { buf in
          let k = call % 2; call += 1
          if self.own.count <= k { self.own.append(Array(buf)) } else { self.own[k] = Array(buf) }
          if k < self.peer.count { for i in 0..<buf.count { buf[i] += self.peer[k][i] } }
        }
      }
    }
    let a = Rank(), bRank = Rank()
    for _ in 0..<3 {  // pass 1 learns forward sums, pass 2 backward sums, pass 3 is exact
      _ = run(xa, ra, rm: rm0.copy(), rv: rv0.copy(), reduce: a.reducer)
      _ = run(xb, rb, rm: rm0.copy(), rv: rv0.copy(), reduce: bRank.reducer)
      a.peer = bRank.own; bRank.peer = a.own
    }
    let (rmA, rvA, rmB, rvB) = (rm0.copy(), rv0.copy(), rm0.copy(), rv0.copy())
    let outA = run(xa, ra, rm: rmA, rv: rvA, reduce: a.reducer)
    let outB = run(xb, rb, rm: rmB, rv: rvB, reduce: bRank.reducer)

    let xu = Tensor(shape: [5, 5, C], values: xa.toArray() + xb.toArray())
    let ru = Tensor(shape: [5, 5, C], values: ra.toArray() + rb.toArray())
    let (rmU, rvU) = (rm0.copy(), rv0.copy())
    let union = run(xu, ru, rm: rmU, rv: rvU, reduce: nil)

    let cat = { (p: Tensor, q: Tensor) in Tensor(shape: [p.count + q.count], values: p.toArray() + q.toArray()) }
    assertClose(cat(outA.y, outB.y), union.y, rtol: 1e-4, atol: 1e-5, "SyncBN output")
    assertClose(cat(outA.dx, outB.dx), union.dx, rtol: 1e-3, atol: 1e-5, "SyncBN input gradient")
    let dwSum = outA.dw.copy(); dwSum.add(outB.dw)
    let dbSum = outA.db.copy(); dbSum.add(outB.db)
    assertClose(dwSum, union.dw, rtol: 1e-4, atol: 1e-5, "SyncBN weight gradient (summed over ranks)")
    assertClose(dbSum, union.db, rtol: 1e-4, atol: 1e-5, "SyncBN bias gradient (summed over ranks)")
    for (rm, rv) in [(rmA, rvA), (rmB, rvB)] {
      assertClose(rm, rmU, "SyncBN running mean")
      assertClose(rv, rvU, "SyncBN running var (unbiased over the union count)")
    }
    // Without the reducer a half normalises with its own statistics: the test can fail.
    let alone = run(xa, ra, rm: rm0.copy(), rv: rv0.copy(), reduce: nil)
    XCTAssertGreaterThan(abs(alone.y.data[0] - union.y.data[0]), 1e-3)
  }

  /// A reducer that doubles every sum stands for two ranks holding the same
  /// batch: statistics of [x; x] equal those of x, but the count is 2N, so the
  /// unbiased running variance uses 2N/(2N−1).
  func testSyncBatchNormDoublingReducerCountsGlobalBatch() {
    let C = 4
    let x = rng.tensor([3, 2, C], -1, 2), w = rng.tensor([C], 0.5, 1.5), b = rng.tensor([C])
    let doubling: StatsReducer = { buf in for i in 0..<buf.count { buf[i] *= 2 } }
    let (rm1, rv1, rm2, rv2) = (Tensor.zeros([C]), Tensor.ones([C]), Tensor.zeros([C]), Tensor.ones([C]))
    let y1 = batchNorm(Var(x), weight: Var(w), bias: Var(b), runningMean: rm1, runningVar: rv1, training: true, momentum: 1)
    let y2 = batchNorm(Var(x), weight: Var(w), bias: Var(b), runningMean: rm2, runningVar: rv2, training: true,
                       momentum: 1, reduce: doubling)
    assertClose(y1.value, y2.value, "same statistics")
    assertClose(rm1, rm2, "same running mean")
    let n = Double(x.count / C)
    for c in 0..<C {
      let biased = Double(rv1.data[c]) * (n - 1) / n
      XCTAssertEqual(Double(rv2.data[c]), biased * 2 * n / (2 * n - 1), accuracy: 1e-5)
    }
    checkGradients([x, w, b]) {
      batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: .zeros([C]), runningVar: .ones([C]), training: true,
                reduce: doubling)
    }
  }

  // MARK: GroupNorm

  func testGroupNormForwardMatchesReference() {
    let (B, H, W, C, G) = (2, 3, 2, 6, 3)
    let x = rng.tensor([B, H, W, C], -1, 2), w = rng.tensor([C], 0.5, 1.5), b = rng.tensor([C])
    let P = H * W
    let ref = referenceNorm(x, C: C, w: w, b: b, eps: 1e-5) { r, c in (r / P) * G + c / (C / G) }
    assertCloseD(groupNorm(Var(x), groups: G, weight: Var(w), bias: Var(b)).value, ref, "groupNorm")
    // groups == 1 is LayerNorm over (H, W, C); groups == C is instance norm.
    let ref1 = referenceNorm(x, C: C, w: w, b: b, eps: 1e-5) { r, _ in r / P }
    assertCloseD(groupNorm(Var(x), groups: 1, weight: Var(w), bias: Var(b)).value, ref1, "groupNorm G=1")
    let refC = referenceNorm(x, C: C, w: w, b: b, eps: 1e-5) { r, c in (r / P) * C + c }
    assertCloseD(groupNorm(Var(x), groups: C, weight: Var(w), bias: Var(b)).value, refC, "groupNorm G=C")
  }

  func testGroupNormGradients() {
    for (shape, G) in [([2, 3, 2, 6], 3), ([3, 1, 5, 4], 2), ([1, 2, 2, 3], 1)] {
      let C = shape.last!
      let x = rng.tensor(shape), w = rng.tensor([C], 0.5, 1.5), b = rng.tensor([C])
      checkGradients([x, w, b], expectShape: shape) { groupNorm($0[0], groups: G, weight: $0[1], bias: $0[2]) }
    }
  }

  /// batchNormGroup: each member equals batchNorm on its own, bit for bit
  /// (outputs, input/weight/bias gradients, running stats), with a reducer
  /// (here: as if an identical rank added its sums, ×2) called once in forward
  /// and once in backward for the whole group instead of once per member each
  /// way; a member whose output gets no gradient contributes zeros.
  func testBatchNormGroupMatchesSeparateCallsWithOneReductionEachWay() {
    let shapes = [[2, 3, 4, 5], [1, 6, 7], [4, 3, 16]]
    let xs = shapes.map { rng.tensor($0, -1, 2) }
    let rs = shapes.map { rng.tensor($0) }
    let ws = shapes.map { rng.tensor([$0.last!], 0.5, 1.5) }, bs = shapes.map { rng.tensor([$0.last!]) }
    final class Counter { var calls = 0 }
    func run(grouped: Bool, unused: Int?) -> (outs: [[Float]], calls: Int) {
      let counter = Counter()
      let reduce: StatsReducer = { buf in counter.calls += 1; for i in 0..<buf.count { buf[i] *= 2 } }
      let vx = xs.map { Var($0.copy(), requiresGrad: true) }
      let vw = ws.map { Var($0.copy(), requiresGrad: true) }, vb = bs.map { Var($0.copy(), requiresGrad: true) }
      let rm = shapes.map { Tensor.zeros([$0.last!]) }, rv = shapes.map { Tensor.ones([$0.last!]) }
      let ys = withGradients { () -> [Var] in
        if grouped {
          return batchNormGroup(vx, weights: vw, biases: vb, runningMeans: rm, runningVars: rv, training: true,
                                reduce: reduce)
        }
        return (0..<3).map {
          batchNorm(vx[$0], weight: vw[$0], bias: vb[$0], runningMean: rm[$0], runningVar: rv[$0], training: true,
                    reduce: reduce)
        }
      }
      // Member 1 twice (its gradient accumulates from two consumers), member `unused` not at all.
      let terms = withGradients { (0..<3).filter { $0 != unused }.map { (ys[$0] * Var(rs[$0])).sum() } }
      var loss = withGradients { terms.dropFirst().reduce(terms[0], +) }
      if unused != 1 { loss = withGradients { loss + (ys[1] * ys[1]).sum() } }
      loss.backward()
      let outs = (0..<3).flatMap { i in
        [ys[i].value.toArray(), vx[i].grad?.toArray() ?? [], vw[i].grad?.toArray() ?? [], vb[i].grad?.toArray() ?? [],
         rm[i].toArray(), rv[i].toArray()]
      }
      return (outs, counter.calls)
    }
    for unused in [nil, 0, 1, 2] as [Int?] {
      let separate = run(grouped: false, unused: unused), grouped = run(grouped: true, unused: unused)
      XCTAssertEqual(grouped.outs.map { $0.map(\.bitPattern) }, separate.outs.map { $0.map(\.bitPattern) },
                     "unused member \(String(describing: unused))")
      XCTAssertEqual(grouped.calls, 2, "unused member \(String(describing: unused))")
      XCTAssertEqual(separate.calls, unused == nil ? 6 : 5)  // batchNorm skips the backward of an unused output
    }
  }

  // MARK: BatchNorm + ReLU, fused

  /// `batchNorm(relu: true)` and `batchNormGroup(relu:)` make ReLU in BN's own
  /// passes. They must give the bits of batchNorm followed by relu: output,
  /// input gradient (overwritten and accumulated), weight and bias gradients
  /// and running stats, in training (with a SyncBN-like reducer, grouped and
  /// not) and eval, on the cached and the streamed stores, C a multiple of 16
  /// (the SIMD rows) and not (the scalar tail).
  func testBatchNormWithReLUMatchesBatchNormThenReLU() {
    defer { StreamingStores.minimumPassBytes = 32 << 20 }
    let shapes = [[2, 3, 4, 32], [1, 6, 7], [3, 5, 19]]
    let xs = shapes.map { rng.tensor($0, -1, 2) }, rs = shapes.map { rng.tensor($0) }
    let ws = shapes.map { rng.tensor([$0.last!], -1.5, 1.5) }, bs = shapes.map { rng.tensor([$0.last!]) }
    let rms = shapes.map { rng.tensor([$0.last!]) }, rvs = shapes.map { rng.tensor([$0.last!], 0.5, 2) }
    let reduce: StatsReducer = { buf in for i in 0..<buf.count { buf[i] *= 2 } }
    func run(fused: Bool, grouped: Bool, training: Bool) -> [[UInt32]] {
      let vx = xs.map { Var($0.copy(), requiresGrad: true) }
      let vw = ws.map { Var($0.copy(), requiresGrad: true) }, vb = bs.map { Var($0.copy(), requiresGrad: true) }
      let rm = rms.map { $0.copy() }, rv = rvs.map { $0.copy() }
      let withReLU: [Bool] = [true, false, true]
      let ys = withGradients { () -> [Var] in
        let outs: [Var]
        if grouped {
          outs = batchNormGroup(vx, weights: vw, biases: vb, runningMeans: rm, runningVars: rv, training: training,
                                reduce: reduce, relu: fused ? withReLU : nil)
        } else {
          outs = (0..<3).map {
            batchNorm(vx[$0], weight: vw[$0], bias: vb[$0], runningMean: rm[$0], runningVar: rv[$0],
                      training: training, reduce: reduce, relu: fused && withReLU[$0])
          }
        }
        return fused ? outs : (0..<3).map { withReLU[$0] ? relu(outs[$0]) : outs[$0] }
      }
      // Member 0's input is also used directly, so its gradient accumulates.
      let loss = withGradients { () -> Var in
        let terms = (0..<3).map { (ys[$0] * Var(rs[$0])).sum() }
        return terms[0] + terms[1] + terms[2] + (vx[0] * vx[0]).sum()
      }
      loss.backward()
      return (0..<3).flatMap { i in
        [ys[i].value, vx[i].grad!, vw[i].grad!, vb[i].grad!, rm[i], rv[i]].map { $0.toArray().map(\.bitPattern) }
      }
    }
    for minimum in [Int.max, 0] {
      StreamingStores.minimumPassBytes = minimum
      for training in [true, false] {
        for grouped in [true, false] {
          let what = "training \(training), grouped \(grouped), streamed \(minimum == 0)"
          let fused = run(fused: true, grouped: grouped, training: training)
          let separate = run(fused: false, grouped: grouped, training: training)
          let parts = ["y", "dx", "dw", "db", "running mean", "running var"]
          for (k, (f, u)) in zip(fused, separate).enumerated() where f != u {
            XCTFail("\(what): member \(k / 6)'s \(parts[k % 6]) differs from batchNorm then relu")
          }
          XCTAssertTrue(fused[0].contains(0) && fused[0].contains { $0 != 0 }, "\(what): ReLU both clamps and passes")
        }
      }
    }
  }

  /// Finite differences through the fused op. Training: each channel's bias
  /// (±4, against x̂·w within ±3) puts the whole channel on one side of the
  /// kink, so both sides are checked and no value sits at it. Eval: inputs
  /// ≥ 0.3 from the running mean with w·rstd ≥ 0.5 and zero shift, so the mask
  /// varies within a channel and every pre-activation is ≥ 0.15 from 0.
  func testBatchNormWithReLUGradients() {
    let shape = [2, 3, 4], C = 4
    let x = rng.tensor(shape), w = Tensor(shape: [C], values: [1, -1.2, 0.8, 1.5])
    let b = Tensor(shape: [C], values: [4, 4, -4, -4])
    checkGradients([x, w, b], expectShape: shape) {
      batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: .zeros([C]), runningVar: .ones([C]),
                training: true, relu: true)
    }
    let xe = Tensor(shape: shape, values: rng.tensor(shape).toArray().map { $0 < 0 ? $0 - 0.3 : $0 + 0.3 })
    checkGradients([xe, Tensor(shape: [C], values: [1, 0.6, 0.8, 1.2]), Tensor.zeros([C])], expectShape: shape) {
      batchNorm($0[0], weight: $0[1], bias: $0[2], runningMean: .zeros([C]), runningVar: .ones([C]),
                training: false, relu: true)
    }
  }

  // MARK: Per-channel sums

  /// `blockedColumnSums`: the Double sums of every column, the same bits on
  /// 1 and 3 threads, for widths off the 8-Double stride (the padding between
  /// blocks must not leak in), few rows of many columns (fewer blocks, columns
  /// added in parallel) and many rows; and its partial sums come from the
  /// buffer pool: one take per call and, once the pool holds a buffer of that
  /// size, no new allocation. A malloc'd buffer of 1 MiB and more was mapped
  /// and faulted in afresh on every call inside a training step (session 14).
  func testBlockedColumnSumsAreThreadIndependentAndReuseThePool() {
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    for (rows, width) in [(200, 13), (7, 3), (1000, 2048), (40, 5000)] {
      // Values with full 53-bit mantissas, so that the summation order shows in the bits.
      let values = (0..<rows * width).map { _ in Double(rng.uniform()) + Double(rng.uniform()) * 1e-9 }
      var plain = [Double](repeating: 0, count: width)
      for r in 0..<rows { for j in 0..<width { plain[j] += values[r * width + j] } }
      func sums() -> [Double] {
        values.withUnsafeBufferPointer { v in
          blockedColumnSums(rows: rows, width: width) { r, acc in
            for row in r { for j in 0..<width { acc[j] += v[row * width + j] } }
          }
        }
      }
      Parallel.threads = 1
      let one = sums()
      Parallel.threads = 3
      let three = sums()
      if let j = (0..<width).first(where: { one[$0].bitPattern != three[$0].bitPattern }) {
        XCTFail("column \(j): \(one[j]) on 1 thread, \(three[j]) on 3, rows \(rows), width \(width)")
      }
      if let j = (0..<width).first(where: { abs(one[$0] - plain[$0]) > 1e-12 * (1 + abs(plain[$0])) }) {
        XCTFail("column \(j): \(one[j]) against \(plain[j]), rows \(rows), width \(width)")
      }
      let takes = BufferPool.shared.takeCount, mallocs = BufferPool.shared.mallocCount
      for _ in 0..<5 { _ = sums() }
      XCTAssertEqual(BufferPool.shared.takeCount - takes, 5, "one pool buffer per call, rows \(rows), width \(width)")
      XCTAssertEqual(BufferPool.shared.mallocCount, mallocs, "the pool's buffer reused, rows \(rows), width \(width)")
    }
  }

  /// The fused ReLU at its edges: −0, +0, NaN and ±inf before the clamp, on
  /// the SIMD rows (C = 16) and the scalar tail (C = 5). The clamp must give
  /// `relu`'s bits (max(v, 0): −0 → +0, NaN stays NaN) and the gate ReLU
  /// backward's (v > 0 ? g : 0). Scale 1 and shift −0 keep each value as it is.
  func testFusedReLUMatchesReLUAtZerosNaNAndInfinities() {
    let edge: [Float] = [-0.0, 0, .nan, -.infinity, .infinity, -1, 1, .leastNonzeroMagnitude]
    for C in [16, 5] {
      let rows = 4, n = rows * C
      let x = (0..<n).map { edge[$0 % edge.count] }, g = (0..<n).map { Float($0 + 1) }
      let scale = [Float](repeating: 1, count: C), shift = [Float](repeating: -0.0, count: C)
      var plain = [Float](repeating: 7, count: n), clamped = plain, gated = plain
      x.withUnsafeBufferPointer { xp in
        channelAffine(out: &plain, accumulate: false, x: xp.baseAddress!, rows: rows, C: C, rowsPerSet: rows,
                      scale: scale, shift: shift)
        channelAffine(out: &clamped, accumulate: false, x: xp.baseAddress!, rows: rows, C: C, rowsPerSet: rows,
                      scale: scale, shift: shift, relu: .clamp)
        g.withUnsafeBufferPointer { gp in
          channelAffine(out: &gated, accumulate: false, x: gp.baseAddress!, rows: rows, C: C, rowsPerSet: rows,
                        scale: scale, shift: [Float](repeating: 0, count: C), relu: .gate(pre: xp.baseAddress!, preShift: shift))
        }
      }
      let viaReLU = relu(Var(Tensor(shape: [n], values: plain))).value.toArray()
      XCTAssertEqual(clamped.map(\.bitPattern), viaReLU.map(\.bitPattern), "clamp, C \(C)")
      let mask = (0..<n).map { plain[$0] > 0 ? g[$0] : 0 }
      XCTAssertEqual(gated.map(\.bitPattern), mask.map(\.bitPattern), "gate, C \(C)")
    }
  }
}
