// Learning-rate schedule: mmcv's PolyLrUpdaterHook with linear warmup, as the
// mmseg configs that ECENet uses set it (by_epoch=False):
//
//   lr_config = dict(policy='poly', warmup='linear', warmup_iters=1500,
//                    warmup_ratio=1e-6, power=1.0, min_lr=0.0, by_epoch=False)
//
// For iteration i (0-based: the lr used by the i-th update, mmcv's runner.iter
// in before_train_iter) and a group whose initial lr is base_lr:
//
//   regular(i) = (base_lr − min_lr) · (1 − i/max_iters)^power + min_lr
//                                     (PolyLrUpdaterHook.get_lr)
//   lr(i)      = regular(i)                       if i ≥ warmup_iters
//              = regular(i) · (1 − k),            otherwise, with
//                k = (1 − i/warmup_iters) · (1 − warmup_ratio)
//                                     (LrUpdaterHook.get_warmup_lr, 'linear')
//
// So lr(0) = regular(0)·warmup_ratio, the warmup ramps linearly towards the
// poly curve (not towards base_lr) and meets it at i = warmup_iters. With
// min_lr = 0 the poly term is base_lr·(1 − i/max)^power, never below 0.
//
// mmcv schedules every param group from its own initial lr (base_lr·lr_mult),
// so `lr(at:lrMultiplier:)` takes the multiplier; with min_lr = 0 that equals
// multiplier · lr(at:).
//
// Not here: mmengine's PolyLR (a recursive, chainable form), epoch-based schedules.
import Foundation

public struct PolyLRSchedule: Equatable, Sendable {
  public var baseLR: Double
  public var maxIterations: Int
  public var power: Double
  public var minLR: Double
  public var warmupIterations: Int
  public var warmupRatio: Double

  /// ECENet's defaults (spec §7): lr 6e-5, 160k iterations, power 1, warmup 1500 from 1e-6.
  public init(baseLR: Double = 6e-5, maxIterations: Int = 160_000, power: Double = 1.0, minLR: Double = 0,
              warmupIterations: Int = 1500, warmupRatio: Double = 1e-6) {
    precondition(maxIterations > 0, "PolyLRSchedule: maxIterations must be positive, got \(maxIterations)")
    precondition(warmupIterations >= 0, "PolyLRSchedule: negative warmupIterations \(warmupIterations)")
    precondition(warmupRatio > 0 && warmupRatio <= 1, "PolyLRSchedule: warmupRatio must be in (0, 1], got \(warmupRatio)")
    self.baseLR = baseLR; self.maxIterations = maxIterations; self.power = power; self.minLR = minLR
    self.warmupIterations = warmupIterations; self.warmupRatio = warmupRatio
  }

  /// The learning rate for 0-based iteration `i` of a group with lr multiplier `lrMultiplier`.
  public func lr(at i: Int, lrMultiplier: Float = 1) -> Double {
    precondition(i >= 0, "PolyLRSchedule: negative iteration \(i)")
    let base = baseLR * Double(lrMultiplier)
    // Past the end (a resumed run with a shorter max) the poly factor stays 0, as (1 − p)^power would go negative / NaN.
    let progress = min(Double(i) / Double(maxIterations), 1)
    let regular = (base - minLR) * pow(1 - progress, power) + minLR
    guard i < warmupIterations else { return regular }
    let k = (1 - Double(i) / Double(warmupIterations)) * (1 - warmupRatio)
    return regular * (1 - k)
  }

  /// The same schedule for a run of `iterations` instead of `maxIterations`
  /// (smoke tests, short reproductions): warmup keeps its fraction of the run,
  /// rounded, and at least one iteration if the original had any.
  public func scaled(toIterations iterations: Int) -> PolyLRSchedule {
    precondition(iterations > 0, "PolyLRSchedule.scaled: iterations must be positive, got \(iterations)")
    var s = self
    s.maxIterations = iterations
    if warmupIterations > 0 {
      let w = (Double(warmupIterations) * Double(iterations) / Double(maxIterations)).rounded()
      s.warmupIterations = min(iterations, max(1, Int(w)))
    }
    return s
  }
}
