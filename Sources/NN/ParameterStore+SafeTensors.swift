// Saving and loading a ParameterStore's named parameters and buffers as
// safetensors, by name. Loading is strict (STYLE.md): every expected key must
// be in the file, the file must have no other tensors, and every shape must be
// equal; otherwise nothing is changed and the error lists all missing and
// unexpected keys and every shape mismatch (expected vs found).
//
// Not here: key renaming for foreign checkpoints (stripping a "backbone."
// prefix, dropping a classifier head); an importer does that explicitly and
// stays strict about what remains.
import Foundation
import Tensor

public enum StateDictError: Error, CustomStringConvertible, Equatable {
  public struct ShapeMismatch: Equatable {
    public let key: String
    public let expected: [Int]
    public let found: [Int]
  }

  case mismatch(file: String, missing: [String], unexpected: [String], shapeMismatches: [ShapeMismatch])

  public var description: String {
    switch self {
    case let .mismatch(file, missing, unexpected, shapes):
      var lines = ["\(file): checkpoint does not match the model (strict loading):"]
      if !missing.isEmpty { lines.append("  missing keys (\(missing.count)): \(missing.joined(separator: ", "))") }
      if !unexpected.isEmpty { lines.append("  unexpected keys (\(unexpected.count)): \(unexpected.joined(separator: ", "))") }
      for s in shapes { lines.append("  shape mismatch for \(s.key): expected \(s.expected), found \(s.found)") }
      lines.append("  hint: was the checkpoint written for a different model or config?")
      return lines.joined(separator: "\n")
    }
  }
}

extension ParameterStore {
  /// Parameters, then buffers, each in registration order, by name.
  public var namedTensors: [(name: String, tensor: Tensor)] {
    entries.map { ($0.name, $0.variable.value) } + buffers.map { ($0.name, $0.tensor) }
  }

  /// Writes every parameter and buffer as F32 safetensors (atomically).
  public func save(to url: URL, metadata: [String: String] = [:]) throws {
    try SafeTensors.write(namedTensors, metadata: metadata, to: url)
  }

  /// Strictly loads every parameter and buffer from a safetensors file.
  public func load(from url: URL) throws {
    try load(from: SafeTensorsFile(contentsOf: url))
  }

  /// Strictly loads every parameter and buffer (values of any readable dtype are converted to Float).
  public func load(from file: SafeTensorsFile) throws {
    let expected = namedTensors
    var missing: [String] = [], shapes: [StateDictError.ShapeMismatch] = []
    for (name, t) in expected {
      guard let info = file.tensors[name] else { missing.append(name); continue }
      if info.shape != t.shape { shapes.append(.init(key: name, expected: t.shape, found: info.shape)) }
    }
    let names = Set(expected.map(\.name))
    let unexpected = file.keys.filter { !names.contains($0) }
    guard missing.isEmpty, unexpected.isEmpty, shapes.isEmpty else {
      throw StateDictError.mismatch(file: file.path, missing: missing, unexpected: unexpected, shapeMismatches: shapes)
    }
    // Writes through each tensor's storage: parameters land in the arena slice,
    // buffers in the tensor the layer holds.
    for (name, t) in expected { try file.read(name, into: t.data) }
  }
}
