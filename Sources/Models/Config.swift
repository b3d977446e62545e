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
  /// Strides of the four stage outputs (4, 8, 16, 32).
  public var stageStrides: [Int] { (0..<4).map { patchSize << $0 } }

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
    try encodeFields(to: encoder)
  }

  /// Every field as a mapping, even for a preset (ModelConfig.settings).
  func encodeFields(to encoder: Encoder) throws {
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
  /// Swin sizes: a preset name or explicit fields (spec §1). Unused (kept at
  /// the tiny preset) when `resnet` is set.
  public var backbone: SwinConfig
  /// The CNN backbone instead of Swin: set by `backbone: resnet101-d8` (or
  /// resnet50-d8, resnet-tiny); nil for Swin.
  public var resnet: ResNetConfig?
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
  /// The backbone's preset name (swin-b, resnet101-d8, tiny, …); nil for a custom Swin.
  public var presetName: String? {
    if let r = resnet { return ResNetConfig.presets.first { $0.value == r }?.key }
    return SwinConfig.presets.first { $0.value == backbone }?.key
  }

  /// ImageNet checkpoint to start the backbone from: an official Swin, or for
  /// a ResNet backbone mmcv's ResNetV1c (safetensors from
  /// scripts/convert_swin.py, loaded by BackboneCheckpoint.load); "" = none.
  /// A relative path is taken from the working directory.
  public var pretrained: String = ""

  public init(backbone: SwinConfig, numClasses: Int = 150) { self.backbone = backbone; self.numClasses = numClasses }

  /// swin-t/s/b/l with the paper's head (C 256); tiny: the golden/test model (C 32, 5 classes, BN).
  public static func preset(_ name: String, numClasses: Int? = nil) throws -> ModelConfig {
    if let r = ResNetConfig.preset(named: name) {
      var c = ModelConfig(backbone: SwinConfig.presets["tiny"]!, numClasses: numClasses ?? 150)
      c.resnet = r
      if ResNetConfig.normalized(name) == "resnet-tiny" { c.channels = 32; c.numClasses = numClasses ?? 5; c.norm = .bn }
      return c
    }
    var c = ModelConfig(backbone: try SwinConfig.preset(name))
    if name == "tiny" { c.channels = 32; c.numClasses = 5; c.norm = .bn }
    if let n = numClasses { c.numClasses = n }
    return c
  }

  /// Channels and strides of the backbone's four outputs (Swin or ResNet).
  public var stageChannels: [Int] { resnet?.stageChannels ?? backbone.stageChannels }
  public var stageStrides: [Int] { resnet?.stageStrides ?? backbone.stageStrides }

  /// The ECE pyramid's number of levels S (round half up, as the reference).
  public var eceLevels: Int { max(1, Int((alpha * Double(numClasses).squareRoot() + 0.5).rounded(.down))) }
  /// Values per class vector of the pyramid: Σ_{s=1..S} s².
  public var eceBins: Int { (1...eceLevels).reduce(0) { $0 + $1 * $1 } }

  enum CodingKeys: String, CodingKey, CaseIterable {
    case backbone, numClasses = "num_classes", channels, alpha, sauHeads = "sau_heads", norm, updater, dropout, loss,
         pretrained
  }

  public init(from decoder: Decoder) throws {
    try rejectUnknownKeys(decoder, CodingKeys.allCases.map(\.rawValue), section: "model")
    let c = try decoder.container(keyedBy: CodingKeys.self)
    guard c.contains(.backbone) else { throw ModelConfigError.missing(key: "model.backbone", hint: "e.g. `backbone: swin-b`") }
    if let name = try? c.decode(String.self, forKey: .backbone), let r = ResNetConfig.preset(named: name) {
      resnet = r
      backbone = SwinConfig.presets["tiny"]!
    } else {
      backbone = try c.decode(SwinConfig.self, forKey: .backbone)
    }
    numClasses = try c.decodeIfPresent(Int.self, forKey: .numClasses) ?? numClasses
    channels = try c.decodeIfPresent(Int.self, forKey: .channels) ?? channels
    alpha = try c.decodeIfPresent(Double.self, forKey: .alpha) ?? alpha
    sauHeads = try c.decodeIfPresent(Int.self, forKey: .sauHeads) ?? sauHeads
    norm = try c.decodeIfPresent(NormKind.self, forKey: .norm) ?? norm
    updater = try c.decodeIfPresent(UpdaterKind.self, forKey: .updater) ?? updater
    dropout = try c.decodeIfPresent(Float.self, forKey: .dropout) ?? dropout
    loss = try c.decodeIfPresent(LossConfig.self, forKey: .loss) ?? loss
    pretrained = try c.decodeIfPresent(String.self, forKey: .pretrained) ?? pretrained
    try validate()
  }

  /// Written as read: `backbone` is the ResNet preset name when `resnet` is set.
  public func encode(to encoder: Encoder) throws {
    var c = encoder.container(keyedBy: CodingKeys.self)
    if let r = resnet { try c.encode(r, forKey: .backbone) } else { try c.encode(backbone, forKey: .backbone) }
    try c.encode(numClasses, forKey: .numClasses); try c.encode(channels, forKey: .channels)
    try c.encode(alpha, forKey: .alpha); try c.encode(sauHeads, forKey: .sauHeads)
    try c.encode(norm, forKey: .norm); try c.encode(updater, forKey: .updater)
    try c.encode(dropout, forKey: .dropout); try c.encode(loss, forKey: .loss)
    try c.encode(pretrained, forKey: .pretrained)
  }

  public func validate() throws {
    if let r = resnet { try r.validate() } else { try backbone.validate() }
    guard numClasses > 0 else { throw ModelConfigError.invalid(key: "model.num_classes", message: "must be positive, got \(numClasses)") }
    guard sauHeads > 0, channels % sauHeads == 0 else {
      throw ModelConfigError.invalid(key: "model.sau_heads", message: "channels \(channels) not divisible by \(sauHeads) heads")
    }
    guard stageChannels.allSatisfy({ $0 % 8 == 0 }) else {
      throw ModelConfigError.invalid(key: "model.backbone.embed_dim", message: "FR needs stage channels divisible by 8, got \(stageChannels)")
    }
  }
}

