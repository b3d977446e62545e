// AdamW over the parameter arena: torch.optim.AdamW (decoupled weight decay,
// bias correction, eps added outside the square root), with mmseg-style
// per-parameter groups taken from the store's entries: `decay == false`
// (norms, biases, relative-position tables) means weight decay 0, and
// `lrMultiplier` scales the group's learning rate (and so its decay, which
// torch applies as lr·wd).
//
// The first and second moments live in two arenas with exactly the layout of
// the store's values/gradients (same offsets), so a checkpoint saves three
// flat buffers and an update is one pass over contiguous memory.
//
// Not here: amsgrad, maximize, foreach/fused variants (same math), gradient
// clipping (GradClip.swift), the learning-rate schedule (Schedule.swift).
import Foundation
import Tensor

public final class AdamW {
  public let store: ParameterStore
  public let beta1: Double
  public let beta2: Double
  public let eps: Double
  public let weightDecay: Double
  /// Steps taken so far (torch's `state['step']`); the next step uses step + 1
  /// in its bias correction.
  public private(set) var stepCount = 0
  /// exp_avg and exp_avg_sq, laid out like `store.values`.
  public let firstMoment: Tensor
  public let secondMoment: Tensor

  /// A maximal run of arena elements with the same group settings.
  struct Segment { var start: Int; var end: Int; var lrMultiplier: Float; var decay: Bool }
  let segments: [Segment]

  /// torch.optim.AdamW defaults except lr, which every `step` is given. The
  /// groups (decay, lrMultiplier) are read from the store's entries here, once.
  public init(store: ParameterStore, beta1: Double = 0.9, beta2: Double = 0.999,
              eps: Double = 1e-8, weightDecay: Double = 0.01) {
    precondition(store.isFinalized, "AdamW needs a finalized ParameterStore (call finalize() first)")
    precondition((0..<1).contains(beta1) && (0..<1).contains(beta2) && eps >= 0 && weightDecay >= 0,
                 "AdamW: invalid betas (\(beta1), \(beta2)), eps \(eps) or weight decay \(weightDecay)")
    self.store = store
    self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
    let n = store.parameterCount
    firstMoment = Tensor(storage: Storage(unpooledCount: max(1, n)), shape: [n])
    secondMoment = Tensor(storage: Storage(unpooledCount: max(1, n)), shape: [n])
    firstMoment.zero(); secondMoment.zero()
    var segs: [Segment] = []
    for e in store.entries.sorted(by: { $0.offset < $1.offset }) where e.count > 0 {
      if let last = segs.last, last.end == e.offset, last.lrMultiplier == e.lrMultiplier, last.decay == e.decay {
        segs[segs.count - 1].end = e.offset + e.count
      } else {
        segs.append(Segment(start: e.offset, end: e.offset + e.count, lrMultiplier: e.lrMultiplier, decay: e.decay))
      }
    }
    segments = segs
  }

  /// One update of every parameter with group learning rate `lr · lrMultiplier`.
  public func step(lr: Double) {
    step { lr * Double($0) }
  }

  /// One update; `groupLR(lrMultiplier)` gives a group's learning rate, so a
  /// schedule can be applied per group exactly as mmcv does (it schedules each
  /// group from its own initial lr, see `PolyLRSchedule.lr(at:lrMultiplier:)`).
  public func step(groupLR: (Float) -> Double) {
    stepCount += 1
    let t = Double(stepCount)
    // torch's scalars, computed once in Double and rounded once to Float.
    let bc1 = 1 - pow(beta1, t)
    let bc2Sqrt = (1 - pow(beta2, t)).squareRoot()
    struct Coeffs { var decayFactor: Float; var stepSize: Float }
    var cache: [Float: Double] = [:]
    let coeffs: [Coeffs] = segments.map { s in
      let lr: Double
      if let c = cache[s.lrMultiplier] { lr = c } else { lr = groupLR(s.lrMultiplier); cache[s.lrMultiplier] = lr }
      let wd = s.decay ? weightDecay : 0
      return Coeffs(decayFactor: Float(1 - lr * wd), stepSize: Float(lr / bc1))
    }
    // 1 − β is formed in Double, as torch does with its Python-float betas:
    // 1 − Float(0.999) would be off by 1.3e-5 relative.
    let b1 = Float(beta1), b2 = Float(beta2), omb1 = Float(1 - beta1), omb2 = Float(1 - beta2)
    let eps = Float(self.eps), bc2s = Float(bc2Sqrt)
    let p = store.values!.data, g = store.gradients!.data
    let m = firstMoment.data, v = secondMoment.data
    let segs = segments
    let total = segs.last?.end ?? 0
    Parallel.forRange(total, grain: 1 << 15) { range in
      // First segment that ends after range.lowerBound (binary search).
      var lo = 0, hi = segs.count
      while lo < hi { let mid = (lo + hi) / 2; if segs[mid].end <= range.lowerBound { lo = mid + 1 } else { hi = mid } }
      var s = lo
      while s < segs.count && segs[s].start < range.upperBound {
        let a = max(segs[s].start, range.lowerBound), b = min(segs[s].end, range.upperBound)
        adamwUpdate(p: p, m: m, v: v, g: g, range: a..<b, decayFactor: coeffs[s].decayFactor,
                    stepSize: coeffs[s].stepSize, beta1: b1, beta2: b2, oneMinusBeta1: omb1,
                    oneMinusBeta2: omb2, bc2Sqrt: bc2s, eps: eps)
        s += 1
      }
    }
  }

