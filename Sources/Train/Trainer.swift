// The training loop: one replica per rank, gradients summed over ranks in
// buckets that overlap backward, one identical AdamW step everywhere.
//
// One iteration (= one optimizer update = one global batch):
//   1. this rank's micro-batches (accumulation steps) from the loader;
//   2. loss normalisers (valid pixels, class weights, masks, images) summed
//      over micro-batches and ranks, so each rank's loss is its exact share of
//      the global-batch loss (spec §6) and the gradient SUM over ranks is the
//      gradient of one process on the union batch. Only the losses need them,
//      so their allreduce runs on the communication thread during the first
//      forward;
//   3. forward + backward per micro-batch, gradients accumulating in the
//      arena; the last backward launches the bucket allreduces as it goes;
//   4. loss terms summed over ranks (for the log and the non-finite check,
//      identical on every rank so they all decide alike), AdamW, schedule;
//   5. log, checkpoint, evaluate, stop on a signal — all at iteration
//      boundaries, where every rank is in the same place.
import Data
import Dist
import Foundation
import Models
import NN
import Tensor
import CShims

public struct TrainSummary {
  public var iterations: Int
  public var finalMIoU: Double?
  public var bestMIoU: Double?
  public var bestIteration: Int?
  public var seconds: Double
  public var imagesPerSecond: Double
  public var skippedSteps: Int
  public var stoppedBySignal: Bool
}

public final class Trainer {
  public let config: TrainConfig
  public let world: Communicator
  public let workDir: String
  public let model: ECENet
  public let optimizer: AdamW
  let schedule: PolyLRSchedule
  let buckets: GradientBuckets
  /// The one thread that issues the step's collectives (buckets, SyncBN, the
  /// loss normalisers), and SyncBN's route to it.
  let worker: CommWorker
  let syncBN: QueuedCollective
  let datasets: RunDatasets
  let batches: TrainBatches
  let metrics: MetricsLog
  public private(set) var iteration = 0
  var isRoot: Bool { world.rank == 0 }

  /// Builds everything and resumes when asked. `iterations` shortens the run
  /// (warmup and decay scale with it).
  public init(config: TrainConfig, workDir: String, world: Communicator, resume: String?, iterations: Int?) throws {
    self.config = config
    self.world = world
    self.workDir = workDir
    config.applyPrecision()
    let (perRank, accumulation) = try config.batchSplit(worldSize: world.worldSize)
    if world.rank == 0 {
      try makeDirectory(workDir, for: "work dir")
      try Checkpoint.writeAtomically(Data(config.yaml().utf8), to: (workDir as NSString).appendingPathComponent("config.yaml"))
    }
    datasets = try RunDatasets(config: config)
    batches = try TrainBatches(source: datasets.train, config: config, rank: world.rank, worldSize: world.worldSize,
                               perRank: perRank, accumulation: accumulation)

    // Same seed on every rank; rank 0's weights are broadcast anyway, so a
    // rank can never start from different weights.
    worker = CommWorker()
    syncBN = QueuedCollective(comm: world, worker: worker)
    model = ECENet(config: config.model, seed: config.train.seed, collective: syncBN)
    model.store.finalize()
    // ImageNet-pretrained backbone (an official Swin or mmcv's ResNetV1c checkpoint,
    // converted by scripts/convert_swin.py); a resumed run overwrites these weights
    // from its checkpoint below.
    if !config.model.pretrained.isEmpty && world.rank == 0 {
      let report = try BackboneCheckpoint.load(path: config.model.pretrained, into: model)
      FileHandle.standardError.write(Data("pretrained: \(report)\n".utf8))
    } else if world.rank == 0, let note = Trainer.noPretrainedNote(config.model, resuming: resume != nil) {
      FileHandle.standardError.write(Data((note + "\n").utf8))
    }
    let values = model.store.values!
    try world.broadcast(UnsafeMutableRawBufferPointer(start: values.data, count: values.count * 4), root: 0)
    for (_, b) in model.store.buffers {
      try world.broadcast(UnsafeMutableRawBufferPointer(start: b.data, count: b.count * 4), root: 0)
    }
    let o = config.optimizer
    optimizer = AdamW(store: model.store, beta1: o.betas[0], beta2: o.betas[1], eps: o.eps, weightDecay: o.weightDecay)
    let s = config.schedule
    var sched = PolyLRSchedule(baseLR: o.lr, maxIterations: s.iterations, power: s.power, minLR: s.minLr,
                               warmupIterations: s.warmupIterations, warmupRatio: s.warmupRatio)
    if let n = iterations { sched = sched.scaled(toIterations: n) }
    schedule = sched
    buckets = GradientBuckets(store: model.store, comm: world, worker: worker)
    metrics = try MetricsLog(workDir: workDir, enabled: world.rank == 0)

    if let r = resume { try self.resume(r) }
  }

