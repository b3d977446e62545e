// Minimal safetensors reader for the op goldens (F32 only). TensorTests may not
// depend on NN (where the full reader, NN.SafeTensorsFile, lives), so this is a
// second, deliberately tiny one: 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}}, then raw data.
import Foundation
import Tensor

struct GoldenFile {
  enum Failure: Error, CustomStringConvertible {
    case malformed(String), missing(String)
    var description: String {
      switch self {
      case .malformed(let s): return "golden file malformed: \(s)"
      case .missing(let k): return "golden file has no key \(k)"
      }
    }
  }

  let url: URL
  private let bytes: Data
  private let dataStart: Int
  /// name → (shape, byte range inside the data section)
  private let entries: [String: (shape: [Int], begin: Int, end: Int)]

  var keys: [String] { entries.keys.sorted() }

  init(url: URL) throws {
    self.url = url
    bytes = try Data(contentsOf: url)
    guard bytes.count >= 8 else { throw Failure.malformed("\(url.path): \(bytes.count) bytes") }
    let n = bytes.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
    guard n > 0, 8 + n <= bytes.count,
          let header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<8 + n)) as? [String: Any]
    else { throw Failure.malformed("\(url.path): header length \(n) of \(bytes.count) bytes") }
    dataStart = 8 + n
    var e: [String: (shape: [Int], begin: Int, end: Int)] = [:]
    for (name, value) in header where name != "__metadata__" {
      guard let d = value as? [String: Any], let dtype = d["dtype"] as? String,
            let shape = d["shape"] as? [Int], let off = d["data_offsets"] as? [Int], off.count == 2
      else { throw Failure.malformed("\(url.path): entry \(name)") }
      guard dtype == "F32", off[1] - off[0] == 4 * shape.reduce(1, *), dataStart + off[1] <= bytes.count
      else { throw Failure.malformed("\(url.path): \(name) is \(dtype) \(shape) at \(off)") }
      e[name] = (shape, off[0], off[1])
    }
    entries = e
  }

  /// The tensor `name` as stored (a fresh copy).
  func tensor(_ name: String) throws -> Tensor {
    guard let e = entries[name] else { throw Failure.missing(name) }
    let t = Tensor(uninitialized: e.shape)
    bytes.withUnsafeBytes { raw in
      // Little-endian F32 on a little-endian host: a plain byte copy.
      UnsafeMutableRawPointer(t.data).copyMemory(from: raw.baseAddress! + dataStart + e.begin, byteCount: e.end - e.begin)
    }
    return t
  }

  /// Tests/TensorTests/Golden/<name>: the bundled resource copy, else the source tree.
  static func load(_ name: String, filePath: String = #filePath) throws -> GoldenFile {
    if let dir = Bundle.module.url(forResource: "Golden", withExtension: nil) {
      let u = dir.appendingPathComponent(name)
      if FileManager.default.fileExists(atPath: u.path) { return try GoldenFile(url: u) }
    }
    let src = URL(fileURLWithPath: filePath).deletingLastPathComponent().appendingPathComponent("Golden/\(name)")
    return try GoldenFile(url: src)
  }
}
