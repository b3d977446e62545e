// Tensor: a contiguous, row-major Float32 array with a shape.
//
// Layout decision: images are channels-last, [B, H, W, C]. Then a 1×1 conv,
// a Linear and Swin's token MLP are all one GEMM over B·H·W rows with no
// transposes, window partition moves whole C-vectors, and LayerNorm/softmax
// reduce over the innermost, contiguous axis. PyTorch's NCHW goldens are
// compared after a permute in the tests.
//
// Tensors are always contiguous; a view shares storage at an offset
// (reshape, and slicing along the first axis, cost nothing). Anything else
// (permute, strided slice) copies, which keeps every kernel simple and fast.

public struct Tensor: @unchecked Sendable {
  public let storage: Storage
  public let offset: Int
  public let shape: [Int]

  public var count: Int { shape.reduce(1, *) }
  public var rank: Int { shape.count }
  /// Pointer to the first element. Mutating through it is how kernels write.
  public var data: UnsafeMutablePointer<Float> { storage.base + offset }

  public init(storage: Storage, offset: Int = 0, shape: [Int]) {
    precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
    precondition(offset + shape.reduce(1, *) <= storage.count, "view \(shape) at \(offset) exceeds storage of \(storage.count)")
    self.storage = storage; self.offset = offset; self.shape = shape
  }

  /// A shape with no data (a released Var's value): its storage holds one float,
  /// so `data` must never be read through it.
  init(placeholderOf shape: [Int]) {
    self.storage = Tensor.placeholderStorage; self.offset = 0; self.shape = shape
  }
  private static let placeholderStorage = Storage(unpooledCount: 1)

  /// Uninitialised contents: for outputs that a kernel fully overwrites.
  public init(uninitialized shape: [Int]) {
    self.init(storage: Storage(count: shape.reduce(1, *)), shape: shape)
  }

  public static func zeros(_ shape: [Int]) -> Tensor { filled(shape, 0) }
  public static func ones(_ shape: [Int]) -> Tensor { filled(shape, 1) }
  public static func filled(_ shape: [Int], _ value: Float) -> Tensor {
    let t = Tensor(uninitialized: shape)
    t.fill(value)
    return t
  }

  public init(shape: [Int], values: [Float]) {
    precondition(values.count == shape.reduce(1, *), "Tensor: \(values.count) values for shape \(shape)")
    self.init(uninitialized: shape)
    values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: values.count) }
  }

  public init(scalar: Float) { self.init(shape: [], values: [scalar]) }

  public var scalar: Float {
    precondition(count == 1, "scalar of a tensor with shape \(shape)")
    return data[0]
  }

  public func toArray() -> [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

  public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }

  /// Same storage, new shape; one dimension may be -1.
  public func reshaped(_ newShape: [Int]) -> Tensor {
    Tensor(storage: storage, offset: offset, shape: resolveShape(newShape, count: count))
  }

  /// Rows `range` of the first axis, without copying.
  public func slice(_ range: Range<Int>) -> Tensor {
    precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "slice \(range) of \(shape)")
    let inner = shape.dropFirst().reduce(1, *)
    return Tensor(storage: storage, offset: offset + range.lowerBound * inner,
                  shape: [range.count] + shape.dropFirst())
  }

  public func copy() -> Tensor {
    let t = Tensor(uninitialized: shape)
    let (d, s) = (t.data, data)
    inParallelChunks(count) { lo, n in (d + lo).update(from: s + lo, count: n) }
    return t
  }

  /// Sets every element to `value` in place.
  public func fill(_ value: Float) {
    let d = data
    inParallelChunks(count) { lo, n in (d + lo).update(repeating: value, count: n) }
  }

  /// Sets every element to zero in place.
  public func zero() { fill(0) }

  /// self += other (same count), in place.
  public func add(_ other: Tensor) {
    precondition(other.count == count, "add: \(other.shape) into \(shape)")
    let d = data, o = other.data
    Parallel.forRange(count, grain: 1 << 16) { r in for i in r { d[i] += o[i] } }
  }
}

/// body(start, count) over 0..<total: on the calling thread below 2¹⁸ elements
/// (1 MiB), else in chunks of at least 2¹⁶ over the threads. A training step's
/// gradient copies and zero fills are large (a gradient shared by two inputs
/// is copied when one of them is written, the arena is zeroed every step), and
/// one thread streams them at one core's memory bandwidth: "+" backward took
/// 42 ms per Swin-T 512² b2 step on 16 cores against 47 ms on 2 (session 7,
/// when the add still copied its gradient for the second input).
@inline(__always)
func inParallelChunks(_ total: Int, _ body: (Int, Int) -> Void) {
  if total < 1 << 18 { if total > 0 { body(0, total) }; return }
  Parallel.forRange(total, grain: 1 << 16) { r in body(r.lowerBound, r.count) }
}

/// Resolves a single -1 in a shape against an element count.
public func resolveShape(_ shape: [Int], count: Int) -> [Int] {
  var s = shape
  if let i = s.firstIndex(of: -1) {
    let known = s.enumerated().filter { $0.offset != i }.map(\.element).reduce(1, *)
    precondition(known > 0 && count % known == 0, "cannot reshape \(count) elements into \(shape)")
    s[i] = count / known
  }
  precondition(s.reduce(1, *) == count, "cannot reshape \(count) elements into \(shape)")
  return s
}

extension Tensor: CustomStringConvertible {
  public var description: String {
    let head = toArray().prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
    return "Tensor\(shape)[\(head)\(count > 8 ? ", …" : "")]"
  }
}

import Foundation
