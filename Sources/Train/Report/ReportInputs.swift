// Reading what the trainer leaves in a work dir, for the run report:
// metrics.jsonl (train and eval records), eval.json (the latest evaluation:
// per-class IoU and the confusion matrix) and samples/ (image, label and
// prediction PNGs with palette.json). Only reads; never writes or repairs.
// Every problem is a `ReportError` naming the file (and line, where there is one).
import Foundation

public enum ReportError: Error, CustomStringConvertible, Equatable {
  /// A required input is absent.
  case missing(path: String, hint: String)
  /// An input is present but not what the contract says; `line` is 1-based when known.
  case malformed(path: String, line: Int?, message: String)
  case io(path: String, message: String)

  public var description: String {
    switch self {
    case let .missing(p, hint): return "\(p): not found; \(hint)"
    case let .malformed(p, line?, m): return "\(p):\(line): \(m)"
    case let .malformed(p, nil, m): return "\(p): \(m)"
    case let .io(p, m): return "\(p): \(m)"
    }
  }
}

/// One `{"type":"train",…}` line of metrics.jsonl.
public struct TrainRecord: Equatable {
  public var iteration: Int
  public var lr: Double
  public var loss: Double
  /// The `loss_*` terms present on the line, by key (e.g. "loss_seg").
  public var terms: [String: Double]
  public var itPerS: Double?
  public var dataWait: Double?
  public var commWait: Double?
  /// `comm_wait` split (since session 15): waiting for a slower rank, and the rest.
  public var stragglerWait: Double?
  public var commExposed: Double?
  /// Global gradient norm before clipping.
  public var gradNorm: Double?
  public var time: Double?
}

/// One `{"type":"eval",…}` line of metrics.jsonl.
public struct EvalRecord: Equatable {
  public var iteration: Int
  public var mIoU: Double
  public var aAcc: Double?
  public var time: Double?
}

public struct MetricsHistory {
  public var train: [TrainRecord] = []
  public var evals: [EvalRecord] = []
  /// Things left out and why (an incomplete last line, unknown record types), shown in the report.
  public var notes: [String] = []

