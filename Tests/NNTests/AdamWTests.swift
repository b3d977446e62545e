// AdamW against a Double transcription of torch.optim.AdamW's documented
// algorithm, against torch itself (Golden/adamw.safetensors, written by
// scripts/reference/nn_goldens.py), across thread counts, and through a
// checkpoint save/restore of its state.
import Foundation
import XCTest
@testable import NN
import Tensor

/// torch.optim.AdamW, in Double, for one parameter (the documented algorithm):
///   θ ← θ − γλθ;  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
///   θ ← θ − γ (m/(1−β1ᵗ)) / (√(v/(1−β2ᵗ)) + ε)
struct ReferenceAdamW {
  var p: [Double], m: [Double], v: [Double]
  let beta1: Double, beta2: Double, eps: Double

  init(_ p: [Float], beta1: Double = 0.9, beta2: Double = 0.999, eps: Double = 1e-8) {
    self.p = p.map(Double.init); m = .init(repeating: 0, count: p.count); v = m
    self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
  }

  mutating func step(t: Int, lr: Double, weightDecay: Double, grad: [Float]) {
    let bc1 = 1 - pow(beta1, Double(t)), bc2 = 1 - pow(beta2, Double(t))
    for i in p.indices {
      let g = Double(grad[i])
      p[i] -= lr * weightDecay * p[i]
      m[i] = beta1 * m[i] + (1 - beta1) * g
      v[i] = beta2 * v[i] + (1 - beta2) * g * g
      p[i] -= lr * (m[i] / bc1) / ((v[i] / bc2).squareRoot() + eps)
    }
  }
}

final class AdamWTests: XCTestCase {
  struct Spec { let name: String; let shape: [Int]; let decay: Bool; let lrMultiplier: Float }

  /// A finalized store with the given parameters, initialised from `seed`.
  func makeStore(_ specs: [Spec], seed: UInt64) -> ParameterStore {
    let store = ParameterStore()
    for (k, s) in specs.enumerated() {
      let n = s.shape.reduce(1, *)
      store.parameter(s.name, Tensor(shape: s.shape, values: randomValues(n, seed: seed &+ UInt64(k))),
                      decay: s.decay, lrMultiplier: s.lrMultiplier)
    }
    store.finalize()
    return store
  }

  func setGradients(_ store: ParameterStore, _ grads: [[Float]]) {
    for (e, g) in zip(store.entries, grads) {
      XCTAssertEqual(e.variable.grad!.count, g.count)
      g.withUnsafeBufferPointer { e.variable.grad!.data.update(from: $0.baseAddress!, count: g.count) }
    }
  }

  /// Runs `steps` steps of AdamW and of the Double reference with the same gradients and lrs
  /// and compares parameters and both moments to `rtol`.
  func checkAgainstReference(_ specs: [Spec], steps: Int, wd: Double, lrs: [Double], rtol: Double,
                             gradScale: Float = 0.5, file: StaticString = #filePath, line: UInt = #line) {
    let store = makeStore(specs, seed: 100)
    let opt = AdamW(store: store, weightDecay: wd)
    var refs = store.entries.map { ReferenceAdamW($0.variable.value.toArray()) }
    for t in 1...steps {
      let grads = store.entries.enumerated().map { randomValues($0.element.count, seed: UInt64(1000 * t + $0.offset), scale: gradScale) }
      setGradients(store, grads)
      opt.step(lr: lrs[t - 1])
      for (k, s) in specs.enumerated() {
        refs[k].step(t: t, lr: lrs[t - 1] * Double(s.lrMultiplier), weightDecay: s.decay ? wd : 0, grad: grads[k])
      }
    }
    XCTAssertEqual(opt.stepCount, steps, file: file, line: line)
    for (k, e) in store.entries.enumerated() {
      let slice = e.offset..<(e.offset + e.count)
      assertCloseToScale(e.variable.value.toArray(), refs[k].p, rtol: rtol, "param \(e.name)", file: file, line: line)
      assertCloseToScale(Array(opt.firstMoment.toArray()[slice]), refs[k].m, rtol: rtol, "exp_avg \(e.name)", file: file, line: line)
      assertCloseToScale(Array(opt.secondMoment.toArray()[slice]), refs[k].v, rtol: rtol, "exp_avg_sq \(e.name)", file: file, line: line)
    }
  }