  var checkpointDir: String { (workDir as NSString).appendingPathComponent("checkpoints") }

  /// `<work dir>/finished`, written by rank 0 once the schedule has run to its
  /// end (after the final checkpoint and evaluation) and removed when a run
  /// starts. A launcher whose exit status cannot be trusted checks it: srun
  /// exits 0 when its tasks never started (Slurm's PMIx, a requeued job
  /// restarted while its previous step was being cleaned up; docs/cluster.md),
  /// and cluster/slurm/train.sbatch must not report such a run as done.
  public static let finishedMarker = "finished"
  var finishedPath: String { (workDir as NSString).appendingPathComponent(Self.finishedMarker) }

  /// What to say when a full-size backbone starts from random weights (no
  /// `model.pretrained`, no resume): almost always a forgotten key, since the
  /// paper's figures start from ImageNet weights. nil for the debug models.
  static func noPretrainedNote(_ model: ModelConfig, resuming: Bool) -> String? {
    guard model.pretrained.isEmpty, !resuming, let name = model.presetName, !name.contains("tiny") else { return nil }
    return "pretrained: none, so the \(name) backbone starts from random weights; the paper's results start "
      + "from ImageNet weights: convert them with scripts/convert_swin.py and set model.pretrained (README, Status)"
  }

  func log(_ s: String) { if isRoot { FileHandle.standardError.write(Data((s + "\n").utf8)) } }

  func resume(_ how: String) throws {
    let state: TrainerState
    if how == "auto" {
      // Every rank reads the checkpoint itself (shared file system), warning once.
      guard let (st, path) = Checkpoint.resumeLatest(dir: checkpointDir, store: model.store, optimizer: optimizer,
                                                     warn: { self.log("resume: \($0)") }) else {
        log("resume: no checkpoint in \(checkpointDir); starting from scratch")
        return
      }
      state = st
      log("resume: \(path) (iteration \(st.iteration), written by \(st.worldSize) rank(s))")
    } else {
      state = try Checkpoint.load(path: how, store: model.store, optimizer: optimizer)
      log("resume: \(how) (iteration \(state.iteration))")
    }
    // Resuming with another config is allowed (a longer schedule, another
    // eval interval) but should never go unnoticed (a forgotten override).
    let changed = ConfigLoader.differences(from: state.config, to: config.yaml())
    if !changed.isEmpty {
      log("resume: the config differs from the checkpoint's in \(changed.count) key(s): " + changed.joined(separator: "; "))
    }
    iteration = state.iteration
  }

  func saveCheckpoint() throws {
    if isRoot {
      let st = TrainerState(iteration: iteration, optimizerStep: optimizer.stepCount, seed: config.train.seed,
                            worldSize: world.worldSize)
      let path = try Checkpoint.save(dir: checkpointDir, state: st, store: model.store, optimizer: optimizer,
                                     config: config.yaml(), keep: config.train.keepCheckpoints)
      log("checkpoint: \(path)")
    }
    try world.barrier()
  }

  /// One optimizer update on the loader's next micro-batches.
  func step() throws -> (terms: [String: Double], dataWait: Double, commWait: Double, applied: Bool) {
    try FaultInjection.check(rank: world.rank, iteration: iteration)
    let t0 = Date()
    let micro = try batches.batches(for: iteration)
    let dataWait = Date().timeIntervalSince(t0)
    let r = try step(micro: micro)
    return (r.terms, dataWait, r.commWait, r.applied)
  }

