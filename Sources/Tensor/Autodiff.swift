// Tape autodiff. While recording, every op whose inputs need gradients appends
// a closure that maps the output's gradient to its inputs' gradients.
// `backward()` replays the tape in reverse. Gradients accumulate with `+=`
// (a residual fan-out or a shared weight needs no special case) and each
// intermediate gradient is released as soon as its op has consumed it.
//
// Leaves that are parameters get their gradient buffer from the NN arena up
// front (`grad` preset to a view of the flat gradient buffer), so backward
// writes straight into what the allreduce sends.
//
// A gradient that an op passes on whole to several inputs (a residual add's)
// is one tensor shared by their `grad`s, marked shared on its storage; every
// in-place write to a gradient goes through `Var.ownedGrad`, which copies a
// shared one first. A residual branch's gradient is usually only read, so
// its copy is never made.
//
// Memory: a backward closure captures the Tensors it will read (an input, a
// mask, statistics) when it is recorded, and the Vars of its inputs only to
// add their gradients. So once a module's forward has returned, the values of
// its intermediate Vars are needed by no one; modules release them
// (`releasingIntermediates`), and an output that no backward captured (a
// permute or window copy, a residual branch) is freed during forward instead
// of living until backward reaches it, as PyTorch frees tensors autograd did
// not save.

public final class Var {
  /// The forward value. An intermediate's value may be released once the module
  /// that made it has returned (`Tape.releaseValues`); reading it then traps.
  public var value: Tensor {
    get {
      // fatalError, not precondition: release builds (-Ounchecked) drop preconditions,
      // and a released value would then read a one-float placeholder as data.
      if valueReleased { fatalError("the value of an intermediate (\(name ?? "unnamed") \(stored.shape)) was read after its module released it") }
      return stored
    }
    set { stored = newValue; valueReleased = false }
  }
  private var stored: Tensor
  /// True once `releaseValue` dropped the value (only the shape and gradient remain).
  public private(set) var valueReleased = false
  /// Accumulated gradient, same shape as `value`; nil until something flows in.
  public var grad: Tensor?
  public let requiresGrad: Bool
  /// Keep `grad` after backward even for intermediates (tests, debugging).
  public var retainsGrad = false
  /// Stable dotted name for parameters ("backbone.layers.0.blocks.0.attn.qkv.weight").
  public var name: String?

  public init(_ value: Tensor, requiresGrad: Bool = false, name: String? = nil) {
    self.stored = value; self.requiresGrad = requiresGrad; self.name = name
  }

  public var shape: [Int] { stored.shape }
  public var count: Int { stored.count }

  /// Drops this Var's reference to its value, keeping its shape: the storage is
  /// freed unless a backward closure (or a view) still holds it.
  func releaseValue() {
    stored = Tensor(placeholderOf: stored.shape)
    valueReleased = true
  }

  /// grad += g (copying g, which the caller may reuse or share). The gradient
  /// the running backward closure received, passed on whole (reshapes and
  /// residual adds do), is not copied for each input that takes it:
  /// - the first input keeps it when nobody else holds it (Tape.received),
  ///   else a copy of it;
  /// - a further input of the same op shares that tensor, and the storage is
  ///   marked shared, so whichever of them writes into its gradient first
  ///   copies it then (`ownedGrad`). A residual add's branch gradient is
  ///   usually only read, so its copy is never made.
  public func accumulateGrad(_ g: Tensor) {
    guard requiresGrad else { return }
    precondition(g.count == count, "gradient \(g.shape) for value \(shape) of \(name ?? "?")")
    if let existing = ownedGrad() { existing.add(g); return }
    let tape = Tape.shared
    if let r = tape.received, r.storage === g.storage, r.offset == g.offset, r.count == g.count {
      if let taken = tape.receivedTaken {
        taken.storage.sharedByGrads = true
        grad = taken.reshaped(shape)
      } else {
        let t = tape.receivedMayBeKept ? g : g.copy()
        tape.receivedTaken = t
        grad = t.reshaped(shape)
      }
    } else {
      grad = g.copy().reshaped(shape)
    }
  }

