import Data
import Foundation
import Models
import NN
import Tensor
import TestSupport
import Train
import XCTest

/// `ecenet-dist predict` and Train/Predictor.swift: colours, overlays, palette
/// PNGs, the preprocessing (same as validation), the prediction (same as
/// Inference on the validation input), and the real binary on a directory
/// with a corrupt file, on one and on two MPI ranks.
final class PredictTests: XCTestCase {
  var config: String { repoRoot() + "/configs/debug/synthetic.yaml" }
  let base = ["model.dropout=0", "train.log_every=1", "train.global_batch=4", "data.synthetic.train_count=32",
              "data.synthetic.val_count=4", "data.workers=1", "train.eval_every=0"]

  // MARK: - Pictures

  func randomImage(width: Int, height: Int, seed: UInt64) -> Image8 {
    var state = seed &+ 0x9E37_79B9_7F4A_7C15
    let px = (0..<(width * height * 3)).map { _ -> UInt8 in
      state = state &* 6364136223846793005 &+ 1442695040888963407
      return UInt8(truncatingIfNeeded: state >> 56)
    }
    return Image8(width: width, height: height, channels: 3, pixels: px)
  }

  func testColouriseGivesEachClassItsPaletteColour() {
    let palette = [[10, 20, 30], [200, 100, 0], [0, 255, 7]]
    let labels = Image8(width: 5, height: 1, channels: 1, pixels: [0, 1, 2, 255, 1])
    let rgb = Predictor.colourise(labels, palette: palette)
    XCTAssertEqual(rgb.channels, 3)
    XCTAssertEqual(rgb.width, 5)
    XCTAssertEqual(rgb.pixels, [10, 20, 30, 200, 100, 0, 0, 255, 7, 0, 0, 0, 200, 100, 0], "255 (no colour) is black")
  }

  func testOverlayBlendsHalfAndHalfAndKeepsUncolouredPixels() {
    let (w, h) = (7, 5)
    let image = randomImage(width: w, height: h, seed: 3)
    let palette = ClassNames.defaultPalette(4)
    let labels = Image8(width: w, height: h, channels: 1, pixels: (0..<(w * h)).map { $0 % 6 == 5 ? 255 : UInt8($0 % 4) })
    let blended = Predictor.overlay(image, labels: labels, palette: palette)
    XCTAssertEqual(blended.width, w)
    XCTAssertEqual(blended.height, h)
    for i in 0..<(w * h) {
      for c in 0..<3 {
        let a = Int(image.pixels[i * 3 + c])
        // Half and half, .5 rounded up (both terms are non-negative).
        let expected = labels.pixels[i] == 255 ? a : (a + palette[Int(labels.pixels[i])][c] + 1) / 2
        XCTAssertEqual(Int(blended.pixels[i * 3 + c]), expected, "pixel \(i) channel \(c)")
      }
    }
    // The ends of the blend: the image, and the colour image where there is a colour.
    XCTAssertEqual(Predictor.overlay(image, labels: labels, palette: palette, alpha: 0), image)
    let full = Predictor.overlay(image, labels: labels, palette: palette, alpha: 1)
    let colours = Predictor.colourise(labels, palette: palette)
    for i in 0..<(w * h) where labels.pixels[i] != 255 {
      XCTAssertEqual(Array(full.pixels[(i * 3)..<(i * 3 + 3)]), Array(colours.pixels[(i * 3)..<(i * 3 + 3)]))
    }
  }

  /// The PLTE chunk of a PNG: its RGB triples.
  func pngPaletteChunk(_ png: [UInt8]) -> [UInt8]? {
    var p = 8
    while p + 8 <= png.count {
      let len = png[p..<(p + 4)].reduce(0) { $0 << 8 | Int($1) }
      let type = String(decoding: png[(p + 4)..<(p + 8)], as: UTF8.self)
      if type == "PLTE" { return Array(png[(p + 8)..<(p + 8 + len)]) }
      p += 12 + len
    }
    return nil
  }

