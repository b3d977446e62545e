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
    case let .wrongType(k, e, found, f):
      // YAML reads `root: 2024` as a number and `root: yes` as a boolean.
      let hint = e == "String" && !found.hasPrefix("a ") ? "; quote it ('…') to make it a string" : ""
      return "config \(f): key '\(k)' expects \(e), found \(found)" + hint
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
      let parsed: Any
      if value(at: key.split(separator: ".").map(String.init), in: schema) is String, raw.first != "{", raw.first != "[" {
        // A string key takes the text as written: data.root=2024 is a folder,
        // not the number 2024, model.pretrained=no not false, and
        // data.root=a: b not a mapping. (A flow mapping stays one:
        // model.backbone={embed_dim: 96, ...} is a custom Swin.)
        parsed = unquoted(raw)
      } else {
        parsed = (try? Yams.load(yaml: raw)).flatMap { $0 } ?? raw
      }
      var nested: Any = parsed
      for part in key.split(separator: ".").reversed() { nested = [String(part): nested] }
      guard let m = nested as? [String: Any] else { throw ConfigError.badOverride(o) }
      try check(m, against: schema, path: "", file: "command line")
      merge(&tree, m)
    }
    return try fromTree(tree, file: file ?? "defaults")
  }

  /// The YAML form of a config (keys sorted), as saved in the work dir: a
  /// config file again (`train --config WORK_DIR/config.yaml` runs the same
  /// config). Written from JSONEncoder's text, not from `toTree`'s values:
  /// those are NSNumbers, which Yams writes as floats (`num_classes: 6e+0`,
  /// `photometric: 1e+0`), and a Bool or Int key then rejects its own file.
  /// The JSON text keeps each number as written (6, 0.1, 1e-06) and true as
  /// true; composed as YAML, each scalar keeps that text and its type.
  public static func toYAML<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .sortedKeys
    let json = String(decoding: try encoder.encode(value), as: UTF8.self)
    guard let node = try Yams.compose(yaml: json) else { return "" }
    return try Yams.serialize(node: blockStyled(node))
  }

  /// `node` in YAML's block style: mappings one key a line, lists of scalars
  /// in brackets ([64, 64]), scalars plain unless the plain text would read
  /// back as another type (the string "yes", "001" or "").
  static func blockStyled(_ node: Node) -> Node {
    switch node {
    case .scalar(var s):
      let meant = Resolver.default.resolveTag(of: node), plain = Resolver.default.resolveTag(of: Node(s.string))
      s.style = meant == plain && !s.string.isEmpty ? .plain : .singleQuoted
      return .scalar(s)
    case .mapping(let m):
      return .mapping(Node.Mapping(m.map { (blockStyled($0.key), blockStyled($0.value)) }, m.tag, .block))
    case .sequence(let q):
      let flat = q.allSatisfy { $0.scalar != nil }
      return .sequence(Node.Sequence(q.map(blockStyled), q.tag, flat ? .flow : .block))
    case .alias:
      return node
    }
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

  /// The keys whose values differ between two config YAML texts, as
  /// "key: old → new" in key order. Numbers compare by value, so a file
  /// written as `6e+0` (before session 16) equals `6`. Empty when either
  /// text is empty or unreadable.
  public static func differences(from old: String, to new: String) -> [String] {
    func leaves(_ text: String) -> [String: Any]? {
      guard !text.isEmpty, let tree = (try? Yams.load(yaml: text)) as? [String: Any] else { return nil }
      var out: [String: Any] = [:]
      func walk(_ t: [String: Any], _ prefix: String) {
        for (k, v) in t {
          let key = prefix.isEmpty ? k : "\(prefix).\(k)"
          if let sub = v as? [String: Any] { walk(sub, key) } else { out[key] = v }
        }
      }
      walk(tree, "")
      return out
    }
    func text(_ v: Any?) -> String {
      switch v {
      case nil: return "(none)"
      case let list as [Any]: return "[" + list.map { text($0) }.joined(separator: ", ") + "]"
      case let b as Bool: return "\(b)"
      case let i as Int: return "\(i)"
      case let d as Double: return d == d.rounded() && abs(d) < 1e15 ? "\(Int(d))" : "\(d)"
      case let x?: return "\(x)"
      }
    }
    // Booleans compare as 1 / 0: the old files wrote true as 1e+0.
    func same(_ x: Any?, _ y: Any?) -> Bool {
      func norm(_ v: Any?) -> String { (v as? Bool).map { $0 ? "1" : "0" } ?? text(v) }
      return norm(x) == norm(y)
    }
    guard let a = leaves(old), let b = leaves(new) else { return [] }
    return Set(a.keys).union(b.keys).sorted().compactMap { k in
      same(a[k], b[k]) ? nil : "\(k): \(text(a[k])) → \(text(b[k]))"
    }
  }

  /// `text` without one pair of enclosing quotes ('…' or "…"), if it has them.
  static func unquoted(_ text: String) -> String {
    guard text.count >= 2, let q = text.first, q == "'" || q == "\"", text.last == q else { return text }
    return String(text.dropFirst().dropLast())
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

  /// Every key of `tree` must exist in `schema` (recursively where both are
  /// mappings; `root`: the whole schema, for suggestions from other sections).
  static func check(_ tree: [String: Any], against schema: [String: Any], path: String, file: String,
                    root: [String: Any]? = nil) throws {
    let root = root ?? schema
    for (k, v) in tree {
      let full = path.isEmpty ? k : "\(path).\(k)"
      guard let s = schema[k] else {
        throw ConfigError.unknownKey(key: full, file: file, suggestion: suggestion(for: k, at: path, in: schema, root: root))
      }
      if let sub = v as? [String: Any], let subSchema = s as? [String: Any] {
        try check(sub, against: subSchema, path: full, file: file, root: root)
      }
    }
  }

  /// The known key meant by unknown key `k` in section `path`: the nearest
  /// name in the same section (`optimizer.weightdecay`); else the key that
  /// mmsegmentation's name `k` stands for (`max_iters`); else the nearest
  /// name anywhere (`train.iteratons` → `schedule.iterations`).
  static func suggestion(for k: String, at path: String, in schema: [String: Any], root: [String: Any]) -> String? {
    if let near = nearest(k, in: Array(schema.keys)) { return path.isEmpty ? near : "\(path).\(near)" }
    let everyKey = dottedKeys(root, prefix: "")
    if let known = mmsegNames[k], everyKey.contains(known) { return known }
    // A name in several sections (seed) stands for its shallowest key (train.seed).
    let byName = Dictionary(everyKey.map { ($0.split(separator: ".").last.map(String.init) ?? $0, $0) },
                            uniquingKeysWith: { a, b in a.count <= b.count ? a : b })
    return nearest(k, in: byName.keys.sorted()).flatMap { byName[$0] }
  }

  /// mmsegmentation's (and PyTorch's) names for our keys, for users who
  /// bring their old config's words. Used only where the key exists.
  static let mmsegNames: [String: String] = [
    "max_iters": "schedule.iterations", "warmup_iters": "schedule.warmup_iterations",
    "samples_per_gpu": "train.per_rank_batch", "batch_size": "train.global_batch",
    "workers_per_gpu": "data.workers", "num_workers": "data.workers", "data_root": "data.root",
    "log_interval": "train.log_every", "interval": "train.checkpoint_every", "max_keep_ckpts": "train.keep_checkpoints",
    "grad_clip": "optimizer.clip_grad_norm", "max_norm": "optimizer.clip_grad_norm",
    "fp16": "train.precision", "amp": "train.precision", "ignore_index": "model.loss.ignore_index",
    "img_scale": "data.scale", "dataset_type": "data.dataset",
  ]

  /// Every key of `tree` as a dotted path, sections included, sorted.
  static func dottedKeys(_ tree: [String: Any], prefix: String) -> [String] {
    tree.keys.sorted().flatMap { k -> [String] in
      let full = prefix.isEmpty ? k : "\(prefix).\(k)"
      return [full] + ((tree[k] as? [String: Any]).map { dottedKeys($0, prefix: full) } ?? [])
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