  /// grad += g where g is a fresh buffer nobody else holds: adopted without a copy.
  public func accumulateGrad(owned g: Tensor) {
    guard requiresGrad else { return }
    precondition(g.count == count, "gradient \(g.shape) for value \(shape) of \(name ?? "?")")
    if let existing = ownedGrad() { existing.add(g) } else { grad = g.reshaped(shape) }
  }

  /// The gradient, ready to be written into: a copy of its own first when
  /// its storage is shared with another Var's gradient (see accumulateGrad).
  /// Every in-place write to a gradient goes through here.
  func ownedGrad() -> Tensor? {
    guard let g = grad else { return nil }
    guard g.storage.sharedByGrads else { return g }
    let own = g.copy().reshaped(shape)
    grad = own
    return own
  }

  /// A gradient buffer to add into, zero-filled when first created. For
  /// backward kernels that accumulate (`+=`) directly.
  public func gradBuffer() -> Tensor {
    if let g = ownedGrad() { return g }
    let g = Tensor.zeros(shape)
    grad = g
    return g
  }

  /// Where a backward kernel writes this input's gradient: the existing
  /// gradient to add into (`accumulate` true), or, when this is the first to
  /// arrive, a fresh UNINITIALISED buffer that the kernel must overwrite in
  /// full. Saves gradBuffer's zero fill and the read of those zeros: the
  /// large activation gradients of a training step mostly arrive once.
  public func gradDestination() -> (tensor: Tensor, accumulate: Bool) {
    if let g = ownedGrad() { return (g, true) }
    let g = Tensor(uninitialized: shape)
    #if DEBUG
    // Tests run debug builds: a kernel that leaves any element unwritten shows NaN there.
    g.fill(.nan)
    #endif
    grad = g
    return (g, false)
  }

}

public final class Tape {
  struct Entry {
    let output: Var
    let backward: (Tensor) -> Void
    /// Parameter inputs (named leaves): their gradient is final once every
    /// entry that uses them has run, which lets communication start early.
    let parameters: [Var]
    /// The recording function (OpProfile's row).
    let op: StaticString
  }

  /// The tape of the (single) training thread. Ops record here while `isRecording`.
  public static let shared = Tape()
  public var isRecording = false
  var entries: [Entry] = []
  /// Pending uses per parameter in the recorded tape.
  var pendingUses: [ObjectIdentifier: Int] = [:]
  /// Called during backward as soon as a parameter's gradient is complete
  /// (all its uses on the tape have run). The gradient-bucket reducer listens here.
  public var onParameterGradientReady: ((Var) -> Void)?

  public var count: Int { entries.count }

  /// The gradient the running backward closure received (nil between
  /// closures). Backward closures never write into it, so the inputs that
  /// take it whole can share one tensor for it (see Var.accumulateGrad).
  var received: Tensor?
  /// Whether the first input that takes `received` may keep it itself: true
  /// unless its output retains its gradient or it is the caller's seed.
  var receivedMayBeKept = false
  /// What the first input took for `received` (it, or a copy of it).
  var receivedTaken: Tensor?

  /// Records that `output` was computed from inputs needing gradients; `backward`
  /// receives d(loss)/d(output) and must accumulate into the inputs.
  public func record(_ output: Var, parameters: [Var] = [], op: StaticString = #function,
                     _ backward: @escaping (Tensor) -> Void) {
    if OpProfile.enabled && isRecording { OpProfile.forwardEnded(op) }
    for p in parameters { pendingUses[ObjectIdentifier(p), default: 0] += 1 }
    entries.append(Entry(output: output, backward: backward, parameters: parameters, op: op))
  }

