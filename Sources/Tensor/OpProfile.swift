// Wall time per op, forward and backward, from the tape itself: the profile
// `ecenet-dist bench step --profile` prints. It needs no perf, so it also runs
// on machines where perf is missing (the 16-core machine of BENCHMARKS.md),
// and it shows which ops stop scaling as threads are added.
//
// Attribution. Backward: each recorded closure is timed as it runs. Forward: an
// op calls `makeResult` (or `Tape.record`) after computing its output, so the
// time since the previous recorded op (or since `mark()`) is charged to it; work
// that records nothing (label preparation, views) lands on the next op that
// records. Ops are named by the Swift function that records them (`#function`).
// Off by default: then each op pays one predictable branch.
import Dispatch

public enum OpProfile {
  /// Turns recording on or off (single training thread; not thread-safe).
  public nonisolated(unsafe) static var enabled = false

  struct Row {
    var name: StaticString
    var calls = 0
    var forwardNs: UInt64 = 0
    var backwardNs: UInt64 = 0
  }
  /// Keyed by the address of the op's name literal (cheap; equal names merge in `rows()`).
  nonisolated(unsafe) static var table: [UInt: Row] = [:]
  nonisolated(unsafe) static var last: UInt64 = 0

  @inline(__always) static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

  /// Starts the forward clock: call right before a forward pass.
  public static func mark() { last = now() }

  /// Drops everything recorded so far.
  public static func reset() { table.removeAll(keepingCapacity: true); mark() }

  static func key(_ op: StaticString) -> UInt {
    op.hasPointerRepresentation ? UInt(bitPattern: op.utf8Start) : UInt(op.unicodeScalar.value)
  }

  /// An op finished its forward (it is recording its backward now).
  static func forwardEnded(_ op: StaticString) {
    let t = now()
    let k = key(op)
    table[k, default: Row(name: op)].calls += 1
    table[k]!.forwardNs += t &- last
    last = t
  }

  /// An op's backward closure ran for `ns` nanoseconds.
  static func backwardRan(_ op: StaticString, ns: UInt64) {
    table[key(op), default: Row(name: op)].backwardNs += ns
  }

  /// One row per op name: calls, forward and backward seconds, summed since `reset()`.
  /// The name is the recording function without its argument labels ("linear").
  public static func rows() -> [(op: String, calls: Int, forward: Double, backward: Double)] {
    var merged: [String: (Int, UInt64, UInt64)] = [:]
    for r in table.values {
      let full = r.name.description
      let name = full.split(separator: "(", maxSplits: 1).first.map(String.init) ?? full
      let m = merged[name] ?? (0, 0, 0)
      merged[name] = (m.0 + r.calls, m.1 + r.forwardNs, m.2 + r.backwardNs)
    }
    return merged.map { (op: $0.key, calls: $0.value.0, forward: Double($0.value.1) * 1e-9, backward: Double($0.value.2) * 1e-9) }
      .sorted { $0.forward + $0.backward > $1.forward + $1.backward }
  }
}
