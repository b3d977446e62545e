// The whole network: Swin backbone + ECENet head, built into one
// ParameterStore with the reference's names (`backbone.*`, `head.*`).
// Input: normalised RGB images [B, H, W, 3] (channels-last).
import NN
import Tensor

public struct ModelOutput {
  public let head: HeadOutput
  /// head.logits bilinearly upsampled to the input size.   [B, H, W, N]
  public let logitsUp: Var
  /// The backbone's four feature maps.
  public let features: [Var]
}

public final class ECENet {
  public let config: ModelConfig
  public let store: ParameterStore
  public let backbone: SwinBackbone
  public let head: ECENetHead

  /// Builds the model and registers every parameter in `store` (not finalized:
  /// the caller calls `store.finalize()`). `collective` serves SyncBN; nil or a
  /// world of one makes SyncBN plain BN.
  public init(config: ModelConfig, seed: UInt64 = 0, store: ParameterStore = ParameterStore(),
              collective: Collective? = nil) {
    self.config = config
    self.store = store
    let b = LayerBuilder(store: store, weights: WeightInit(seed: seed), norm: config.norm, collective: collective)
    backbone = SwinBackbone(b, "backbone", config: config.backbone)
    head = ECENetHead(b, "head", inChannels: config.backbone.stageChannels, config: config)
  }

  /// image [B, H, W, 3] → outputs.
  public func callAsFunction(_ image: Var, _ ctx: ForwardContext) -> ModelOutput {
    precondition(image.shape.count == 4 && image.shape[3] == 3, "ECENet: image \(image.shape), expected [B, H, W, 3]")
    let feats = backbone(image, ctx)
    let out = head(feats, ctx)
    let up = resizeBilinear(out.logits, height: image.shape[1], width: image.shape[2])
    return ModelOutput(head: out, logitsUp: up, features: feats)
  }
}