  func testFiveStepsThreeGroupsMatchDoubleReference() {
    let specs = [Spec(name: "w", shape: [5, 7], decay: true, lrMultiplier: 1),
                 Spec(name: "norm.bias", shape: [7], decay: false, lrMultiplier: 1),
                 Spec(name: "head.weight", shape: [3, 5], decay: true, lrMultiplier: 10)]
    checkAgainstReference(specs, steps: 5, wd: 0.05, lrs: [1e-3, 2e-3, 3e-3, 2.5e-3, 1e-3], rtol: 1e-6)
  }

  func testTinyGradientsWhereEpsMatters() {
    // |g| ~ 1e-8: √v̂ is comparable to eps = 1e-8, so eps inside the square
    // root (or missing bias correction of v) would change the update by far more than 1e-6.
    let specs = [Spec(name: "w", shape: [9], decay: true, lrMultiplier: 1),
                 Spec(name: "b", shape: [4], decay: false, lrMultiplier: 10)]
    checkAgainstReference(specs, steps: 5, wd: 0.01, lrs: [1e-3, 1e-3, 2e-3, 2e-3, 1e-3], rtol: 1e-6, gradScale: 1e-8)
  }

  func testMoreParametersThanOneChunkAcrossThreads() {
    // ~200k elements in 60 entries of odd sizes and alternating groups, so the
    // parallel chunks start and end inside and between segments.
    let specs = (0..<60).map { k in
      Spec(name: "p\(k)", shape: [k % 7 == 0 ? 9001 : 1 + (k * 37) % 500, 3],
           decay: k % 3 != 0, lrMultiplier: k % 5 == 0 ? 10 : 1)
    }
    withThreads(4) {
      checkAgainstReference(specs, steps: 2, wd: 0.01, lrs: [1e-2, 5e-3], rtol: 1e-6)
    }
  }

  func testThreadCountDoesNotChangeResults() {
    let specs = (0..<20).map { k in Spec(name: "p\(k)", shape: [4000 + k], decay: k % 2 == 0, lrMultiplier: k % 3 == 0 ? 10 : 1) }
    func run(_ threads: Int) -> [Float] {
      withThreads(threads) {
        let store = makeStore(specs, seed: 9)
        let opt = AdamW(store: store)
        for t in 0..<3 {
          setGradients(store, store.entries.enumerated().map { randomValues($0.element.count, seed: UInt64(50 * t + $0.offset)) })
          opt.step(lr: 1e-3)
        }
        return store.values!.toArray() + opt.firstMoment.toArray() + opt.secondMoment.toArray()
      }
    }
    XCTAssertEqual(run(1), run(4))
  }

  func testPerGroupLearningRateClosure() {
    // step(groupLR:) is asked once per distinct multiplier and applies each answer to its group.
    let specs = [Spec(name: "a", shape: [3], decay: true, lrMultiplier: 1),
                 Spec(name: "b", shape: [3], decay: true, lrMultiplier: 10)]
    let s1 = makeStore(specs, seed: 3), s2 = makeStore(specs, seed: 3)
    let g = [randomValues(3, seed: 1), randomValues(3, seed: 2)]
    setGradients(s1, g); setGradients(s2, g)
    var asked: [Float] = []
    AdamW(store: s1).step { m in asked.append(m); return m == 10 ? 7e-3 : 2e-3 }
    XCTAssertEqual(asked.sorted(), [1, 10])
    var r0 = ReferenceAdamW(s2.entries[0].variable.value.toArray()), r1 = ReferenceAdamW(s2.entries[1].variable.value.toArray())
    r0.step(t: 1, lr: 2e-3, weightDecay: 0.01, grad: g[0]); r1.step(t: 1, lr: 7e-3, weightDecay: 0.01, grad: g[1])
    assertCloseToScale(s1.entries[0].variable.value.toArray(), r0.p, rtol: 1e-6, "a")
    assertCloseToScale(s1.entries[1].variable.value.toArray(), r1.p, rtol: 1e-6, "b")
  }

