// Checkpoints: one safetensors file per save, so PyTorch users can open them.
// Tensors: every parameter and buffer by its model name, AdamW's moments as
// `optimizer.exp_avg` / `optimizer.exp_avg_sq` (arena layout). Metadata: the
// trainer state (iteration, optimizer step, seed, world size at save time),
// the resolved config, and a CRC-32C over all tensor bytes, so a truncated or
// corrupted file is detected and `--resume auto` falls back to an older one.
//
// Written by rank 0 only: to a temporary name, fsynced, renamed
// (SafeTensors.write), then `latest` is moved the same way. Old files beyond
// `keep` are deleted only after the new one is in place.
import Data
import Foundation
import NN
import Tensor

public struct TrainerState: Equatable, Sendable {
  /// Completed optimizer updates.
  public var iteration: Int
  public var optimizerStep: Int
  public var seed: UInt64
  public var worldSize: Int
  /// The config YAML the run that wrote the checkpoint had ("" when unknown).
  public var config: String

  public init(iteration: Int, optimizerStep: Int, seed: UInt64, worldSize: Int, config: String = "") {
    self.iteration = iteration; self.optimizerStep = optimizerStep; self.seed = seed; self.worldSize = worldSize
    self.config = config
  }
}

public enum Checkpoint {
  static let format = "ecenet-dist-checkpoint"
  static let version = "1"

  public static func fileName(iteration: Int) -> String { String(format: "iter_%08d.safetensors", iteration) }

  static func checksum(_ tensors: [(name: String, tensor: Tensor)]) -> UInt32 {
    var crc: UInt32 = 0
    for (name, t) in tensors {
      crc = Array(name.utf8).withUnsafeBytes { CRC32C.update(crc, $0) }
      crc = CRC32C.update(crc, UnsafeRawBufferPointer(start: t.data, count: t.count * 4))
    }
    return crc
  }

  static func tensors(store: ParameterStore, optimizer: AdamW) -> [(name: String, tensor: Tensor)] {
    store.namedTensors + optimizer.namedStateTensors
  }

  /// Writes `dir/iter_N.safetensors`, moves `dir/latest`, prunes to `keep` files. Returns the path.
  @discardableResult
  public static func save(dir: String, state: TrainerState, store: ParameterStore, optimizer: AdamW,
                          config: String, keep: Int) throws -> String {
    try makeDirectory(dir, for: "checkpoint directory")
    let all = tensors(store: store, optimizer: optimizer)
    let meta: [String: String] = [
      "format": format, "version": version,
      "iteration": "\(state.iteration)", "optimizer_step": "\(state.optimizerStep)",
      "seed": "\(state.seed)", "world_size": "\(state.worldSize)",
      "checksum_crc32c": CRC32C.hex(checksum(all)), "config": config,
    ]
    let name = fileName(iteration: state.iteration)
    let url = URL(fileURLWithPath: dir).appendingPathComponent(name)
    do {
      try SafeTensors.write(all, metadata: meta, to: url)
    } catch {
      throw TrainError.checkpoint(path: url.path, message: "\(error) — the previous checkpoint is intact")
    }
    try writeAtomically(Data((name + "\n").utf8), to: (dir as NSString).appendingPathComponent("latest"))
    // Keep the newest `keep` checkpoints.
    let files = list(dir: dir)
    if keep > 0 && files.count > keep {
      for old in files.dropLast(keep) { try? FileManager.default.removeItem(atPath: old.path) }
    }
    return url.path
  }

  /// Checkpoints in `dir`, oldest first, with their iteration numbers.
  public static func list(dir: String) -> [(iteration: Int, path: String)] {
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
    return names.compactMap { n -> (Int, String)? in
      guard n.hasPrefix("iter_"), n.hasSuffix(".safetensors"),
            let it = Int(n.dropFirst(5).dropLast(12)) else { return nil }
      return (it, (dir as NSString).appendingPathComponent(n))
    }.sorted { $0.0 < $1.0 }.map { (iteration: $0.0, path: $0.1) }
  }

  /// Loads a checkpoint into the store and optimizer after verifying format and checksum.
  /// Nothing is modified when it throws.
  public static func load(path: String, store: ParameterStore, optimizer: AdamW) throws -> TrainerState {
    let file = try open(path, whatToPass: "a checkpoint file (checkpoints/iter_N.safetensors) or 'auto'")
    let meta = file.metadata
    guard meta["format"] == format else {
      throw TrainError.checkpoint(path: path, message: "not an ecenet-dist checkpoint (format '\(meta["format"] ?? "none")')")
    }
    guard meta["version"] == version else {
      throw TrainError.checkpoint(path: path, message: "checkpoint version \(meta["version"] ?? "?"), this build reads \(version)")
    }
    // Verify the checksum over the stored bytes, in the order we wrote them.
    let names = tensors(store: store, optimizer: optimizer).map(\.name)
    var loaded: [(name: String, tensor: Tensor)] = []
    for n in names {
      guard file.tensors[n] != nil else { throw TrainError.checkpoint(path: path, message: "missing tensor '\(n)'") }
      loaded.append((n, try file.tensor(n)))
    }
    let crc = CRC32C.hex(checksum(loaded))
    guard crc == meta["checksum_crc32c"] else {
      throw TrainError.checkpoint(path: path, message: "checksum mismatch (stored \(meta["checksum_crc32c"] ?? "none"), computed \(crc)): the file is corrupted")
    }
    guard let it = Int(meta["iteration"] ?? ""), let step = Int(meta["optimizer_step"] ?? ""),
          let seed = UInt64(meta["seed"] ?? ""), let ws = Int(meta["world_size"] ?? "") else {
      throw TrainError.checkpoint(path: path, message: "trainer state missing from metadata")
    }
    try loadWeights(file, into: store)
    try optimizer.loadState(from: file, step: step)
    return TrainerState(iteration: it, optimizerStep: step, seed: seed, worldSize: ws, config: meta["config"] ?? "")
  }

