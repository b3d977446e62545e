// The one collective operation the model itself needs: SyncBN reduces its
// per-channel sums over all ranks. Declared here so Models never import Dist
// (DESIGN.md); Dist implements it over MPI, `LocalCollective` is a world of one.

public protocol Collective: AnyObject {
  var rank: Int { get }
  var worldSize: Int { get }
  /// In-place sum over all ranks. Every rank must call it with the same count.
  func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws
}

/// A world of one: the sum over ranks is the local value.
public final class LocalCollective: Collective {
  public init() {}
  public var rank: Int { 0 }
  public var worldSize: Int { 1 }
  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
}
