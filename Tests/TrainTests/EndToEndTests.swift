// The real trainer against the PyTorch reference over 50 updates
// (scripts/reference/export_train_goldens.py): from the same initial weights,
// on the same batches (dropout and drop path off), `Trainer.step(micro:)` —
// global-batch normalisers, forward/backward, AdamW with its no-decay group,
// mmcv's poly schedule with warmup — must give torch.optim.AdamW's loss curve
// to 1e-3 relative at every step, and the same weights at the end. Both sides
// run in float32, so the tolerance is the drift budget of 50 float32 steps.
//
// How far float32 rounding alone moves such a curve depends on the data: at
// some steps the gradient jumps (near-ties of ReLU kinks or of the diversity
// max, tiny BatchNorm samples at stage 4), and Adam turns a sign flip of a
// small gradient into a full lr step. Measured on the reference (float64, and
// float32 from weights perturbed by one ulp, against float32): for most data
// seeds some term drifts 3e-4..1.4e-2 within 50 steps, so no float32
// implementation could be held to 1e-3 there. The golden uses seed 1
// (export_train_goldens.py's default for its model: the tiny preset with Swin
// embed 8 and C 16, recorded in the golden, from which the model here is
// built), where those runs stay below 6e-7 on every term and 5e-6 on the
// gradient norm (train50.json, `conditioning`); this trainer is at 4e-7 and
// 3e-6. Steps 1-10 are checked at 1e-5: drift has not started yet, so they
// pin down the update itself (AdamW, groups, schedule, normalisers) tightly.
// The final weights integrate all 50 updates: one-ulp perturbed float32 moves
// them by up to 1.3e-6 here (up to 9e-3 for other data; `conditioning.
// float32_1ulp.final` per tensor), so each is held to twice its own recorded
// float32 drift, with 1e-3 as the floor. A summation-
// order change in any kernel (our conv and reductions have changed order
// before) moves them within that envelope; a wrong gradient moves them far out.
//
// Not here: several ranks (DistributedTrainingTests), the loader, checkpoints.
import Data
import Dist
import Foundation
import Models
import NN
import Tensor
import TestSupport
@testable import Train
import XCTest

let trainGoldenDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Golden")

final class EndToEndTests: XCTestCase {
  /// The configuration of export_train_goldens.py. The model is the one the
  /// golden records: ModelConfig.preset("tiny") with its `model_overrides`
  /// applied, checked against every key of its `model_config` (metadata).
  func referenceConfig(_ golden: SafeTensorsFile) throws -> TrainConfig {
    var c = TrainConfig()
    guard let overrides = golden.metadata["model_overrides"], let full = golden.metadata["model_config"] else {
      throw ModelConfigError.missing(key: "model_overrides, model_config",
                                     hint: "metadata of \(golden.path); rerun scripts/reference/export_train_goldens.py")
    }
    c.model = try ModelConfig.recorded(preset: "tiny", overrides: overrides, full: full)
    c.optimizer.lr = 1e-3
    c.optimizer.betas = [0.9, 0.999]
    c.optimizer.eps = 1e-8
    c.optimizer.weightDecay = 0.01
    c.optimizer.clipGradNorm = 0
    c.schedule.iterations = 50
    c.schedule.warmupIterations = 5
    c.schedule.warmupRatio = 1e-6
    c.schedule.power = 1
    c.schedule.minLr = 0
    c.train.globalBatch = 2
    // The trainer builds its own loader; this one is never read.
    c.data.dataset = "synthetic"
    c.data.synthetic.trainCount = 4
    c.data.synthetic.valCount = 2
    c.data.scale = [64, 64]; c.data.cropSize = [64, 64]; c.data.testScale = [64, 64]
    c.data.workers = 1
    try c.validate()
    // The training settings the golden records (metadata `config`) are the ones set here.
    let recorded = (try? JSONSerialization.jsonObject(with: Data((golden.metadata["config"] ?? "").utf8))) as? [String: Any]
    XCTAssertNotNil(recorded, "\(golden.path): no `config` metadata")
    let ours: [(String, Double)] = [
      ("lr", c.optimizer.lr), ("eps", c.optimizer.eps), ("weight_decay", c.optimizer.weightDecay),
      ("steps", Double(c.schedule.iterations)), ("warmup_iterations", Double(c.schedule.warmupIterations)),
      ("warmup_ratio", c.schedule.warmupRatio), ("power", c.schedule.power), ("min_lr", c.schedule.minLr),
      ("batch", Double(c.train.globalBatch)),
    ]
    for (key, value) in ours {
      let want = (recorded?[key] as? NSNumber)?.doubleValue ?? .nan
      XCTAssertEqual(value, want, accuracy: 1e-12 * abs(want), "training setting `\(key)`: test \(value), golden \(want)")
    }
    XCTAssertEqual((recorded?["betas"] as? [NSNumber])?.map(\.doubleValue), c.optimizer.betas, "training setting `betas`")
    return c
  }