  func testLabelPNGKeepsTheIndicesAndCarriesThePalette() throws {
    let palette = ClassNames.defaultPalette(6)
    let labels = Image8(width: 9, height: 4, channels: 1, pixels: (0..<36).map { UInt8($0 % 6) })
    let png = try Predictor.encodeLabels(labels, palette: palette)
    XCTAssertEqual(try PNGCodec.decodeLabel(png), labels, "pixel value = class index")
    let plte = try XCTUnwrap(pngPaletteChunk(png), "no PLTE chunk: not a palette PNG")
    XCTAssertGreaterThanOrEqual(plte.count, 18)
    XCTAssertEqual(Array(plte.prefix(18)), palette.flatMap { $0.map { UInt8($0) } })
    // Shown in colour by a viewer: decoding as RGB gives the class colours.
    XCTAssertEqual(try PNGCodec.decodeRGB(png), Predictor.colourise(labels, palette: palette))
  }

  // MARK: - Palette, inputs, names

  func testPaletteComesFromThePackedManifestElseTheDefault() throws {
    let synthetic = try TrainConfig.load(file: config, overrides: [])
    XCTAssertEqual(Predictor.palette(config: synthetic), ClassNames.defaultPalette(6))
    let root = makeTempDir("pal")
    // A packed root that is not there (the dataset is not needed to predict): the default.
    let missing = try TrainConfig.load(file: config, overrides: ["data.dataset=packed", "data.root=\(root)/nothing"])
    XCTAssertEqual(Predictor.palette(config: missing), ClassNames.defaultPalette(6))
    // A manifest with its own colours: those.
    let colours = (0..<6).map { [$0 * 40, 255 - $0 * 40, 17] }
    let manifest: [String: Any] = [
      "format": "ecenet-shards", "version": 1, "dataset": "test", "split": "val", "numClasses": 6,
      "classNames": (0..<6).map { "c\($0)" }, "palette": colours,
      "labelMap": ["description": "identity", "table": (0..<256).map { $0 < 6 || $0 == 255 ? $0 : -1 }],
      "records": 1, "skipped": [], "sourceBytes": 1, "shardBytes": 1,
      "shards": [["file": "shard_00000.ecs", "records": 1, "bytes": 1, "crc32c": "00000000"]],
    ]
    try FileManager.default.createDirectory(atPath: root + "/val", withIntermediateDirectories: true)
    try JSONSerialization.data(withJSONObject: manifest).write(to: URL(fileURLWithPath: root + "/val/manifest.json"))
    XCTAssertNoThrow(try Manifest.load(directory: root + "/val"), "the test's manifest must be a valid one")
    let packed = try TrainConfig.load(file: config, overrides: ["data.dataset=packed", "data.root=\(root)"])
    XCTAssertEqual(Predictor.palette(config: packed), colours)
  }

  func testInputFilesAreTheSortedImagesAndStemsNeverCollide() throws {
    let dir = makeTempDir("inputs")
    for n in ["b.png", "a.jpg", "c.JPEG", "notes.txt", "a.png", "d.gif"] {
      _ = FileManager.default.createFile(atPath: dir + "/" + n, contents: Data([1]))
    }
    try FileManager.default.createDirectory(atPath: dir + "/sub.png", withIntermediateDirectories: true)
    let files = try Predictor.inputFiles(dir)
    XCTAssertEqual(files.map { ($0 as NSString).lastPathComponent }, ["a.jpg", "a.png", "b.png", "c.JPEG"], "sorted; not sub.png/, a directory")
    XCTAssertEqual(Predictor.outputStems(["x/a.jpg", "x/a.png", "x/b.png", "x/c.JPEG"]), ["a_jpg", "a_png", "b", "c"])
    XCTAssertEqual(try Predictor.inputFiles(dir + "/b.png"), [dir + "/b.png"], "a file is its own list")
    XCTAssertThrowsError(try Predictor.inputFiles(dir + "/missing.jpg"))
    XCTAssertThrowsError(try Predictor.inputFiles(makeTempDir("empty")))
  }

  // MARK: - Prediction

  func tinyModel(_ overrides: [String] = []) throws -> (TrainConfig, ECENet) {
    let cfg = try TrainConfig.load(file: config, overrides: base + overrides)
    let model = ECENet(config: cfg.model, seed: 7)
    model.store.finalize()
    perturb(model)
    return (cfg, model)
  }

