// Parameters in one flat arena (DESIGN.md). Layers register parameters by
// stable dotted name while the model is built; `finalize()` then lays all of
// them out in one contiguous Float buffer (values) and a second one of the
// same layout (gradients), and re-points every parameter's value and grad at
// its slice. A gradient bucket is then a slice of `gradients`, allreduce never
// copies, and broadcasting the initial weights is one call.
//
// Buffers (BatchNorm running statistics) are named too but live outside the
// arena: they are saved in checkpoints, not optimised or allreduced.
import Tensor

public final class ParameterStore {
  public struct Entry {
    public let name: String
    public let variable: Var
    /// Offset and count in the arena (valid after finalize).
    public internal(set) var offset: Int
    public var count: Int { variable.count }
    /// False for norms, biases and relative-position tables (spec §7: no weight decay).
    public let decay: Bool
    /// Learning-rate multiplier of this parameter's group.
    public var lrMultiplier: Float
  }

  public private(set) var entries: [Entry] = []
  public private(set) var buffers: [(name: String, tensor: Tensor)] = []
  private var names: Set<String> = []
  public private(set) var values: Tensor?
  public private(set) var gradients: Tensor?
  public var isFinalized: Bool { values != nil }

  public init() {}

  /// Registers a parameter initialised to `initial` (its shape is the parameter's).
  @discardableResult
  public func parameter(_ name: String, _ initial: Tensor, decay: Bool = true, lrMultiplier: Float = 1) -> Var {
    precondition(!isFinalized, "parameter \(name) registered after finalize()")
    precondition(!names.contains(name), "duplicate parameter name \(name)")
    names.insert(name)
    let v = Var(initial, requiresGrad: true, name: name)
    entries.append(Entry(name: name, variable: v, offset: -1, decay: decay, lrMultiplier: lrMultiplier))
    return v
  }

  /// Registers a named non-trainable buffer (e.g. BatchNorm running mean).
  @discardableResult
  public func buffer(_ name: String, _ initial: Tensor) -> Tensor {
    precondition(!names.contains(name), "duplicate buffer name \(name)")
    names.insert(name)
    buffers.append((name, initial))
    return initial
  }

  public var parameterCount: Int { entries.reduce(0) { $0 + $1.count } }

  /// Moves every parameter into the arena; gradients become arena views (zeroed).
  public func finalize() {
    precondition(!isFinalized, "finalize() called twice")
    let total = parameterCount
    let vals = Tensor(storage: Storage(unpooledCount: max(1, total)), shape: [total])
    let grads = Tensor(storage: Storage(unpooledCount: max(1, total)), shape: [total])
    grads.zero()
    var off = 0
    for i in entries.indices {
      let v = entries[i].variable
      let view = Tensor(storage: vals.storage, offset: off, shape: v.shape)
      view.data.update(from: v.value.data, count: v.count)
      v.value = view
      v.grad = Tensor(storage: grads.storage, offset: off, shape: v.shape)
      entries[i].offset = off
      off += v.count
    }
    values = vals
    gradients = grads
  }

  /// Zeroes all gradients (once per step; backward kernels accumulate).
  public func zeroGradients() { gradients?.zero() }

  public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }
}
