// The manifest (manifest.json beside the shards of one split): what the
// dataset is, how raw label values map to training labels, and what each shard
// file must be. Written last, so a directory with shards but no manifest is an
// unfinished pack, never a dataset.
import Foundation

/// Maps every raw 8-bit label value to a training label: a class index,
/// 255 (ignore), or -1 (invalid: a pixel with that value is an error).
public struct LabelMap: Codable, Equatable, Sendable {
  /// Human-readable, e.g. "0 -> 255, v -> v-1 (reduce_zero_label)".
  public var description: String
  /// 256 entries.
  public var table: [Int]

  public init(description: String, table: [Int]) {
    precondition(table.count == 256, "LabelMap needs 256 entries")
    self.description = description; self.table = table
  }

  /// Class values pass through, 255 stays ignore, `ignoreValue` (if any) becomes 255.
  public static func identity(numClasses: Int, ignoreValue: Int? = nil) -> LabelMap {
    var t = (0..<256).map { $0 < numClasses ? $0 : -1 }
    t[255] = 255
    var d = "v -> v for v < \(numClasses), 255 -> 255 (ignore)"
    if let v = ignoreValue { t[v] = 255; d += ", \(v) -> 255 (ignore)" }
    return LabelMap(description: d, table: t)
  }

  /// mmseg's reduce_zero_label: 0 (unlabelled) -> 255, v -> v-1 for 1...numClasses.
  public static func reduceZero(numClasses: Int) -> LabelMap {
    var t = [Int](repeating: -1, count: 256)
    t[0] = 255
    for v in 1...numClasses { t[v] = v - 1 }
    t[255] = 255
    return LabelMap(description: "0 -> 255 (ignore), v -> v-1 for 1...\(numClasses) (reduce_zero_label), 255 -> 255", table: t)
  }

  /// Maps a raw label image in place of a copy; throws naming the first invalid value.
  public func apply(_ raw: [UInt8], numClasses: Int) throws -> [UInt8] {
    var lut = [UInt8](repeating: 0, count: 256)
    var valid = [Bool](repeating: false, count: 256)
    for v in 0..<256 where table[v] == 255 || (0..<numClasses).contains(table[v]) {
      lut[v] = UInt8(table[v]); valid[v] = true
    }
    var out = [UInt8](repeating: 0, count: raw.count)
    for i in 0..<raw.count {
      let v = Int(raw[i])
      guard valid[v] else {
        throw DataError.invalidArgument(
          "label value \(v) at pixel \(i) is out of range (valid: \(validRangeText(numClasses: numClasses)); mapping \(description))")
      }
      out[i] = lut[v]
    }
    return out
  }

  func validRangeText(numClasses: Int) -> String {
    let ok = (0..<256).filter { table[$0] == 255 || (0..<numClasses).contains(table[$0]) }
    // Compress into runs "0...150, 255".
    var runs: [String] = [], i = 0
    while i < ok.count {
      var j = i
      while j + 1 < ok.count && ok[j + 1] == ok[j] + 1 { j += 1 }
      runs.append(i == j ? "\(ok[i])" : "\(ok[i])...\(ok[j])")
      i = j + 1
    }
    return runs.joined(separator: ", ")
  }
}

public struct ShardInfo: Codable, Equatable, Sendable {
  public var file: String
  public var records: Int
  public var bytes: Int
  /// CRC-32C of the whole file, 8 hex digits.
  public var crc32c: String
}

public struct SkippedInput: Codable, Equatable, Sendable {
  public var source: String
  public var reason: String
}

public struct Manifest: Codable, Equatable, Sendable {
  public static let fileName = "manifest.json"
  public static let formatName = "ecenet-shards"

  public var format = Manifest.formatName
  public var version = 1
  public var dataset: String
  public var split: String
  public var numClasses: Int
  public var classNames: [String]
  /// One [r, g, b] per class, for colour overlays.
  public var palette: [[Int]]
  public var labelMap: LabelMap
  public var records: Int
  /// Inputs left out with --skip-bad, and why.
  public var skipped: [SkippedInput]
  /// Sum of the original image and label file sizes, and of the shard files.
  public var sourceBytes: Int
  public var shardBytes: Int
  public var shards: [ShardInfo]

  /// Reads and checks the manifest of the split stored in `directory`.
  public static func load(directory: String) throws -> Manifest {
    let path = (directory as NSString).appendingPathComponent(fileName)
    guard let data = FileManager.default.contents(atPath: path) else {
      throw DataError.badManifest(path: path, "missing or unreadable: not a packed split (pack writes OUT/<split>/manifest.json last; an unfinished pack has none)")
    }
    let m: Manifest
    do { m = try JSONDecoder().decode(Manifest.self, from: data) } catch {
      throw DataError.badManifest(path: path, "not valid manifest JSON: \(error)")
    }
    func bad(_ s: String) -> DataError { .badManifest(path: path, s) }
    guard m.format == formatName else { throw bad("format \"\(m.format)\", expected \"\(formatName)\"") }
    guard m.version == 1 else { throw bad("version \(m.version), this build reads version 1") }
    guard (1...255).contains(m.numClasses) else { throw bad("numClasses \(m.numClasses) outside 1...255") }
    guard m.classNames.count == m.numClasses, m.palette.count == m.numClasses else {
      throw bad("\(m.classNames.count) class names and \(m.palette.count) palette entries for \(m.numClasses) classes")
    }
    guard m.labelMap.table.count == 256 else { throw bad("label map has \(m.labelMap.table.count) entries, expected 256") }
    let sum = m.shards.reduce(0) { $0 + $1.records }
    guard sum == m.records else { throw bad("shards hold \(sum) records in total but the manifest says \(m.records)") }
    guard m.records > 0 else { throw bad("no records") }
    return m
  }

  /// Deterministic JSON: sorted keys, no timestamps, so the same input packs to the same bytes.
  public func encoded() throws -> Data {
    let e = JSONEncoder()
    e.outputFormatting = [.prettyPrinted, .sortedKeys]
    return try e.encode(self)
  }
}
