// Pooling on channels-last maps [B, H, W, C]. STUB: being implemented (issue 3).

/// F.adaptive_avg_pool2d: bins start = floor(i·H/s), end = ceil((i+1)·H/s).
public func adaptiveAvgPool2d(_ x: Var, outputHeight: Int, outputWidth: Int) -> Var {
  fatalError("adaptiveAvgPool2d: not implemented yet (issue 3)")
}

/// F.max_pool2d with -inf padding.
public func maxPool2d(_ x: Var, kernel: Int, stride: Int, padding: Int) -> Var {
  fatalError("maxPool2d: not implemented yet (issue 3)")
}
