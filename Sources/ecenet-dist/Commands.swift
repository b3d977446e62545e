// Subcommands that have not landed yet. Each documents its interface in
// --help and exits 2 with "not implemented yet" until its issue is resolved.
import ArgumentParser

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train ECENet (single process, or one rank of an mpirun/srun job).",
    discussion: """
      Reads a YAML config; KEY=VALUE arguments override dotted keys. The global
      batch (default 16) is split as ranks x per-rank batch x accumulation steps,
      so any world size that divides it runs the same recipe.

        ecenet-dist train --config configs/debug/synthetic.yaml --iterations 200
        mpirun -n 2 ecenet-dist train --config configs/debug/synthetic.yaml optimizer.lr=1e-4
      """)
  @OptionGroup var common: CommonOptions
  @Option(help: "Resume: 'auto' (newest valid checkpoint in the work dir) or a checkpoint path.")
  var resume: String?
  @Option(help: "Shorten the run to N iterations (warmup and poly decay scale with it).")
  var iterations: Int?
  @Argument(help: "Config overrides as dotted KEY=VALUE pairs.")
  var overrides: [String] = []
  func run() throws { throw notImplemented("train", issue: 6) }
}

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Evaluate a checkpoint: mIoU, aAcc, per-class IoU and accuracy.",
    discussion: """
        ecenet-dist eval --config configs/debug/synthetic.yaml --checkpoint work/ckpt/latest
        mpirun -n 4 ecenet-dist eval --config ... --checkpoint ... --multi-scale --flip --json
      """)
  @OptionGroup var common: CommonOptions
  @Option(help: "Checkpoint file or directory.") var checkpoint: String?
  @Flag(help: "Multi-scale inference (ratios 0.5 ... 1.75).") var multiScale = false
  @Flag(help: "Add horizontally flipped copies.") var flip = false
  @Flag(help: "Print one JSON object on standard output.") var json = false
  func run() throws { throw notImplemented("eval", issue: 6) }
}

struct Predict: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Segment images: label PNGs with the dataset palette, optional colour overlays.",
    discussion: """
        ecenet-dist predict --config ... --checkpoint ... --input photos/ --out preds/ --overlay
      """)
  @OptionGroup var common: CommonOptions
  @Option(help: "Checkpoint file.") var checkpoint: String?
  @Option(help: "An image or a directory of images.") var input: String?
  @Option(help: "Output directory.") var out: String?
  @Flag(help: "Also write colour overlays on the image.") var overlay = false
  @Flag(help: "Multi-scale inference.") var multiScale = false
  @Flag(help: "Add horizontally flipped copies.") var flip = false
  func run() throws { throw notImplemented("predict", issue: 8) }
}

struct Pack: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Pack a dataset into checksummed zstd shards, or verify a packed one.",
    discussion: """
      Formats: ade20k, pascal-context, cityscapes, folder.

        ecenet-dist pack --format ade20k --root ADEChallengeData2016 --split train --out data/ade20k
        ecenet-dist pack --verify data/ade20k
      """)
  @Option(help: "Dataset layout: ade20k | pascal-context | cityscapes | folder.") var format: String?
  @Option(help: "Dataset root directory.") var root: String?
  @Option(help: "train | val") var split: String?
  @Option(help: "Output directory.") var out: String?
  @Option(help: "Verify a packed dataset directory instead of packing.") var verify: String?
  func run() throws { throw notImplemented("pack", issue: 5) }
}

struct Info: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Parameters per module and forward GFLOPs of a config's model.",
    discussion: """
        ecenet-dist info --config configs/ade20k/ecenet_swin-b_640x640_160k.yaml --json
      """)
  @OptionGroup var common: CommonOptions
  @Flag(help: "Print one JSON object with params and gflops.") var json = false
  func run() throws { throw notImplemented("info", issue: 4) }
}

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Throughput figures: ops, training step, loader, scaling (see scripts/bench.sh).")
  @Argument(help: "What to measure: ops | step | data.") var what: String = "step"
  func run() throws { throw notImplemented("bench", issue: 9) }
}

struct Report: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write WORK_DIR/report.html: curves, per-class IoU, confusions, sample predictions.")
  @OptionGroup var common: CommonOptions
  func run() throws { throw notImplemented("report", issue: 8) }
}
