import Foundation

/// The `ecenet-dist` executable built next to this test bundle.
func executablePath() -> String {
  let dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
  var candidate = dir.appendingPathComponent("ecenet-dist").path
  if !FileManager.default.fileExists(atPath: candidate) {
    // `swift test` may run the bundle from inside the .xctest directory.
    candidate = dir.deletingLastPathComponent().appendingPathComponent("ecenet-dist").path
  }
  return candidate
}

/// mpirun arguments that work as root and with more ranks than cores.
func mpirunArgs(ranks: Int) -> [String] {
  ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-n", "\(ranks)",
   "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo"]
}

/// Runs a process to completion, returning its exit code and merged output.
func runProcess(_ path: String, _ args: [String], environment: [String: String] = [:],
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
