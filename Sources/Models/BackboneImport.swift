// What the Swin and ResNet ImageNet imports share (SwinImport.swift,
// ResNetImport.swift): file key `k` fills our `backbone.k`; the keys an
// importer skips are skipped and reported; everything else is strict: a key
// we do not have, a shape that differs (unless the importer resizes it), or a
// tensor of ours the file lacks (unless it may keep its init) is one error
// naming them all, and nothing is written then. `model.pretrained` picks the
// importer by the model's backbone.
import Foundation
import NN
import Tensor

/// What an import did, by name.
public struct ImportReport: CustomStringConvertible {
  /// "Swin" or "ResNet": whose import this was.
  public var backbone: String
  /// Our parameter (and buffer) names filled from the file (tables included).
  public var loaded: [String] = []
  /// The subset of `loaded` whose relative_position_bias_table was resized ("name: [L1, h] → [L2, h]").
  public var interpolated: [String] = []
  /// File keys not used (classifier head, final norm, index and mask buffers).
  public var skipped: [String] = []
  /// Backbone parameters left at their init (the output norms backbone.norm{s}).
  public var keptInit: [String] = []

  public var description: String {
    "\(backbone) import: \(loaded.count) tensors loaded"
      + (backbone == "Swin" ? " (\(interpolated.count) position tables resized)" : "")
      + ", \(skipped.count) skipped (\(BackboneCheckpoint.summarize(skipped)))"
      + (keptInit.isEmpty ? "" : ", kept at init: \(keptInit.joined(separator: ", "))")
  }
}

/// A backbone checkpoint that does not fit the model; nothing was written.
public enum BackboneImportError: Error, CustomStringConvertible, Equatable {
  /// Keys or shapes do not fit the model's `backbone` ("Swin", "ResNet").
  case mismatch(file: String, backbone: String, unexpected: [String], missing: [String], shapes: [String], hint: String)

  public var description: String {
    switch self {
    case let .mismatch(f, backbone, unexpected, missing, shapes, hint):
      var lines = ["\(f): \(backbone) checkpoint does not fit the model's backbone:"]
      if !unexpected.isEmpty {
        lines.append("  keys the model does not have (\(unexpected.count)): \(unexpected.joined(separator: ", "))")
      }
      if !missing.isEmpty {
        lines.append("  backbone parameters the file lacks (\(missing.count)): \(missing.joined(separator: ", "))")
      }
      for s in shapes { lines.append("  \(s)") }
      lines.append("  hint: \(hint)")
      return lines.joined(separator: "\n")
    }
  }
}

/// The model's ImageNet backbone (`model.pretrained`): an official Swin or a
/// ResNetV1c checkpoint, whichever the model's backbone is.
public enum BackboneCheckpoint {
  @discardableResult
  public static func load(path: String, into model: ECENet) throws -> ImportReport {
    model.backbone is ResNetBackbone ? try ResNetCheckpoint.load(path: path, into: model)
                                     : try SwinCheckpoint.load(path: path, into: model)
  }

  /// Our backbone tensors live under this prefix; the ImageNet keys have none.
  static let prefix = "backbone."

  /// Why a tensor of another shape cannot be resized to ours.
  struct CannotResize: Error { let reason: String }

  /// The import both backbones make: file key k fills our tensor `backbone.k`
  /// among `targets` (names in store order), except the keys `isSkipped`
  /// drops; a target the file lacks may stay at its init only where
  /// `mayKeepInit`. A shape that differs goes through `resized` (key, the
  /// file's tensor, our shape): nil where no resize applies, `CannotResize`
  /// where it cannot be done. Any unknown key, missing target or shape
  /// mismatch throws `.mismatch` naming them all, and then nothing is written.
  static func importStrictly(file: SafeTensorsFile, into targets: [(String, Tensor)], backbone: String, hint: String,
                             isSkipped: (String) -> Bool, mayKeepInit: (String) -> Bool,
                             resized: (String, () throws -> Tensor, [Int]) throws -> Tensor?) throws -> ImportReport {
    let ours = Dictionary(uniqueKeysWithValues: targets)
    var report = ImportReport(backbone: backbone)
    var unexpected: [String] = [], shapes: [String] = []
    var plan: [(name: String, key: String, value: Tensor?)] = []  // value set when resized, else read later
    for key in file.keys {
      if isSkipped(key) { report.skipped.append(key); continue }
      let name = prefix + key
      guard let t = ours[name] else { unexpected.append(key); continue }
      let info = try file.info(key)
      if info.shape == t.shape { plan.append((name, key, nil)); continue }
      do {
        if let r = try resized(key, { try file.tensor(key) }, t.shape) {
          plan.append((name, key, r))
          report.interpolated.append("\(name): \(info.shape) → \(t.shape)")
        } else {
          shapes.append("\(key): file \(info.shape), model \(name) \(t.shape)")
        }
      } catch let e as CannotResize {
        shapes.append("\(key): file \(info.shape), model \(name) \(t.shape) (\(e.reason))")
      }
    }
    let filled = Set(plan.map(\.name))
    let notFilled = targets.map(\.0).filter { !filled.contains($0) }
    let missing = notFilled.filter { !mayKeepInit($0) }
    guard unexpected.isEmpty, missing.isEmpty, shapes.isEmpty else {
      throw BackboneImportError.mismatch(file: file.path, backbone: backbone, unexpected: unexpected, missing: missing,
                                         shapes: shapes, hint: hint)
    }
    for p in plan {
      let dst = ours[p.name]!.data
      if let t = p.value { dst.update(from: t.data, count: t.count) } else { try file.read(p.key, into: dst) }
      report.loaded.append(p.name)
    }
    report.keptInit = notFilled
    return report
  }

  /// "head.bias, head.weight, 12 × relative_position_index, …" for the report line
  /// (classifier keys whole, the rest counted by their last part).
  static func summarize(_ keys: [String]) -> String {
    var groups: [String: Int] = [:], order: [String] = []
    for k in keys {
      let g = k.hasPrefix("head.") || k.hasPrefix("norm.") || k.hasPrefix("fc.") ? k : String(k.split(separator: ".").last!)
      if groups[g] == nil { order.append(g) }
      groups[g, default: 0] += 1
    }
    return order.map { groups[$0]! > 1 ? "\(groups[$0]!) × \($0)" : $0 }.joined(separator: ", ")
  }
}
