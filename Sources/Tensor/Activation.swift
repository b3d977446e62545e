// Pointwise activations and softmax. STUB (issue 3).

/// F.gelu (exact, erf form).
public func gelu(_ x: Var) -> Var { fatalError("gelu: not implemented yet (issue 3)") }
public func relu(_ x: Var) -> Var { fatalError("relu: not implemented yet (issue 3)") }
public func sigmoid(_ x: Var) -> Var { fatalError("sigmoid: not implemented yet (issue 3)") }

/// softmax / log_softmax over any axis.
public func softmax(_ x: Var, axis: Int) -> Var { fatalError("softmax: not implemented yet (issue 3)") }
public func logSoftmax(_ x: Var, axis: Int) -> Var { fatalError("logSoftmax: not implemented yet (issue 3)") }