  func batch(_ golden: SafeTensorsFile, _ k: Int) throws -> TrainBatch {
    let image = try golden.tensor("batch.\(k).image_nhwc"), label = try golden.tensor("batch.\(k).label")
    let (b, h, w) = (label.shape[0], label.shape[1], label.shape[2])
    XCTAssertEqual(image.shape, [b, h, w, 3])
    let labels = label.toArray().map { v -> UInt8 in
      precondition(v == v.rounded() && v >= 0 && v <= 255, "label \(v) is not a byte")
      return UInt8(v)
    }
    return TrainBatch(images: image.toArray(), labels: labels, count: b, height: h, width: w,
                      indices: Array(k * b..<(k + 1) * b))
  }

  /// max |a − b| / max |b| over the tensor.
  func relativeError(_ a: [Float], _ b: [Float]) -> Double {
    var diff = 0.0, scale = 0.0
    for (x, y) in zip(a, b) { diff = max(diff, Double(abs(x - y))); scale = max(scale, Double(abs(y))) }
    return diff / max(scale, 1e-30)
  }

  /// conditioning.float32_1ulp.final of train50.json: per final tensor, how far
  /// one-ulp perturbed float32 weights moved it in the reference.
  func finalWeightDrift() throws -> [String: Double] {
    let data = try Data(contentsOf: trainGoldenDirectory.appendingPathComponent("train50.json"))
    let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
    let cond = (json?["conditioning"] as? [String: Any])?["float32_1ulp"] as? [String: Any]
    guard let final = cond?["final"] as? [String: Double], !final.isEmpty else {
      XCTFail("train50.json has no conditioning.float32_1ulp.final (rerun scripts/reference/export_train_goldens.py)")
      return [:]
    }
    return final
  }