  /// One optimizer update on given micro-batches (this rank's share of the
  /// global batch), advancing the iteration. Returns the loss terms summed
  /// over ranks (and the global gradient norm). Public so that tests can
  /// drive the real update with exported batches.
  @discardableResult
  public func step(micro: [TrainBatch]) throws -> (terms: [String: Double], commWait: Double, applied: Bool) {
    defer { iteration += 1 }
    let n = config.model.numClasses
    let labels = micro.map { LabelBatch(bytes: $0.labels, batch: $0.count, height: $0.height, width: $0.width) }
    // The normalisers' allreduce runs on the communication thread while the
    // first forward computes; the losses wait for it. (A blocking call here
    // was a synchronisation point that nothing overlapped.)
    let counts = UnsafeMutableBufferPointer<Double>.allocate(capacity: 4)
    counts.initialize(repeating: 0)
    for l in labels {
      let a = LossNormalizers.local(l, numClasses: n, loss: config.model.loss).asArray
      for i in 0..<4 { counts[i] += a[i] }
    }
    let world = self.world
    let countsTicket = worker.submit { try world.allreduceSum(counts) }
    // Never free the buffer under a running allreduce, even when the step throws.
    defer { try? worker.wait(for: countsTicket); counts.deallocate() }
    // Exposed communication: every second this thread is blocked on a collective.
    var commWait = 0.0
    _ = syncBN.takeWaitSeconds()
    var globalNormalizers: LossNormalizers?
    func normalizers() throws -> LossNormalizers {
      if let g = globalNormalizers { return g }
      let t0 = Date()
      try worker.wait(for: countsTicket)
      commWait += Date().timeIntervalSince(t0)
      let g = LossNormalizers(array: Array(counts))
      globalNormalizers = g
      return g
    }

    model.store.zeroGradients()
    var sums = [Double](repeating: 0, count: 6)
    for (m, batch) in micro.enumerated() {
      let image = Var(Tensor(shape: [batch.count, batch.height, batch.width, 3], values: batch.images))
      // Dropout / drop-path randomness: a pure function of (seed, iteration, rank, micro-batch).
      let ctx = ForwardContext(training: true, seed: config.train.seed &+ UInt64(iteration) &* 0x9E37_79B9
                                 &+ UInt64(world.rank) &* 0x85EB_CA6B &+ UInt64(m) &* 0xC2B2_AE35)
      let terms = try withGradients { () -> LossTerms in
        let out = model(image, ctx)
        return ecenetLosses(out, labels: labels[m], config: config.model, normalizers: try normalizers())
      }
      for (i, t) in [terms.seg, terms.cls, terms.focal, terms.dice, terms.div, terms.total].enumerated() {
        sums[i] += Double(t.value.scalar)
      }
      if m == micro.count - 1 { buckets.beginBackward() }
      terms.total.backward()
    }
    try buckets.finishBackward()
    commWait += buckets.lastWaitSeconds + syncBN.takeWaitSeconds()
    try dumpGradientsIfAsked()
    let c1 = Date()
    try sums.withUnsafeMutableBufferPointer { try world.allreduceSum($0) }
    commWait += Date().timeIntervalSince(c1)
    let names = ["loss_seg", "loss_cls", "loss_focal", "loss_dice", "loss_div", "loss"]
    let terms = Dictionary(uniqueKeysWithValues: zip(names, sums))
    guard sums.allSatisfy({ $0.isFinite }) else {
      let text = names.map { String(format: "%@=%.4g", $0, terms[$0]!) }.joined(separator: " ")
      if config.train.nonFinite == "skip" {
        log("iteration \(iteration): non-finite loss (\(text)); update skipped (train.non_finite=skip)")
        return (terms, commWait, false)
      }
      throw TrainError.nonFinite(iteration: iteration, terms: text)
    }
    // The global gradient norm (identical on every rank after the allreduce): logged, and clipped when asked.
    var withNorm = terms
    withNorm["grad_norm"] = config.optimizer.clipGradNorm > 0
      ? GradClip.clip(model.store, maxNorm: config.optimizer.clipGradNorm) : GradClip.globalNorm(model.store.gradients!)
    let it = iteration
    optimizer.step { mult in self.schedule.lr(at: it, lrMultiplier: mult) }
    return (withNorm, commWait, true)
  }

