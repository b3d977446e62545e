// `ecenet-dist eval`: see --help. Not landed yet: exits 2 with "not implemented yet".
import ArgumentParser

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
