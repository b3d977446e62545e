// Global-norm gradient clipping over the gradient arena:
// torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=2).
//
// The norm is accumulated in Double over fixed blocks of the arena and the
// block sums are added in order, so the result does not depend on the thread
// count (every rank, after allreduce, computes the same norm bit for bit).
//
// Not here: other norm types; per-parameter clipping; clipping by value.
import Foundation
import Tensor

public enum GradClip {
  /// Elements per block of the deterministic reduction.
  static let block = 1 << 14

  /// ‖g‖₂ over the whole buffer, in Double.
  public static func globalNorm(_ grads: Tensor) -> Double {
    let n = grads.count, d = grads.data
    let blocks = (n + block - 1) / block
    var partial = [Double](repeating: 0, count: blocks)
    partial.withUnsafeMutableBufferPointer { part in
      let out = part.baseAddress!
      Parallel.forRange(blocks, grain: 4) { r in
        for b in r {
          var s = 0.0
          for i in (b * block)..<min(n, (b + 1) * block) { let x = Double(d[i]); s += x * x }
          out[b] = s
        }
      }
    }
    return partial.reduce(0, +).squareRoot()
  }

  /// Scales `grads` in place so its global 2-norm is at most `maxNorm` and
  /// returns the norm before clipping. As torch: coefficient
  /// max_norm / (norm + 1e-6), applied only when below 1.
  ///
  /// A non-finite norm (an overflow or NaN in backward) leaves the gradients
  /// untouched and is returned, so the caller can skip the step and log it
  /// (torch would multiply every gradient by 0 or NaN).
  @discardableResult
  public static func clip(_ grads: Tensor, maxNorm: Double) -> Double {
    precondition(maxNorm > 0, "GradClip.clip: maxNorm must be positive, got \(maxNorm)")
    let norm = globalNorm(grads)
    guard norm.isFinite else { return norm }
    let coef = maxNorm / (norm + 1e-6)
    if coef < 1 {
      let c = Float(coef), d = grads.data
      Parallel.forRange(grads.count, grain: 1 << 16) { r in for i in r { d[i] *= c } }
    }
    return norm
  }

  /// Clips the store's gradient arena.
  @discardableResult
  public static func clip(_ store: ParameterStore, maxNorm: Double) -> Double {
    precondition(store.isFinalized, "GradClip.clip: ParameterStore is not finalized")
    return clip(store.gradients!, maxNorm: maxNorm)
  }
}