  /// Freshly initialised (or after 3 iterations), the tiny model predicts one
  /// class everywhere, which would make any comparison of class maps weak:
  /// perturb every weight (running variances stay positive) so that the maps
  /// vary from pixel to pixel.
  func perturb(_ model: ECENet) {
    var state: UInt64 = 12345
    for (name, t) in model.store.namedTensors where !name.hasSuffix("running_var") && !name.hasSuffix("num_batches_tracked") {
      for i in 0..<t.count {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        t.data[i] += (Float(state >> 40) / Float(1 << 24) - 0.5) * 0.6
      }
    }
  }

  func testPreprocessIsTheValidationTransform() throws {
    let augment = EvalAugment(scaleLong: 64, scaleShort: 48)
    for (w, h) in [(50, 37), (64, 48), (30, 90), (200, 20)] {
      let image = randomImage(width: w, height: h, seed: UInt64(w * h))
      let t = Predictor.preprocess(image, augment: augment)
      let eval = augment.apply(SegSample(image: image, label: Image8(width: w, height: h, channels: 1), name: "x"), index: 0)
      XCTAssertEqual(t.shape, [1, eval.height, eval.width, 3], "\(w)×\(h)")
      XCTAssertEqual(t.toArray(), eval.image, "\(w)×\(h): preprocess differs from EvalAugment")
      XCTAssertLessThanOrEqual(max(eval.height, eval.width), 64)
      XCTAssertLessThanOrEqual(min(eval.height, eval.width), 48)
    }
  }

  /// Predictor on an Image8 = Inference on the validation input of that image,
  /// at the original size, for whole, slide, and multi-scale + flip, where the
  /// network inputs need no padding (80×40 → 64×32 at the test scale).
  func testPredictorMatchesInferenceOnTheValidationInput() throws {
    let (cfg, model) = try tinyModel()
    let augment = EvalAugment(scaleLong: cfg.data.testScale[0], scaleShort: cfg.data.testScale[1])
    var variants: [InferenceOptions] = []
    var whole = InferenceOptions(); whole.mode = "whole"; variants.append(whole)
    var slide = InferenceOptions(); slide.mode = "slide"; slide.crop = (32, 32); variants.append(slide)
    var msFlip = InferenceOptions(); msFlip.ratios = [1.0, 2.0]; msFlip.flip = true; variants.append(msFlip)
    let scene = try SyntheticDataset(count: 1, numClasses: 6, width: 80, height: 40, seed: 11).sample(at: 0)
    for opts in variants {
      let predictor = Predictor(model: model, options: opts, augment: augment)
      let labels = predictor.predict(scene.image)
      XCTAssertEqual([labels.width, labels.height, labels.channels], [80, 40, 1], "the original size")
      let eval = augment.apply(scene, index: 0)
      XCTAssertEqual([eval.width, eval.height], [64, 32], "the test scale must resize this image")
      let expected = Inference(model: model, options: opts)
        .predict(Tensor(shape: [1, eval.height, eval.width, 3], values: eval.image), labelHeight: 40, labelWidth: 80)
      XCTAssertEqual(labels.pixels.map { Int32($0) }, expected, "mode \(opts.mode), ratios \(opts.ratios), flip \(opts.flip)")
      XCTAssertTrue(labels.pixels.allSatisfy { $0 < 6 })
      XCTAssertGreaterThan(Set(labels.pixels).count, 1, "a constant map would make this comparison weak")
    }
  }

