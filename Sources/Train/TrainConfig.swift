// The run configuration: one Codable tree with the paper's defaults (spec §7).
// YAML files under configs/ override only what differs; keys are snake_case as
// in mmsegmentation configs. `ConfigLoader` rejects unknown keys.
import Data
import Models
import Tensor

public struct TrainConfig: Codable, Equatable {
  /// The network (see Models/Config.swift): backbone preset, classes, head width, norm, losses.
  public var model = try! ModelConfig.preset("swin-b", numClasses: 150)
  public var data = DataConfig()
  public var optimizer = OptimizerConfig()
  public var schedule = ScheduleConfig()
  public var train = LoopConfig()
  public var evaluation = EvalConfig()

  public init() {}

  enum CodingKeys: String, CodingKey { case model, data, optimizer, schedule, train, evaluation }
}

public struct DataConfig: Codable, Equatable {
  /// `synthetic` (built in, no files) or `packed` (a directory written by `ecenet-dist pack`).
  public var dataset = "packed"
  /// Packed dataset root: holds `train/` and `val/` (each with manifest.json).
  public var root = ""
  /// Built-in synthetic dataset settings (dataset: synthetic).
  public var synthetic = SyntheticConfig()
  /// Random-resize base scale [long, short] (ADE20K 2560×640); the ratio U[0.5, 2] multiplies it.
  public var scale = [2560, 640]
  /// Training crop [height, width].
  public var cropSize = [640, 640]
  /// Crop retry rule: no class may cover this share of the crop (10 tries).
  public var catMaxRatio = 0.75
  /// mmseg's PhotoMetricDistortion.
  public var photometric = true
  /// Test scale [long, short] for evaluation (keep ratio).
  public var testScale = [2560, 640]
  /// Decode/augment threads per rank, and how many batches they run ahead.
  public var workers = 2
  public var prefetch = 2

  enum CodingKeys: String, CodingKey {
    case dataset, root, synthetic, scale, cropSize = "crop_size", catMaxRatio = "cat_max_ratio", photometric
    case testScale = "test_scale", workers, prefetch
  }
}

public struct SyntheticConfig: Codable, Equatable {
  public var trainCount = 512
  public var valCount = 64
  /// Image size (square).
  public var size = 64
  /// Pixels near class borders labelled 255 (ignore).
  public var ignoreBorder = 0
  public var seed: UInt64 = 0

  enum CodingKeys: String, CodingKey {
    case trainCount = "train_count", valCount = "val_count", size, ignoreBorder = "ignore_border", seed
  }
}

public struct OptimizerConfig: Codable, Equatable {
  /// AdamW (spec §7): lr 6e-5, betas (0.9, 0.999), weight decay 0.01 (none on norms, biases, position tables).
  public var lr = 6e-5
  public var betas = [0.9, 0.999]
  public var weightDecay = 0.01
  public var eps = 1e-8
  /// Global gradient-norm clipping; 0 = off (the paper does not clip).
  public var clipGradNorm = 0.0

  enum CodingKeys: String, CodingKey { case lr, betas, weightDecay = "weight_decay", eps, clipGradNorm = "clip_grad_norm" }
}

public struct ScheduleConfig: Codable, Equatable {
  /// Total optimizer updates (ADE20K 160k).
  public var iterations = 160_000
  /// Linear warmup from warmup_ratio·lr over this many updates, then poly decay.
  public var warmupIterations = 1500
  public var warmupRatio = 1e-6
  public var power = 1.0
  public var minLr = 0.0

  enum CodingKeys: String, CodingKey {
    case iterations, warmupIterations = "warmup_iterations", warmupRatio = "warmup_ratio", power, minLr = "min_lr"
  }
}

public struct LoopConfig: Codable, Equatable {
  /// Images per optimizer update over all ranks = ranks × per-rank batch × accumulation steps.
  public var globalBatch = 16
  /// Images per forward pass on one rank; 0 = global_batch / world size (no accumulation).
  public var perRankBatch = 0
  /// Seed of weights, data order, augmentation, dropout.
  public var seed: UInt64 = 0
  public var logEvery = 50
  public var checkpointEvery = 16_000
  /// Checkpoints kept on disk (newest).
  public var keepCheckpoints = 3
  /// Evaluate every N updates (0 = only at the end).
  public var evalEvery = 16_000
  /// What a non-finite loss does: `stop` (default) or `skip` the update (counted).
  public var nonFinite = "stop"
  /// Compute threads per rank; 0 = ECENET_THREADS or the cores this rank may use.
  public var threads = 0
  /// What the GEMMs (linear, conv, attention matmuls; forward and backward)
  /// compute in: `fp32`, or `bf16` (inputs rounded to bfloat16, fp32
  /// accumulation and fp32 everywhere else: weights, optimizer, norms, losses;
  /// PyTorch's bf16 autocast without its bf16 activations). Applies to
  /// evaluation too. Fast on CPUs with AVX512_BF16; elsewhere emulated (slower).
  public var precision = "fp32"

  enum CodingKeys: String, CodingKey {
    case globalBatch = "global_batch", perRankBatch = "per_rank_batch", seed, logEvery = "log_every"
    case checkpointEvery = "checkpoint_every", keepCheckpoints = "keep_checkpoints", evalEvery = "eval_every"
    case nonFinite = "non_finite", threads, precision
  }
}

public struct EvalConfig: Codable, Equatable {
  /// `whole` image or `slide` window inference (window = crop, stride 2/3 crop).
  public var mode = "whole"
  /// Multi-scale ratios and flip (spec §8); `eval --multi-scale --flip` turns them on.
  public var ratios = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
  /// Sample predictions saved for the report (rank 0, first images).
  public var samples = 8

