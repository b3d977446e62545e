// Normalisations over the channel (last) axis. STUB (issue 3).

/// F.layer_norm over the last axis.
public func layerNorm(_ x: Var, weight: Var?, bias: Var?, eps: Float = 1e-5) -> Var {
  fatalError("layerNorm: not implemented yet (issue 3)")
}

/// Sums Double buffers over ranks in place (SyncBN); nil = this rank only.
public typealias StatsReducer = (UnsafeMutableBufferPointer<Double>) -> Void

/// F.batch_norm over every axis but the last (channels-last). In training,
/// batch statistics (reduced through `reduce` across ranks when given) are
/// used and running stats are updated in place with PyTorch's momentum rule
/// (unbiased variance); in eval the running stats are used.
public func batchNorm(_ x: Var, weight: Var, bias: Var, runningMean: Tensor, runningVar: Tensor,
                      training: Bool, momentum: Float = 0.1, eps: Float = 1e-5,
                      reduce: StatsReducer? = nil) -> Var {
  fatalError("batchNorm: not implemented yet (issue 3)")
}

/// F.group_norm on [B, H, W, C] (groups over channels, statistics per sample and group).
public func groupNorm(_ x: Var, groups: Int, weight: Var, bias: Var, eps: Float = 1e-5) -> Var {
  fatalError("groupNorm: not implemented yet (issue 3)")
}
