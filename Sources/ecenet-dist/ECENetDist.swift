// The root command only lists the subcommands; each lives in its own file.
import ArgumentParser
import CShims
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
    subcommands: [Train.self, Eval.self, Predict.self, Pack.self, Browse.self, Info.self, Bench.self, Report.self,
                  SelfTest.self])

  static func main() {
    refuseCPUWithoutBuildExtensions()
    main(nil)
  }
}

/// A release build compiled with `-target-cpu native` (Package.swift) assumes the
/// build machine's vector extensions; on a CPU without them the first kernel
/// would die of SIGILL. This file is compiled without that flag, so the check
/// itself runs anywhere.
func refuseCPUWithoutBuildExtensions() {
  var missing: String?
  #if ECENET_REQUIRES_AVX512F
  if ecenet_cpu_has_avx512f() == 0 { missing = "AVX-512F" }
  #elseif ECENET_REQUIRES_AVX2
  if ecenet_cpu_has_avx2() == 0 { missing = "AVX2 and FMA" }
  #endif
  if let m = missing {
    FileHandle.standardError.write(Data("""
      error: this ecenet-dist was built for its build machine's CPU (ECENET_TARGET_CPU unset = native), \
      which has \(m); this CPU does not. Rebuild here (scripts/setup.sh), or build a binary for \
      every node with ECENET_TARGET_CPU=x86-64 (any x86 CPU) or haswell (AVX2): \
      ECENET_TARGET_CPU=x86-64 swift build -c release (docs/cluster.md).

      """.utf8))
    exit(78)
  }
}

/// Options every subcommand that touches a run shares.
struct CommonOptions: ParsableArguments {
  @Option(name: .long, help: "YAML config file (see configs/).")
  var config: String?

  @Option(name: .long, help: "Run directory: resolved config, metrics.jsonl, checkpoints, reports.")
  var workDir: String?

  @Option(name: .long, help: "Compute threads per rank (default: ECENET_THREADS, else the cores this process may use).")
  var threads: Int?

  /// --work-dir, else work_dirs/<config file's stem> (mmseg's default); needs --config.
  var resolvedWorkDir: String {
    workDir ?? "work_dirs/" + URL(fileURLWithPath: config!).deletingPathExtension().lastPathComponent
  }
}