// Dotted settings: the goldens of scripts/reference record their model as
// overrides of the tiny preset plus the full dotted map, so that the tests
// build exactly the recorded model and a disagreement names its key.
extension ModelConfig {
  /// Every setting as dotted snake_case key → JSON value (`backbone.embed_dim`,
  /// `channels`, `loss.focal`, …): the YAML keys, the backbone always spelled
  /// out field by field. Swin backbones only.
  public var settings: [String: Any] {
    precondition(resnet == nil, "ModelConfig.settings: Swin backbones only")
    struct Fields: Encodable {
      let swin: SwinConfig
      func encode(to encoder: Encoder) throws { try swin.encodeFields(to: encoder) }
    }
    func tree<T: Encodable>(_ v: T) -> [String: Any] {
      (try? JSONSerialization.jsonObject(with: JSONEncoder().encode(v))) as? [String: Any] ?? [:]
    }
    var top = tree(self)
    top["backbone"] = tree(Fields(swin: backbone))
    var flat: [String: Any] = [:]
    for (k, v) in top {
      if let sub = v as? [String: Any] { for (k2, v2) in sub { flat["\(k).\(k2)"] = v2 } } else { flat[k] = v }
    }
    return flat
  }

  /// This config with dotted snake_case keys set to JSON values (numbers,
  /// strings, arrays), checked as a YAML file would be: an unknown key, a value
  /// of the wrong type or an invalid result throws a ModelConfigError naming the key.
  public func applying(_ overrides: [String: Any]) throws -> ModelConfig {
    guard resnet == nil else { throw ModelConfigError.invalid(key: "model.backbone", message: "applying: Swin backbones only") }
    var top: [String: Any] = [:]
    for (key, value) in settings {
      let parts = key.split(separator: ".", maxSplits: 1).map(String.init)
      if parts.count == 1 { top[key] = value } else {
        var sub = top[parts[0]] as? [String: Any] ?? [:]
        sub[parts[1]] = value
        top[parts[0]] = sub
      }
    }
    for (key, value) in overrides {
      let parts = key.split(separator: ".", maxSplits: 1).map(String.init)
      guard top[parts[0]] != nil else {
        throw ModelConfigError.unknownKey(section: "model", key: key, known: CodingKeys.allCases.map(\.rawValue))
      }
      if parts.count == 1 { top[key] = value } else {
        guard var sub = top[parts[0]] as? [String: Any] else {
          throw ModelConfigError.invalid(key: "model.\(key)", message: "`\(parts[0])` has no sub-keys")
        }
        guard sub[parts[1]] != nil else {
          throw ModelConfigError.unknownKey(section: "model.\(parts[0])", key: parts[1], known: sub.keys.sorted())
        }
        sub[parts[1]] = value
        top[parts[0]] = sub
      }
    }
    do {
      return try JSONDecoder().decode(ModelConfig.self, from: JSONSerialization.data(withJSONObject: top))
    } catch let DecodingError.typeMismatch(type, ctx) {
      throw ModelConfigError.invalid(key: "model." + ctx.codingPath.map(\.stringValue).joined(separator: "."),
                                     message: "expected \(type)")
    } catch let DecodingError.dataCorrupted(ctx) {
      throw ModelConfigError.invalid(key: "model." + ctx.codingPath.map(\.stringValue).joined(separator: "."),
                                     message: ctx.debugDescription)
    }
  }

