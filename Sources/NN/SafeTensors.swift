// The safetensors format (huggingface/safetensors), read and written without
// Python, so PyTorch users can read our weights and official Swin checkpoints
// (converted, keys unchanged) load:
//
//   [8 bytes]  N, the header length, unsigned little-endian
//   [N bytes]  UTF-8 JSON: {"name": {"dtype": "F32", "shape": [2, 3],
//              "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v"}}
//              (offsets relative to the start of the data section; writers
//              pad the header with spaces so the data starts 8-byte aligned)
//   [rest]     the tensors' raw little-endian bytes, row-major
//
// We write F32 only. We read F32, and for convenience convert F64, F16, BF16,
// I64, I32, I16, I8, U64, U32, U16, U8 and BOOL to Float on the fly. FP8 types
// are refused with an error. Every error names the file and, where there is
// one, the key.
//
// Not here: the mapping of names to model parameters (ParameterStore+SafeTensors.swift).
import Foundation
import Tensor

public enum SafeTensorsError: Error, CustomStringConvertible, Equatable {
  case cannotRead(file: String, reason: String)
  case cannotWrite(file: String, reason: String)
  /// The file is shorter than its own header says.
  case truncated(file: String, needed: Int, size: Int)
  case badHeader(file: String, reason: String)
  case unknownDType(file: String, key: String, dtype: String)
  case offsetsOutOfRange(file: String, key: String, begin: Int, end: Int, dataSize: Int)
  /// data_offsets span a different byte count than shape × dtype size.
  case sizeMismatch(file: String, key: String, dtype: String, shape: [Int], bytes: Int)
  case missingKey(file: String, key: String)

  public var description: String {
    switch self {
    case let .cannotRead(f, r): return "\(f): cannot read safetensors file: \(r)"
    case let .cannotWrite(f, r): return "\(f): cannot write safetensors file: \(r)"
    case let .truncated(f, need, size):
      return "\(f): truncated safetensors file: needs at least \(need) bytes, has \(size) (interrupted copy or download?)"
    case let .badHeader(f, r): return "\(f): bad safetensors header: \(r)"
    case let .unknownDType(f, k, d):
      return "\(f): tensor '\(k)' has dtype \(d), which we cannot read (supported: \(SafeTensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))"
    case let .offsetsOutOfRange(f, k, b, e, n):
      return "\(f): tensor '\(k)' has data_offsets [\(b), \(e)] outside the data section of \(n) bytes"
    case let .sizeMismatch(f, k, d, s, n):
      return "\(f): tensor '\(k)' (\(d), shape \(s)) needs \(s.reduce(1, *) * (SafeTensorsDType(rawValue: d)?.size ?? 0)) bytes but data_offsets span \(n)"
    case let .missingKey(f, k): return "\(f): no tensor named '\(k)'"
    }
  }
}

public enum SafeTensorsDType: String, CaseIterable, Sendable {
  case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL

  public var size: Int {
    switch self {
    case .F64, .I64, .U64: return 8
    case .F32, .I32, .U32: return 4
    case .F16, .BF16, .I16, .U16: return 2
    case .I8, .U8, .BOOL: return 1
    }
  }
}

/// A parsed safetensors file; tensor data is read (and converted) on demand.
public final class SafeTensorsFile {
  public struct Info: Equatable {
    public let dtype: SafeTensorsDType
    public let shape: [Int]
    /// Byte range within the data section.
    public let dataOffsets: Range<Int>
    public var count: Int { shape.reduce(1, *) }
  }

  /// The path (or the name given for in-memory bytes), for error messages.
  public let path: String
  public let metadata: [String: String]
  public let tensors: [String: Info]
  /// Names sorted by data offset (file order).
  public let keys: [String]
  let bytes: Data
  let dataStart: Int

  /// Headers larger than this are refused as corrupt (the reference implementation's limit).
  static let maxHeaderBytes = 100_000_000