  enum CodingKeys: String, CodingKey { case mode, ratios, samples }
}

extension TrainConfig {
  /// Loads FILE over the defaults with dotted overrides, then checks values.
  public static func load(file: String?, overrides: [String]) throws -> TrainConfig {
    let c = try ConfigLoader.load(TrainConfig(), file: file, overrides: overrides)
    try c.validate()
    return c
  }

  public func validate() throws {
    func bad(_ k: String, _ m: String) -> ConfigError { .invalid(key: k, message: m) }
    guard ["synthetic", "packed"].contains(data.dataset) else { throw bad("data.dataset", "must be synthetic or packed, got '\(data.dataset)'") }
    if data.dataset == "packed" && data.root.isEmpty {
      throw bad("data.root", "set it to the directory written by `ecenet-dist pack` (with train/ and val/), or use data.dataset=synthetic")
    }
    guard data.cropSize.count == 2, data.scale.count == 2, data.testScale.count == 2 else {
      throw bad("data.crop_size/scale/test_scale", "each takes two numbers")
    }
    guard train.globalBatch > 0 else { throw bad("train.global_batch", "must be positive") }
    guard schedule.iterations > 0 else { throw bad("schedule.iterations", "must be positive") }
    guard ["stop", "skip"].contains(train.nonFinite) else { throw bad("train.non_finite", "stop or skip, got '\(train.nonFinite)'") }
    guard GEMMPrecision(rawValue: train.precision) != nil else {
      throw bad("train.precision", "fp32 or bf16, got '\(train.precision)'")
    }
    guard ["whole", "slide"].contains(evaluation.mode) else { throw bad("evaluation.mode", "whole or slide, got '\(evaluation.mode)'") }
    guard optimizer.betas.count == 2 else { throw bad("optimizer.betas", "two numbers") }
    try model.validate()
  }

  /// Splits the global batch for `worldSize` ranks: (per-rank batch, accumulation steps).
  public func batchSplit(worldSize: Int) throws -> (perRank: Int, accumulation: Int) {
    let g = train.globalBatch
    guard g % worldSize == 0 else {
      throw ConfigError.invalid(key: "train.global_batch",
        message: "\(g) images cannot be split evenly over \(worldSize) ranks; use a world size that divides it (e.g. \((1...g).filter { g % $0 == 0 }.map(String.init).joined(separator: ", ")))")
    }
    let share = g / worldSize
    let b = train.perRankBatch == 0 ? share : train.perRankBatch
    guard b > 0, share % b == 0 else {
      throw ConfigError.invalid(key: "train.per_rank_batch",
        message: "\(b) does not divide the per-rank share \(share) of global batch \(g) over \(worldSize) ranks")
    }
    return (b, share / b)
  }

  /// The YAML of this resolved config (saved in the work dir and in checkpoints).
  public func yaml() -> String {
    (try? ConfigLoader.toYAML(self)) ?? "# (config could not be rendered)"
  }
}

extension TrainConfig {
  /// Sets the process's GEMM precision from `train.precision` (validated).
  public func applyPrecision() {
    GEMMPrecision.current = GEMMPrecision(rawValue: train.precision) ?? .fp32
  }

  /// One line for the log when the GEMMs do not run in plain fp32; nil otherwise.
  public var precisionNote: String? {
    precisionNote(cpuHasAMX: cpuHasAMXBF16, amx: amxGEMMInUse, amxUnavailable: amxRequestedButUnavailable)
  }

  /// `precisionNote` as on a CPU with (or without) AMX tiles, with the AMX kernel
  /// in use (`amx`) or asked for where it cannot run (`amxUnavailable`).
  func precisionNote(cpuHasAMX: Bool, amx: Bool = false, amxUnavailable: Bool = false) -> String? {
    guard train.precision == "bf16" else { return nil }
    if bf16GEMMKernelInUse {
      if amx {
        return "precision: GEMMs in bf16 with fp32 accumulation on AMX tiles (ECENET_AMX=0 turns them off); weights, optimizer and the rest in fp32"
      }
      var note = "precision: GEMMs in bf16 with fp32 accumulation (AVX512_BF16 kernel); weights, optimizer and the rest in fp32"
      // Where the CPU does bf16 in AMX tiles, its AVX512_BF16 path gained nothing over fp32 FMA
      // (BENCHMARKS.md, session 7), so without the tiles fp32 is the faster choice there.
      let slower = "on the AMX Xeon measured, this kernel's bf16 step was slower than fp32 (BENCHMARKS.md, session 7), so train.precision=fp32 is likely faster here"
      if amxUnavailable {
        note += ". AMX tiles were wanted (ECENET_AMX=1, or this CPU's AMX-BF16), but this CPU or its OS cannot run them, or they failed their self-check (see stderr)"
        if cpuHasAMX { note += "; " + slower }
      } else if cpuHasAMX {
        note += ". ECENET_AMX=0 keeps this CPU's AMX tiles off; " + slower
      }
      return note
    }
    if bf16GEMMAvailable {
      return "precision: GEMMs in bf16 with fp32 accumulation, as bf16-rounded copies through the fp32 GEMMs (ECENET_BF16_KERNEL=0); weights, optimizer and the rest in fp32"
    }
    return "precision: train.precision=bf16 on a CPU without AVX512_BF16: GEMM inputs are rounded to bf16 and multiplied by the fp32 sgemm (bf16 numerics, slower than fp32); use train.precision=fp32 for speed here"
  }
}
