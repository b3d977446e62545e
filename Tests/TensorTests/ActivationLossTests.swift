// Activations, softmax on every axis, losses and dropout: forward against
// naive Double loops, backward against finite differences.
import Foundation
import Tensor
import XCTest

private func assertCloseD(_ a: Tensor, _ b: [Double], tol: Double = 1e-5, _ what: String,
                          file: StaticString = #filePath, line: UInt = #line) {
  XCTAssertEqual(a.count, b.count, what, file: file, line: line)
  for i in 0..<min(a.count, b.count) where !(abs(Double(a.data[i]) - b[i]) <= tol * (1 + abs(b[i]))) {
    XCTFail("\(what): element \(i): \(a.data[i]) vs reference \(b[i])", file: file, line: line)
    return
  }
}

private func sigmoidD(_ x: Double) -> Double { 1 / (1 + exp(-x)) }

/// Softmax (or log-softmax) of x over `axis`, by index arithmetic on the full shape.
private func referenceSoftmax(_ x: Tensor, axis: Int, log: Bool) -> [Double] {
  let shape = x.shape
  let outer = shape[..<axis].reduce(1, *), n = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
  var out = [Double](repeating: 0, count: x.count)
  for o in 0..<outer {
    for j in 0..<inner {
      let idx = (0..<n).map { (o * n + $0) * inner + j }
      let lse = Foundation.log(idx.map { exp(Double(x.data[$0])) }.reduce(0, +))
      for i in idx { out[i] = log ? Double(x.data[i]) - lse : exp(Double(x.data[i]) - lse) }
    }
  }
  return out
}

final class ActivationLossTests: XCTestCase {
  var rng = TestRNG(seed: 23)

  // MARK: Pointwise activations

