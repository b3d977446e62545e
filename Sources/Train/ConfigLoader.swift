// Configs: YAML files over Codable defaults, with dotted KEY=VALUE overrides.
//
// A config file lists only what differs from the defaults (and may name a
// `base:` file to start from). Before anything runs, every key is checked
// against the defaults' own keys: an unknown key is an error that suggests
// the nearest known one, and a value of the wrong type names its key and
// the expected type. Nothing is silently ignored.
import Foundation
import Yams

public enum ConfigError: Error, CustomStringConvertible {
  case unreadable(file: String, reason: String)
  case notAMapping(file: String)
  case unknownKey(key: String, file: String, suggestion: String?)
  case badOverride(String)
  case wrongType(key: String, expected: String, found: String, file: String)
  case invalid(key: String, message: String)

  public var description: String {
    switch self {
    case let .unreadable(f, r): return "config \(f): cannot read: \(r)"
    case let .notAMapping(f): return "config \(f): the top level must be a mapping of keys to values"
    case let .unknownKey(k, f, s):
      return "config \(f): unknown key '\(k)'" + (s.map { "; did you mean '\($0)'?" } ?? "")
    case let .badOverride(o): return "override '\(o)': expected KEY=VALUE with a dotted key, e.g. optimizer.lr=1e-4"
    case let .wrongType(k, e, found, f): return "config \(f): key '\(k)' expects \(e), found \(found)"
    case let .invalid(k, m): return "config: '\(k)': \(m)"
    }
  }
}

public enum ConfigLoader {
  /// Loads `file` (if any) and `overrides` over `defaults`, checking every key.
  public static func load<T: Codable>(_ defaults: T, file: String?, overrides: [String]) throws -> T {
    var tree = try toTree(defaults)
    let schema = tree
    if let file = file {
      let fileTree = try readYAML(file, depth: 0)
      try check(fileTree, against: schema, path: "", file: file)
      merge(&tree, fileTree)
    }
    for o in overrides {
      guard let eq = o.firstIndex(of: "="), eq != o.startIndex else { throw ConfigError.badOverride(o) }
      let key = String(o[..<eq]), raw = String(o[o.index(after: eq)...])
      let value: Any = (try? Yams.load(yaml: raw)).flatMap { $0 } ?? raw
      var nested: Any = value
      for part in key.split(separator: ".").reversed() { nested = [String(part): nested] }
      guard let m = nested as? [String: Any] else { throw ConfigError.badOverride(o) }
      try check(m, against: schema, path: "", file: "command line")
      merge(&tree, m)
    }
    return try fromTree(tree, file: file ?? "defaults")
  }

  /// The YAML form of a config (keys sorted), as saved in the work dir.
  public static func toYAML<T: Encodable>(_ value: T) throws -> String {
    try Yams.dump(object: toTree(value), sortKeys: true)
  }

  static func readYAML(_ file: String, depth: Int) throws -> [String: Any] {
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
      throw ConfigError.unreadable(file: file, reason: FileManager.default.fileExists(atPath: file) ? "not UTF-8 text" : "no such file")
    }
    let loaded: Any?
    do { loaded = try Yams.load(yaml: text) } catch { throw ConfigError.unreadable(file: file, reason: "\(error)") }
    guard var map = (loaded ?? [String: Any]()) as? [String: Any] else { throw ConfigError.notAMapping(file: file) }
    if let base = map.removeValue(forKey: "base") as? String {
      guard depth < 8 else { throw ConfigError.unreadable(file: file, reason: "base: chain deeper than 8 (a cycle?)") }
      let path = base.hasPrefix("/") ? base : URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(base).path
      var merged = try readYAML(path, depth: depth + 1)
      merge(&merged, map)
      return merged
    }
    return map
  }

  /// Codable value → nested dictionaries (through JSON, so keys match CodingKeys).
  static func toTree<T: Encodable>(_ value: T) throws -> [String: Any] {
    let data = try JSONEncoder().encode(value)
    return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
  }

  static func fromTree<T: Decodable>(_ tree: [String: Any], file: String) throws -> T {
    let data = try JSONSerialization.data(withJSONObject: tree)
    do {
      return try JSONDecoder().decode(T.self, from: data)
    } catch let DecodingError.typeMismatch(type, ctx) {
      let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
      throw ConfigError.wrongType(key: key, expected: "\(type)", found: describe(value(at: ctx.codingPath.map(\.stringValue), in: tree)), file: file)
    } catch let DecodingError.dataCorrupted(ctx) {
      let key = ctx.codingPath.map(\.stringValue).joined(separator: ".")
      throw ConfigError.invalid(key: key, message: ctx.debugDescription)
    }
  }

  static func value(at path: [String], in tree: [String: Any]) -> Any? {
    var cur: Any? = tree
    for p in path { cur = (cur as? [String: Any])?[p] }
    return cur
  }

  static func describe(_ v: Any?) -> String {
    switch v {
    case nil: return "nothing"
    case let s as String: return "the string \"\(s)\""
    case is [Any]: return "a list"
    case is [String: Any]: return "a mapping"
    case let x?: return "\(x)"
    }
  }

  /// Every key of `tree` must exist in `schema` (recursively where both are mappings).
  static func check(_ tree: [String: Any], against schema: [String: Any], path: String, file: String) throws {
    for (k, v) in tree {
      let full = path.isEmpty ? k : "\(path).\(k)"
      guard let s = schema[k] else {
        throw ConfigError.unknownKey(key: full, file: file, suggestion: nearest(k, in: Array(schema.keys)).map { path.isEmpty ? $0 : "\(path).\($0)" })
      }
      if let sub = v as? [String: Any], let subSchema = s as? [String: Any] {
        try check(sub, against: subSchema, path: full, file: file)
      }
    }
  }

  static func merge(_ base: inout [String: Any], _ over: [String: Any]) {
    for (k, v) in over {
      if let sub = v as? [String: Any], var b = base[k] as? [String: Any] {
        merge(&b, sub); base[k] = b
      } else {
        base[k] = v
      }
    }
  }

  /// The candidate within edit distance ≤ 3 (or sharing a prefix) closest to `key`.
  static func nearest(_ key: String, in candidates: [String]) -> String? {
    func distance(_ a: String, _ b: String) -> Int {
      let a = Array(a.lowercased()), b = Array(b.lowercased())
      var prev = Array(0...b.count)
      for i in 1...max(1, a.count) where !a.isEmpty {
        var cur = [i] + [Int](repeating: 0, count: b.count)
        for j in 1...max(1, b.count) where !b.isEmpty {
          cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        prev = cur
      }
      return a.isEmpty ? b.count : (b.isEmpty ? a.count : prev[b.count])
    }
    let best = candidates.map { ($0, distance(key, $0)) }.min { $0.1 < $1.1 }
    guard let b = best, b.1 <= max(2, key.count / 3) else { return nil }
    return b.0
  }
}
