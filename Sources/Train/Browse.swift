// What the model is fed (mmseg's tools/misc/browse_dataset.py): training
// samples as the trainer's loader makes them (the config's resize, crop,
// flip, photometric distortion and padding), turned back into pictures, so a
// wrong scale, crop, label mapping or ignore region shows before a long run.
import Data
import Foundation

public enum BrowseSamples {
  /// One training sample, back in pixels: the augmented image (8-bit RGB) and
  /// its labels (one channel; 255 = ignored, the crop's padding included).
  public struct Sample {
    public let index: Int
    public let name: String
    public let image: Image8
    public let labels: Image8
  }

  /// The first `count` samples of epoch 0 in the order a one-rank run draws
  /// them, with the augmentation each of those records gets in that epoch on
  /// any rank count (it is keyed by seed, epoch and record).
  public static func trainingSamples(config: TrainConfig, datasets: RunDatasets, count: Int) throws -> [Sample] {
    var one = config
    one.train.globalBatch = 1  // one image a batch: the epoch's first `count` records
    one.data.workers = max(1, min(config.data.workers, count))
    let batches = try TrainBatches(source: datasets.train, config: one, rank: 0, worldSize: 1, perRank: 1, accumulation: 1)
    return try (0..<min(count, batches.iterationsPerEpoch)).map { i in
      let b = try batches.batches(for: i)[0]
      return Sample(index: b.indices[0], name: b.names[0], image: denormalized(b.images, height: b.height, width: b.width),
                    labels: Image8(width: b.width, height: b.height, channels: 1, pixels: b.labels))
    }
  }

  /// A normalised HWC RGB image ((x − mean) / std, ImageNet's) back to 8 bits, rounded and clamped.
  public static func denormalized(_ x: [Float], height: Int, width: Int) -> Image8 {
    precondition(x.count == height * width * 3, "BrowseSamples.denormalized: \(x.count) values for \(height)×\(width)×3")
    let pixels = x.indices.map { i -> UInt8 in
      let c = i % 3, v = x[i] * imagenetStd[c] + imagenetMean[c]
      return UInt8(min(255, max(0, v.rounded())))
    }
    return Image8(width: width, height: height, channels: 3, pixels: pixels)
  }
}