  public convenience init(contentsOf url: URL) throws {
    let data: Data
    do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
      throw SafeTensorsError.cannotRead(file: url.path, reason: "\(error.localizedDescription)")
    }
    try self.init(data: data, path: url.path)
  }

  /// Parses bytes already in memory; `path` names them in errors.
  public init(data: Data, path: String) throws {
    self.path = path
    self.bytes = data
    guard data.count >= 8 else { throw SafeTensorsError.truncated(file: path, needed: 8, size: data.count) }
    var n: UInt64 = 0
    for i in 0..<8 { n |= UInt64(data[data.startIndex + i]) << (8 * UInt64(i)) }
    guard n <= UInt64(Self.maxHeaderBytes) else {
      throw SafeTensorsError.badHeader(file: path, reason: "header length \(n) exceeds \(Self.maxHeaderBytes) bytes (not a safetensors file?)")
    }
    let headerLength = Int(n)
    guard data.count >= 8 + headerLength else {
      throw SafeTensorsError.truncated(file: path, needed: 8 + headerLength, size: data.count)
    }
    dataStart = 8 + headerLength
    let dataSize = data.count - dataStart
    let headerBytes = data.subdata(in: (data.startIndex + 8)..<(data.startIndex + dataStart))
    guard headerBytes.first == UInt8(ascii: "{") else {
      throw SafeTensorsError.badHeader(file: path, reason: "header does not start with '{'")
    }
    let root: JSONValue
    do { root = try JSONDecoder().decode(JSONValue.self, from: headerBytes) } catch {
      throw SafeTensorsError.badHeader(file: path, reason: "header is not valid JSON (\(error))")
    }
    guard case .object(let top) = root else {
      throw SafeTensorsError.badHeader(file: path, reason: "header is not a JSON object")
    }
    var meta: [String: String] = [:]
    var infos: [String: Info] = [:]
    for (key, value) in top {
      if key == "__metadata__" {
        guard case .object(let m) = value else {
          throw SafeTensorsError.badHeader(file: path, reason: "__metadata__ is not an object of strings")
        }
        for (k, v) in m {
          guard case .string(let s) = v else {
            throw SafeTensorsError.badHeader(file: path, reason: "__metadata__ value of '\(k)' is not a string")
          }
          meta[k] = s
        }
        continue
      }
      let bad = { (why: String) in SafeTensorsError.badHeader(file: path, reason: "tensor '\(key)': \(why)") }
      guard case .object(let fields) = value else { throw bad("entry is not an object") }
      guard case .string(let dt)? = fields["dtype"] else { throw bad("missing or non-string \"dtype\"") }
      guard let dtype = SafeTensorsDType(rawValue: dt) else {
        throw SafeTensorsError.unknownDType(file: path, key: key, dtype: dt)
      }
      guard let shape = fields["shape"]?.nonNegativeInts else { throw bad("missing or invalid \"shape\" (need non-negative integers)") }
      guard let offs = fields["data_offsets"]?.nonNegativeInts, offs.count == 2 else {
        throw bad("missing or invalid \"data_offsets\" (need [begin, end])")
      }
      guard offs[0] <= offs[1], offs[1] <= dataSize else {
        throw SafeTensorsError.offsetsOutOfRange(file: path, key: key, begin: offs[0], end: offs[1], dataSize: dataSize)
      }
      let count = shape.reduce(1, *)
      guard count * dtype.size == offs[1] - offs[0] else {
        throw SafeTensorsError.sizeMismatch(file: path, key: key, dtype: dt, shape: shape, bytes: offs[1] - offs[0])
      }
      infos[key] = Info(dtype: dtype, shape: shape, dataOffsets: offs[0]..<offs[1])
    }
    metadata = meta
    tensors = infos
    keys = infos.keys.sorted { (infos[$0]!.dataOffsets.lowerBound, $0) < (infos[$1]!.dataOffsets.lowerBound, $1) }
  }

  public func info(_ key: String) throws -> Info {
    guard let i = tensors[key] else { throw SafeTensorsError.missingKey(file: path, key: key) }
    return i
  }

  /// Converts tensor `key` to Float into `out` (which must hold its element count).
  public func read(_ key: String, into out: UnsafeMutablePointer<Float>) throws {
    let info = try info(key)
    let n = info.count
    bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) in
      let src = raw.baseAddress! + dataStart + info.dataOffsets.lowerBound
      switch info.dtype {
      case .F32: UnsafeMutableRawPointer(out).copyMemory(from: src, byteCount: n * 4)
      case .F64: for i in 0..<n { out[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
      case .F16: for i in 0..<n { out[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
      case .BF16:
        for i in 0..<n { out[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
      case .I64: for i in 0..<n { out[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
      case .I32: for i in 0..<n { out[i] = Float(src.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
      case .I16: for i in 0..<n { out[i] = Float(src.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
      case .I8: for i in 0..<n { out[i] = Float(src.loadUnaligned(fromByteOffset: i, as: Int8.self)) }
      case .U64: for i in 0..<n { out[i] = Float(src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
      case .U32: for i in 0..<n { out[i] = Float(src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
      case .U16: for i in 0..<n { out[i] = Float(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
      case .U8, .BOOL: for i in 0..<n { out[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
      }
    }
  }

  /// Tensor `key` as Float, in its stored shape.
  public func tensor(_ key: String) throws -> Tensor {
    let t = Tensor(uninitialized: try info(key).shape)
    try read(key, into: t.data)
    return t
  }

  public func floats(_ key: String) throws -> [Float] { try tensor(key).toArray() }
}

public enum SafeTensors {
  /// Writes `tensors` as F32 in the given order, with optional string metadata.
  /// The file appears atomically: it is written under a temporary name in the
  /// same directory and renamed, so a crash never leaves a half-written file.
  public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:],
                           to url: URL) throws {
    precondition(Set(tensors.map(\.name)).count == tensors.count, "SafeTensors.write: duplicate tensor names")
    precondition(!tensors.contains { $0.name == "__metadata__" }, "SafeTensors.write: '__metadata__' is reserved")
    let header = headerBytes(tensors, metadata: metadata)
    let tmp = url.deletingLastPathComponent()
      .appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
    let fail = { (why: String) in SafeTensorsError.cannotWrite(file: url.path, reason: why) }
    guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
      throw fail("cannot create \(tmp.path)")
    }
    do {
      let h = try FileHandle(forWritingTo: tmp)
      defer { try? h.close() }
      var len = UInt64(header.count).littleEndian
      try h.write(contentsOf: Data(bytes: &len, count: 8))
      try h.write(contentsOf: header)
      for (_, t) in tensors where t.count > 0 {
        // Straight from the tensor's memory, no copy (the host is little-endian).
        try h.write(contentsOf: Data(bytesNoCopy: t.data, count: t.count * 4, deallocator: .none))
      }
      try h.synchronize()
    } catch {
      try? FileManager.default.removeItem(at: tmp)
      throw fail("\(error.localizedDescription)")
    }
    guard rename(tmp.path, url.path) == 0 else {
      let why = String(cString: strerror(errno))
      try? FileManager.default.removeItem(at: tmp)
      throw fail("rename from \(tmp.path): \(why)")
    }
  }

  /// The whole file in memory (tests, small files).
  public static func encode(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:]) -> Data {
    let header = headerBytes(tensors, metadata: metadata)
    var out = Data()
    var len = UInt64(header.count).littleEndian
    out.append(Data(bytes: &len, count: 8))
    out.append(header)
    for (_, t) in tensors { out.append(UnsafeBufferPointer(start: t.data, count: t.count)) }
    return out
  }

  /// JSON header with contiguous data_offsets in the given order, space-padded to a multiple of 8.
  static func headerBytes(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String]) -> Data {
    var parts: [String] = []
    if !metadata.isEmpty {
      let kv = metadata.keys.sorted().map { "\(jsonString($0)):\(jsonString(metadata[$0]!))" }
      parts.append("\"__metadata__\":{\(kv.joined(separator: ","))}")
    }
    var offset = 0
    for (name, t) in tensors {
      let end = offset + t.count * 4
      parts.append("\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(end)]}")
      offset = end
    }
    var s = "{" + parts.joined(separator: ",") + "}"
    while s.utf8.count % 8 != 0 { s += " " }
    return Data(s.utf8)
  }

  static func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      default:
        if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
      }
    }
    return out + "\""
  }
}

/// IEEE 754 binary16 → binary32 (subnormals, infinities and NaN included).
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
  let sign = UInt32(h & 0x8000) << 16
  let exp = Int((h >> 10) & 0x1F)
  let mant = UInt32(h & 0x3FF)
  if exp == 0 {
    // ±0 or subnormal: mant · 2^-24.
    let v = Float(mant) * Float(sign: .plus, exponent: -24, significand: 1)
    return sign != 0 ? -v : v
  }
  if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mant << 13)) }
  return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
}

/// Just enough JSON to read a safetensors header with precise error messages.
enum JSONValue: Decodable {
  case null, bool(Bool), number(Double), string(String), array([JSONValue]), object([String: JSONValue])

  init(from decoder: Decoder) throws {
    let c = try decoder.singleValueContainer()
    if c.decodeNil() { self = .null }
    else if let d = try? c.decode(Double.self) { self = .number(d) }  // before Bool: 1 must stay a number
    else if let b = try? c.decode(Bool.self) { self = .bool(b) }
    else if let s = try? c.decode(String.self) { self = .string(s) }
    else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
    else { self = .object(try c.decode([String: JSONValue].self)) }
  }

  /// The value as an array of exact non-negative integers, else nil.
  var nonNegativeInts: [Int]? {
    guard case .array(let a) = self else { return nil }
    var out: [Int] = []
    for v in a {
      guard case .number(let d) = v, d >= 0, d == d.rounded(), d < 9.0e15 else { return nil }
      out.append(Int(d))
    }
    return out
  }
}