  func testStateRoundTripResumesBitExactly() throws {
    let specs = [Spec(name: "w", shape: [4, 6], decay: true, lrMultiplier: 1),
                 Spec(name: "b", shape: [6], decay: false, lrMultiplier: 10)]
    let grads = (0..<5).map { t in [randomValues(24, seed: UInt64(t)), randomValues(6, seed: UInt64(t + 100))] }
    // Uninterrupted: 5 steps.
    let a = makeStore(specs, seed: 1), optA = AdamW(store: a)
    for t in 0..<5 { setGradients(a, grads[t]); optA.step(lr: 1e-2) }
    // 2 steps, checkpoint (values + state), fresh store and optimiser, restore, 3 more.
    let b = makeStore(specs, seed: 1), optB = AdamW(store: b)
    for t in 0..<2 { setGradients(b, grads[t]); optB.step(lr: 1e-2) }
    let state = optB.exportState(), values = b.values!.toArray()
    XCTAssertEqual(state.step, 2)
    let c = makeStore(specs, seed: 77), optC = AdamW(store: c)
    values.withUnsafeBufferPointer { c.values!.data.update(from: $0.baseAddress!, count: values.count) }
    try optC.importState(state)
    XCTAssertEqual(optC.stepCount, 2)
    for t in 2..<5 { setGradients(c, grads[t]); optC.step(lr: 1e-2) }
    XCTAssertEqual(c.values!.toArray(), a.values!.toArray())
    XCTAssertEqual(optC.exportState(), optA.exportState())
  }

  func testStateThroughSafetensorsResumesBitExactly() throws {
    let specs = [Spec(name: "w", shape: [4, 6], decay: true, lrMultiplier: 1),
                 Spec(name: "b", shape: [6], decay: false, lrMultiplier: 10)]
    let grads = (0..<4).map { t in [randomValues(24, seed: UInt64(t)), randomValues(6, seed: UInt64(t + 100))] }
    let a = makeStore(specs, seed: 1), optA = AdamW(store: a)
    for t in 0..<4 { setGradients(a, grads[t]); optA.step(lr: 1e-2) }
    let b = makeStore(specs, seed: 1), optB = AdamW(store: b)
    for t in 0..<2 { setGradients(b, grads[t]); optB.step(lr: 1e-2) }
    let url = try temporaryDirectory(self).appendingPathComponent("ckpt.safetensors")
    try SafeTensors.write(b.namedTensors + optB.namedStateTensors, metadata: ["step": "\(optB.stepCount)"], to: url)

    let file = try SafeTensorsFile(contentsOf: url)
    let c = makeStore(specs, seed: 5), optC = AdamW(store: c)
    for e in c.entries { try file.read(e.name, into: e.variable.value.data) }
    try optC.loadState(from: file, step: Int(file.metadata["step"]!)!)
    XCTAssertEqual(optC.stepCount, 2)
    for t in 2..<4 { setGradients(c, grads[t]); optC.step(lr: 1e-2) }
    XCTAssertEqual(c.values!.toArray(), a.values!.toArray())
    XCTAssertEqual(optC.exportState(), optA.exportState())

    // A state of another model's size is refused, naming the tensor.
    let d = makeStore([Spec(name: "w", shape: [5], decay: true, lrMultiplier: 1)], seed: 0)
    XCTAssertThrowsError(try AdamW(store: d).loadState(from: file, step: 2)) {
      XCTAssertEqual($0 as? AdamW.StateError, .sizeMismatch(what: "optimizer.exp_avg in \(url.path)", expected: 5, found: 30))
    }
    let empty = try SafeTensorsFile(data: safetensorsBytes("{}"), path: "empty")
    XCTAssertThrowsError(try optC.loadState(from: empty, step: 2)) {
      XCTAssertEqual($0 as? SafeTensorsError, .missingKey(file: "empty", key: "optimizer.exp_avg"))
    }
  }

