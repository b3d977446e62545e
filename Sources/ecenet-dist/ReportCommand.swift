// `ecenet-dist report`: see --help. Not landed yet: exits 2 with "not implemented yet".
import ArgumentParser

struct Report: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write WORK_DIR/report.html: curves, per-class IoU, confusions, sample predictions.")
  @OptionGroup var common: CommonOptions
  func run() throws { throw notImplemented("report", issue: 8) }
}
