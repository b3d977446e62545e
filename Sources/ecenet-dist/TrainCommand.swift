// `ecenet-dist train`: one rank of a data-parallel run (or a world of one).
import ArgumentParser
import Dist
import Foundation
import Tensor
import Train

struct Train: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Train ECENet (single process, or one rank of an mpirun/srun job).",
    discussion: """
      Reads a YAML config; KEY=VALUE arguments override dotted keys. The global
      batch (default 16) is split as ranks x per-rank batch x accumulation steps,
      so any world size that divides it runs the same recipe. The work dir gets
      config.yaml (resolved), metrics.jsonl, checkpoints/ and eval.json, and
      a file named `finished` once the schedule has run to its end.

        ecenet-dist train --config configs/debug/synthetic.yaml
        ecenet-dist train --config configs/debug/synthetic.yaml --iterations 50 optimizer.lr=1e-3
        mpirun -n 2 ecenet-dist train --config configs/debug/synthetic.yaml --work-dir runs/x
        ecenet-dist train --config ... --work-dir runs/x --resume auto

      Exit status: 0 done, 1 error (the message names the rank), 3 stopped by
      SIGTERM/SIGUSR1 after writing a checkpoint (requeue me), 64 bad usage or
      config (found before any work starts).
      """)
  @OptionGroup var common: CommonOptions
  @Option(help: "Resume: 'auto' (newest valid checkpoint in the work dir) or a checkpoint path.")
  var resume: String?
  @Option(help: "Shorten the run to N iterations (warmup and poly decay scale with it).")
  var iterations: Int?
  @Argument(help: "Config overrides as dotted KEY=VALUE pairs, e.g. train.global_batch=8.")
  var overrides: [String] = []

  /// Everything that can be checked without MPI is checked first (and usage
  /// errors print this subcommand's usage).
  func validate() throws {
    if let n = iterations, n < 1 { throw ValidationError("--iterations must be at least 1") }
    let config = try RunSetup.loadConfig(common.config, overrides: overrides, iterations: iterations)
    do { _ = try config.batchSplit(worldSize: RunSetup.launcherWorldSize) } catch { throw RunSetup.configFailure(error) }
  }

  func run() throws {
    let config = try RunSetup.loadConfig(common.config, overrides: overrides, iterations: iterations)
    let workDir = common.resolvedWorkDir
    RunSetup.configureThreads(flag: common.threads, config: config.train.threads)
    StopSignal.install()
    RunSetup.inWorld { world in
      let trainer = try Trainer(config: config, workDir: workDir, world: world, resume: resume, iterations: iterations)
      let s = try trainer.run()
      if world.rank == 0 {
        let best = s.bestMIoU.map { String(format: "%.2f at iteration %d", $0 * 100, s.bestIteration!) } ?? "n/a"
        let final = s.finalMIoU.map { String(format: "%.4f", $0) } ?? "n/a"
        print("""
          ── summary ─────────────────────────────────────────
          iterations      \(s.iterations)\(s.stoppedBySignal ? " (stopped by signal; resume with --resume auto)" : "")
          best mIoU       \(best)
          time            \(formatDuration(s.seconds)) (\(String(format: "%.1f", s.imagesPerSecond)) images/s, \(world.worldSize) rank(s))
          skipped steps   \(s.skippedSteps)
          work dir        \(workDir)
          miou=\(final)
          """)
      }
      return s.stoppedBySignal ? 3 : 0
    }
  }
}
