// Which records each rank reads in an epoch. The epoch's permutation depends
// only on (seed, epoch); rank r of R takes positions r, r+R, r+2R, … of it.
//
// Striding (rather than contiguous blocks) means the j-th per-rank batches of
// all ranks together cover positions [j·R·b, (j+1)·R·b) of the permutation: the
// same global batch whatever R is, as long as R·b (the global batch) is fixed.
//
// Remainder (N not divisible by R), chosen by the caller:
// - `.dropTail` (training): the last N mod R positions of the permutation are
//   left out of this epoch, so every rank has the same count (ranks stay in
//   lockstep); the next epoch's permutation differs, so nothing is left out for good.
// - `.padByWrapping` (evaluation, or whenever every record must be seen): the
//   permutation is extended with its own first positions up to a multiple of R,
//   like PyTorch's DistributedSampler; the union over ranks is the whole epoch,
//   and at most R-1 records are read twice (callers that count metrics must
//   skip the padded positions: `isPadding`).
public struct EpochSampler: Sendable, Equatable {
  public enum Remainder: Sendable, Equatable { case dropTail, padByWrapping }

  public let count: Int
  public let seed: UInt64
  public let rank: Int
  public let worldSize: Int
  public let shuffle: Bool
  public let remainder: Remainder

  public init(count: Int, seed: UInt64, rank: Int = 0, worldSize: Int = 1, shuffle: Bool = true,
              remainder: Remainder = .dropTail) throws {
    guard worldSize >= 1, (0..<worldSize).contains(rank) else {
      throw DataError.invalidArgument("sampler: rank \(rank) is not in 0..<\(worldSize)")
    }
    guard count >= worldSize || (remainder == .padByWrapping && count > 0) else {
      throw DataError.invalidArgument("sampler: \(count) records cannot give each of \(worldSize) ranks one (dropTail); use fewer ranks or more data")
    }
    self.count = count; self.seed = seed; self.rank = rank; self.worldSize = worldSize
    self.shuffle = shuffle; self.remainder = remainder
  }

  /// Positions of the epoch that ranks read: N rounded down (dropTail) or up (pad) to a multiple of R.
  public var epochLength: Int {
    remainder == .dropTail ? count / worldSize * worldSize : (count + worldSize - 1) / worldSize * worldSize
  }

  /// How many records each rank reads per epoch (the same on every rank).
  public var perRankCount: Int { epochLength / worldSize }

  /// The whole epoch's order of record indices (the same on every rank).
  public func permutation(epoch: Int) -> [Int] {
    var p = Array(0..<count)
    guard shuffle else { return p }
    var rng = SampleRNG(seed: seed, epoch: UInt64(epoch), stream: .shuffle)
    // Fisher–Yates, from the top.
    for i in stride(from: count - 1, to: 0, by: -1) { p.swapAt(i, rng.below(i + 1)) }
    return p
  }

  /// This rank's record indices for `epoch`, in the order to read them.
  public func indices(epoch: Int) -> [Int] {
    let p = permutation(epoch: epoch)
    return stride(from: rank, to: epochLength, by: worldSize).map { p[$0 % count] }
  }

  /// Whether this rank's k-th position of the epoch is a wrapped-around repeat (padByWrapping only).
  public func isPadding(_ k: Int) -> Bool { rank + k * worldSize >= count }
}
