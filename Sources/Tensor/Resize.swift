// Resizing and pixel shuffle on channels-last maps [B, H, W, C]. STUB (issue 3).

/// F.interpolate(mode="bilinear", align_corners=False).
public func resizeBilinear(_ x: Var, height: Int, width: Int) -> Var {
  fatalError("resizeBilinear: not implemented yet (issue 3)")
}

/// F.interpolate(mode="nearest"): source index floor(dst · in/out).
public func resizeNearest(_ x: Var, height: Int, width: Int) -> Var {
  fatalError("resizeNearest: not implemented yet (issue 3)")
}

/// nn.PixelShuffle(r): [B, H, W, C·r²] → [B, H·r, W·r, C], with PyTorch's
/// channel order (input channel c·r² + i·r + j goes to output (h·r+i, w·r+j, c)).
public func pixelShuffle(_ x: Var, factor: Int) -> Var {
  fatalError("pixelShuffle: not implemented yet (issue 3)")
}
