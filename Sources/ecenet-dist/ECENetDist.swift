// The root command only lists the subcommands; each lives in its own file.
import ArgumentParser
import Foundation

@main
struct ECENetDist: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "ecenet-dist",
    abstract: "Data-parallel training of ECENet semantic segmentation on CPU clusters.",
    discussion: """
      Run any subcommand as a single process for debugging, or under mpirun/srun
      for data-parallel training (one replica per rank, gradients averaged with
      MPI allreduce). See README.md for worked examples.

        ecenet-dist train --config configs/debug/synthetic.yaml
        mpirun -n 8 ecenet-dist train --config configs/ade20k/ecenet_swin-b_640x640_160k.yaml
      """,
    subcommands: [Train.self, Eval.self, Predict.self, Pack.self, Info.self, Bench.self, Report.self,
                  SelfTest.self])
}

/// Options every subcommand that touches a run shares.
struct CommonOptions: ParsableArguments {
  @Option(name: .long, help: "YAML config file (see configs/).")
  var config: String?

  @Option(name: .long, help: "Run directory: resolved config, metrics.jsonl, checkpoints, reports.")
  var workDir: String?

  @Option(name: .long, help: "Compute threads per rank (default: ECENET_THREADS, else the cores this process may use).")
  var threads: Int?
}
