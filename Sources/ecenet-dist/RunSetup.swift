// What `train`, `eval` and `predict` share: config loading (before any MPI
// work, so a typo fails fast and once), the world, the thread count, and the
// rule that a failing rank takes the whole job down with a message naming it.
import ArgumentParser
import Dist
import Foundation
import Tensor
import Train

enum RunSetup {
  /// World size announced by the launcher, known before MPI is initialised.
  static var launcherWorldSize: Int {
    let env = ProcessInfo.processInfo.environment
    for k in ["OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "SLURM_NTASKS", "PMI_SIZE"] {
      if let v = env[k], let n = Int(v), n > 0, MPICommunicator.launchedByMPI { return n }
    }
    return 1
  }

  static var launcherRank: Int {
    let env = ProcessInfo.processInfo.environment
    for k in ["OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "PMI_RANK"] {
      if let v = env[k], let n = Int(v) { return n }
    }
    return 0
  }

  /// Threads per rank: flag, then config, then ECENET_THREADS, else this
  /// rank's share of the cores (so N local ranks never oversubscribe them).
  static func configureThreads(flag: Int?, config: Int) {
    let env = ProcessInfo.processInfo.environment
    if let n = flag ?? (config > 0 ? config : nil) { Parallel.threads = n; return }
    if let s = env["ECENET_THREADS"], let n = Int(s), n > 0 { Parallel.threads = n; return }
    let local = Int(env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? env["SLURM_NTASKS_PER_NODE"] ?? "1") ?? 1
    Parallel.threads = max(1, ProcessInfo.processInfo.activeProcessorCount / max(1, local))
  }

  static func loadConfig(_ path: String?, overrides: [String], iterations: Int?) throws -> TrainConfig {
    guard let path = path else { throw ValidationError("--config FILE is required (see configs/)") }
    do {
      return try TrainConfig.load(file: path, overrides: overrides)
    } catch {
      throw configFailure(error)
    }
  }

  /// Writes `bytes` to dir/name atomically; a failure names the file (a full
  /// disk or no permission would hit every file, so callers let it end the command).
  static func writeOutput(_ bytes: [UInt8], in dir: String, name: String) throws {
    let path = (dir as NSString).appendingPathComponent(name)
    do { try Data(bytes).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
      throw TrainError.io(path: path, message: "cannot write: \(error.localizedDescription)")
    }
  }

  /// A config error ends the command as bad usage does (status 64) but shows
  /// the message alone: the usage lines say nothing about a key or a value.
  static func configFailure(_ error: Error) -> Error {
    FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
    return ExitCode(64)
  }

  /// Runs `body` in the world; any error ends every rank (MPI_Abort) after
  /// printing it with this rank's number, so a job never hangs on a dead rank.
  static func inWorld(_ body: (Communicator) throws -> Int32) -> Never {
    let world: Communicator
    do { world = try makeWorld() } catch {
      FileHandle.standardError.write(Data("ecenet-dist: rank \(launcherRank): \(error)\n".utf8))
      exit(1)
    }
    let code: Int32
    do {
      code = try body(world)
    } catch {
      let msg = "ecenet-dist: rank \(world.rank) of \(world.worldSize) failed: \(error)\n"
      FileHandle.standardError.write(Data(msg.utf8))
      if world.worldSize > 1 { world.abort(code: 1) }
      exit(1)
    }
    if let m = world as? MPICommunicator {
      _ = try? m.barrier()
      m.finalize()
    }
    exit(code)
  }
}
