// `ecenet-dist browse`: writes the first training samples after the config's
// augmentations as pictures (Train/Browse.swift).
import ArgumentParser
import Data
import Foundation
import Train

struct Browse: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write what training feeds the model: augmented samples with their labels, as pictures.",
    discussion: """
      Runs the training loader of the config (resize by the random ratio, crop,
      flip, photometric distortion, padding) on the first N records of epoch 0
      and writes, for each, OUT/NNN_<name>.png (the image the model sees),
      NNN_<name>_label.png (labels as a palette PNG: pixel value = class, 255 =
      ignored, as packed) and NNN_<name>_overlay.jpg (the classes on the image;
      ignored pixels left bare). The same record gets the same augmentation in
      training on any number of ranks (seed, epoch and record decide it).

        ecenet-dist browse --config configs/debug/synthetic.yaml --count 4 --out browse/
        ecenet-dist browse --config configs/ade20k/ecenet_swin-b_640x640_160k.yaml data.photometric=false
      """)
  @OptionGroup var common: CommonOptions
  @Option(help: "How many samples (default 8).") var count = 8
  @Option(help: "Output directory (default: WORK_DIR/browse, WORK_DIR as train's).") var out: String?
  @Argument(help: "Config overrides as dotted KEY=VALUE pairs.") var overrides: [String] = []

  func validate() throws {
    guard count > 0 else { throw ValidationError("--count \(count): give at least 1") }
  }

  func run() throws {
    let config = try RunSetup.loadConfig(common.config, overrides: overrides, iterations: nil)
    RunSetup.configureThreads(flag: common.threads, config: config.train.threads)
    let workDir = common.resolvedWorkDir
    let outDir = out ?? (workDir as NSString).appendingPathComponent("browse")
    let datasets = try RunDatasets(config: config)
    let samples = try BrowseSamples.trainingSamples(config: config, datasets: datasets, count: count)
    try makeDirectory(outDir, for: "output directory")
    func write(_ bytes: [UInt8], _ name: String) throws { try RunSetup.writeOutput(bytes, in: outDir, name: name) }
    for (i, s) in samples.enumerated() {
      let stem = String(format: "%03d_", i) + Predictor.outputStems([s.name])[0]
      try write(try PNGCodec.encode(s.image), stem + ".png")
      try write(try Predictor.encodeLabels(s.labels, palette: datasets.palette), stem + "_label.png")
      try write(try JPEGCodec.encode(Predictor.overlay(s.image, labels: s.labels, palette: datasets.palette), quality: 90),
                stem + "_overlay.jpg")
    }
    let crop = config.data.cropSize
    print("wrote \(samples.count) training sample(s) (\(crop[0])×\(crop[1]), after augmentation) to \(outDir)"
          + (samples.count < count ? "; the training set has only \(samples.count)" : ""))
  }
}
