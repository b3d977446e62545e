// The datasets of a run and the order this rank reads them in.
//
// Iteration t of the run consumes global batch t of its epoch: positions
// [t·G, (t+1)·G) of the epoch's permutation (G = global batch). Rank r reads
// every R-th of them (EpochSampler), split into `accumulation` micro-batches of
// `perRank` images. The union over ranks and micro-batches is the same set of
// images for every world size, so a run resumed on another number of ranks
// continues the same schedule (elastic resume).
import Data
import Foundation
import Models

public struct RunDatasets {
  public let train: any SegmentationSource
  public let val: any SegmentationSource
  public let classNames: [String]
  public let palette: [[Int]]

  public init(config: TrainConfig) throws {
    let n = config.model.numClasses
    switch config.data.dataset {
    case "synthetic":
      let s = config.data.synthetic
      train = try SyntheticDataset(count: s.trainCount, numClasses: n, width: s.size, height: s.size,
                                   seed: s.seed, ignoreBorder: s.ignoreBorder)
      // A disjoint stream of scenes for validation.
      val = try SyntheticDataset(count: s.valCount, numClasses: n, width: s.size, height: s.size,
                                 seed: s.seed &+ 0x5EED_0000_0001, ignoreBorder: s.ignoreBorder)
      classNames = ["background"] + (1..<n).map { "shape\($0)" }
      palette = ClassNames.defaultPalette(n)
    default:
      let root = config.data.root
      let tr: ShardedDataset, va: ShardedDataset
      do {
        tr = try ShardedDataset(directory: (root as NSString).appendingPathComponent("train"))
        va = try ShardedDataset(directory: (root as NSString).appendingPathComponent("val"))
      } catch {
        throw TrainError.config("data.root=\(root): \(error). Pack the dataset first: ecenet-dist pack --format … --root … --split train --out \(root)")
      }
      guard tr.numClasses == n else {
        throw TrainError.config("model.num_classes is \(n) but the packed dataset at \(root) has \(tr.numClasses) classes")
      }
      train = tr; val = va
      classNames = tr.manifest.classNames
      palette = tr.manifest.palette
    }
  }
}

/// Hands out this rank's micro-batches in schedule order, across epochs.
public final class TrainBatches {
  let source: any SegmentationSource
  let sampler: EpochSampler
  let augment: TrainAugment
  let seed: UInt64
  public let perRank: Int
  public let accumulation: Int
  public let iterationsPerEpoch: Int
  let workers: Int, prefetch: Int
  private var stream: BatchStream<TrainSample>?
  private var streamEpoch = -1

  public init(source: any SegmentationSource, config: TrainConfig, rank: Int, worldSize: Int,
              perRank: Int, accumulation: Int) throws {
    self.source = source
    self.perRank = perRank
    self.accumulation = accumulation
    seed = config.train.seed
    sampler = try EpochSampler(count: source.count, seed: seed, rank: rank, worldSize: worldSize,
                               shuffle: true, remainder: .dropTail)
    var a = TrainAugment(scaleLong: config.data.scale[0], scaleShort: config.data.scale[1],
                         cropHeight: config.data.cropSize[0], cropWidth: config.data.cropSize[1])
    a.catMaxRatio = config.data.catMaxRatio
    a.photometric = config.data.photometric
    augment = a
    iterationsPerEpoch = source.count / config.train.globalBatch
    guard iterationsPerEpoch > 0 else {
      throw TrainError.config("the training set has \(source.count) images, fewer than one global batch (\(config.train.globalBatch))")
    }
    workers = config.data.workers
    prefetch = config.data.prefetch
  }

  /// Positions the stream at the start of `iteration` (after a resume, or at 0).
  public func seek(iteration: Int) throws {
    let epoch = iteration / iterationsPerEpoch, k = iteration % iterationsPerEpoch
    let all = sampler.indices(epoch: epoch)
    let used = Array(all[(k * accumulation * perRank)..<(iterationsPerEpoch * accumulation * perRank)])
    let (aug, s) = (augment, seed)
    stream = try BatchStream(source: source, indices: used, batchSize: perRank, workers: workers,
                             prefetchBatches: prefetch, dropLast: true) { sample, index in
      aug.apply(sample, seed: s, epoch: epoch, index: index)
    }
    streamEpoch = epoch
  }

  /// The `accumulation` micro-batches of `iteration` (calls must follow the schedule order).
  public func batches(for iteration: Int) throws -> [TrainBatch] {
    let epoch = iteration / iterationsPerEpoch
    if stream == nil || epoch != streamEpoch { try seek(iteration: iteration) }
    var out: [TrainBatch] = []
    for _ in 0..<accumulation {
      guard let b = try stream!.next() else {
        throw TrainError.config("internal: the loader ran out of batches in epoch \(epoch) at iteration \(iteration)")
      }
      out.append(TrainBatch(b))
    }
    return out
  }
}