  func testImportStateRejectsWrongSizes() {
    let store = makeStore([Spec(name: "w", shape: [10], decay: true, lrMultiplier: 1)], seed: 0)
    let opt = AdamW(store: store)
    XCTAssertThrowsError(try opt.importState(step: 3, m: [Float](repeating: 0, count: 9), v: [Float](repeating: 0, count: 10))) {
      XCTAssertEqual($0 as? AdamW.StateError, .sizeMismatch(what: "m (exp_avg)", expected: 10, found: 9))
      XCTAssertTrue("\($0)".contains("10"))
    }
    XCTAssertThrowsError(try opt.importState(step: 3, m: [Float](repeating: 0, count: 10), v: []))
    XCTAssertThrowsError(try opt.importState(step: -1, m: [Float](repeating: 0, count: 10), v: [Float](repeating: 0, count: 10)))
    XCTAssertEqual(opt.stepCount, 0, "a rejected state must not change the optimiser")
  }

  /// torch.optim.AdamW itself (see scripts/reference/nn_goldens.py): 5 steps on
  /// "w" (decay), "b" (no decay), "head" (lr ×10) and "tiny" (gradients ~1e-7,
  /// so eps is as large as √v̂ and its placement matters) with the lrs of a tiny
  /// mmcv poly + warmup schedule.
  func testMatchesTorchGolden() throws {
    let url = goldenURL("adamw.safetensors")
    guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("no \(url.path)") }
    let f = try SafeTensorsFile(contentsOf: url)
    let meta = f.metadata
    let steps = Int(meta["steps"]!)!, wd = Double(meta["weight_decay"]!)!
    let schedule = PolyLRSchedule(baseLR: Double(meta["base_lr"]!)!, maxIterations: Int(meta["max_iters"]!)!,
                                  warmupIterations: Int(meta["warmup_iters"]!)!, warmupRatio: Double(meta["warmup_ratio"]!)!)
    let torchLRs = meta["lrs_float64"]!.split(separator: ",").map { Double($0)! }
    for i in 0..<steps { XCTAssertEqual(schedule.lr(at: i), torchLRs[i], accuracy: 1e-15 * torchLRs[i], "lr at \(i)") }

    let store = ParameterStore()
    for (name, decay, mult) in [("w", true, Float(1)), ("b", false, 1), ("head", true, 10), ("tiny", true, 1)] {
      store.parameter(name, try f.tensor("init.\(name)"), decay: decay, lrMultiplier: mult)
    }
    store.finalize()
    let opt = AdamW(store: store, beta1: Double(meta["beta1"]!)!, beta2: Double(meta["beta2"]!)!,
                    eps: Double(meta["eps"]!)!, weightDecay: wd)
    for i in 0..<steps {
      setGradients(store, try store.entries.map { try f.floats("grad.\(i).\($0.name)") })
      opt.step { schedule.lr(at: i, lrMultiplier: $0) }
    }
    for e in store.entries {
      let slice = e.offset..<(e.offset + e.count)
      assertCloseToScale(e.variable.value.toArray(), try f.floats("final.\(e.name)"), rtol: 1e-6, "param \(e.name) vs torch")
      assertCloseToScale(Array(opt.firstMoment.toArray()[slice]), try f.floats("exp_avg.\(e.name)"), rtol: 1e-6, "exp_avg \(e.name) vs torch")
      assertCloseToScale(Array(opt.secondMoment.toArray()[slice]), try f.floats("exp_avg_sq.\(e.name)"), rtol: 1e-6, "exp_avg_sq \(e.name) vs torch")
    }
  }
}