  // MARK: checkpoint state

  public struct State: Equatable {
    public var step: Int
    public var m: [Float]
    public var v: [Float]
    public init(step: Int, m: [Float], v: [Float]) { self.step = step; self.m = m; self.v = v }
  }

  public enum StateError: Error, CustomStringConvertible, Equatable {
    case sizeMismatch(what: String, expected: Int, found: Int)
    case negativeStep(Int)
    public var description: String {
      switch self {
      case let .sizeMismatch(what, expected, found):
        return "AdamW state: \(what) has \(found) values, the parameter arena has \(expected); was the checkpoint written for a different model?"
      case let .negativeStep(s): return "AdamW state: step count \(s) is negative"
      }
    }
  }

  /// The moments as named arena tensors, to write into a checkpoint without copying
  /// (store the step count beside them, e.g. in the metadata).
  public var namedStateTensors: [(name: String, tensor: Tensor)] {
    [("optimizer.exp_avg", firstMoment), ("optimizer.exp_avg_sq", secondMoment)]
  }

  /// Restores the moments from a file holding `namedStateTensors`, and the step count.
  /// Checks everything before changing anything.
  public func loadState(from file: SafeTensorsFile, step: Int) throws {
    guard step >= 0 else { throw StateError.negativeStep(step) }
    let n = store.parameterCount
    for (name, _) in namedStateTensors {
      let info = try file.info(name)
      guard info.count == n else { throw StateError.sizeMismatch(what: "\(name) in \(file.path)", expected: n, found: info.count) }
    }
    for (name, t) in namedStateTensors { try file.read(name, into: t.data) }
    stepCount = step
  }

  /// A copy of (step, m, v) for a checkpoint.
  public func exportState() -> State {
    State(step: stepCount, m: firstMoment.toArray(), v: secondMoment.toArray())
  }

  /// Restores (step, m, v); sizes must match the arena.
  public func importState(_ s: State) throws {
    try importState(step: s.step, m: s.m, v: s.v)
  }

  public func importState(step: Int, m: [Float], v: [Float]) throws {
    let n = store.parameterCount
    guard step >= 0 else { throw StateError.negativeStep(step) }
    guard m.count == n else { throw StateError.sizeMismatch(what: "m (exp_avg)", expected: n, found: m.count) }
    guard v.count == n else { throw StateError.sizeMismatch(what: "v (exp_avg_sq)", expected: n, found: v.count) }
    m.withUnsafeBufferPointer { firstMoment.data.update(from: $0.baseAddress!, count: n) }
    v.withUnsafeBufferPointer { secondMoment.data.update(from: $0.baseAddress!, count: n) }
    stepCount = step
  }
}

/// The per-element update of torch's `_single_tensor_adam(..., decoupled_weight_decay=True)`
/// on one contiguous range:
///   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
///   p ← p − (lr/(1−β1ᵗ)) · m / (√v/√(1−β2ᵗ) + eps)
/// `decayFactor` = 1 − lr·wd and `stepSize` = lr/(1−β1ᵗ) are the group's.
@inline(__always)
func adamwUpdate(p: UnsafeMutablePointer<Float>, m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                 g: UnsafeMutablePointer<Float>, range: Range<Int>, decayFactor: Float, stepSize: Float,
                 beta1: Float, beta2: Float, oneMinusBeta1 omb1: Float, oneMinusBeta2 omb2: Float,
                 bc2Sqrt: Float, eps: Float) {
  for i in range {
    let gi = g[i]
    let mi = beta1 * m[i] + omb1 * gi
    let vi = beta2 * v[i] + omb2 * gi * gi
    m[i] = mi; v[i] = vi
    p[i] = p[i] * decayFactor - stepSize * mi / (vi.squareRoot() / bc2Sqrt + eps)
  }
}
