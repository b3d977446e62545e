// `ecenet-dist pack`: see --help. Not landed yet: exits 2 with "not implemented yet".
import ArgumentParser

struct Pack: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Pack a dataset into checksummed zstd shards, or verify a packed one.",
    discussion: """
      Formats: ade20k, pascal-context, cityscapes, folder.

        ecenet-dist pack --format ade20k --root ADEChallengeData2016 --split train --out data/ade20k
        ecenet-dist pack --verify data/ade20k
      """)
  @Option(help: "Dataset layout: ade20k | pascal-context | cityscapes | folder.") var format: String?
  @Option(help: "Dataset root directory.") var root: String?
  @Option(help: "train | val") var split: String?
  @Option(help: "Output directory.") var out: String?
  @Option(help: "Verify a packed dataset directory instead of packing.") var verify: String?
  func run() throws { throw notImplemented("pack", issue: 5) }
}
