// Convolutions on channels-last maps. STUB: being implemented (issue 3).
// x [B, H, W, Cin]; weight [Cout, Cin/groups, kh, kw] (PyTorch layout, so
// checkpoints load unchanged); bias [Cout]; output [B, Ho, Wo, Cout].
// groups == Cin == Cout is the depth-wise conv. Matches F.conv2d.

public func conv2d(_ x: Var, weight: Var, bias: Var?, stride: Int = 1, padding: Int = 0,
                   dilation: Int = 1, groups: Int = 1) -> Var {
  fatalError("conv2d: not implemented yet (issue 3)")
}