  /// Loads every parameter and buffer of `store` from a checkpoint or weights
  /// file; other tensors in the file (optimizer state) are not its business.
  /// Strict on names and shapes; nothing is written unless all match.
  public static func loadWeights(_ file: SafeTensorsFile, into store: ParameterStore) throws {
    var problems: [String] = []
    for (name, t) in store.namedTensors {
      guard let info = file.tensors[name] else { problems.append("missing '\(name)'"); continue }
      if info.shape != t.shape { problems.append("'\(name)': expected shape \(t.shape), found \(info.shape)") }
    }
    guard problems.isEmpty else {
      throw TrainError.checkpoint(path: file.path, message: "does not fit this model (\(problems.count) problem(s)): "
        + problems.prefix(8).joined(separator: "; ") + (problems.count > 8 ? "; …" : "")
        + ". Check that the config's model section matches the run that wrote it.")
    }
    for (name, t) in store.namedTensors { try file.read(name, into: t.data) }
  }

  /// Loads model weights only (eval, predict): from a checkpoint file, or from
  /// a directory's `latest`.
  /// `config`: the YAML of the config the model was built from; when the
  /// weights do not fit, the error names the model keys in which the run
  /// that wrote the checkpoint differed from it.
  public static func loadWeights(path: String, into store: ParameterStore, config: String? = nil) throws -> [String: String] {
    var isDir: ObjCBool = false
    var file = path
    if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
      guard let latest = try? String(contentsOfFile: (path as NSString).appendingPathComponent("latest"), encoding: .utf8) else {
        throw TrainError.checkpoint(path: path, message: "a directory without a 'latest' file; pass a checkpoint file")
      }
      file = (path as NSString).appendingPathComponent(latest.trimmingCharacters(in: .whitespacesAndNewlines))
    }
    let st = try open(file, whatToPass: "a checkpoint file or a run's checkpoints/ directory")
    do { try loadWeights(st, into: store) } catch TrainError.checkpoint(let p, let message) {
      let model = ConfigLoader.differences(from: st.metadata["config"] ?? "", to: config ?? "").filter { $0.hasPrefix("model.") }
      guard !model.isEmpty else { throw TrainError.checkpoint(path: p, message: message) }
      throw TrainError.checkpoint(path: p, message: message + " Its run's model differs from this config's: "
        + model.joined(separator: "; ") + " (run → this config); pass that run's config.yaml with --config.")
    }
    return st.metadata
  }

  /// The safetensors file at `path`; a missing one is named as such, with
  /// `whatToPass` as the fix, before the reader's own "cannot read".
  static func open(_ path: String, whatToPass: String) throws -> SafeTensorsFile {
    guard FileManager.default.fileExists(atPath: path) else {
      throw TrainError.checkpoint(path: path, message: "no such file; pass \(whatToPass)")
    }
    do { return try SafeTensorsFile(contentsOf: URL(fileURLWithPath: path)) } catch {
      throw TrainError.checkpoint(path: path, message: "unreadable: \(error)")
    }
  }

  /// The newest checkpoint in `dir` that loads, falling back past corrupted ones
  /// (each fallback is reported through `warn`). nil when there is none.
  public static func resumeLatest(dir: String, store: ParameterStore, optimizer: AdamW,
                                  warn: (String) -> Void) -> (TrainerState, String)? {
    for c in list(dir: dir).reversed() {
      do {
        return (try load(path: c.path, store: store, optimizer: optimizer), c.path)
      } catch {
        warn("skipping checkpoint: \(error); trying an older one")
      }
    }
    return nil
  }

  static func writeAtomically(_ data: Data, to path: String) throws {
    let tmp = path + ".tmp-\(getpid())"
    guard FileManager.default.createFile(atPath: tmp, contents: data),
          let h = FileHandle(forWritingAtPath: tmp) else {
      throw TrainError.io(path: path, message: "cannot write (disk full or read-only?)")
    }
    try? h.synchronize(); try? h.close()
    guard rename(tmp, path) == 0 else {
      try? FileManager.default.removeItem(atPath: tmp)
      throw TrainError.io(path: path, message: "rename failed: \(String(cString: strerror(errno)))")
    }
  }
}
