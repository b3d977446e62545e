// Import of official Swin ImageNet checkpoints (microsoft/Swin-Transformer's
// `model` dict, converted to safetensors with the keys unchanged by
// scripts/convert_swin.py) into an ECENet's Swin backbone, as the official
// segmentation code's / mmseg's load_checkpoint does:
//   * key `k` → our `backbone.k` (same names otherwise);
//   * skipped: `head.*` (classifier), `norm.*` (the classifier's final norm;
//     our four output norms backbone.norm{s} keep their init, as in mmseg),
//     `*relative_position_index` and `*attn_mask` (buffers we rebuild);
//   * relative_position_bias_table of another window size is resized per head
//     bicubically (PyTorch F.interpolate, align_corners=False, A = −0.75);
//   * everything else strict (BackboneImport.swift): a key we do not have, a
//     shape that differs, or a backbone parameter the file lacks (other than
//     norm{s}) is an error that names the keys and shapes, and nothing is
//     written then.
// Not here: mmseg-converted Swin checkpoints (`backbone.stages.*`, `w_msa`),
// absolute position embeddings (ape, unused by every released Swin).
import Foundation
import NN
import Tensor

public enum SwinImportError: Error, CustomStringConvertible, Equatable {
  /// The file has no official Swin keys (e.g. an ECENet or mmseg checkpoint).
  case notASwinCheckpoint(file: String, firstKeys: [String])
  /// The model's backbone is not a Swin.
  case notASwinModel(backbone: String)

  public var description: String {
    switch self {
    case let .notASwinCheckpoint(f, keys):
      return "\(f): not an official Swin checkpoint (no `patch_embed.proj.weight`, no `layers.*` keys); "
        + "first keys: \(keys.joined(separator: ", ")). Convert an official .pth with scripts/convert_swin.py; "
        + "a whole-model ECENet checkpoint is loaded with ParameterStore.load(from:)"
    case let .notASwinModel(b):
      return "Swin import: the model's backbone is \(b), not a Swin"
    }
  }
}

public enum SwinCheckpoint {
  /// Loads an official Swin checkpoint (safetensors, official key names) into
  /// `model`'s backbone; the head and backbone.norm{s} are left as they are.
  /// Call before the weights are broadcast to other ranks (or on every rank).
  @discardableResult
  public static func load(path: String, into model: ECENet) throws -> ImportReport {
    try load(file: SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)), into: model)
  }

  @discardableResult
  public static func load(file: SafeTensorsFile, into model: ECENet) throws -> ImportReport {
    guard model.backbone is SwinBackbone else { throw SwinImportError.notASwinModel(backbone: "\(type(of: model.backbone))") }
    return try load(file: file, into: model.store)
  }

  /// The same on any store whose Swin parameters are named `backbone.<official key>`.
  @discardableResult
  public static func load(file: SafeTensorsFile, into store: ParameterStore) throws -> ImportReport {
    guard file.tensors["patch_embed.proj.weight"] != nil || file.keys.contains(where: { $0.hasPrefix("layers.") }) else {
      throw SwinImportError.notASwinCheckpoint(file: file.path, firstKeys: Array(file.keys.prefix(5)))
    }
    let targets = store.entries.filter { $0.name.hasPrefix(BackboneCheckpoint.prefix) }.map { ($0.name, $0.variable.value) }
    return try BackboneCheckpoint.importStrictly(file: file, into: targets, backbone: "Swin",
                              hint: "does the checkpoint's variant (embed dim, depths, heads) match model.backbone?",
                              isSkipped: isSkipped, mayKeepInit: isOutputNorm) { key, table, shape in
      guard key.hasSuffix("relative_position_bias_table") else { return nil }
      return try resizeTable(table(), to: shape)
    }
  }

  /// Official keys the segmentation backbone does not take (mmseg / official load_checkpoint).
  static func isSkipped(_ key: String) -> Bool {
    key.hasPrefix("head.") || key.hasPrefix("norm.") || key.hasSuffix("relative_position_index")
      || key.hasSuffix("attn_mask")
  }

  /// backbone.norm0 … backbone.norm3: ours only, not in a classifier checkpoint.
  static func isOutputNorm(_ name: String) -> Bool {
    let rest = name.dropFirst(BackboneCheckpoint.prefix.count)
    return rest.count > 5 && rest.hasPrefix("norm") && rest.dropFirst(4).first.map(\.isNumber) == true
  }


  /// A [(2w₁−1)², h] table resized to `shape` = [(2w₂−1)², h]: each head's
  /// (2w₁−1)² grid bicubically to (2w₂−1)², as the official load_pretrained.
  static func resizeTable(_ table: Tensor, to shape: [Int]) throws -> Tensor {
    guard table.shape.count == 2, shape.count == 2 else {
      throw BackboneCheckpoint.CannotResize(reason: "tables are [L, heads]")
    }
    let (l1, heads) = (table.shape[0], table.shape[1]), l2 = shape[0]
    guard heads == shape[1] else { throw BackboneCheckpoint.CannotResize(reason: "\(heads) heads in the file, \(shape[1]) in the model") }
    let s1 = Int(Double(l1).squareRoot().rounded()), s2 = Int(Double(l2).squareRoot().rounded())
    guard s1 * s1 == l1, s2 * s2 == l2 else { throw BackboneCheckpoint.CannotResize(reason: "table length is not a square") }
    let src = table.toArray(), out = Tensor(uninitialized: shape)
    for h in 0..<heads {
      let grid = (0..<l1).map { Double(src[$0 * heads + h]) }
      let resized = bicubicResize(grid, from: s1, to: s2)
      for i in 0..<l2 { out.data[i * heads + h] = Float(resized[i]) }
    }
    return out
  }
}

/// PyTorch's bicubic kernel (Keys, A = −0.75), `upsample_bicubic2d`'s cubic_convolution1/2.
func cubicWeights(_ t: Double) -> [Double] {
  let a = -0.75
  func near(_ x: Double) -> Double { ((a + 2) * x - (a + 3)) * x * x + 1 }          // |x| ≤ 1
  func far(_ x: Double) -> Double { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }      // 1 < |x| < 2
  return [far(t + 1), near(t), near(1 - t), far(2 - t)]
}

/// F.interpolate(mode="bicubic", align_corners=False) of one square s₁×s₁ grid
/// (row-major) to s₂×s₂, separable in Double. Source coordinate
/// (d + ½)·s₁/s₂ − ½, not clamped at 0 (unlike bilinear); the four taps
/// ⌊s⌋−1 … ⌊s⌋+2 read with indices clamped to the border.
func bicubicResize(_ x: [Double], from s1: Int, to s2: Int) -> [Double] {
  let scale = Double(s1) / Double(s2)
  let taps: [(base: Int, w: [Double])] = (0..<s2).map { d in
    let real = scale * (Double(d) + 0.5) - 0.5
    let f = real.rounded(.down)
    return (Int(f), cubicWeights(real - f))
  }
  func at(_ i: Int) -> Int { min(max(i, 0), s1 - 1) }
  var out = [Double](repeating: 0, count: s2 * s2)
  for oy in 0..<s2 {
    for ox in 0..<s2 {
      var acc = 0.0
      for (ky, wy) in taps[oy].w.enumerated() {
        let row = at(taps[oy].base - 1 + ky) * s1
        var r = 0.0
        for (kx, wx) in taps[ox].w.enumerated() { r += wx * x[row + at(taps[ox].base - 1 + kx)] }
        acc += wy * r
      }
      out[oy * s2 + ox] = acc
    }
  }
  return out
}