  /// Runs backward from a scalar `loss` (seed 1), or from a given seed gradient.
  public func backward(from loss: Var, seed: Tensor? = nil) {
    loss.accumulateGrad(owned: seed ?? Tensor.ones(loss.shape))
    // The caller keeps its seed: never handed off (an input would add into it).
    let callerSeed = seed?.storage
    let wasRecording = isRecording
    isRecording = false
    while let e = entries.popLast() {
      if let g = e.output.grad {
        if !e.output.retainsGrad { e.output.grad = nil }
        received = g
        receivedMayBeKept = !e.output.retainsGrad && g.storage !== callerSeed
        if OpProfile.enabled {
          let t0 = OpProfile.now()
          e.backward(g)
          OpProfile.backwardRan(e.op, ns: OpProfile.now() &- t0)
        } else {
          e.backward(g)
        }
        received = nil
        receivedTaken = nil
      }
      for p in e.parameters {
        let id = ObjectIdentifier(p)
        let left = (pendingUses[id] ?? 1) - 1
        pendingUses[id] = left
        if left == 0 { pendingUses[id] = nil; onParameterGradientReady?(p) }
      }
    }
    pendingUses.removeAll(keepingCapacity: true)
    isRecording = wasRecording
  }

  /// Releases the values of the outputs recorded since `mark` (a `count` taken
  /// before a module's forward), except `keeping` (the module's outputs). Once
  /// the module has returned, only the tape still references its intermediate
  /// Vars, and backward never reads a Var's value: each closure captured the
  /// Tensors it needs when it was recorded. So this frees exactly the outputs
  /// that no backward needs (permute and window copies, residual branches,
  /// outputs consumed by ops that keep no input) instead of holding them to the
  /// end of forward: 42% of the live memory at the end of a Swin-B 640² forward.
  public func releaseValues(recordedSince mark: Int, keeping: [Var]) {
    guard isRecording, mark < entries.count else { return }
    for i in max(0, mark)..<entries.count {
      let out = entries[i].output
      if !keeping.contains(where: { $0 === out }) { out.releaseValue() }
    }
  }

  /// Drops the tape without running it (after a forward that should not train).
  public func clear() {
    entries.removeAll(keepingCapacity: true)
    pendingUses.removeAll(keepingCapacity: true)
  }
}

/// Runs a module's forward (`body`) and then releases the values of the
/// intermediates it recorded (`Tape.releaseValues`), keeping its output. Only
/// for a body whose intermediates stay local to it: a Var it stores elsewhere
/// would lose its value.
public func releasingIntermediates(_ body: () -> Var) -> Var {
  releasingIntermediates(body, outputs: { [$0] })
}

/// `releasingIntermediates` for a module with several outputs: `outputs` lists
/// the Vars of its result, which keep their values.
public func releasingIntermediates<T>(_ body: () -> T, outputs: (T) -> [Var]) -> T {
  let tape = Tape.shared, mark = tape.count
  let out = body()
  tape.releaseValues(recordedSince: mark, keeping: outputs(out))
  return out
}

/// Runs `body` with the tape recording: ops whose inputs require grad record backward.
public func withGradients<T>(_ body: () throws -> T) rethrows -> T {
  let t = Tape.shared, was = t.isRecording
  t.isRecording = true
  defer { t.isRecording = was }
  return try body()
}

/// Runs `body` with recording off: evaluation costs nothing extra.
public func withoutGradients<T>(_ body: () throws -> T) rethrows -> T {
  let t = Tape.shared, was = t.isRecording
  t.isRecording = false
  defer { t.isRecording = was }
  return try body()
}

extension Var {
  /// Runs backward on the shared tape from this scalar.
  public func backward() { Tape.shared.backward(from: self) }
}

/// Makes an op's output Var, recording `backward` when any input needs a
/// gradient and the tape is on. The single place that decides whether an op
/// is differentiated.
@inline(__always)
public func makeResult(_ value: Tensor, inputs: [Var?], op: StaticString = #function,
                       backward: @escaping (Tensor) -> Void) -> Var {
  let tape = Tape.shared
  let needs = tape.isRecording && inputs.contains { $0?.requiresGrad == true }
  let out = Var(value, requiresGrad: needs)
  if needs {
    let params = inputs.compactMap { v -> Var? in
      guard let v = v, v.requiresGrad, v.name != nil else { return nil }
      return v
    }
    tape.record(out, parameters: params, op: op, backward)
  }
  return out
}
