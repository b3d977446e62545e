// The tiny model run end to end on the kernels: output shapes, finite losses,
// a gradient reaching every parameter, and the `plus`/GN variants.
import Models
import NN
import Tensor
import XCTest

/// A deterministic 2×64×64 batch: smooth-ish normalised images and blocky labels
/// with ignored pixels and one class absent from image 1.
func tinyBatch(classes n: Int, batch: Int = 2, size: Int = 64) -> (image: Tensor, labels: LabelBatch) {
  var g = RandomGenerator(seed: 11)
  let image = Tensor(uninitialized: [batch, size, size, 3])
  for i in 0..<image.count { image.data[i] = g.uniform(-2, 2) }
  var labels = [Int32](repeating: 0, count: batch * size * size)
  for b in 0..<batch {
    for y in 0..<size {
      for x in 0..<size {
        var v = Int32((x / 8 + 3 * (y / 8) + b) % n)
        if b == 1 && v == 3 { v = 4 }
        if y >= size - 3 { v = 255 }
        labels[(b * size + y) * size + x] = v
      }
    }
  }
  return (image, LabelBatch(values: labels, batch: batch, height: size, width: size))
}

final class ModelForwardTests: XCTestCase {
  func run(_ config: ModelConfig, file: StaticString = #filePath, line: UInt = #line) {
    let model = ECENet(config: config, seed: 3)
    model.store.finalize()
    let (image, labels) = tinyBatch(classes: config.numClasses)
    let ctx = ForwardContext(training: true, seed: 5)
    let (out, losses) = withGradients { () -> (ModelOutput, LossTerms) in
      let out = model(Var(image), ctx)
      return (out, ecenetLosses(out, labels: labels, config: config))
    }
    let n = config.numClasses
    XCTAssertEqual(out.features.map(\.shape), [[2, 16, 16, 32], [2, 8, 8, 64], [2, 4, 4, 128], [2, 2, 2, 256]], file: file, line: line)
    XCTAssertEqual(out.head.logits.shape, [2, 16, 16, n], file: file, line: line)
    XCTAssertEqual(out.head.logitsConv.shape, [2, 16, 16, n], file: file, line: line)
    XCTAssertEqual(out.logitsUp.shape, [2, 64, 64, n], file: file, line: line)
    XCTAssertEqual(out.head.classLogits.shape, [2, n, n + 1], file: file, line: line)
    XCTAssertEqual(out.head.classProbs.shape, [2, n, n + 1], file: file, line: line)
    XCTAssertEqual(out.head.maskSum.shape, [2, 16, 16, n], file: file, line: line)
    XCTAssertEqual(out.head.masks.map(\.shape), [[2, 2, 2, n], [2, 4, 4, n], [2, 8, 8, n], [2, 16, 16, n]], file: file, line: line)
    XCTAssertEqual(out.head.diversitySum.shape, [], file: file, line: line)
    for (k, v) in losses.values { XCTAssertTrue(v.isFinite && v >= 0, "loss \(k) = \(v)", file: file, line: line) }
    XCTAssertGreaterThan(losses.div.value.scalar, 0, file: file, line: line)
    XCTAssertLessThan(losses.div.value.scalar, 4, "Σ of four stages each in [0, 1)", file: file, line: line)
    losses.total.backward()
    for e in model.store.entries {
      let g = e.variable.grad!.toArray()
      XCTAssertTrue(g.allSatisfy(\.isFinite), "non-finite gradient in \(e.name)", file: file, line: line)
      XCTAssertTrue(g.contains { $0 != 0 }, "zero gradient for \(e.name)", file: file, line: line)
    }
  }

  /// SyncBN's cross-rank round trips per training step: the head's 23 norms
  /// (4 FR blocks × 4, 3 upsamplers × 2, the fuse conv) reduce layer by layer
  /// across stages, 7 reductions forward and 7 backward (46 before). The
  /// collective acts as two identical ranks (it doubles the sums), so the
  /// statistics are those of one rank and the step must still learn.
  func testSyncBNMakesOneReductionPerLayerAcrossStages() throws {
    final class TwoIdenticalRanks: Collective {
      var calls = 0
      var rank: Int { 0 }
      var worldSize: Int { 2 }
      func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        calls += 1
        for i in 0..<buffer.count { buffer[i] *= 2 }
      }
    }
    var config = try ModelConfig.preset("tiny")
    config.norm = .syncbn  // the tiny preset trains with per-rank BN
    let world = TwoIdenticalRanks()
    let model = ECENet(config: config, seed: 3, collective: world)
    model.store.finalize()
    let (image, labels) = tinyBatch(classes: config.numClasses)
    let losses = withGradients { ecenetLosses(model(Var(image), ForwardContext(training: true, seed: 5)), labels: labels, config: config) }
    XCTAssertEqual(world.calls, 7, "forward")
    losses.total.backward()
    XCTAssertEqual(world.calls, 14, "forward and backward")
    // The same step with this rank's statistics alone (no collective) gives the same loss:
    // doubling every sum, the count included, leaves mean and variance as they were.
    let alone = ECENet(config: config, seed: 3)
    alone.store.finalize()
    let lossAlone = withGradients { ecenetLosses(alone(Var(image), ForwardContext(training: true, seed: 5)), labels: labels, config: config) }
    XCTAssertEqual(losses.total.value.scalar, lossAlone.total.value.scalar, accuracy: 1e-5 * abs(lossAlone.total.value.scalar))
    Tape.shared.clear()
  }

  func testTinyForwardBackward() throws {
    var c = try ModelConfig.preset("tiny")
    c.backbone.dropPath = 0.1  // exercise drop-path and dropout in training
    run(c)
  }

  func testPlusUpdaterAndGroupNorm() throws {
    var c = try ModelConfig.preset("tiny")
    c.updater = .plus; c.norm = .gn
    run(c)
  }

  func testEvalModeIsDeterministicAndRecordsNothing() throws {
    let config = try ModelConfig.preset("tiny")
    let model = ECENet(config: config, seed: 3)
    model.store.finalize()
    let (image, _) = tinyBatch(classes: config.numClasses)
    let a = withoutGradients { model(Var(image), ForwardContext(training: false)).logitsUp.value.toArray() }
    let b = withoutGradients { model(Var(image), ForwardContext(training: false, seed: 9)).logitsUp.value.toArray() }
    XCTAssertEqual(a, b)
    XCTAssertEqual(Tape.shared.count, 0)
  }

  func testNormalizersFromLabels() {
    let (_, labels) = tinyBatch(classes: 5)
    let loss = LossConfig()
    let nz = LossNormalizers.local(labels, numClasses: 5, loss: loss)
    XCTAssertEqual(nz.images, 2)
    XCTAssertEqual(nz.validPixels, Double(2 * 61 * 64))
    XCTAssertEqual(nz.masks, 9)                              // 5 + 4 (class 3 absent from image 1)
    XCTAssertEqual(nz.classWeight, 9 + 0.1, accuracy: 1e-6)
    XCTAssertEqual(LossNormalizers(array: nz.asArray), nz)
  }
}
