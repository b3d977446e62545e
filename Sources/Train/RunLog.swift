// What a run tells its user: a live progress line on rank 0 and a JSON-lines
// metrics log (`metrics.jsonl`) in the work dir, one object per logged
// iteration and per evaluation, flushed as written so nothing is lost on a crash.
import Foundation

public final class MetricsLog {
  private let handle: FileHandle?

  /// Opens (appending) `dir/metrics.jsonl`; only rank 0 writes.
  public init(workDir: String, enabled: Bool) throws {
    guard enabled else { handle = nil; return }
    let path = (workDir as NSString).appendingPathComponent("metrics.jsonl")
    if !FileManager.default.fileExists(atPath: path) {
      _ = FileManager.default.createFile(atPath: path, contents: nil)
    }
    guard let h = FileHandle(forWritingAtPath: path) else {
      throw TrainError.io(path: path, message: "cannot open for writing")
    }
    h.seekToEndOfFile()
    handle = h
  }

  public func write(_ record: [String: Any]) {
    guard let h = handle, let data = try? JSONSerialization.data(withJSONObject: record, options: [.sortedKeys]) else { return }
    h.write(data)
    h.write(Data("\n".utf8))
  }

  deinit { try? handle?.close() }
}

/// Rank 0's one-line progress display with rate and ETA; on a terminal it
/// redraws in place, in a log file it prints a line every call.
public struct ProgressLine {
  let total: Int
  let start = Date()
  let startIteration: Int
  let isTTY = isatty(STDERR_FILENO) != 0

  public init(total: Int, startIteration: Int) { self.total = total; self.startIteration = startIteration }

  public func eta(at iteration: Int) -> (rate: Double, eta: Double) {
    let done = Double(iteration - startIteration)
    let dt = Date().timeIntervalSince(start)
    let rate = done > 0 ? done / dt : 0
    return (rate, rate > 0 ? Double(total - iteration) / rate : .infinity)
  }

  public func show(_ iteration: Int, _ fields: String) {
    let (rate, eta) = self.eta(at: iteration)
    let line = String(format: "iter %d/%d  %@  %.2f it/s  eta %@", iteration, total, fields, rate, formatDuration(eta))
    FileHandle.standardError.write(Data(((isTTY ? "\r\u{1B}[K" : "") + line + (isTTY ? "" : "\n")).utf8))
  }

  public func finish() { if isTTY { FileHandle.standardError.write(Data("\n".utf8)) } }
}

public func formatDuration(_ s: Double) -> String {
  guard s.isFinite else { return "--:--" }
  let t = Int(s.rounded())
  return t >= 3600 ? String(format: "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60) : String(format: "%02d:%02d", t / 60, t % 60)
}

/// Creates directory `path` and its parents for `what` ("work dir"), or
/// throws an error naming the part of the path that failed and why (a file in
/// the way, no permission, a read-only file system); Foundation's own error
/// says only "a file with the same name already exists".
public func makeDirectory(_ path: String, for what: String) throws {
  var isDirectory: ObjCBool = false
  if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
    guard isDirectory.boolValue else {
      throw TrainError.io(path: path, message: "\(what): a file of that name is in the way; pass a directory")
    }
    return
  }
  var prefix = path.hasPrefix("/") ? "/" : ""
  for part in path.split(separator: "/") {
    prefix += (prefix.isEmpty || prefix.hasSuffix("/") ? "" : "/") + part
    guard mkdir(prefix, 0o777) == 0 || errno == EEXIST else {
      throw TrainError.io(path: path, message: "cannot create the \(what): \(prefix): \(String(cString: strerror(errno)))")
    }
  }
  guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
    throw TrainError.io(path: path, message: "cannot create the \(what): a file in its path is in the way")
  }
}

public enum TrainError: Error, CustomStringConvertible {
  case io(path: String, message: String)
  case config(String)
  case nonFinite(iteration: Int, terms: String)
  case checkpoint(path: String, message: String)

  public var description: String {
    switch self {
    case let .io(p, m): return "\(p): \(m)"
    case let .config(m): return "config: \(m)"
    case let .nonFinite(i, t): return "iteration \(i): the loss is not finite (\(t)); lower the learning rate or set train.non_finite=skip"
    case let .checkpoint(p, m): return "checkpoint \(p): \(m)"
    }
  }
}
