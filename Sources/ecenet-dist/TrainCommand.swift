// `ecenet-dist train`: see --help. Not landed yet: exits 2 with "not implemented yet".
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
