// Swin window attention pieces. STUB (issue 3).
// B batch, H W map size, C channels, w window, nW windows per image.

/// [B, H, W, C] → [B·nW, w·w, C], windows in row-major order per image.
public func windowPartition(_ x: Var, window: Int) -> Var { fatalError("windowPartition: not implemented yet (issue 3)") }

/// Inverse of windowPartition: [B·nW, w·w, C] → [B, H, W, C].
public func windowReverse(_ x: Var, window: Int, height: Int, width: Int) -> Var {
  fatalError("windowReverse: not implemented yet (issue 3)")
}

/// softmax(q·kᵀ·scale + bias + mask)·v. q [B', heads, Lq, d], k/v [B', heads, Lk, d];
/// bias [heads, Lq, Lk] (relative position bias, differentiable) or nil; mask
/// [nW, Lq, Lk] additive (not differentiated), applied to batch b with window b % nW.
public func scaledDotProductAttention(q: Var, k: Var, v: Var, bias: Var?, mask: Tensor?, scale: Float) -> Var {
  fatalError("scaledDotProductAttention: not implemented yet (issue 3)")
}