  /// A size the network cannot take as is (53×38 → 64×46): the input is
  /// zero-padded to 64×64 and the logits cropped, written out here by hand.
  func testPredictorPadsOddSizesToAMultipleOf32() throws {
    let (cfg, model) = try tinyModel()
    let augment = EvalAugment(scaleLong: cfg.data.testScale[0], scaleShort: cfg.data.testScale[1])
    let scene = try SyntheticDataset(count: 1, numClasses: 6, width: 53, height: 38, seed: 5).sample(at: 0)
    let labels = Predictor(model: model, options: InferenceOptions(), augment: augment).predict(scene.image)
    XCTAssertEqual([labels.width, labels.height], [53, 38])

    let eval = augment.apply(scene, index: 0)
    XCTAssertEqual([eval.width, eval.height], [64, 46])
    let padded = Tensor.zeros([1, 64, 64, 3])
    for i in 0..<(46 * 64 * 3) { padded.data[i] = eval.image[i] }  // rows 0..<46 of width 64: the same layout
    let logits = withoutGradients { model(Var(padded), ForwardContext(training: false)).logitsUp.value }  // [1, 64, 64, 6]
    let cropped = Tensor(uninitialized: [1, 46, 64, 6])
    for i in 0..<(46 * 64 * 6) { cropped.data[i] = logits.data[i] }
    let up = withoutGradients { resizeBilinear(Var(cropped), height: 38, width: 53) }.value.toArray()
    let expected = (0..<(38 * 53)).map { p -> UInt8 in
      let row = Array(up[(p * 6)..<(p * 6 + 6)])
      return UInt8(row.firstIndex(of: row.max()!)!)
    }
    XCTAssertEqual(labels.pixels, expected)
    XCTAssertGreaterThan(Set(expected).count, 1, "a constant map would make this comparison weak")

    // Every option set copes with odd sizes, including ratios that give odd sizes.
    var ms = InferenceOptions(); ms.ratios = [0.5, 0.75, 1.0, 1.25]; ms.flip = true
    var slide = InferenceOptions(); slide.mode = "slide"; slide.crop = (32, 32); slide.ratios = [0.75, 1.0]
    for opts in [ms, slide] {
      let l = Predictor(model: model, options: opts, augment: augment).predict(scene.image)
      XCTAssertEqual([l.width, l.height], [53, 38])
      XCTAssertTrue(l.pixels.allSatisfy { $0 < 6 })
    }
  }

  // MARK: - The binary

