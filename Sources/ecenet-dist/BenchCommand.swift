// `ecenet-dist bench`: see --help. Not landed yet: exits 2 with "not implemented yet".
import ArgumentParser

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Throughput figures: ops, training step, loader, scaling (see scripts/bench.sh).")
  @Argument(help: "What to measure: ops | step | data.") var what: String = "step"
  func run() throws { throw notImplemented("bench", issue: 9) }
}
