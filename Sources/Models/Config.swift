// The model's configuration: one Codable struct with the paper's defaults
// (ECENET_SPEC.md §1–6). YAML keys are snake_case; a key the struct does not
// know is an error that names it (a typo must not silently fall back to a
// default). Presets: swin-t, swin-s, swin-b, swin-l and tiny (tests/debug).
import Foundation

/// The head's 2-D normalisation (spec §2).
public enum NormKind: String, Codable, Sendable {
  /// BatchNorm with mean/variance over the global batch (mmseg's head default).
  case syncbn
  /// BatchNorm with this rank's statistics.
  case bn
  /// GroupNorm with gcd(32, C) groups (batch-size independent).
  case gn
}

/// How an SAU updates the class embeddings (spec §4).
public enum UpdaterKind: String, Codable, Sendable {
  /// K-Net gate: G ← σ(LN(FC(W₃Ĝ ⊙ W₄G))) ⊙ LN(FC(Ĝ)) + G.
  case gated
  /// Ablation: G ← Ĝ + G.
  case plus
}

/// Swin Transformer sizes (spec §1 table).
public struct SwinConfig: Codable, Equatable, Sendable {
  /// Channels after patch embedding (C_1); stage i has embed·2^(i-1).
  public var embedDim: Int
  /// Blocks per stage (4 stages).
  public var depths: [Int]
  /// Attention heads per stage.
  public var heads: [Int]
  /// Attention window side (tokens).
  public var window: Int
  /// Largest stochastic-depth rate (last block); rates rise linearly from 0.
  public var dropPath: Float
  /// MLP hidden width ratio (4 in every Swin).
  public var mlpRatio: Int = 4
  /// Patch embedding stride and kernel (4 in every Swin).
  public var patchSize: Int = 4

  public init(embedDim: Int, depths: [Int], heads: [Int], window: Int, dropPath: Float) {
    self.embedDim = embedDim; self.depths = depths; self.heads = heads; self.window = window; self.dropPath = dropPath
  }

  /// Channels of the four stage outputs.
  public var stageChannels: [Int] { (0..<4).map { embedDim << $0 } }

  public static let presets: [String: SwinConfig] = [
    "swin-t": SwinConfig(embedDim: 96, depths: [2, 2, 6, 2], heads: [3, 6, 12, 24], window: 7, dropPath: 0.3),
    "swin-s": SwinConfig(embedDim: 96, depths: [2, 2, 18, 2], heads: [3, 6, 12, 24], window: 7, dropPath: 0.3),
    "swin-b": SwinConfig(embedDim: 128, depths: [2, 2, 18, 2], heads: [4, 8, 16, 32], window: 12, dropPath: 0.3),
    "swin-l": SwinConfig(embedDim: 192, depths: [2, 2, 18, 2], heads: [6, 12, 24, 48], window: 12, dropPath: 0.3),
    "tiny": SwinConfig(embedDim: 32, depths: [1, 1, 1, 1], heads: [1, 2, 4, 8], window: 4, dropPath: 0),
  ]

  public static func preset(_ name: String) throws -> SwinConfig {
    guard let p = presets[name.lowercased().replacingOccurrences(of: "_", with: "-")] else {
      throw ModelConfigError.unknownValue(key: "backbone", value: name, expected: presets.keys.sorted())
    }
    return p
  }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case variant, embedDim = "embed_dim", depths, heads, window, dropPath = "drop_path", mlpRatio = "mlp_ratio",
         patchSize = "patch_size"
  }

  /// Either a preset name (`backbone: swin-b`) or a mapping: an optional
  /// `variant` to start from, then explicit fields that override it.
  public init(from decoder: Decoder) throws {
    if let name = try? decoder.singleValueContainer().decode(String.self) {
      self = try SwinConfig.preset(name)
      return
    }
    try rejectUnknownKeys(decoder, CodingKeys.allCases.map(\.rawValue), section: "backbone")
    let c = try decoder.container(keyedBy: CodingKeys.self)
    if let v = try c.decodeIfPresent(String.self, forKey: .variant) {
      self = try SwinConfig.preset(v)
    } else {
      guard c.contains(.embedDim), c.contains(.depths), c.contains(.heads), c.contains(.window) else {
        throw ModelConfigError.missing(key: "backbone", hint: "give `variant: swin-b` or all of embed_dim, depths, heads, window")
      }
      self = SwinConfig(embedDim: 0, depths: [], heads: [], window: 0, dropPath: 0)
    }
    embedDim = try c.decodeIfPresent(Int.self, forKey: .embedDim) ?? embedDim
    depths = try c.decodeIfPresent([Int].self, forKey: .depths) ?? depths
    heads = try c.decodeIfPresent([Int].self, forKey: .heads) ?? heads
    window = try c.decodeIfPresent(Int.self, forKey: .window) ?? window
    dropPath = try c.decodeIfPresent(Float.self, forKey: .dropPath) ?? dropPath
    mlpRatio = try c.decodeIfPresent(Int.self, forKey: .mlpRatio) ?? mlpRatio
    patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? patchSize
    try validate()
  }

  /// A preset encodes as its name (so a merged YAML tree can replace it with
  /// another name); anything else as the explicit mapping.
  public func encode(to encoder: Encoder) throws {
    if let name = SwinConfig.presets.first(where: { $0.value == self })?.key {
      var c = encoder.singleValueContainer()
      try c.encode(name)
      return
    }
    var c = encoder.container(keyedBy: CodingKeys.self)
    try c.encode(embedDim, forKey: .embedDim); try c.encode(depths, forKey: .depths)
    try c.encode(heads, forKey: .heads); try c.encode(window, forKey: .window)
    try c.encode(dropPath, forKey: .dropPath); try c.encode(mlpRatio, forKey: .mlpRatio)
    try c.encode(patchSize, forKey: .patchSize)
  }

  public func validate() throws {
    guard depths.count == 4, heads.count == 4 else {
      throw ModelConfigError.invalid(key: "backbone", message: "depths \(depths) and heads \(heads) need 4 stages")
    }
    for (i, h) in heads.enumerated() where h <= 0 || stageChannels[i] % h != 0 {
      throw ModelConfigError.invalid(key: "backbone.heads", message: "stage \(i): \(stageChannels[i]) channels not divisible by \(h) heads")
    }
  }
}

