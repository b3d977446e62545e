// A TrainBatch from already-stacked arrays: what tests use to drive the
// trainer with batches exported elsewhere (the PyTorch reference's), without
// going through TrainSample / augmentation.
//
// Not here: any checking of the values (normalisation, label range) — the
// batch is taken as given, only the sizes are checked.

extension TrainBatch {
  /// `images` B×H×W×3 normalised, channels last; `labels` B×H×W (255 = ignore).
  /// Indices default to 0..<B and names to "batch[i]".
  public init(images: [Float], labels: [UInt8], count: Int, height: Int, width: Int,
              indices: [Int]? = nil, names: [String]? = nil) {
    precondition(count > 0 && height > 0 && width > 0, "TrainBatch: empty shape [\(count), \(height), \(width)]")
    precondition(images.count == count * height * width * 3,
                 "TrainBatch: \(images.count) image values for [\(count), \(height), \(width), 3]")
    precondition(labels.count == count * height * width,
                 "TrainBatch: \(labels.count) labels for [\(count), \(height), \(width)]")
    let idx = indices ?? Array(0..<count)
    let nm = names ?? idx.map { "batch[\($0)]" }
    precondition(idx.count == count && nm.count == count, "TrainBatch: \(idx.count) indices / \(nm.count) names for \(count) images")
    self.images = images; self.labels = labels
    self.count = count; self.height = height; self.width = width
    self.indices = idx; self.names = nm
  }
}
