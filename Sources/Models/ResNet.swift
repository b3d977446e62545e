// ResNet-D8 backbone (the paper's CNN row): mmseg's ResNetV1c with
// dilations (1, 1, 2, 4), strides (1, 2, 1, 1) and contract_dilation=True,
// i.e. output stride 8. Deep stem (3×3 convs 3→C/2 stride 2 → C/2 → C, each
// + norm + ReLU) then 3×3 stride-2 max pool; bottleneck blocks (stride and
// dilation on the 3×3 conv, "pytorch" style); outputs of layer1…layer4 at
// strides 4, 8, 8, 8. Norm: the model's norm (SyncBN/BN as mmseg, or GN).
// Parameter names as mmseg/torchvision: backbone.stem.{0,1,3,4,6,7},
// backbone.layer{i}.{b}.{conv1,bn1,conv2,bn2,conv3,bn3,downsample.0,downsample.1}.
// Channels-last [B, H, W, C]. ImageNet weights: ResNetImport.swift (mmcv ResNetV1c).
import NN
import Tensor

/// What the head needs to know about a backbone: four feature maps, their
/// channels and their strides relative to the input.
public protocol BackboneProtocol: AnyObject {
  /// Channels of the four outputs.
  var stageChannels: [Int] { get }
  /// Stride of each output relative to the image (Swin 4, 8, 16, 32; ResNet-D8 4, 8, 8, 8).
  var stageStrides: [Int] { get }
  /// image [B, H, W, 3] (normalised) → four maps [B, ⌈H/sᵢ⌉, ⌈W/sᵢ⌉, Cᵢ].
  func callAsFunction(_ image: Var, _ ctx: ForwardContext) -> [Var]
}

extension SwinBackbone: BackboneProtocol {
  public var stageChannels: [Int] { config.stageChannels }
  public var stageStrides: [Int] { config.stageStrides }
}

/// ResNetV1c sizes (mmseg). Blocks of stage i have base·2ⁱ planes and 4× that output.
public struct ResNetConfig: Codable, Equatable, Sendable {
  /// Bottleneck blocks per stage.
  public var depths: [Int]
  /// Channels after the deep stem (its first two convs have half).
  public var stemChannels: Int = 64
  /// Planes of the first stage's bottlenecks.
  public var baseChannels: Int = 64
  /// Stride of each stage's first block (D8: 1, 2, 1, 1).
  public var strides: [Int] = [1, 2, 1, 1]
  /// Dilation of each stage's 3×3 convs (D8: 1, 1, 2, 4).
  public var dilations: [Int] = [1, 1, 2, 4]
  /// mmseg contract_dilation: a dilated stage's first block uses half the dilation.
  public var contractDilation: Bool = true

  public init(depths: [Int], stemChannels: Int = 64, baseChannels: Int = 64) {
    self.depths = depths; self.stemChannels = stemChannels; self.baseChannels = baseChannels
  }

  /// Output channels of the four stages (4 × planes).
  public var stageChannels: [Int] { (0..<4).map { 4 * (baseChannels << $0) } }
  /// Output strides: 4 after stem + max pool, then × each stage's stride.
  public var stageStrides: [Int] {
    var s = 4
    return strides.map { s *= $0; return s }
  }

  public static let presets: [String: ResNetConfig] = [
    "resnet101-d8": ResNetConfig(depths: [3, 4, 23, 3]),
    "resnet50-d8": ResNetConfig(depths: [3, 4, 6, 3]),
    // Tests/debug: channels 32, 64, 128, 256 like the tiny Swin.
    "resnet-tiny": ResNetConfig(depths: [1, 1, 2, 1], stemChannels: 16, baseChannels: 8),
  ]

  static func normalized(_ name: String) -> String { name.lowercased().replacingOccurrences(of: "_", with: "-") }
  public static func preset(named name: String) -> ResNetConfig? { presets[normalized(name)] }

  /// Only preset names are read and written (`backbone: resnet101-d8`).
  public init(from decoder: Decoder) throws {
    let name = try decoder.singleValueContainer().decode(String.self)
    guard let p = ResNetConfig.preset(named: name) else {
      throw ModelConfigError.unknownValue(key: "backbone", value: name, expected: ResNetConfig.presets.keys.sorted())
    }
    self = p
  }

  public func encode(to encoder: Encoder) throws {
    guard let name = ResNetConfig.presets.first(where: { $0.value == self })?.key else {
      throw EncodingError.invalidValue(self, .init(codingPath: encoder.codingPath,
                                                   debugDescription: "only ResNet presets can be written: \(ResNetConfig.presets.keys.sorted())"))
    }
    var c = encoder.singleValueContainer()
    try c.encode(name)
  }

