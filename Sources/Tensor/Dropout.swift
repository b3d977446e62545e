// Dropout and drop-path from a seeded generator. STUB (issue 3).

/// F.dropout in training: zero with probability p, scale the rest by 1/(1−p).
public func dropout(_ x: Var, p: Float, rng: inout RandomGenerator) -> Var {
  fatalError("dropout: not implemented yet (issue 3)")
}

/// Stochastic depth (timm DropPath): per sample along axis 0.
public func dropPath(_ x: Var, p: Float, rng: inout RandomGenerator) -> Var {
  fatalError("dropPath: not implemented yet (issue 3)")
}
