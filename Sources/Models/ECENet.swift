// The whole network: Swin (or ResNet-D8) backbone + ECENet head, built into one
// ParameterStore with the reference's names (`backbone.*`, `head.*`).
// Input: normalised RGB images [B, H, W, 3] (channels-last).
import NN
import Tensor

public struct ModelOutput {
  public let head: HeadOutput
  /// The backbone's four feature maps.
  public let features: [Var]
  /// The input's height and width.
  public let inputHeight, inputWidth: Int

  /// head.logits bilinearly upsampled to the input size   [B, H, W, N],
  /// computed on each use: training never needs it (its loss upsamples line
  /// by line, upsampledCrossEntropy), and at 640² with 150 classes it is
  /// 246 MB per image.
  public var logitsUp: Var { resizeBilinear(head.logits, height: inputHeight, width: inputWidth) }
}

public final class ECENet {
  public let config: ModelConfig
  public let store: ParameterStore
  public let backbone: any BackboneProtocol
  public let head: ECENetHead

  /// Builds the model and registers every parameter in `store` (not finalized:
  /// the caller calls `store.finalize()`). `collective` serves SyncBN; nil or a
  /// world of one makes SyncBN plain BN.
  public init(config: ModelConfig, seed: UInt64 = 0, store: ParameterStore = ParameterStore(),
              collective: Collective? = nil) {
    self.config = config
    self.store = store
    let b = LayerBuilder(store: store, weights: WeightInit(seed: seed), norm: config.norm, collective: collective)
    if let r = config.resnet {
      backbone = ResNetBackbone(b, "backbone", config: r)
    } else {
      backbone = SwinBackbone(b, "backbone", config: config.backbone)
    }
    head = ECENetHead(b, "head", inChannels: backbone.stageChannels, strides: backbone.stageStrides, config: config)
  }

  /// image [B, H, W, 3] → outputs.
  public func callAsFunction(_ image: Var, _ ctx: ForwardContext) -> ModelOutput {
    precondition(image.shape.count == 4 && image.shape[3] == 3, "ECENet: image \(image.shape), expected [B, H, W, 3]")
    let feats = backbone(image, ctx)
    let out = head(feats, ctx)
    return ModelOutput(head: out, features: feats, inputHeight: image.shape[1], inputWidth: image.shape[2])
  }
}