  /// A model recorded as JSON, as the goldens of scripts/reference record theirs
  /// (safetensors metadata `model_overrides` and `model_config`): preset `name`
  /// with `overrides` (dotted key → value) applied, which must then have every
  /// setting of `full` (dotted key → value). Throws a ModelConfigError naming
  /// each key that disagrees, so a recorded model and the preset can never
  /// drift apart silently.
  public static func recorded(preset name: String, overrides: String, full: String) throws -> ModelConfig {
    func object(_ json: String, _ what: String) throws -> [String: Any] {
      guard let m = (try? JSONSerialization.jsonObject(with: Data(json.utf8))) as? [String: Any] else {
        throw ModelConfigError.invalid(key: what, message: "not a JSON object: \(json.prefix(80))")
      }
      return m
    }
    let config = try preset(name).applying(object(overrides, "model_overrides"))
    let diffs = config.differences(from: try object(full, "model_config"))
    guard diffs.isEmpty else {
      throw ModelConfigError.invalid(key: "model_config", message: "preset \(name) + overrides \(overrides) is not the recorded model: "
                                       + diffs.joined(separator: "; "))
    }
    return config
  }

  /// One line per key whose value differs between `settings` and `recorded`
  /// (a dotted map such as a golden's `model_config`), or that only one side
  /// has; numbers agree to 1e-6 relative (Float fields against JSON doubles).
  public func differences(from recorded: [String: Any]) -> [String] {
    let ours = settings
    func same(_ a: Any, _ b: Any) -> Bool {
      if let x = a as? String, let y = b as? String { return x == y }
      if let x = a as? [Any], let y = b as? [Any] { return x.count == y.count && zip(x, y).allSatisfy { same($0, $1) } }
      if let x = a as? NSNumber, let y = b as? NSNumber, !(a is String), !(b is String) {
        return abs(x.doubleValue - y.doubleValue) <= 1e-6 * max(abs(x.doubleValue), abs(y.doubleValue))
      }
      return false
    }
    var out: [String] = []
    for key in Set(ours.keys).union(recorded.keys).sorted() {
      switch (ours[key], recorded[key]) {
      case let (a?, b?) where !same(a, b): out.append("model config key `\(key)`: ours \(a), recorded \(b)")
      case (nil, let b?): out.append("model config key `\(key)`: recorded \(b), not a setting of ModelConfig")
      case (let a?, nil): out.append("model config key `\(key)`: ours \(a), not recorded")
      default: break
      }
    }
    return out
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