/// Loss weights and constants (spec §6).
public struct LossConfig: Codable, Equatable, Sendable {
  /// Weight of the pixel cross-entropy L_seg.
  public var seg: Float = 1
  /// Weight of the class-head cross-entropy L_cls.
  public var cls: Float = 1
  /// Weight of the sigmoid focal loss on M_sum (λ_focal).
  public var focal: Float = 20
  /// Weight of the dice loss on M_sum (λ_dice).
  public var dice: Float = 1
  /// Weight of FR's diversity loss (λ_div).
  public var div: Float = 0.2
  /// Class weight of the "absent" slot in L_cls (DETR's eos_coef).
  public var eosCoef: Float = 0.1
  /// Focal loss α.
  public var focalAlpha: Float = 0.25
  /// Focal loss γ.
  public var focalGamma: Float = 2
  /// Label value that marks pixels without a class.
  public var ignoreIndex: Int32 = 255

  public init() {}

  enum CodingKeys: String, CodingKey, CaseIterable {
    case seg, cls, focal, dice, div, eosCoef = "eos_coef", focalAlpha = "focal_alpha", focalGamma = "focal_gamma",
         ignoreIndex = "ignore_index"
  }

  public init(from decoder: Decoder) throws {
    try rejectUnknownKeys(decoder, CodingKeys.allCases.map(\.rawValue), section: "model.loss")
    let c = try decoder.container(keyedBy: CodingKeys.self)
    seg = try c.decodeIfPresent(Float.self, forKey: .seg) ?? seg
    cls = try c.decodeIfPresent(Float.self, forKey: .cls) ?? cls
    focal = try c.decodeIfPresent(Float.self, forKey: .focal) ?? focal
    dice = try c.decodeIfPresent(Float.self, forKey: .dice) ?? dice
    div = try c.decodeIfPresent(Float.self, forKey: .div) ?? div
    eosCoef = try c.decodeIfPresent(Float.self, forKey: .eosCoef) ?? eosCoef
    focalAlpha = try c.decodeIfPresent(Float.self, forKey: .focalAlpha) ?? focalAlpha
    focalGamma = try c.decodeIfPresent(Float.self, forKey: .focalGamma) ?? focalGamma
    ignoreIndex = try c.decodeIfPresent(Int32.self, forKey: .ignoreIndex) ?? ignoreIndex
  }
}

/// The whole network's configuration (YAML section `model:`).
public struct ModelConfig: Codable, Equatable, Sendable {
  /// Swin sizes: a preset name or explicit fields (spec §1).
  public var backbone: SwinConfig
  /// Number of classes N (ADE20K 150, PASCAL-Context 59, Cityscapes 19).
  public var numClasses: Int = 150
  /// Unified head width C (256 in the paper).
  public var channels: Int = 256
  /// ECE pyramid factor α: levels S = max(1, round(α·√N)) (ADE20K 1, Context √2, Cityscapes 3).
  public var alpha: Double = 1
  /// Attention heads of each SAU (d = C / heads).
  public var sauHeads: Int = 8
  /// The head's norm: syncbn (default, as mmseg), bn or gn.
  public var norm: NormKind = .syncbn
  /// SAU class-embedding update: gated (paper) or plus (ablation).
  public var updater: UpdaterKind = .gated
  /// Dropout before cls_seg.
  public var dropout: Float = 0.1
  /// Loss weights and constants.
  public var loss = LossConfig()

