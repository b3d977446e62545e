// Layout ops: permute, concat/split, spatial pad/crop/roll, gather. STUB (issue 3).

/// torch.permute (copies into the new order).
public func permute(_ x: Var, _ dims: [Int]) -> Var { fatalError("permute: not implemented yet (issue 3)") }
public func concat(_ xs: [Var], axis: Int) -> Var { fatalError("concat: not implemented yet (issue 3)") }
public func split(_ x: Var, sizes: [Int], axis: Int) -> [Var] { fatalError("split: not implemented yet (issue 3)") }

/// Zero-pads [B, H, W, C] at the bottom and right (Swin's pad to a window multiple).
public func padSpatial(_ x: Var, bottom: Int, right: Int) -> Var { fatalError("padSpatial: not implemented yet (issue 3)") }
/// Keeps the top-left height×width of [B, H, W, C].
public func cropSpatial(_ x: Var, height: Int, width: Int) -> Var { fatalError("cropSpatial: not implemented yet (issue 3)") }
/// torch.roll on the H and W axes of [B, H, W, C].
public func rollSpatial(_ x: Var, shiftH: Int, shiftW: Int) -> Var { fatalError("rollSpatial: not implemented yet (issue 3)") }
/// Rows of a 2-D table: out[i] = table[indices[i]] ([n, D]); backward scatters-adds.
public func gatherRows(_ table: Var, indices: [Int32]) -> Var { fatalError("gatherRows: not implemented yet (issue 3)") }
