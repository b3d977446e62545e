// `ecenet-dist predict`: segment JPEG/PNG images with a checkpoint; writes
// palette label PNGs (and overlays). The work is Train/Predictor.swift; this
// file parses, lists the inputs, spreads them over ranks and reports.
import ArgumentParser
import Data
import Foundation
import Models
import Train

struct Predict: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Segment images: label PNGs with the dataset palette, optional colour overlays.",
    discussion: """
      For each input image (a file, or a directory's *.jpg, *.jpeg and *.png,
      sorted) writes OUT/<stem>.png: the predicted classes at the image's own
      size as an 8-bit palette PNG (pixel value = class index, shown in the
      dataset's colours); with --overlay also OUT/<stem>_overlay.jpg, the image
      blended half and half with the class colours. The image is resized to the
      config's data.test_scale and normalised as in evaluation. The palette comes
      from the packed dataset's manifest when data.root holds one, else the
      default (VOC) palette; the dataset itself is not needed.

      An input that cannot be read or decoded is named on stderr and skipped;
      the others are still written, and the exit status is then 1. Under mpirun,
      rank r segments files r, r+R, ...

        ecenet-dist train --config configs/debug/synthetic.yaml
        ecenet-dist predict --config configs/debug/synthetic.yaml \\
          --checkpoint work_dirs/synthetic/checkpoints \\
          --input photos/ --out preds/ --overlay
        # preds/a.png (labels), preds/a_overlay.jpg, ... for photos/a.jpg, ...
        ecenet-dist predict --config configs/ade20k/ecenet_swin-b_640x640_160k.yaml \\
          --checkpoint ckpt.safetensors --input street.jpg --out preds/ \\
          --mode slide --multi-scale --flip
      """)
  @OptionGroup var common: CommonOptions
  @Option(help: "Checkpoint file, or a checkpoints directory (its 'latest').") var checkpoint: String?
  @Option(help: "An image (JPEG or PNG) or a directory of images.") var input: String?
  @Option(help: "Output directory (created if missing).") var out: String?
  @Flag(help: "Also write OUT/<stem>_overlay.<format>: the image blended with the class colours.") var overlay = false
  @Option(help: "Overlay file format: jpg or png.") var overlayFormat = "jpg"
  @Flag(help: "Multi-scale inference (the config's evaluation.ratios).") var multiScale = false
  @Flag(help: "Add horizontally flipped copies.") var flip = false
  @Option(help: "Inference mode: whole or slide (default: the config's evaluation.mode).") var mode: String?
  @Argument(help: "Config overrides as dotted KEY=VALUE pairs.") var overrides: [String] = []

  func validate() throws {
    if common.config == nil { throw ValidationError("--config FILE is required (see configs/)") }
    if checkpoint == nil { throw ValidationError("--checkpoint PATH is required: a checkpoint file or a checkpoints directory") }
    if input == nil { throw ValidationError("--input IMG_OR_DIR is required") }
    if out == nil { throw ValidationError("--out DIR is required") }
    if let m = mode, !["whole", "slide"].contains(m) { throw ValidationError("--mode must be whole or slide, got '\(m)'") }
    if !["jpg", "png"].contains(overlayFormat) { throw ValidationError("--overlay-format must be jpg or png, got '\(overlayFormat)'") }
  }

  func run() throws {
    let config = try RunSetup.loadConfig(common.config, overrides: overrides, iterations: nil)
    let files: [String]
    do { files = try Predictor.inputFiles(input!) } catch { throw ValidationError("--input: \(error)") }
    var isDir: ObjCBool = false
    let showProgress = FileManager.default.fileExists(atPath: input!, isDirectory: &isDir) && isDir.boolValue
    let outDir = out!
    RunSetup.configureThreads(flag: common.threads, config: config.train.threads)
    config.applyPrecision()
    RunSetup.inWorld { world in
      // No collective: inference never synchronises, so ranks may hold unequal shares.
      let model = ECENet(config: config.model, seed: config.train.seed, collective: nil)
      model.store.finalize()
      _ = try Checkpoint.loadWeights(path: checkpoint!, into: model.store, config: config.yaml())
      var opts = InferenceOptions()
      opts.mode = mode ?? config.evaluation.mode
      opts.crop = (config.data.cropSize[0], config.data.cropSize[1])
      opts.ratios = multiScale ? config.evaluation.ratios : [1.0]
      opts.flip = flip
      let predictor = Predictor(model: model, options: opts,
                                augment: EvalAugment(scaleLong: config.data.testScale[0], scaleShort: config.data.testScale[1]))
      let palette = Predictor.palette(config: config)
      let stems = Predictor.outputStems(files)
      try makeDirectory(outDir, for: "output directory")
      func write(_ bytes: [UInt8], _ name: String) throws { try RunSetup.writeOutput(bytes, in: outDir, name: name) }

      let mine = Array(stride(from: world.rank, to: files.count, by: world.worldSize))
      let progress = Progress(total: mine.count, enabled: showProgress && world.rank == 0, ranks: world.worldSize)
      var failed = 0, done = 0
      for i in mine {
        let image: Image8
        do {
          image = try ImageCodec.decodeRGB([UInt8](try Data(contentsOf: URL(fileURLWithPath: files[i]))))
        } catch {
          let why = (error as? CodecError).map { "\($0)" } ?? error.localizedDescription
          progress.clearLine()
          let who = world.worldSize > 1 ? " (rank \(world.rank))" : ""
          FileHandle.standardError.write(Data("ecenet-dist predict\(who): cannot read \(files[i]): \(why); skipped\n".utf8))
          failed += 1
          progress.step(done + failed)
          continue
        }
        let labels = predictor.predict(image)
        // Write errors (full disk, no permission) would hit every file: fatal, not skipped.
        try write(try Predictor.encodeLabels(labels, palette: palette), stems[i] + ".png")
        if overlay {
          let blended = Predictor.overlay(image, labels: labels, palette: palette)
          try write(overlayFormat == "png" ? try PNGCodec.encode(blended) : try JPEGCodec.encode(blended, quality: 90),
                    stems[i] + "_overlay." + overlayFormat)
        }
        done += 1
        progress.step(done + failed)
      }
      progress.finish()
      var counts: [Int64] = [Int64(done), Int64(failed)]
      try counts.withUnsafeMutableBufferPointer { try world.allreduceSum($0) }
      guard world.rank == 0 else { return 0 }
      print("segmented \(counts[0]) of \(files.count) image(s) into \(outDir)"
            + (world.worldSize > 1 ? " on \(world.worldSize) ranks" : ""))
      if counts[1] > 0 {
        FileHandle.standardError.write(Data(
          "ecenet-dist predict: \(counts[1]) of \(files.count) input(s) could not be read (named above)\n".utf8))
        return 1
      }
      return 0
    }
  }
}