  public init(backbone: SwinConfig, numClasses: Int = 150) { self.backbone = backbone; self.numClasses = numClasses }

  /// swin-t/s/b/l with the paper's head (C 256); tiny: the golden/test model (C 32, 5 classes, BN).
  public static func preset(_ name: String, numClasses: Int? = nil) throws -> ModelConfig {
    var c = ModelConfig(backbone: try SwinConfig.preset(name))
    if name == "tiny" { c.channels = 32; c.numClasses = 5; c.norm = .bn }
    if let n = numClasses { c.numClasses = n }
    return c
  }

  /// The ECE pyramid's number of levels S (round half up, as the reference).
  public var eceLevels: Int { max(1, Int((alpha * Double(numClasses).squareRoot() + 0.5).rounded(.down))) }
  /// Values per class vector of the pyramid: Σ_{s=1..S} s².
  public var eceBins: Int { (1...eceLevels).reduce(0) { $0 + $1 * $1 } }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case backbone, numClasses = "num_classes", channels, alpha, sauHeads = "sau_heads", norm, updater, dropout, loss
  }

  public init(from decoder: Decoder) throws {
    try rejectUnknownKeys(decoder, CodingKeys.allCases.map(\.rawValue), section: "model")
    let c = try decoder.container(keyedBy: CodingKeys.self)
    guard c.contains(.backbone) else { throw ModelConfigError.missing(key: "model.backbone", hint: "e.g. `backbone: swin-b`") }
    backbone = try c.decode(SwinConfig.self, forKey: .backbone)
    numClasses = try c.decodeIfPresent(Int.self, forKey: .numClasses) ?? numClasses
    channels = try c.decodeIfPresent(Int.self, forKey: .channels) ?? channels
    alpha = try c.decodeIfPresent(Double.self, forKey: .alpha) ?? alpha
    sauHeads = try c.decodeIfPresent(Int.self, forKey: .sauHeads) ?? sauHeads
    norm = try c.decodeIfPresent(NormKind.self, forKey: .norm) ?? norm
    updater = try c.decodeIfPresent(UpdaterKind.self, forKey: .updater) ?? updater
    dropout = try c.decodeIfPresent(Float.self, forKey: .dropout) ?? dropout
    loss = try c.decodeIfPresent(LossConfig.self, forKey: .loss) ?? loss
    try validate()
  }

  public func validate() throws {
    try backbone.validate()
    guard numClasses > 0 else { throw ModelConfigError.invalid(key: "model.num_classes", message: "must be positive, got \(numClasses)") }
    guard sauHeads > 0, channels % sauHeads == 0 else {
      throw ModelConfigError.invalid(key: "model.sau_heads", message: "channels \(channels) not divisible by \(sauHeads) heads")
    }
    guard backbone.stageChannels.allSatisfy({ $0 % 8 == 0 }) else {
      throw ModelConfigError.invalid(key: "model.backbone.embed_dim", message: "FR needs stage channels divisible by 8, got \(backbone.stageChannels)")
    }
  }
}

public enum ModelConfigError: Error, CustomStringConvertible {
  case unknownKey(section: String, key: String, known: [String])
  case unknownValue(key: String, value: String, expected: [String])
  case missing(key: String, hint: String)
  case invalid(key: String, message: String)

  public var description: String {
    switch self {
    case let .unknownKey(s, k, known): return "config: unknown key `\(k)` in `\(s)`; known keys: \(known.joined(separator: ", "))"
    case let .unknownValue(k, v, e): return "config: `\(k)` is `\(v)`; expected one of \(e.joined(separator: ", "))"
    case let .missing(k, h): return "config: missing `\(k)` (\(h))"
    case let .invalid(k, m): return "config: `\(k)`: \(m)"
    }
  }
}

struct AnyKey: CodingKey {
  var stringValue: String
  var intValue: Int? { nil }
  init(stringValue: String) { self.stringValue = stringValue }
  init?(intValue: Int) { nil }
}

/// Throws on the first key of the mapping that `known` does not list.
func rejectUnknownKeys(_ decoder: Decoder, _ known: [String], section: String) throws {
  let c = try decoder.container(keyedBy: AnyKey.self)
  for k in c.allKeys where !known.contains(k.stringValue) {
    throw ModelConfigError.unknownKey(section: section, key: k.stringValue, known: known)
  }
}
