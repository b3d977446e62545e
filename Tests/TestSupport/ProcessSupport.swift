import Foundation

/// The `ecenet-dist` executable built next to this test bundle.
public func executablePath() -> String {
  let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  var candidate = dir.appendingPathComponent("ecenet-dist").path
  if !FileManager.default.fileExists(atPath: candidate) {
    // `swift test` may run the bundle from inside the .xctest directory.
    candidate = dir.deletingLastPathComponent().appendingPathComponent("ecenet-dist").path
  }
  return candidate
}

/// mpirun arguments that work as root and with more ranks than cores.
public func mpirunArgs(ranks: Int) -> [String] {
  ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-n", "\(ranks)",
   "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo"]
}

/// Runs a process to completion, returning its exit code and merged output.
public func runProcess(_ path: String, _ args: [String], environment: [String: String] = [:],
                timeout: TimeInterval = 120) throws -> (Int32, String) {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: path)
  p.arguments = args
  var env = ProcessInfo.processInfo.environment
  env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
  env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
  for (k, v) in environment { env[k] = v }
  p.environment = env
  let pipe = Pipe()
  p.standardOutput = pipe
  p.standardError = pipe
  try p.run()
  let deadline = Date().addingTimeInterval(timeout)
  // Read on another thread so a chatty child never blocks on a full pipe.
  final class Box: @unchecked Sendable { var data = Data() }
  let box = Box()
  let group = DispatchGroup()
  group.enter()
  DispatchQueue.global().async { box.data = pipe.fileHandleForReading.readDataToEndOfFile(); group.leave() }
  while p.isRunning && Date() < deadline { usleep(20_000) }
  if p.isRunning { p.terminate(); kill(p.processIdentifier, SIGKILL) }
  p.waitUntilExit()
  group.wait()
  return (p.terminationStatus, String(decoding: box.data, as: UTF8.self))
}

/// A fresh temporary directory for one test.
public func makeTempDir(_ tag: String) -> String {
  let p = FileManager.default.temporaryDirectory.appendingPathComponent("ecenet-\(tag)-\(UUID().uuidString.prefix(8))").path
  try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
  return p
}

/// The repository root (for configs/), found from this file's location.
public func repoRoot() -> String {
  URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
}

/// Runs `ecenet-dist ARGS` on `ranks` MPI ranks (1 = plain process, no mpirun).
public func runRanks(_ ranks: Int, _ args: [String], environment: [String: String] = [:], timeout: TimeInterval = 300) throws -> (Int32, String) {
  if ranks == 1 { return try runProcess(executablePath(), args, environment: environment, timeout: timeout) }
  var mpi = mpirunArgs(ranks: ranks)
  for k in environment.keys.sorted() { mpi += ["-x", k] }
  return try runProcess("/usr/bin/env", mpi + [executablePath()] + args, environment: environment, timeout: timeout)
}

/// The train records of a work dir's metrics.jsonl, in order.
public func trainRecords(_ workDir: String) -> [[String: Any]] {
  guard let text = try? String(contentsOfFile: workDir + "/metrics.jsonl", encoding: .utf8) else { return [] }
  return text.split(separator: "\n").compactMap {
    (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any]
  }.filter { $0["type"] as? String == "train" }
}

/// A process running in the background, its merged output collected.
public final class Background: @unchecked Sendable {
  public let process = Process()
  private let lock = NSLock()
  private var buffer = Data()

  public init(_ path: String, _ args: [String], environment: [String: String] = [:]) throws {
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = args
    var env = ProcessInfo.processInfo.environment
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    for (k, v) in environment { env[k] = v }
    process.environment = env
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    pipe.fileHandleForReading.readabilityHandler = { [weak self] h in
      let d = h.availableData
      guard let self = self, !d.isEmpty else { return }
      self.lock.lock(); self.buffer.append(d); self.lock.unlock()
    }
    try process.run()
  }

  public var output: String { lock.lock(); defer { lock.unlock() }; return String(decoding: buffer, as: UTF8.self) }

  /// Waits until `condition` holds or `timeout` passes; returns whether it held.
  @discardableResult
  public static func waitUntil(timeout: TimeInterval, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end { if condition() { return true }; usleep(50_000) }
    return condition()
  }

  /// Waits for exit (killing the process after `timeout`); returns the status.
  public func wait(timeout: TimeInterval) -> Int32 {
    if !Background.waitUntil(timeout: timeout, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    usleep(100_000)  // let the reader drain
    return process.terminationStatus
  }
}