/// Rank 0's progress on stderr: a redrawn bar on a terminal, a line per ~10%
/// otherwise (logs), both with the count and an ETA.
private final class Progress {
  let total: Int, enabled: Bool, ranks: Int
  let tty = isatty(STDERR_FILENO) != 0
  let start = Date()
  var lastLogged = 0

  init(total: Int, enabled: Bool, ranks: Int) { self.total = total; self.enabled = enabled && total > 0; self.ranks = ranks }

  func step(_ n: Int) {
    guard enabled else { return }
    let elapsed = Date().timeIntervalSince(start)
    let eta = n > 0 ? elapsed / Double(n) * Double(total - n) : 0
    let width = 24, filled = width * n / total
    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
    let who = ranks > 1 ? " (rank 0 of \(ranks))" : ""
    let line = "predict [\(bar)] \(n)/\(total)\(who)  \(String(format: "%.1f", Double(n) / max(elapsed, 1e-9))) img/s  ETA \(clock(eta))"
    if tty {
      FileHandle.standardError.write(Data("\r\u{1B}[K\(line)".utf8))
    } else if n == total || n * 10 / total > lastLogged * 10 / total {
      FileHandle.standardError.write(Data((line + "\n").utf8))
      lastLogged = n
    }
  }

  /// Clears the bar so a message can be printed on its own line.
  func clearLine() { if enabled && tty { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) } }

  func finish() { if enabled && tty { FileHandle.standardError.write(Data("\n".utf8)) } }

  func clock(_ s: Double) -> String {
    let t = Int(s.rounded())
    return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%d:%02d", t / 60, t % 60)
  }
}