  func testFiftyStepsMatchPyTorchAdamWAndSchedule() throws {
    let url = trainGoldenDirectory.appendingPathComponent("train50.safetensors")
    guard FileManager.default.fileExists(atPath: url.path) else {
      throw XCTSkip("golden \(url.path) not present (written by scripts/reference/export_train_goldens.py)")
    }
    let golden = try SafeTensorsFile(contentsOf: url)
    let config = try referenceConfig(golden)
    let dir = makeTempDir("e2e")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let trainer = try Trainer(config: config, workDir: dir, world: LocalCommunicator(), resume: nil, iterations: nil)
    let store = trainer.model.store

    // Same names, same weight-decay groups (mmseg's rule, as the reference's param groups), one lr group.
    let refNames = Set(golden.keys.filter { $0.hasPrefix("param.") }.map { String($0.dropFirst(6)) })
    let ours = Set(store.entries.map(\.name) + store.buffers.map(\.name))
    XCTAssertEqual(ours.subtracting(refNames).sorted(), [], "our names missing from the golden")
    XCTAssertEqual(refNames.subtracting(ours).sorted(), [], "golden names missing from our model")
    let refNoDecay = Set((golden.metadata["no_decay"] ?? "").split(separator: ",").map(String.init))
    XCTAssertFalse(refNoDecay.isEmpty, "golden has no no_decay metadata")
    XCTAssertEqual(Set(store.entries.filter { !$0.decay }.map(\.name)), refNoDecay, "weight-decay groups differ from the reference")
    XCTAssertTrue(store.entries.allSatisfy { $0.lrMultiplier == 1 }, "the reference has one learning rate for all groups")

    // The schedule the trainer uses is torch's LambdaLR of the mmcv formula.
    let refLR = try golden.floats("lr")
    XCTAssertEqual(refLR.count, 50)
    for (i, lr) in refLR.enumerated() {
      let ours = trainer.schedule.lr(at: i)
      XCTAssertEqual(ours, Double(lr), accuracy: 1e-6 * Double(lr) + 1e-15, "lr at iteration \(i)")
    }

    // Initial weights and BN buffers from the golden (strict: names and shapes).
    var renamed: [(name: String, tensor: Tensor)] = []
    for (name, _) in store.namedTensors { renamed.append((name, try golden.tensor("param.\(name)"))) }
    try store.load(from: SafeTensorsFile(data: SafeTensors.encode(renamed), path: "train50 param.*"))
    let initial = Dictionary(uniqueKeysWithValues: store.namedTensors.map { ($0.name, $0.tensor.toArray()) })

    let batches = try (0..<6).map { try batch(golden, $0) }
    let keys = [("loss_seg", "seg"), ("loss_cls", "cls"), ("loss_focal", "focal"), ("loss_dice", "dice"),
                ("loss_div", "div"), ("loss", "total")]
    var ref: [String: [Float]] = [:]
    for (_, k) in keys { ref[k] = try golden.floats("loss.\(k)") }
    let refNorm = try golden.floats("grad_norm")
    var worst: [String: (err: Double, step: Int)] = [:]
    var curve: [Double] = []
    for t in 0..<50 {
      let r = try trainer.step(micro: [batches[t % batches.count]])
      XCTAssertTrue(r.applied, "step \(t + 1) not applied")
      curve.append(r.terms["loss"]!)
      for (ours, k) in keys + [("grad_norm", "grad_norm")] {
        let want = Double(k == "grad_norm" ? refNorm[t] : ref[k]![t])
        let err = abs(r.terms[ours]! - want) / abs(want)
        if err > (worst[k]?.err ?? -1) { worst[k] = (err, t + 1) }
        // Before the trajectories can drift (10 steps, 5 of them at full lr) the
        // update itself is checked tightly; afterwards the 1e-3 on the
        // losses, and 1e-2 on the gradient norm, which float32 noise moves most.
        let tolerance = t < 10 ? 1e-5 : (k == "grad_norm" ? 1e-2 : 1e-3)
        XCTAssertLessThanOrEqual(err, tolerance, "step \(t + 1) \(k): swift \(r.terms[ours]!) vs torch \(want)")
      }
    }
    XCTAssertEqual(trainer.iteration, 50)
    XCTAssertEqual(trainer.optimizer.stepCount, 50)
    // The run did something: the loss fell well below where it started.
    XCTAssertLessThan(curve.last!, 0.7 * curve.first!, "loss \(curve.first!) -> \(curve.last!)")

    // Final weights of the parameters the golden keeps (and BN running statistics),
    // each within twice the float32 drift the exporter measured for it.
    let current = Dictionary(uniqueKeysWithValues: store.namedTensors.map { ($0.name, $0.tensor) })
    let conditioning = try finalWeightDrift()
    var worstFinal = (name: "", err: 0.0)
    for key in golden.keys where key.hasPrefix("final.") {
      let name = String(key.dropFirst(6))
      guard let t = current[name] else { XCTFail("\(name) not in the model"); continue }
      let want = try golden.floats(key), have = t.toArray()
      let err = relativeError(have, want)
      // The weights moved visibly, far beyond the tolerance.
      let moved = relativeError(initial[name]!, want)
      XCTAssertGreaterThan(moved, 1e-2, "\(name) barely moved (\(moved)): the comparison would prove nothing")
      if err > worstFinal.err { worstFinal = (name, err) }
      guard let drift = conditioning[name] else { XCTFail("\(name): no float32 drift in train50.json"); continue }
      let tolerance = max(1e-3, 2 * drift)
      XCTAssertLessThanOrEqual(err, tolerance, "final \(name): relative error \(err) (float32 drift \(drift))")
    }
    let summary = keys.map { k in String(format: "%@ %.2e@%d", k.1, worst[k.1]!.err, worst[k.1]!.step) }
      + [String(format: "grad_norm %.2e@%d", worst["grad_norm"]!.err, worst["grad_norm"]!.step)]
    print("EndToEndTests: max relative error over 50 steps: " + summary.joined(separator: ", ")
          + String(format: "; final weights %.2e (%@); loss %.4f -> %.4f", worstFinal.err, worstFinal.name,
                   curve.first!, curve.last!))
  }
}
