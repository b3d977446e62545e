// `ecenet-dist pack`: packs a dataset layout into checksummed shards, or
// verifies a packed one. The work lives in the Data target (Packer,
// ShardVerifier); this file only parses, validates and reports.
import ArgumentParser
import Data
import Foundation

struct Pack: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Pack a dataset into checksummed zstd shards, or verify a packed one.",
    discussion: """
      Writes OUT/<split>/shard-NNNNN.ecs and OUT/<split>/manifest.json
      (byte layout in docs/data.md). Every input is decoded and checked while
      packing; a bad input stops the pack with a message naming it, unless
      --skip-bad (then it is skipped, counted, and listed in the manifest).
      The same inputs always give the same bytes, for any --threads.

      Formats:
        ade20k          ROOT = ADEChallengeData2016; 150 classes, 0 -> ignore
        cityscapes      ROOT/leftImg8bit + ROOT/gtFine/*_labelTrainIds.png; 19
        pascal-context  ROOT in mmseg's layout (VOC2010 + Context); 59 classes
        folder          --images DIR --labels DIR --num-classes N (by stem)

      Examples:
        ecenet-dist pack --format ade20k --root ADEChallengeData2016 \\
            --split train --out data/ade20k
        ecenet-dist pack --format folder --images my/img --labels my/lab \\
            --num-classes 5 --ignore-value 254 --class-names my/names.txt \\
            --split val --out data/mine
        ecenet-dist pack --verify data/ade20k              # first bad record
        ecenet-dist pack --verify data/ade20k/train --all  # every bad record
      """)

  @Option(help: "Dataset layout: ade20k | cityscapes | pascal-context | folder.") var format: String?
  @Option(help: "Dataset root directory (not for --format folder).") var root: String?
  @Option(help: "train | val") var split: String = "train"
  @Option(help: "Output directory; the split goes into OUT/<split>/.") var out: String?
  @Option(help: "folder: directory of images (.jpg, .jpeg, .png).") var images: String?
  @Option(help: "folder: directory of label PNGs (8-bit grey or palette), same stems as the images.") var labels: String?
  @Option(help: "folder: number of classes; label values 0..<N are classes.") var numClasses: Int?
  @Option(help: "folder: a label value that means 'ignore' (mapped to 255; 255 always means ignore).") var ignoreValue: Int?
  @Option(help: "folder: file with one class name per line.") var classNames: String?
  @Option(help: "folder: dataset name recorded in the manifest.") var datasetName: String = "folder"
  @Option(help: "Records per shard file.") var recordsPerShard: Int = 1000
  @Option(help: "Threads for decoding and checking (default: all cores).") var threads: Int?
  @Flag(help: "Skip bad inputs and count them instead of failing.") var skipBad = false
  @Flag(help: "No progress line.") var quiet = false
  @Option(help: "Verify a packed dataset directory (a split, or a folder of splits) instead of packing.") var verify: String?
  @Flag(help: "With --verify: check everything and list every bad record instead of stopping at the first.") var all = false

  func validate() throws {
    if verify != nil {
      if format != nil || out != nil { throw ValidationError("--verify takes only a directory (and --all, --threads); drop --format/--out") }
      return
    }
    guard let f = format else { throw ValidationError("give --format (\(DatasetLayout.formats.joined(separator: ", "))) or --verify DIR") }
    guard DatasetLayout.formats.contains(f) else {
      throw ValidationError("unknown --format \(f); expected one of \(DatasetLayout.formats.joined(separator: ", "))")
    }
    guard out != nil else { throw ValidationError("--out DIR is required") }
    guard split == "train" || split == "val" else { throw ValidationError("--split must be train or val, got \(split)") }
    if f == "folder" {
      guard images != nil, labels != nil, numClasses != nil else {
        throw ValidationError("--format folder needs --images DIR --labels DIR --num-classes N")
      }
    } else {
      guard root != nil else { throw ValidationError("--format \(f) needs --root DIR") }
      guard images == nil, labels == nil, numClasses == nil, ignoreValue == nil, classNames == nil else {
        throw ValidationError("--images/--labels/--num-classes/--ignore-value/--class-names are for --format folder only")
      }
    }
    if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    if recordsPerShard < 1 { throw ValidationError("--records-per-shard must be at least 1") }
  }

  func run() throws {
    let nThreads = threads ?? ProcessInfo.processInfo.activeProcessorCount
    if let dir = verify {
      let r = ShardVerifier.verify(directory: dir, all: all, threads: nThreads, progress: !quiet)
      for e in r.errors { FileHandle.standardError.write(Data("pack --verify: \(e)\n".utf8)) }
      if !r.errors.isEmpty {
        FileHandle.standardError.write(Data("pack --verify: FAILED, \(r.errors.count) error(s) after \(r.recordsChecked) records checked\n".utf8))
        throw ExitCode(1)
      }
      print("pack --verify: OK, \(r.recordsChecked) records in \(r.splits.count) split(s)")
      return
    }
    do {
      let spec: DatasetSpec
      switch format! {
      case "ade20k": spec = try DatasetLayout.ade20k(root: root!, split: split)
      case "cityscapes": spec = try DatasetLayout.cityscapes(root: root!, split: split)
      case "pascal-context": spec = try DatasetLayout.pascalContext(root: root!, split: split)
      default:
        spec = try DatasetLayout.folder(images: images!, labels: labels!, split: split, numClasses: numClasses!,
                                        ignoreValue: ignoreValue, classNames: try classNames.map(DatasetLayout.readClassNames),
                                        dataset: datasetName)
      }
      var opts = PackOptions()
      opts.recordsPerShard = recordsPerShard; opts.threads = nThreads; opts.skipBad = skipBad; opts.progress = !quiet
      let r = try Packer.pack(spec, into: out!, options: opts)
      print(String(format: "pack: %d records in %d shard(s) at %@, %.1f MB (sources %.1f MB)",
                   r.records, r.shards, r.directory, Double(r.shardBytes) / 1e6, Double(r.sourceBytes) / 1e6))
      if !r.skipped.isEmpty {
        FileHandle.standardError.write(Data("pack: skipped \(r.skipped.count) bad input(s) (listed in manifest.json):\n".utf8))
        for s in r.skipped.prefix(20) { FileHandle.standardError.write(Data("  \(s.source): \(s.reason)\n".utf8)) }
        if r.skipped.count > 20 { FileHandle.standardError.write(Data("  … and \(r.skipped.count - 20) more\n".utf8)) }
      }
    } catch let e as DataError {
      FileHandle.standardError.write(Data("pack: \(e)\n".utf8))
      throw ExitCode(1)
    }
  }
}
