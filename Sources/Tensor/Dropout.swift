// Dropout and drop-path (stochastic depth) from a seeded generator. Not here:
// the training/eval switch (callers skip the op in eval) and inverted-scale-free
// variants.
//
// The mask is a pure function of one 64-bit draw from `rng`: elements are cut
// into fixed blocks, and block b uses RandomGenerator(seed: draw, keys: b). So
// the mask can be filled in parallel yet is the same on any thread count.
import Foundation

/// Elements per independently seeded block of a dropout mask.
let dropoutBlock = 4096

/// F.dropout in training: zero with probability p, scale the rest by 1/(1−p).
public func dropout(_ x: Var, p: Float, rng: inout RandomGenerator) -> Var {
  precondition(p >= 0 && p <= 1, "dropout: p = \(p) outside [0, 1]")
  if p == 0 { return x }
  let n = x.count, keep = 1 - p
  let scale: Float = keep > 0 ? 1 / keep : 0
  let seed = rng.next()
  // mask[i] ∈ {0, 1/(1−p)}: forward and backward are both a multiply by it.
  let mask = Tensor(uninitialized: x.shape), y = Tensor(uninitialized: x.shape)
  let mp = mask.data, xp = x.value.data, yp = y.data
  let blocks = (n + dropoutBlock - 1) / dropoutBlock
  Parallel.forRange(blocks, grain: 8) { r in
    for b in r {
      var g = RandomGenerator(seed: seed, keys: UInt64(b))
      for i in b * dropoutBlock..<min(n, (b + 1) * dropoutBlock) {
        let m: Float = g.nextUniform() < keep ? scale : 0
        mp[i] = m; yp[i] = xp[i] * m
      }
    }
  }
  return makeResult(y, inputs: [x]) { g in
    // mask.data here, not mp: the closure must hold the mask's pooled storage.
    let (dt, accumulate) = x.gradDestination()
    let d = dt.data, gp = g.data, mp = mask.data
    Parallel.forRange(n, grain: pointwiseGrain) { r in
      if accumulate { for i in r { d[i] += gp[i] * mp[i] } } else { for i in r { d[i] = gp[i] * mp[i] } }
    }
  }
}

/// Stochastic depth (timm DropPath): per sample along axis 0, keep the whole
/// sample with probability 1−p and scale it by 1/(1−p); one draw per sample.
public func dropPath(_ x: Var, p: Float, rng: inout RandomGenerator) -> Var {
  precondition(p >= 0 && p <= 1, "dropPath: p = \(p) outside [0, 1]")
  precondition(x.shape.count >= 1, "dropPath: input of rank 0")
  if p == 0 { return x }
  let keep = 1 - p
  let scale: Float = keep > 0 ? 1 / keep : 0
  let B = x.shape[0], inner = x.count / max(1, B)
  let factors: [Float] = (0..<B).map { _ in rng.nextUniform() < keep ? scale : 0 }
  let y = Tensor(uninitialized: x.shape)
  let xp = x.value.data, yp = y.data
  forEachSampleRun(count: B * inner, inner: inner) { lo, hi, b in
    let f = factors[b]
    for i in lo..<hi { yp[i] = xp[i] * f }
  }
  return makeResult(y, inputs: [x]) { g in
    let (dt, accumulate) = x.gradDestination()
    let d = dt.data, gp = g.data
    forEachSampleRun(count: B * inner, inner: inner) { lo, hi, b in
      let f = factors[b]
      if accumulate { for i in lo..<hi { d[i] += gp[i] * f } } else { for i in lo..<hi { d[i] = gp[i] * f } }
    }
  }
}

/// `body(lo, hi, sample)` over [0, count) split over the threads, each chunk cut
/// at sample boundaries (`inner` elements per sample), so the per-element loop
/// has one factor and no division per element (it then vectorises: drop-path's
/// forward indexed the factor by i / inner and took 20.7 ms in a Swin-T 512² b2
/// step, BENCHMARKS.md).
@inline(__always)
func forEachSampleRun(count: Int, inner: Int, _ body: (Int, Int, Int) -> Void) {
  Parallel.forRange(count, grain: pointwiseGrain) { r in
    var lo = r.lowerBound
    while lo < r.upperBound {
      let b = lo / inner, hi = min(r.upperBound, (b + 1) * inner)
      body(lo, hi, b)
      lo = hi
    }
  }
}