  /// Debugging / test hook: with `ECENET_DUMP_GRADIENTS=FILE`, rank 0 writes
  /// the first step's reduced gradients (every parameter by name) to FILE, so
  /// runs on different world sizes can be compared tensor by tensor.
  func dumpGradientsIfAsked() throws {
    guard iteration == 0, isRoot, let path = ProcessInfo.processInfo.environment["ECENET_DUMP_GRADIENTS"] else { return }
    let grads = model.store.entries.map { (name: $0.name, tensor: $0.variable.grad!) }
    try SafeTensors.write(grads, metadata: ["world_size": "\(world.worldSize)"], to: URL(fileURLWithPath: path))
  }

  public func evaluate(options: InferenceOptions? = nil) throws -> EvalResult {
    var opts = options ?? InferenceOptions()
    if options == nil {
      opts.mode = config.evaluation.mode
      opts.crop = (config.data.cropSize[0], config.data.cropSize[1])
    }
    let result = try Evaluator.run(model: model, source: datasets.val, world: world, config: config, options: opts,
                                   iteration: iteration, classNames: datasets.classNames, palette: datasets.palette,
                                   samplesDir: (workDir as NSString).appendingPathComponent("samples"), progress: true)
    if isRoot {
      try result.write(workDir: workDir)
      metrics.write(["type": "eval", "iteration": iteration, "mIoU": result.matrix.meanIoU,
                     "aAcc": result.matrix.allAccuracy, "time": Date().timeIntervalSince1970])
    }
    return result
  }