  /// Parses metrics.jsonl. Blank lines are allowed; a last line without its
  /// newline that does not parse is a record still being written and is left
  /// out with a note; any other line that does not follow the contract throws.
  public static func load(path: String) throws -> MetricsHistory {
    guard FileManager.default.fileExists(atPath: path) else {
      throw ReportError.missing(path: path, hint: "is this a work dir of `ecenet-dist train`? (it writes metrics.jsonl at the first logged iteration)")
    }
    guard let bytes = FileManager.default.contents(atPath: path) else { throw ReportError.io(path: path, message: "cannot read") }
    guard let text = String(data: bytes, encoding: .utf8) else {
      throw ReportError.malformed(path: path, line: nil, message: "not UTF-8 text")
    }
    var h = MetricsHistory()
    var unknownTypes: [String: Int] = [:]
    let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
    let endsWithNewline = text.hasSuffix("\n")
    for (i, raw) in lines.enumerated() {
      let lineNo = i + 1
      let line = raw.trimmingCharacters(in: .whitespaces)
      if line.isEmpty { continue }
      do {
        guard let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) else {
          throw ReportError.malformed(path: path, line: lineNo, message: "not valid JSON: \(preview(line))")
        }
        guard let dict = obj as? [String: Any] else {
          throw ReportError.malformed(path: path, line: lineNo, message: "expected a JSON object, found \(preview(line))")
        }
        let r = Fields(dict: dict, path: path, line: lineNo)
        let type = try r.string("type")
        switch type {
        case "train":
          var terms: [String: Double] = [:]
          for key in dict.keys where key.hasPrefix("loss_") { terms[key] = try r.double(key) }
          h.train.append(TrainRecord(
            iteration: try r.int("iteration"), lr: try r.double("lr"), loss: try r.double("loss"), terms: terms,
            itPerS: try r.optionalDouble("it_per_s"), dataWait: try r.optionalDouble("data_wait"),
            commWait: try r.optionalDouble("comm_wait"), stragglerWait: try r.optionalDouble("straggler_wait"),
            commExposed: try r.optionalDouble("comm_exposed"), gradNorm: try r.optionalDouble("grad_norm"),
            time: try r.optionalDouble("time")))
        case "eval":
          let m = try r.double("mIoU")
          guard (0...1).contains(m) else {
            throw ReportError.malformed(path: path, line: lineNo, message: "\"mIoU\" is \(m); expected a fraction in 0…1")
          }
          h.evals.append(EvalRecord(iteration: try r.int("iteration"), mIoU: m,
                                    aAcc: try r.optionalDouble("aAcc"), time: try r.optionalDouble("time")))
        default:
          unknownTypes[type, default: 0] += 1
        }
      } catch let e as ReportError {
        if i == lines.count - 1 && !endsWithNewline {
          h.notes.append("metrics.jsonl line \(lineNo) is incomplete (the run is probably still writing it) and was left out.")
          continue
        }
        throw e
      }
    }
    for (t, n) in unknownTypes.sorted(by: { $0.key < $1.key }) {
      h.notes.append("metrics.jsonl: \(n) record(s) of type \"\(t)\" are not shown (the report knows \"train\" and \"eval\").")
    }
    // A resumed run may log an iteration twice; plot in iteration order, the later line winning.
    h.train = dedupe(h.train, by: \.iteration)
    h.evals = dedupe(h.evals, by: \.iteration)
    return h
  }

  private static func dedupe<T>(_ xs: [T], by key: KeyPath<T, Int>) -> [T] {
    var last: [Int: T] = [:]
    for x in xs { last[x[keyPath: key]] = x }
    return last.keys.sorted().map { last[$0]! }
  }
}

/// The latest evaluation, from eval.json.
public struct EvalSnapshot {
  public struct ClassResult: Equatable {
    public var index: Int
    public var name: String
    public var iou: Double?
    public var acc: Double?
  }
  public var iteration: Int
  public var mIoU: Double
  public var aAcc: Double?
  public var classes: [ClassResult]
  public var confusion: ConfusionMatrix?

  public static func load(path: String) throws -> EvalSnapshot {
    guard let bytes = FileManager.default.contents(atPath: path) else { throw ReportError.io(path: path, message: "cannot read") }
    let obj: Any
    do { obj = try JSONSerialization.jsonObject(with: bytes) } catch {
      throw ReportError.malformed(path: path, line: lineOfParseError(error, in: bytes), message: "not valid JSON (\(error.localizedDescription))")
    }
    guard let dict = obj as? [String: Any] else { throw ReportError.malformed(path: path, line: nil, message: "expected a JSON object at the top level") }
    let r = Fields(dict: dict, path: path, line: nil)
    guard let rawClasses = dict["classes"] as? [Any] else {
      throw ReportError.malformed(path: path, line: nil, message: "\"classes\" missing or not an array; expected [{\"name\":…,\"iou\":…,\"acc\":…}, …]")
    }
    var classes: [ClassResult] = []
    for (i, c) in rawClasses.enumerated() {
      guard let cd = c as? [String: Any] else {
        throw ReportError.malformed(path: path, line: nil, message: "classes[\(i)] is not an object")
      }
      let cr = Fields(dict: cd, path: path, line: nil, prefix: "classes[\(i)].")
      classes.append(ClassResult(index: i, name: try cr.string("name"), iou: try cr.optionalDouble("iou"), acc: try cr.optionalDouble("acc")))
    }
    var confusion: ConfusionMatrix? = nil
    if let c = dict["confusion"], !(c is NSNull) {
      guard let cd = c as? [String: Any] else { throw ReportError.malformed(path: path, line: nil, message: "\"confusion\" is not an object") }
      let cr = Fields(dict: cd, path: path, line: nil, prefix: "confusion.")
      let n = try cr.int("num_classes")
      guard n == classes.count else {
        throw ReportError.malformed(path: path, line: nil, message: "confusion.num_classes is \(n) but \"classes\" lists \(classes.count)")
      }
      guard let counts = cd["counts"] as? [Any], counts.count == n * n else {
        throw ReportError.malformed(path: path, line: nil, message: "confusion.counts must be an array of num_classes² = \(n * n) integers")
      }
      var m = ConfusionMatrix(numClasses: n)
      for (k, v) in counts.enumerated() {
        guard let num = v as? NSNumber, !isJSONBool(v), num.doubleValue >= 0, num.doubleValue == num.doubleValue.rounded() else {
          throw ReportError.malformed(path: path, line: nil, message: "confusion.counts[\(k)] is \(v); expected a non-negative integer")
        }
        m.counts[k] = num.int64Value
      }
      confusion = m
    }
    return EvalSnapshot(iteration: try r.int("iteration"), mIoU: try r.double("mIoU"), aAcc: try r.optionalDouble("aAcc"),
                        classes: classes, confusion: confusion)
  }