  func testPredictCommandOnADirectoryWithACorruptFile() throws {
    let run = makeTempDir("predict-run")
    var (code, out) = try runRanks(1, ["train", "--config", config, "--work-dir", run, "--iterations", "3", "--threads", "1"] + base)
    XCTAssertEqual(code, 0, "train failed:\n\(out)")

    // Inputs: synthetic scenes of several sizes as PNG and JPEG, a corrupt JPEG, a text file (ignored).
    let inputs = makeTempDir("predict-in")
    let sizes = [(72, 48), (40, 56), (64, 64)]
    var images: [String: Image8] = [:]
    for (k, (w, h)) in sizes.enumerated() {
      let img = try SyntheticDataset(count: 1, numClasses: 6, width: w, height: h, seed: UInt64(k)).sample(at: 0).image
      let name = "scene\(k)." + (k == 1 ? "jpg" : "png")
      let bytes = k == 1 ? try JPEGCodec.encode(img) : try PNGCodec.encode(img)
      try Data(bytes).write(to: URL(fileURLWithPath: inputs + "/" + name))
      images["scene\(k)"] = try ImageCodec.decodeRGB(bytes)  // what the binary will see (JPEG is lossy)
    }
    try Data([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3, 4, 5]).write(to: URL(fileURLWithPath: inputs + "/broken.jpg"))
    try Data("not an image".utf8).write(to: URL(fileURLWithPath: inputs + "/readme.txt"))

    // The trained weights, perturbed (see `perturb`), as a weights file: what the binary
    // predicts with, and the in-process reference.
    let (cfg, model) = try tinyModel()
    _ = try Checkpoint.loadWeights(path: run + "/checkpoints", into: model.store)
    perturb(model)
    let weights = run + "/perturbed.safetensors"
    try SafeTensors.write(model.store.namedTensors, to: URL(fileURLWithPath: weights))

    let outDir = run + "/preds"
    let predictArgs = ["predict", "--config", config, "--checkpoint", weights, "--input", inputs,
                       "--threads", "1", "--overlay"] + base
    (code, out) = try runRanks(1, predictArgs + ["--out", outDir])
    XCTAssertEqual(code, 1, "a corrupt input makes the exit status 1:\n\(out)")
    XCTAssertTrue(out.contains("broken.jpg"), "the corrupt file is named:\n\(out)")
    XCTAssertTrue(out.contains("1 of 4 input(s) could not be read"), out)
    XCTAssertTrue(out.contains("segmented 3 of 4"), out)
    XCTAssertFalse(out.contains("readme"), "non-images are not inputs:\n\(out)")
    XCTAssertFalse(FileManager.default.fileExists(atPath: outDir + "/broken.png"))

    let predictor = Predictor(model: model, options: InferenceOptions(),
                              augment: EvalAugment(scaleLong: cfg.data.testScale[0], scaleShort: cfg.data.testScale[1]))
    let palette = ClassNames.defaultPalette(6)
    for (stem, image) in images.sorted(by: { $0.key < $1.key }) {
      let png = try [UInt8](Data(contentsOf: URL(fileURLWithPath: outDir + "/\(stem).png")))
      let labels = try PNGCodec.decodeLabel(png)
      XCTAssertEqual([labels.width, labels.height, labels.channels], [image.width, image.height, 1], "\(stem): original size")
      XCTAssertTrue(labels.pixels.allSatisfy { $0 < 6 }, "\(stem): indices < num_classes")
      XCTAssertEqual(pngPaletteChunk(png).map { Array($0.prefix(18)) }, palette.flatMap { $0.map { UInt8($0) } }, "\(stem): palette")
      XCTAssertEqual(labels, predictor.predict(image), "\(stem): the binary's prediction differs from Predictor's")
      XCTAssertGreaterThan(Set(labels.pixels).count, 1, "\(stem): a constant map would make this comparison weak")
      let overlay = try ImageCodec.decodeRGB([UInt8](Data(contentsOf: URL(fileURLWithPath: outDir + "/\(stem)_overlay.jpg"))))
      XCTAssertEqual([overlay.width, overlay.height], [image.width, image.height], "\(stem): overlay size")
      // JPEG is lossy: compare with the exact blend loosely.
      let exact = Predictor.overlay(image, labels: labels, palette: palette)
      let meanError = zip(overlay.pixels, exact.pixels).reduce(0.0) { $0 + abs(Double($1.0) - Double($1.1)) } / Double(exact.pixels.count)
      XCTAssertLessThan(meanError, 12, "\(stem): the overlay is not the blend")
    }

    // Two ranks share the files (r, r+R, ...) and write the same bytes.
    let outDir2 = run + "/preds2"
    (code, out) = try runRanks(2, predictArgs + ["--out", outDir2, "--overlay-format", "png"])
    XCTAssertEqual(code, 1, out)
    XCTAssertTrue(out.contains("broken.jpg"), out)
    XCTAssertTrue(out.contains("segmented 3 of 4 image(s) into \(outDir2) on 2 ranks"), out)
    for stem in images.keys {
      XCTAssertEqual(FileManager.default.contents(atPath: outDir2 + "/\(stem).png"),
                     FileManager.default.contents(atPath: outDir + "/\(stem).png"), "\(stem): 2 ranks vs 1")
      XCTAssertTrue(FileManager.default.fileExists(atPath: outDir2 + "/\(stem)_overlay.png"), stem)
    }

    // One good file alone: exit 0. A missing input: a usage error naming it.
    (code, out) = try runRanks(1, ["predict", "--config", config, "--checkpoint", run + "/checkpoints", "--input", inputs + "/scene0.png",
                                   "--out", run + "/one", "--threads", "1"] + base)
    XCTAssertEqual(code, 0, out)
    let one = try PNGCodec.decodeLabel([UInt8](Data(contentsOf: URL(fileURLWithPath: run + "/one/scene0.png"))))
    XCTAssertEqual([one.width, one.height], [images["scene0"]!.width, images["scene0"]!.height])
    XCTAssertTrue(one.pixels.allSatisfy { $0 < 6 })
    XCTAssertFalse(FileManager.default.fileExists(atPath: run + "/one/scene0_overlay.jpg"), "no overlay without --overlay")
    (code, out) = try runRanks(1, ["predict", "--config", config, "--checkpoint", run + "/checkpoints", "--input", inputs + "/nope.png",
                                   "--out", run + "/none"] + base)
    XCTAssertNotEqual(code, 0, out)
    XCTAssertTrue(out.contains("nope.png"), out)
  }
}
