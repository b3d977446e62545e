// `ecenet-dist info`: see --help. Not landed yet: exits 2 with "not implemented yet".
import ArgumentParser

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
