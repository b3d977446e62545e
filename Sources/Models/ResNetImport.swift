// Import of ImageNet ResNetV1c checkpoints in mmcv's layout (mmseg's
// `pretrained='open-mmlab://resnet101_v1c'`: a classifier's `state_dict`,
// converted to safetensors with the keys unchanged by
// `scripts/convert_swin.py --key state_dict`) into an ECENet's ResNet-D8
// backbone, as mmseg's load_checkpoint does:
//   * key `k` → our `backbone.k`: conv weights ([O, I, kh, kw], our layout
//     too), BatchNorm weight and bias, and BatchNorm's running_mean and
//     running_var into their buffers (the statistics the ImageNet model
//     ended with; training replaces them at momentum 0.1);
//   * skipped: `fc.*` (the classifier) and `*num_batches_tracked`;
//   * everything else strict (BackboneImport.swift): a key we
//     do not have, a shape that differs, or a tensor of ours the file lacks
//     is an error naming them all, and nothing is written then.
// The dilations (D8) change no weight: the ImageNet ResNet's weights are
// used with dilated 3×3 convs in stages 3 and 4, as in mmseg.
import Foundation
import NN
import Tensor

public enum ResNetImportError: Error, CustomStringConvertible, Equatable {
  /// The file has no ResNetV1c keys (e.g. a torchvision ResNet with a 7×7 `conv1`, or an ECENet checkpoint).
  case notAResNetV1cCheckpoint(file: String, firstKeys: [String])
  /// The model's backbone is not a ResNet.
  case notAResNetModel(backbone: String)

  public var description: String {
    switch self {
    case let .notAResNetV1cCheckpoint(f, keys):
      return "\(f): not a ResNetV1c ImageNet checkpoint (no `stem.0.weight`, no `layer1.*` keys); first keys: "
        + keys.joined(separator: ", ") + ". Use mmcv's resnet50_v1c / resnet101_v1c (deep stem) converted with "
        + "`scripts/convert_swin.py --key state_dict`; torchvision's ResNets (7×7 conv1) do not fit the D8 deep stem"
    case let .notAResNetModel(b):
      return "ResNet import: the model's backbone is \(b), not a ResNet"
    }
  }
}

public enum ResNetCheckpoint {
  /// Loads a ResNetV1c checkpoint (safetensors, mmcv key names) into `model`'s
  /// backbone, running statistics included; the head is left as it is.
  /// Call before the weights are broadcast to other ranks (or on every rank).
  @discardableResult
  public static func load(path: String, into model: ECENet) throws -> ImportReport {
    guard model.backbone is ResNetBackbone else { throw ResNetImportError.notAResNetModel(backbone: "\(type(of: model.backbone))") }
    return try load(file: SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)), into: model.store)
  }

  /// The same on any store whose ResNet tensors are named `backbone.<mmcv key>`.
  @discardableResult
  public static func load(file: SafeTensorsFile, into store: ParameterStore) throws -> ImportReport {
    guard file.tensors["stem.0.weight"] != nil || file.keys.contains(where: { $0.hasPrefix("layer1.") }) else {
      throw ResNetImportError.notAResNetV1cCheckpoint(file: file.path, firstKeys: Array(file.keys.prefix(5)))
    }
    // Parameters and BatchNorm's running statistics (buffers) alike.
    let targets = store.namedTensors.filter { $0.name.hasPrefix(BackboneCheckpoint.prefix) }.map { ($0.name, $0.tensor) }
    return try BackboneCheckpoint.importStrictly(
      file: file, into: targets, backbone: "ResNet",
      hint: "does the checkpoint's depth (resnet50 / resnet101) match model.backbone, and its norm BatchNorm?",
      isSkipped: { $0.hasPrefix("fc.") || $0.hasSuffix("num_batches_tracked") },
      mayKeepInit: { _ in false }, resized: { _, _, _ in nil })
  }
}
