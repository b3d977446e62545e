// `ecenet-dist predict`: see --help. Not landed yet: exits 2 with "not implemented yet".
import ArgumentParser

struct Predict: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Segment images: label PNGs with the dataset palette, optional colour overlays.",
    discussion: """
        ecenet-dist predict --config ... --checkpoint ... --input photos/ --out preds/ --overlay
      """)
  @OptionGroup var common: CommonOptions
  @Option(help: "Checkpoint file.") var checkpoint: String?
  @Option(help: "An image or a directory of images.") var input: String?
  @Option(help: "Output directory.") var out: String?
  @Flag(help: "Also write colour overlays on the image.") var overlay = false
  @Flag(help: "Multi-scale inference.") var multiScale = false
  @Flag(help: "Add horizontally flipped copies.") var flip = false
  func run() throws { throw notImplemented("predict", issue: 8) }
}