  public func validate() throws {
    guard depths.count == 4, strides.count == 4, dilations.count == 4, depths.allSatisfy({ $0 >= 1 }) else {
      throw ModelConfigError.invalid(key: "backbone", message: "ResNet needs 4 stages, got depths \(depths), strides \(strides), dilations \(dilations)")
    }
  }
}

/// A conv (no bias) + norm pair under mmseg's names.
struct ConvNorm {
  let conv: Conv2d
  let norm: Norm
  init(_ b: LayerBuilder, conv: String, norm: String, _ cin: Int, _ cout: Int, kernel: Int, stride: Int = 1, dilation: Int = 1) {
    self.conv = Conv2d(b, conv, cin, cout, kernel: kernel, stride: stride, padding: kernel == 3 ? dilation : 0,
                       dilation: dilation, bias: false)
    self.norm = Norm(b, norm, cout)
  }
  /// `relu`: followed by ReLU (fused into BatchNorm, `Norm`).
  func callAsFunction(_ x: Var, _ ctx: ForwardContext, relu: Bool = false) -> Var { norm(conv(x), ctx, relu: relu) }
}

/// torchvision/mmseg Bottleneck (expansion 4): 1×1 → 3×3 (stride, dilation) → 1×1,
/// each with norm, ReLU after the first two and after the residual add.
public struct Bottleneck {
  let c1, c2, c3: ConvNorm
  let downsample: ConvNorm?

  public init(_ b: LayerBuilder, _ name: String, inChannels: Int, planes: Int, stride: Int, dilation: Int) {
    c1 = ConvNorm(b, conv: "\(name).conv1", norm: "\(name).bn1", inChannels, planes, kernel: 1)
    c2 = ConvNorm(b, conv: "\(name).conv2", norm: "\(name).bn2", planes, planes, kernel: 3, stride: stride, dilation: dilation)
    c3 = ConvNorm(b, conv: "\(name).conv3", norm: "\(name).bn3", planes, 4 * planes, kernel: 1)
    downsample = stride != 1 || inChannels != 4 * planes
      ? ConvNorm(b, conv: "\(name).downsample.0", norm: "\(name).downsample.1", inChannels, 4 * planes, kernel: 1, stride: stride)
      : nil
  }

  /// [B, H, W, Cin] → [B, ⌈H/stride⌉, ⌈W/stride⌉, 4·planes]
  /// Intermediates' values are released on return (`releasingIntermediates`).
  public func callAsFunction(_ x: Var, _ ctx: ForwardContext) -> Var {
    releasingIntermediates {
      let y = c3(c2(c1(x, ctx, relu: true), ctx, relu: true), ctx)
      return relu(y + (downsample.map { $0(x, ctx) } ?? x))
    }
  }
}

public final class ResNetBackbone: BackboneProtocol {
  public let config: ResNetConfig
  let stem: [ConvNorm]
  public let layers: [[Bottleneck]]

  public init(_ b: LayerBuilder, _ name: String = "backbone", config: ResNetConfig) {
    self.config = config
    let sc = config.stemChannels
    stem = [(3, sc / 2, 2, 0), (sc / 2, sc / 2, 1, 3), (sc / 2, sc, 1, 6)].map { cin, cout, stride, i in
      ConvNorm(b, conv: "\(name).stem.\(i)", norm: "\(name).stem.\(i + 1)", cin, cout, kernel: 3, stride: stride)
    }
    var cin = sc
    var stages: [[Bottleneck]] = []
    for s in 0..<4 {
      let planes = config.baseChannels << s, d = config.dilations[s]
      // mmseg ResLayer: the first block of a dilated stage uses d/2 when contracting.
      let first = d > 1 && config.contractDilation ? d / 2 : d
      stages.append((0..<config.depths[s]).map { i in
        Bottleneck(b, "\(name).layer\(s + 1).\(i)", inChannels: i == 0 ? cin : 4 * planes, planes: planes,
                   stride: i == 0 ? config.strides[s] : 1, dilation: i == 0 ? first : d)
      })
      cin = 4 * planes
    }
    layers = stages
  }

  public var stageChannels: [Int] { config.stageChannels }
  public var stageStrides: [Int] { config.stageStrides }

  public func callAsFunction(_ image: Var, _ ctx: ForwardContext) -> [Var] {
    precondition(image.shape.count == 4 && image.shape[3] == 3, "ResNetBackbone: image \(image.shape), expected [B, H, W, 3]")
    var x = image
    for c in stem { x = c(x, ctx, relu: true) }
    x = maxPool2d(x, kernel: 3, stride: 2, padding: 1)
    var outs: [Var] = []
    for stage in layers {
      for blk in stage { x = blk(x, ctx) }
      outs.append(x)
    }
    return outs
  }
}
