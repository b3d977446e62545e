// `ecenet-dist report`: renders WORK_DIR/report.html (Train/Report/RunReport.swift)
// and prints its path. Reads the run only; the page needs no network to open.
import ArgumentParser
import Foundation
import Train

struct Report: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Write WORK_DIR/report.html: curves, per-class IoU, confusions, sample predictions.",
    discussion: """
      Reads metrics.jsonl, eval.json and samples/ from the work dir of a run (a run with no evaluation yet still renders its training curves) and writes one self-contained HTML file: no scripts, no network, images embedded.

        ecenet-dist report --work-dir work_dirs/ecenet_swin-b_ade20k
        xdg-open work_dirs/ecenet_swin-b_ade20k/report.html
      """)
  @OptionGroup var common: CommonOptions

  func validate() throws {
    guard common.workDir != nil else { throw ValidationError("--work-dir is required: the run directory to report on.") }
  }

  func run() throws {
    do {
      print(try RunReport.write(workDir: common.workDir!))
    } catch let e as ReportError {
      FileHandle.standardError.write(Data("ecenet-dist report: \(e)\n".utf8))
      throw ExitCode.failure
    }
  }
}
