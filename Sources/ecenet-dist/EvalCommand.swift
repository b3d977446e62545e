// `ecenet-dist eval`: mIoU of a checkpoint, spread over ranks.
import ArgumentParser
import Dist
import Foundation
import Models
import Tensor
import Train

struct Eval: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Evaluate a checkpoint: mIoU, aAcc, per-class IoU and accuracy.",
    discussion: """
      Every rank evaluates its share of the validation set (images r, r+R, ...);
      the confusion matrices are summed, so N ranks give exactly the 1-rank
      mIoU. Rank 0 prints the per-class table and writes WORK_DIR/eval.json.

        ecenet-dist eval --config configs/debug/synthetic.yaml --checkpoint work_dirs/synthetic/checkpoints
        ecenet-dist eval --config runs/x/config.yaml --work-dir runs/x --checkpoint runs/x/checkpoints
        mpirun -n 4 ecenet-dist eval --config ... --checkpoint ckpt.safetensors --multi-scale --flip --json
      """)
  @OptionGroup var common: CommonOptions
  @Option(help: "Checkpoint file, or a checkpoints directory (its 'latest').") var checkpoint: String
  @Flag(help: "Multi-scale inference (ratios 0.5 ... 1.75, from evaluation.ratios).") var multiScale = false
  @Flag(help: "Add horizontally flipped copies.") var flip = false
  @Option(help: "Inference mode: whole or slide (default: the config's evaluation.mode).") var mode: String?
  @Flag(help: "Print only one JSON object on standard output.") var json = false
  @Argument(help: "Config overrides as dotted KEY=VALUE pairs.") var overrides: [String] = []

  func validate() throws {
    if let m = mode, !["whole", "slide"].contains(m) { throw ValidationError("--mode must be whole or slide") }
    _ = try RunSetup.loadConfig(common.config, overrides: overrides, iterations: nil)
  }

  func run() throws {
    let config = try RunSetup.loadConfig(common.config, overrides: overrides, iterations: nil)
    let workDir = common.resolvedWorkDir
    RunSetup.configureThreads(flag: common.threads, config: config.train.threads)
    config.applyPrecision()
    RunSetup.inWorld { world in
      let model = ECENet(config: config.model, seed: config.train.seed, collective: world)
      model.store.finalize()
      let meta = try Checkpoint.loadWeights(path: checkpoint, into: model.store, config: config.yaml())
      let datasets = try RunDatasets(config: config)
      var opts = InferenceOptions()
      opts.mode = mode ?? config.evaluation.mode
      opts.crop = (config.data.cropSize[0], config.data.cropSize[1])
      opts.ratios = multiScale ? config.evaluation.ratios : [1.0]
      opts.flip = flip
      let result = try Evaluator.run(model: model, source: datasets.val, world: world, config: config, options: opts,
                                     iteration: Int(meta["iteration"] ?? "") ?? 0, classNames: datasets.classNames,
                                     palette: datasets.palette, samplesDir: nil, progress: !json)
      if world.rank == 0 {
        try makeDirectory(workDir, for: "work dir")
        try result.write(workDir: workDir)
        if json {
          let data = try JSONSerialization.data(withJSONObject: result.json, options: [.sortedKeys])
          print(String(decoding: data, as: UTF8.self))
        } else {
          print(result.matrix.table(classNames: datasets.classNames))
          print("\(result.images) images, \(world.worldSize) rank(s); eval.json in \(workDir)")
        }
      }
      return 0
    }
  }
}