  /// Foundation's parse error says "around character N" (Linux) or "line N" (Darwin); turn either into a line.
  static func lineOfParseError(_ error: Error, in bytes: Data) -> Int? {
    let text = "\((error as NSError).userInfo)" + error.localizedDescription
    if let r = text.range(of: #"line (\d+)"#, options: .regularExpression) {
      return Int(text[r].dropFirst(5))
    }
    if let r = text.range(of: #"character (\d+)"#, options: .regularExpression), let off = Int(text[r].dropFirst(10)) {
      return bytes.prefix(off).reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
    }
    return nil
  }
}

/// Typed access to one JSON object's keys, throwing errors that name file, line and key.
struct Fields {
  let dict: [String: Any]
  let path: String
  let line: Int?
  var prefix = ""

  func fail(_ key: String, _ expected: String) -> ReportError {
    guard let v = dict[key] else {
      return .malformed(path: path, line: line, message: "\"\(prefix)\(key)\" is missing; expected \(expected)")
    }
    // Show the value as it reads in JSON: strings quoted, booleans as true/false.
    let found = isJSONBool(v) ? ((v as! NSNumber).boolValue ? "true" : "false")
      : v is String ? "\"\(v)\"" : v is NSNull ? "null" : "\(v)"
    return .malformed(path: path, line: line, message: "\"\(prefix)\(key)\" is \(preview(found)); expected \(expected)")
  }

  func string(_ key: String) throws -> String {
    guard let s = dict[key] as? String else { throw fail(key, "a string") }
    return s
  }
  func int(_ key: String) throws -> Int {
    guard let n = dict[key] as? NSNumber, !isJSONBool(n), n.doubleValue == n.doubleValue.rounded(), abs(n.doubleValue) < 1e15 else {
      throw fail(key, "an integer")
    }
    return n.intValue
  }
  func double(_ key: String) throws -> Double {
    guard let v = try optionalDouble(key, expected: "a number") else { throw fail(key, "a number") }
    return v
  }
  /// nil when the key is absent or JSON null.
  func optionalDouble(_ key: String, expected: String = "a number or null") throws -> Double? {
    guard let v = dict[key], !(v is NSNull) else { return nil }
    guard let n = v as? NSNumber, !isJSONBool(n) else { throw fail(key, expected) }
    return n.doubleValue
  }
}

/// JSON true/false: Foundation hands them out as NSNumber of objCType "c", and
/// `is Bool` is also true for the integers 0 and 1, so it cannot tell them apart.
func isJSONBool(_ v: Any) -> Bool {
  guard let n = v as? NSNumber else { return false }
  return String(cString: n.objCType) == "c"
}

func preview(_ s: String) -> String { s.count > 80 ? String(s.prefix(77)) + "…" : s }