  /// Trains to the end of the schedule (or until a stop signal), evaluating and checkpointing on the way.
  public func run() throws -> TrainSummary {
    let total = schedule.maxIterations
    let start = Date(), startIteration = iteration
    let progress = ProgressLine(total: total, startIteration: iteration)
    var best: (Double, Int)? = nil, last: Double? = nil
    var skipped = 0, stopped = false
    var window = (data: 0.0, comm: 0.0, straggler: 0.0, time: 0.0)
    let logEvery = max(1, config.train.logEvery)
    // Say which GEMM kernels run: an OPENBLAS_CORETYPE pin (set on some clusters
    // for old OpenBLAS bugs) can halve the speed of every GEMM on a newer CPU.
    if let pin = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] {
      log("note: OPENBLAS_CORETYPE=\(pin) pins OpenBLAS to its \(String(cString: ecenet_blas_corename())) kernels; unset it (and OPENBLAS_L2_SIZE) if your OpenBLAS is recent, for up to 2x faster GEMMs")
    }
    log("train: \(world.worldSize) rank(s) × \(batches.perRank) image(s) × \(batches.accumulation) accumulation step(s) = global batch \(config.train.globalBatch); \(total) iterations; \(model.store.parameterCount) parameters; \(Parallel.threads) thread(s) per rank")
    if let note = config.precisionNote { log(note) }
    if isRoot { try? FileManager.default.removeItem(atPath: finishedPath) }
    while iteration < total {
      let t0 = Date()
      let r = try step()
      if !r.applied { skipped += 1 }
      let dt = Date().timeIntervalSince(t0)
      // One max-reduction per step carries two things: every rank must agree to
      // stop, and the slowest rank's busy time (its step less its collective
      // waits). A rank that was busy for less waited the difference for that
      // rank in some collective: load imbalance, not communication. The rest
      // of its wait is the communication that overlap did not hide (the
      // slowest rank's own wait, about).
      let busy = dt - r.commWait
      var shared = [StopSignal.requested ? 1.0 : 0.0, busy]
      try shared.withUnsafeMutableBufferPointer { try world.allreduceMax($0) }
      let straggler = min(r.commWait, max(0, shared[1] - busy))
      window.data += r.dataWait; window.comm += r.commWait; window.straggler += straggler; window.time += dt
      if isRoot && (iteration % logEvery == 0 || iteration == total) {
        let lr = schedule.lr(at: iteration - 1)
        let (rate, _) = progress.eta(at: iteration)
        let share = { (x: Double) in x / max(1e-9, window.time) }
        var rec: [String: Any] = ["type": "train", "iteration": iteration, "lr": lr, "it_per_s": rate,
                                  "data_wait": share(window.data), "comm_wait": share(window.comm),
                                  "straggler_wait": share(window.straggler),
                                  "comm_exposed": share(window.comm - window.straggler), "time": Date().timeIntervalSince1970]
        for (k, v) in r.terms { rec[k] = v }
        metrics.write(rec)
        // On several ranks, how much of the waiting in collectives was for a slower rank.
        let slower = world.worldSize > 1 ? String(format: " (slower ranks %.0f%%)", 100 * share(window.straggler)) : ""
        progress.show(iteration, String(format: "loss %.4f (seg %.3f cls %.3f focal %.3f dice %.3f div %.3f)  lr %.2e  data %.0f%% comm %.0f%%",
                                        r.terms["loss"]!, r.terms["loss_seg"]!, r.terms["loss_cls"]!, r.terms["loss_focal"]!,
                                        r.terms["loss_dice"]!, r.terms["loss_div"]!, lr,
                                        100 * share(window.data), 100 * share(window.comm)) + slower)
        window = (0, 0, 0, 0)
      }
      if shared[0] > 0 {
        progress.finish()
        log("train: stop requested (\(StopSignal.requested ? StopSignal.signalName : "on another rank")) at iteration \(iteration); writing a checkpoint")
        try saveCheckpoint()
        stopped = true
        break
      }
      let ce = config.train.checkpointEvery
      if ce > 0 && iteration % ce == 0 && iteration < total { try saveCheckpoint() }
      let ee = config.train.evalEvery
      if ee > 0 && iteration % ee == 0 && iteration < total {
        progress.finish()
        let e = try evaluate()
        last = e.matrix.meanIoU
        if best == nil || e.matrix.meanIoU > best!.0 { best = (e.matrix.meanIoU, iteration) }
        log(String(format: "eval @%d: mIoU %.2f  aAcc %.2f", iteration, e.matrix.meanIoU * 100, e.matrix.allAccuracy * 100))
      }
    }
    progress.finish()
    if !stopped {
      try saveCheckpoint()
      let e = try evaluate()
      last = e.matrix.meanIoU
      if best == nil || e.matrix.meanIoU > best!.0 { best = (e.matrix.meanIoU, iteration) }
      if isRoot {
        print(e.matrix.table(classNames: datasets.classNames))
        try Checkpoint.writeAtomically(Data("finished \(iteration) of \(total) iterations\n".utf8), to: finishedPath)
      }
    }
    let secs = Date().timeIntervalSince(start)
    let imgs = Double((iteration - startIteration) * config.train.globalBatch) / max(1e-9, secs)
    return TrainSummary(iterations: iteration, finalMIoU: last, bestMIoU: best?.0, bestIteration: best?.1, seconds: secs,
                        imagesPerSecond: imgs, skippedSteps: skipped, stoppedBySignal: stopped)
  }
}

/// Test hook: `ECENET_FAIL_RANK=R ECENET_FAIL_ITERATION=I` makes rank R throw
/// at iteration I, so the suite can prove a failing rank ends the whole job
/// with a message naming it. Inert unless both variables are set.
enum FaultInjection {
  static let target: (rank: Int, iteration: Int)? = {
    let env = ProcessInfo.processInfo.environment
    guard let r = env["ECENET_FAIL_RANK"].flatMap(Int.init), let i = env["ECENET_FAIL_ITERATION"].flatMap(Int.init) else { return nil }
    return (r, i)
  }()

  struct Injected: Error, CustomStringConvertible {
    let iteration: Int
    var description: String { "injected failure at iteration \(iteration) (ECENET_FAIL_RANK/ECENET_FAIL_ITERATION are set)" }
  }

  static func check(rank: Int, iteration: Int) throws {
    if let t = target, t.rank == rank, t.iteration == iteration { throw Injected(iteration: iteration) }
  }
}
