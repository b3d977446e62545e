// Worker threads that decode and augment ahead of the trainer. Batches come
// out in a fixed order however many workers there are: each sample's result
// is stored at its position and a batch is handed over only when all its
// positions are filled. Workers run at most `prefetchBatches` batches ahead
// of the consumer, which bounds memory.
//
// Because every sample's randomness is keyed by (seed, epoch, record index),
// the bytes of a batch do not depend on the worker count or prefetch depth.
import Foundation

/// A stream of batches over a fixed list of record indices (one rank's epoch, or a validation pass).
public final class BatchStream<Output: Sendable> {
  public let batchSize: Int
  public let numBatches: Int
  private let state: State

  /// `make` turns record `indices[k]` into an output; it runs on worker threads.
  /// `workers` = 0 computes on the caller's thread inside `next()` (for debugging).
  /// With `dropLast`, a final partial batch is left out (training: every step has b samples).
  public init(source: any SegmentationSource, indices: [Int], batchSize: Int, workers: Int, prefetchBatches: Int,
              dropLast: Bool, make: @escaping @Sendable (SegSample, Int) -> Output) throws {
    guard batchSize >= 1 else { throw DataError.invalidArgument("loader: batch size must be at least 1, got \(batchSize)") }
    guard workers >= 0, prefetchBatches >= 1 else {
      throw DataError.invalidArgument("loader: workers must be >= 0 and prefetch depth >= 1 (got \(workers), \(prefetchBatches))")
    }
    self.batchSize = batchSize
    numBatches = dropLast ? indices.count / batchSize : (indices.count + batchSize - 1) / batchSize
    let used = min(indices.count, numBatches * batchSize)
    state = State(source: source, indices: Array(indices.prefix(used)), batchSize: batchSize,
                  prefetch: prefetchBatches, make: make)
    for _ in 0..<workers {
      let s = state
      s.running.enter()
      let t = Thread { s.work(); s.running.leave() }
      t.name = "ecenet-data-worker"
      t.start()
    }
    state.inline = workers == 0
  }

  deinit { state.cancel() }

  /// The next batch in order, or nil after the last. A sample that failed to
  /// load makes its batch throw the error (which names shard, record and source).
  public func next() throws -> [Output]? {
    try state.take()
  }

  final class State: @unchecked Sendable {  // all mutable state behind `cond`
    let source: any SegmentationSource
    let indices: [Int]
    let batchSize: Int, prefetch: Int
    let make: @Sendable (SegSample, Int) -> Output
    let cond = NSCondition()
    let running = DispatchGroup()
    var inline = false
    var slots: [Result<Output, Error>?]
    var nextJob = 0, delivered = 0
    var cancelled = false

    init(source: any SegmentationSource, indices: [Int], batchSize: Int, prefetch: Int,
         make: @escaping @Sendable (SegSample, Int) -> Output) {
      self.source = source; self.indices = indices; self.batchSize = batchSize; self.prefetch = prefetch; self.make = make
      slots = Array(repeating: nil, count: indices.count)
    }

    func compute(_ k: Int) -> Result<Output, Error> {
      Result { let i = indices[k]; return make(try source.sample(at: i), i) }
    }

    func work() {
      while true {
        cond.lock()
        while !cancelled && nextJob < indices.count && nextJob >= (delivered + prefetch) * batchSize { cond.wait() }
        if cancelled || nextJob >= indices.count { cond.unlock(); return }
        let k = nextJob
        nextJob += 1
        cond.unlock()
        let r = compute(k)
        cond.lock(); slots[k] = r; cond.broadcast(); cond.unlock()
      }
    }

    func take() throws -> [Output]? {
      cond.lock()
      let start = delivered * batchSize
      guard start < indices.count else { cond.unlock(); return nil }
      let end = min(indices.count, start + batchSize)
      if inline {
        cond.unlock()
        for k in start..<end { slots[k] = compute(k) }
        cond.lock()
      } else {
        while (start..<end).contains(where: { slots[$0] == nil }) { cond.wait() }
      }
      let results = (start..<end).map { slots[$0]! }
      for k in start..<end { slots[k] = nil }
      delivered += 1
      cond.broadcast()
      cond.unlock()
      return try results.map { try $0.get() }
    }

    func cancel() {
      cond.lock(); cancelled = true; cond.broadcast(); cond.unlock()
      running.wait()
    }
  }
}

/// One training batch, stacked: images B×H×W×3 (normalised, HWC), labels B×H×W.
public struct TrainBatch: Sendable {
  public var images: [Float]
  public var labels: [UInt8]
  public var count: Int
  public var height: Int
  public var width: Int
  /// Record indices and source names, for logs and error messages.
  public var indices: [Int]
  public var names: [String]

  public init(_ samples: [TrainSample]) {
    precondition(!samples.isEmpty && samples.allSatisfy { $0.height == samples[0].height && $0.width == samples[0].width },
                 "TrainBatch: samples must be non-empty and crop-sized")
    count = samples.count; height = samples[0].height; width = samples[0].width
    images = []; images.reserveCapacity(count * height * width * 3)
    labels = []; labels.reserveCapacity(count * height * width)
    for s in samples { images += s.image; labels += s.label }
    indices = samples.map(\.index); names = samples.map(\.name)
  }
}

/// What the trainer calls: one rank's training batches for an epoch, and validation passes.
public enum DataLoader {
  /// This rank's batches of `epoch`: sampler order, augmented, stacked. Partial last batch dropped.
  public static func training(source: any SegmentationSource, sampler: EpochSampler, epoch: Int,
                              augment: TrainAugment, seed: UInt64, batchSize: Int,
                              workers: Int, prefetchBatches: Int = 2) throws -> BatchStream<TrainSample> {
    guard sampler.count == source.count else {
      throw DataError.invalidArgument("loader: sampler covers \(sampler.count) records, the dataset has \(source.count)")
    }
    return try BatchStream(source: source, indices: sampler.indices(epoch: epoch), batchSize: batchSize,
                           workers: workers, prefetchBatches: prefetchBatches, dropLast: true) { s, i in
      augment.apply(s, seed: seed, epoch: epoch, index: i)
    }
  }

  /// Validation samples one at a time (sizes differ), in `indices` order; no randomness.
  public static func validation(source: any SegmentationSource, indices: [Int], augment: EvalAugment,
                                workers: Int, prefetchBatches: Int = 4) throws -> BatchStream<EvalSample> {
    try BatchStream(source: source, indices: indices, batchSize: 1, workers: workers,
                    prefetchBatches: prefetchBatches, dropLast: false) { s, i in augment.apply(s, index: i) }
  }
}
