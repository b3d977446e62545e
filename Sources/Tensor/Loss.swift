// Loss kernels. STUB (issue 3).

/// F.cross_entropy over the last axis of logits [..., K] with integer labels
/// (one per leading position), ignore index and optional class weights.
/// Returns the SUM of (weighted) per-position losses divided by `normalizer`
/// when given (global-batch normalisation), else by the local weight sum
/// (PyTorch's reduction="mean").
public func crossEntropy(logits: Var, labels: [Int32], ignoreIndex: Int32 = 255,
                         classWeights: [Float]? = nil, normalizer: Double? = nil) -> Var {
  fatalError("crossEntropy: not implemented yet (issue 3)")
}

/// Elementwise sigmoid focal loss (torchvision.ops.sigmoid_focal_loss, reduction none).
public func sigmoidFocalLoss(logits: Var, targets: Tensor, alpha: Float = 0.25, gamma: Float = 2) -> Var {
  fatalError("sigmoidFocalLoss: not implemented yet (issue 3)")
}

/// Dice loss per row: logits [M, P], targets [M, P] in {0,1}; returns [M] with
/// 1 − (2Σ σ(x)·t + 1)/(Σσ(x) + Σt + 1) (SegViT / mmseg).
public func diceLoss(logits: Var, targets: Tensor) -> Var {
  fatalError("diceLoss: not implemented yet (issue 3)")
}
