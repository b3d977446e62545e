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

/// This process's environment plus what mpirun needs as root, plus `extra`.
public func childEnvironment(_ extra: [String: String]) -> [String: String] {
  var env = ProcessInfo.processInfo.environment
  env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
  env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
  for (k, v) in extra { env[k] = v }
  return env
}

/// Runs a process to completion, returning its exit code and merged output.
public func runProcess(_ path: String, _ args: [String], environment: [String: String] = [:],
                timeout: TimeInterval = 120) throws -> (Int32, String) {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: path)
  p.arguments = args
  p.environment = childEnvironment(environment)
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
    process.environment = childEnvironment(environment)
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

  /// Waits until `condition` holds or `timeout` passes, checking every `interval`
  /// seconds; returns whether it held.
  @discardableResult
  public static func waitUntil(timeout: TimeInterval, every interval: TimeInterval = 0.05,
                               _ condition: () throws -> Bool) rethrows -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end { if try condition() { return true }; usleep(useconds_t(interval * 1e6)) }
    return try condition()
  }

  /// Waits for exit (killing the process after `timeout`); returns the status.
  public func wait(timeout: TimeInterval) -> Int32 {
    if !Background.waitUntil(timeout: timeout, { !process.isRunning }) { kill(process.processIdentifier, SIGKILL) }
    process.waitUntilExit()
    usleep(100_000)  // let the reader drain
    return process.terminationStatus
  }
}

// Cluster-test helpers (Slurm, network namespaces).

/// The repository root (this file is Tests/DistTests/ProcessSupport.swift).
public func repositoryRoot() -> URL {
  URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// Runs `argv` (looked up in PATH) under coreutils `timeout`, which puts it in a
/// process group of its own and on expiry sends SIGTERM to the whole group, then
/// SIGKILL 5 s later: children such as srun's or mpirun's go too. Output reading
/// is bounded as well, so a daemon that escaped the group and kept the pipe open
/// cannot hang the test. `timedOut` is true when `timeout` ended the command.
public func runBounded(_ argv: [String], timeout seconds: Int = 60, environment: [String: String] = [:],
                directory: URL? = nil) throws -> (status: Int32, output: String, timedOut: Bool) {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
  p.arguments = ["-k", "5", "\(seconds)"] + argv
  var env = ProcessInfo.processInfo.environment
  env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
  env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
  for (k, v) in environment { env[k] = v }
  p.environment = env
  if let directory { p.currentDirectoryURL = directory }
  let pipe = Pipe()
  p.standardOutput = pipe
  p.standardError = pipe
  p.standardInput = FileHandle.nullDevice
  try p.run()
  final class Box: @unchecked Sendable {
    let lock = NSLock()
    var data = Data()
  }
  let box = Box()
  let done = DispatchSemaphore(value: 0)
  let reader = pipe.fileHandleForReading
  DispatchQueue.global().async {
    while true {
      let chunk = reader.availableData
      if chunk.isEmpty { break }
      box.lock.lock(); box.data.append(chunk); box.lock.unlock()
    }
    done.signal()
  }
  // `timeout` itself ends by seconds + 5; the margin covers a slow start.
  let deadline = Date().addingTimeInterval(TimeInterval(seconds) + 20)
  while p.isRunning && Date() < deadline { usleep(20_000) }
  if p.isRunning { kill(p.processIdentifier, SIGKILL) }
  p.waitUntilExit()
  _ = done.wait(timeout: .now() + 5)
  box.lock.lock(); let data = box.data; box.lock.unlock()
  let status = p.terminationStatus
  return (status, String(decoding: data, as: UTF8.self), status == 124 || status == 137)
}

/// Whether `name` is an executable on PATH.
public func commandExists(_ name: String) -> Bool {
  let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
  return path.split(separator: ":").contains { FileManager.default.isExecutableFile(atPath: "\($0)/\(name)") }
}

/// A TCP port that nothing listens on right now (the kernel's pick for port 0).
public func freeTCPPort() -> Int? {
  let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
  guard fd >= 0 else { return nil }
  defer { close(fd) }
  var addr = sockaddr_in()
  addr.sin_family = sa_family_t(AF_INET)
  addr.sin_port = 0
  addr.sin_addr.s_addr = INADDR_ANY
  var len = socklen_t(MemoryLayout<sockaddr_in>.size)
  let bound = withUnsafeMutablePointer(to: &addr) {
    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
  }
  return bound ? Int(UInt16(bigEndian: addr.sin_port)) : nil
}

/// The lines of an `ecenet-dist selftest mpi` run that every rank of a world of
/// `n` must print: the sums, average, broadcast and gather it saw.
public func expectedSelftestMPILines(worldSize n: Int) -> [String] {
  let tri = n * (n + 1) / 2
  let avg = Float((0..<n).reduce(0, +)) / Float(n)
  let gather = (0..<n).map { "rank\($0)" }.joined(separator: ",")
  return (0..<n).map { "rank=\($0) size=\(n) allreduce_ok=true sum0=\(Float(tri)) avg=\(avg) bcast=3.5,-1.0,42.0 gather=\(gather)" }
}