  func testPointwiseActivationsForward() {
    let x = Tensor(shape: [2, 4], values: [-3, -0.5, 0, 0.7, 2.5, -100, 100, 1e-3])
    let v = x.toArray().map(Double.init)
    assertCloseD(gelu(Var(x)).value, v.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }, "gelu")
    assertCloseD(relu(Var(x)).value, v.map { max($0, 0) }, "relu")
    assertCloseD(sigmoid(Var(x)).value, v.map(sigmoidD), "sigmoid")
    let s = sigmoid(Var(x)).value
    XCTAssertTrue(s.data[5] >= 0 && s.data[5] < 1e-30 && s.data[6] == 1, "σ(±100) saturates without NaN")
  }

  func testPointwiseActivationsGradients() {
    let x = rng.tensor([3, 7], -3, 3)
    checkGradients([x], expectShape: [3, 7]) { gelu($0[0]) }
    checkGradients([x]) { sigmoid($0[0]) }
    // ReLU away from the kink, so a finite-difference step never crosses 0.
    let vals = (0..<21).map { i -> Float in let v = rng.uniform(0.1, 2); return i % 2 == 0 ? v : -v }
    checkGradients([Tensor(shape: [3, 7], values: vals)]) { relu($0[0]) }
  }

  /// The AVX-512 GELU kernels (gelu.c) against Double and against the Swift loops:
  /// lengths around the 16-lane vector (masked tails), every interval of the
  /// piecewise tables (|x| < 7.875), the clamp beyond them, 0, a NaN, and the
  /// backward both overwriting and accumulating. Against Double the bound is
  /// the tables' (≤ 4.1e-8 per unit of |x|, plus rounding); against the Swift
  /// loops it is their fastErf's 4.2e-7.
  func testGeluKernelMatchesDoubleAndSwiftLoops() throws {
    try XCTSkipUnless(GELUTuning.avx512, "this CPU has no AVX-512F: the Swift loops are the only path")
    defer { GELUTuning.avx512 = true }
    func run(_ x: Tensor, _ seed: Tensor, accumulate: Bool) -> (y: Tensor, dx: Tensor) {
      let xv = Var(x, requiresGrad: true)
      if accumulate { xv.grad = Tensor(shape: x.shape, values: [Float](repeating: 0.25, count: x.count)) }
      let y = withGradients { () -> Var in
        let y = gelu(xv)
        Tape.shared.backward(from: y, seed: seed)
        return y
      }
      return (y.value, xv.grad!)
    }
    for n in [1, 15, 16, 17, 33, 1000] {
      var values = (0..<n).map { _ in rng.uniform(-8, 8) }
      for (i, v) in [Float(-4), 4, -20, 20, 0, 1e-3, -100, 7.87, -7.9].enumerated() where i < n { values[i] = v }
      let x = Tensor(shape: [n], values: values), seed = rng.tensor([n])
      let v = values.map(Double.init), g = seed.toArray().map(Double.init)
      let yRef = v.map { 0.5 * $0 * (1 + erf($0 / 2.0.squareRoot())) }
      let slope = v.map { 0.5 * (1 + erf($0 / 2.0.squareRoot())) + $0 * exp(-0.5 * $0 * $0) / (2 * Double.pi).squareRoot() }
      for accumulate in [false, true] {
        let dxRef = (0..<n).map { g[$0] * slope[$0] + (accumulate ? 0.25 : 0) }
        GELUTuning.avx512 = true
        let fast = run(x, seed, accumulate: accumulate)
        GELUTuning.avx512 = false
        let swift = run(x, seed, accumulate: accumulate)
        assertCloseD(fast.y, yRef, tol: 3e-7, "kernel forward, n = \(n)")
        assertCloseD(fast.dx, dxRef, tol: 3e-7, "kernel backward, n = \(n), accumulate \(accumulate)")
        assertCloseD(fast.y, swift.y.toArray().map(Double.init), tol: 2e-6, "kernel vs Swift forward, n = \(n)")
        assertCloseD(fast.dx, swift.dx.toArray().map(Double.init), tol: 2e-6, "kernel vs Swift backward, n = \(n)")
      }
    }
    // A NaN stays a NaN, forward and backward, as in PyTorch (a clamp must not turn it into a number).
    GELUTuning.avx512 = true
    let nan = run(Tensor(shape: [3], values: [1, .nan, -1]), Tensor(shape: [3], values: [1, 1, 1]), accumulate: false)
    XCTAssertTrue(nan.y.data[1].isNaN && nan.dx.data[1].isNaN, "gelu(NaN): \(nan.y.data[1]), slope \(nan.dx.data[1])")
    XCTAssertFalse(nan.y.data[0].isNaN || nan.dx.data[2].isNaN, "a NaN leaked into its neighbours")
  }

  // MARK: Softmax

  func testSoftmaxForwardAllAxes() {
    for shape in [[3, 4, 5], [2, 3, 70], [2, 67, 3]] {  // 70 and 67 cross the 64-column block
      let x = rng.tensor(shape, -4, 4)
      for axis in 0..<3 {
        assertCloseD(softmax(Var(x), axis: axis).value, referenceSoftmax(x, axis: axis, log: false), "softmax \(shape) axis \(axis)")
        assertCloseD(logSoftmax(Var(x), axis: axis).value, referenceSoftmax(x, axis: axis, log: true), "logSoftmax \(shape) axis \(axis)")
      }
      assertClose(softmax(Var(x), axis: -1).value, softmax(Var(x), axis: 2).value, "negative axis")
    }
    // Large logits: the maximum is subtracted, nothing overflows.
    let big = Tensor(shape: [1, 3], values: [1000, 999, -1000])
    assertCloseD(softmax(Var(big), axis: 1).value, referenceSoftmax(Tensor(shape: [1, 3], values: [1, 0, -2000]), axis: 1, log: false), "large logits")
    XCTAssertTrue(logSoftmax(Var(big), axis: 1).value.toArray().allSatisfy { $0.isFinite })
  }

  /// The AVX-512 rows (softmax_rows.c: full vectors, a masked tail, exp by
  /// vscalefps) against Double and against the Swift rows, at row lengths
  /// around 16 and attention's 49 and 144, with logits far enough below the
  /// row's max (< −87.34) that both must give exactly 0.
  func testSoftmaxRowsKernelMatchesSwiftRows() throws {
    try XCTSkipUnless(SoftmaxTuning.avx512Rows, "this CPU has no AVX-512F: the Swift rows are the only path")
    defer { SoftmaxTuning.avx512Rows = true }
    for n in [1, 5, 15, 16, 17, 33, 49, 144, 150] {
      let x = rng.tensor([7, n], -30, 30)
      if n > 2 { x.data[n + 1] = x.data[n] - 200 }  // row 1: one logit 200 below another
      let ref = referenceSoftmax(x, axis: 1, log: false)
      let fast = softmax(Var(x), axis: -1).value
      SoftmaxTuning.avx512Rows = false
      let swift = softmax(Var(x), axis: -1).value
      SoftmaxTuning.avx512Rows = true
      assertCloseD(fast, ref, tol: 2e-6, "kernel rows, n = \(n)")
      assertCloseD(swift, ref, tol: 2e-6, "Swift rows, n = \(n)")
      if n > 2 { XCTAssertEqual(fast.data[n + 1], 0, "n = \(n): e^(−200 + …) is 0, as fastExp gives"); XCTAssertEqual(swift.data[n + 1], 0) }
      for r in 0..<7 {
        let sum = (0..<n).reduce(0.0) { $0 + Double(fast.data[r * n + $1]) }
        XCTAssertEqual(sum, 1, accuracy: 1e-5, "n = \(n), row \(r) sums to 1")
      }
    }
  }

  func testSoftmaxGradientsAllAxes() {
    for shape in [[3, 4, 5], [2, 3, 66]] {
      let x = rng.tensor(shape, -2, 2)
      for axis in [0, 1, 2, -1] {
        checkGradients([x], expectShape: shape) { softmax($0[0], axis: axis) }
        checkGradients([x]) { logSoftmax($0[0], axis: axis) }
      }
    }
  }

  // MARK: Cross-entropy

  /// Σ w[l]·(lse − x[l]) over non-ignored rows, and Σ w[l], in Double.
  private func referenceCE(_ x: Tensor, _ labels: [Int32], ignore: Int32, weights: [Float]?) -> (Double, Double) {
    let K = x.shape.last!
    var loss = 0.0, wsum = 0.0
    for (r, l) in labels.enumerated() where l != ignore {
      let row = (0..<K).map { Double(x.data[r * K + $0]) }
      let lse = log(row.map(exp).reduce(0, +))
      let w = weights.map { Double($0[Int(l)]) } ?? 1
      loss += w * (lse - row[Int(l)]); wsum += w
    }
    return (loss, wsum)
  }

  func testCrossEntropyForwardWithIgnoreAndWeights() {
    let K = 5
    let x = rng.tensor([2, 3, K], -3, 3)
    let labels: [Int32] = [0, 255, 4, 2, 255, 2]
    let weights: [Float] = [0.5, 1, 2, 1.5, 0.25]
    let (l0, n0) = referenceCE(x, labels, ignore: 255, weights: nil)
    XCTAssertEqual(n0, 4)
    XCTAssertEqual(Double(crossEntropy(logits: Var(x), labels: labels).value.scalar), l0 / n0, accuracy: 1e-5)
    let (l1, n1) = referenceCE(x, labels, ignore: 255, weights: weights)
    XCTAssertEqual(crossEntropyWeightSum(labels: labels, ignoreIndex: 255, classWeights: weights), n1, accuracy: 1e-12)
    XCTAssertEqual(Double(crossEntropy(logits: Var(x), labels: labels, classWeights: weights).value.scalar), l1 / n1, accuracy: 1e-5)
    XCTAssertEqual(Double(crossEntropy(logits: Var(x), labels: labels, classWeights: weights, normalizer: 10).value.scalar),
                   l1 / 10, accuracy: 1e-5)
    // Another ignore index (255 would then be out of range, so none here).
    let labels2: [Int32] = [0, 1, 4, 2, 3, 2]
    let (l2, n2) = referenceCE(x, labels2, ignore: 2, weights: nil)
    XCTAssertEqual(Double(crossEntropy(logits: Var(x), labels: labels2, ignoreIndex: 2).value.scalar), l2 / n2, accuracy: 1e-5)
    // Stable for large logits.
    let big = Tensor(shape: [1, 3], values: [500, -500, 0])
    XCTAssertEqual(crossEntropy(logits: Var(big), labels: [1]).value.scalar, 1000, accuracy: 1e-2)
  }

  func testCrossEntropyGradients() {
    let K = 6
    let x = rng.tensor([3, 3, K], -2, 2)
    let labels: [Int32] = [0, 255, 5, 2, 255, 2, 1, 3, 4]
    let weights: [Float] = [0.5, 1, 2, 1.5, 0.25, 3]
    checkGradients([x], expectShape: []) { crossEntropy(logits: $0[0], labels: labels) }
    checkGradients([x]) { crossEntropy(logits: $0[0], labels: labels, classWeights: weights) }
    checkGradients([x]) { crossEntropy(logits: $0[0], labels: labels, classWeights: weights, normalizer: 4) }
    // Ignored rows get exactly zero gradient.
    let v = Var(x.copy(), requiresGrad: true)
    withGradients { crossEntropy(logits: v, labels: labels) }.backward()
    for k in 0..<K { XCTAssertEqual(v.grad!.data[1 * K + k], 0); XCTAssertEqual(v.grad!.data[4 * K + k], 0) }
  }

  // MARK: Focal loss

  private func referenceFocal(_ x: Double, _ t: Double, alpha: Double, gamma: Double) -> Double {
    let p = sigmoidD(x)
    let ce = -(t * log(p) + (1 - t) * log(1 - p))
    let pt = p * t + (1 - p) * (1 - t)
    var loss = ce * pow(1 - pt, gamma)
    if alpha >= 0 { loss *= alpha * t + (1 - alpha) * (1 - t) }
    return loss
  }

  func testSigmoidFocalLossForwardAndGradients() {
    let x = rng.tensor([4, 5], -4, 4)
    let hard = Tensor(shape: [4, 5], values: (0..<20).map { _ in Float(rng.next() % 2) })
    let soft = rng.tensor([4, 5], 0, 1)
    for (t, alpha, gamma) in [(hard, Float(0.25), Float(2)), (soft, 0.25, 2), (hard, -1, 1.5), (soft, 0.6, 0.5), (hard, 0.25, 0)] {
      let ref = (0..<20).map { referenceFocal(Double(x.data[$0]), Double(t.data[$0]), alpha: Double(alpha), gamma: Double(gamma)) }
      assertCloseD(sigmoidFocalLoss(logits: Var(x), targets: t, alpha: alpha, gamma: gamma).value, ref, tol: 1e-4,
                   "focal α=\(alpha) γ=\(gamma)")
      checkGradients([x], expectShape: [4, 5]) { sigmoidFocalLoss(logits: $0[0], targets: t, alpha: alpha, gamma: gamma) }
    }
    // Saturated logits: finite loss and gradient.
    let sat = Tensor(shape: [4], values: [60, -60, 60, -60]), st = Tensor(shape: [4], values: [1, 0, 0, 1])
    let v = Var(sat, requiresGrad: true)
    let l = withGradients { sigmoidFocalLoss(logits: v, targets: st) }
    withGradients { l.sum() }.backward()
    XCTAssertTrue(l.value.toArray().allSatisfy { $0.isFinite } && v.grad!.toArray().allSatisfy { $0.isFinite })
    XCTAssertEqual(l.value.data[2], 0.75 * 60, accuracy: 1e-3, "confidently wrong: α_t·ce·1")
  }

  /// The fused sum equals sigmoidFocalLoss(...).sum(): value to float rounding,
  /// gradient bit for bit (the same per-element formula times the same
  /// incoming gradient), over more than one 4096-element chunk, γ = 2 and not.
  func testSigmoidFocalLossSumEqualsTheSumOfTheElementwiseLoss() {
    let n = 9000
    let x = rng.tensor([3, n / 3], -5, 5)
    let t = Tensor(shape: [3, n / 3], values: (0..<n).map { _ in Float(rng.next() % 2) })
    for (alpha, gamma) in [(Float(0.25), Float(2)), (0.6, 1.5)] {
      let a = Var(x.copy(), requiresGrad: true), b = Var(x.copy(), requiresGrad: true)
      let fused = withGradients { sigmoidFocalLossSum(logits: a, targets: t, alpha: alpha, gamma: gamma) * 0.37 }
      fused.backward()
      let plain = withGradients { sigmoidFocalLoss(logits: b, targets: t, alpha: alpha, gamma: gamma).sum() * 0.37 }
      plain.backward()
      XCTAssertEqual(fused.value.scalar, plain.value.scalar, accuracy: 1e-5 * abs(plain.value.scalar), "γ=\(gamma)")
      XCTAssertEqual(a.grad!.toArray(), b.grad!.toArray(), "γ=\(gamma) gradient")
    }
    checkGradients([rng.tensor([2, 7], -3, 3)]) { v in
      sigmoidFocalLossSum(logits: v[0], targets: Tensor(shape: [2, 7], values: (0..<14).map { Float($0 % 2) }))
    }
  }

  // MARK: Dice loss

  func testDiceLossForwardAndGradients() {
    // 37 and 2500: 16-lane blocks with tails, and more than one 1024-element chunk.
    for P in [11, 37, 2500] { diceCase(M: 3, P: P, gradients: P < 100) }
  }

  private func diceCase(M: Int, P: Int, gradients: Bool) {
    let x = rng.tensor([M, P], -3, 3)
    let t = Tensor(shape: [M, P], values: (0..<M * P).map { _ in Float(rng.next() % 2) })
    let ref = (0..<M).map { m -> Double in
      let s = (0..<P).map { sigmoidD(Double(x.data[m * P + $0])) }, tt = (0..<P).map { Double(t.data[m * P + $0]) }
      let inter = zip(s, tt).map(*).reduce(0, +)
      return 1 - (2 * inter + 1) / (s.reduce(0, +) + tt.reduce(0, +) + 1)
    }
    assertCloseD(diceLoss(logits: Var(x), targets: t).value, ref, "dice P=\(P)")
    if gradients { checkGradients([x], expectShape: [M]) { diceLoss(logits: $0[0], targets: t) } }
  }

  // MARK: Dropout and drop-path

  func testDropoutDeterminismScaleAndGradient() {
    let x = rng.tensor([50, 201], 0.5, 1.5)  // > one 4096-element mask block; no zeros in x
    let p: Float = 0.3
    func run(_ seed: UInt64) -> Tensor { var g = RandomGenerator(seed: seed); return dropout(Var(x), p: p, rng: &g).value }
    let a = run(5), b = run(5), c = run(6)
    XCTAssertEqual(a.toArray(), b.toArray(), "same seed, same mask")
    XCTAssertNotEqual(a.toArray(), c.toArray(), "another seed, another mask")
    var zeros = 0
    for i in 0..<x.count {
      if a.data[i] == 0 { zeros += 1 } else { XCTAssertEqual(a.data[i], x.data[i] / (1 - p), accuracy: 1e-6) }
    }
    XCTAssertEqual(Double(zeros) / Double(x.count), Double(p), accuracy: 0.02)
    // Same mask regardless of the thread count.
    let saved = Parallel.threads
    Parallel.threads = 1
    let single = run(5)
    Parallel.threads = saved
    XCTAssertEqual(single.toArray(), a.toArray(), "mask independent of threads")
    // The generator advances: two calls with one generator draw different masks.
    var g = RandomGenerator(seed: 9)
    let m1 = dropout(Var(x), p: p, rng: &g).value, m2 = dropout(Var(x), p: p, rng: &g).value
    XCTAssertNotEqual(m1.toArray(), m2.toArray())
    // p = 0: the input itself, nothing recorded.
    let v = Var(x, requiresGrad: true)
    let before = Tape.shared.count
    XCTAssertTrue(withGradients { dropout(v, p: 0, rng: &g) } === v)
    XCTAssertEqual(Tape.shared.count, before)
    checkGradients([rng.tensor([7, 9])]) { vars in var g = RandomGenerator(seed: 3); return dropout(vars[0], p: 0.5, rng: &g) }
  }

  func testDropPathPerSample() {
    let (B, inner) = (400, 6)
    let x = rng.tensor([B, 2, 3], 0.5, 1.5)
    let p: Float = 0.25
    var g1 = RandomGenerator(seed: 4), g2 = RandomGenerator(seed: 4)
    let y = dropPath(Var(x), p: p, rng: &g1).value
    XCTAssertEqual(y.toArray(), dropPath(Var(x), p: p, rng: &g2).value.toArray(), "same seed, same decisions")
    var dropped = 0
    for s in 0..<B {
      let kept = y.data[s * inner] != 0
      if !kept { dropped += 1 }
      for i in 0..<inner {
        let want = kept ? x.data[s * inner + i] / (1 - p) : 0
        XCTAssertEqual(y.data[s * inner + i], want, accuracy: 1e-6, "sample \(s) kept or dropped as a whole")
      }
    }
    XCTAssertEqual(Double(dropped) / Double(B), Double(p), accuracy: 0.07)
    let v = Var(x, requiresGrad: true)
    XCTAssertTrue(withGradients { dropPath(v, p: 0, rng: &g1) } === v)
    checkGradients([rng.tensor([5, 3, 2])]) { vars in var g = RandomGenerator(seed: 8); return dropPath(vars[0], p: 0.4, rng: &g) }
  }

  /// Thread chunks that end inside a sample (3 samples over 4 threads) still
  /// give every element its own sample's factor, forward and backward.
  func testDropPathChunksCutInsideSamples() {
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    Parallel.threads = 4
    let (B, inner) = (3, 3 * 32768 + 7)  // 32768: pointwiseGrain, the chunk floor
    let x = rng.tensor([B, inner], 0.5, 1.5), seed = rng.tensor([B, inner])
    for trial in 0..<8 {
      var g = RandomGenerator(seed: UInt64(100 + trial))
      let v = Var(x, requiresGrad: true)
      let y = withGradients { () -> Var in
        let y = dropPath(v, p: 0.5, rng: &g)
        Tape.shared.backward(from: y, seed: seed)
        return y
      }
      for s in 0..<B {
        let f = y.value.data[s * inner] / x.data[s * inner]
        XCTAssertTrue(f == 0 || abs(f - 2) < 1e-6, "trial \(trial) sample \(s): factor \(f)")
        for i in (s * inner)..<((s + 1) * inner) {
          XCTAssertEqual(y.value.data[i], x.data[i] * f, accuracy: 1e-5, "trial \(trial) element \(i)")
          XCTAssertEqual(v.grad!.data[i], seed.data[i] * f, accuracy: 1e-5, "trial \(trial) gradient \(i)")
        }
      }
    }
  }
}
