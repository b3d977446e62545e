// `pack`: turns a DatasetSpec into shards and a manifest. Each input is read,
// fully decoded and checked (image decodes, label decodes, sizes match, every
// label value is valid under the label map) before its original bytes are
// stored, so a packed dataset never holds a record the loader would reject.
//
// Parallel over inputs within each shard (concurrentPerform); the output is
// byte-identical for any thread count because records are placed by their
// sorted position, not by completion order.
import Foundation

public struct PackOptions: Sendable {
  public var recordsPerShard = 1000
  /// A shard is also closed once its records reach this many bytes (it is built in memory).
  public var maxShardBytes = 256 << 20
  public var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
  /// Skip bad inputs (and record them in the manifest) instead of failing.
  public var skipBad = false
  public var zstdLevel: Int32 = 3
  /// Progress and ETA on stderr.
  public var progress = true
  public init() {}
}

public struct PackReport: Sendable {
  public var directory: String
  public var records: Int
  public var skipped: [SkippedInput]
  public var shards: Int
  public var shardBytes: Int
  public var sourceBytes: Int
}

/// Decodes and checks a record's bytes: the rule `pack`, `--verify` and the loader share.
public enum RecordCheck {
  public static func decode(imageBytes: [UInt8], labelBytes: [UInt8], labelMap: LabelMap,
                            numClasses: Int, name: String) throws -> SegSample {
    let image: Image8, raw: Image8
    do { image = try ImageCodec.decodeRGB(imageBytes) } catch { throw Failure("image does not decode: \(error)") }
    do { raw = try PNGCodec.decodeLabel(labelBytes) } catch { throw Failure("label does not decode: \(error)") }
    guard image.width == raw.width, image.height == raw.height else {
      throw Failure("image is \(image.width)×\(image.height) but its label is \(raw.width)×\(raw.height)")
    }
    let mapped: [UInt8]
    do { mapped = try labelMap.apply(raw.pixels, numClasses: numClasses) } catch let e as DataError {
      throw Failure("label: \(e)")
    }
    return SegSample(image: image, label: Image8(width: raw.width, height: raw.height, channels: 1, pixels: mapped), name: name)
  }

  /// A reason without a location; callers wrap it into the DataError case that names the place.
  public struct Failure: Error, CustomStringConvertible {
    public var description: String
    init(_ d: String) { description = d }
  }
}

public enum Packer {
  public static func pack(_ spec: DatasetSpec, into outRoot: String, options: PackOptions = PackOptions()) throws -> PackReport {
    guard options.recordsPerShard > 0 else { throw DataError.invalidArgument("--records-per-shard must be positive") }
    let fm = FileManager.default
    let out = (outRoot as NSString).appendingPathComponent(spec.split)
    if fm.fileExists(atPath: (out as NSString).appendingPathComponent(Manifest.fileName)) {
      throw DataError.io(path: out, "already holds a packed split (manifest.json); choose another --out or remove it")
    }
    do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
      throw DataError.io(path: out, "cannot create the output directory: \(error.localizedDescription)")
    }
    var skipped: [SkippedInput] = []
    if let first = spec.unpaired.first {
      guard options.skipBad else { throw DataError.badInput(source: first.source, first.reason) }
      skipped += spec.unpaired
    }
    let progress = ProgressLine(label: "pack \(spec.dataset) \(spec.split)", total: spec.inputs.count, enabled: options.progress)
    var shards: [ShardInfo] = [], pending: [ShardRecord] = [], pendingBytes = 0
    var records = 0, sourceBytes = 0, shardBytes = 0
    var written: [String] = []
    func flush(_ recs: [ShardRecord]) throws {
      var w = ShardWriter()
      for r in recs { w.append(r) }
      let bytes = w.finish()
      let file = String(format: "shard-%05d.ecs", shards.count)
      let path = (out as NSString).appendingPathComponent(file)
      try writeAtomically(bytes, to: path)
      written.append(path)
      shards.append(ShardInfo(file: file, records: recs.count, bytes: bytes.count, crc32c: CRC32C.hex(CRC32C.checksum(bytes))))
      shardBytes += bytes.count
    }
    do {
      var start = 0
      while start < spec.inputs.count {
        let chunk = Array(spec.inputs[start..<min(spec.inputs.count, start + options.recordsPerShard)])
        start += chunk.count
        let results = encodeAll(chunk, spec: spec, options: options, progress: progress)
        for (input, result) in zip(chunk, results) {
          switch result {
          case .success(let (rec, size)):
            pending.append(rec); records += 1; sourceBytes += size
            pendingBytes += rec.image.count + rec.label.count
            // Shard boundaries depend only on the inputs, so the output stays deterministic.
            if pending.count >= options.recordsPerShard || pendingBytes >= options.maxShardBytes {
              try flush(pending); pending.removeAll(keepingCapacity: true); pendingBytes = 0
            }
          case .failure(let e):
            guard options.skipBad else { throw DataError.badInput(source: input.name, e.description) }
            skipped.append(SkippedInput(source: input.name, reason: e.description))
          }
        }
      }
      if !pending.isEmpty { try flush(pending) }
      progress.finish()
      guard records > 0 else {
        throw DataError.emptySplit("\(spec.dataset) split \"\(spec.split)\": every one of the \(spec.inputs.count + spec.unpaired.count) inputs was bad")
      }
      let manifest = Manifest(dataset: spec.dataset, split: spec.split, numClasses: spec.numClasses,
                              classNames: spec.classNames, palette: spec.palette, labelMap: spec.labelMap,
                              records: records, skipped: skipped, sourceBytes: sourceBytes,
                              shardBytes: shardBytes, shards: shards)
      try writeAtomically(Array(try manifest.encoded()), to: (out as NSString).appendingPathComponent(Manifest.fileName))
    } catch {
      progress.finish()
      // Leave no half-written split behind: without a manifest it could only confuse.
      for p in written { try? fm.removeItem(atPath: p) }
      throw error
    }
    return PackReport(directory: out, records: records, skipped: skipped, shards: shards.count,
                      shardBytes: shardBytes, sourceBytes: sourceBytes)
  }

  /// Reads, checks and encodes `inputs` on `options.threads` threads; results in input order.
  static func encodeAll(_ inputs: [PackInput], spec: DatasetSpec, options: PackOptions,
                        progress: ProgressLine) -> [Result<(ShardRecord, Int), RecordCheck.Failure>] {
    var results = [Result<(ShardRecord, Int), RecordCheck.Failure>?](repeating: nil, count: inputs.count)
    let lock = NSLock()
    var next = 0
    results.withUnsafeMutableBufferPointer { slots in
      let slotsPtr = slots  // each index is written by exactly one thread
      DispatchQueue.concurrentPerform(iterations: max(1, min(options.threads, inputs.count))) { _ in
        while true {
          lock.lock(); let i = next; next += 1; lock.unlock()
          if i >= inputs.count { return }
          let r = Result { try encode(inputs[i], spec: spec, level: options.zstdLevel) }
            .mapError { ($0 as? RecordCheck.Failure) ?? RecordCheck.Failure("\($0)") }
          slotsPtr[i] = r
          progress.advance()
        }
      }
    }
    return results.map { $0! }
  }

  static func encode(_ input: PackInput, spec: DatasetSpec, level: Int32) throws -> (ShardRecord, Int) {
    guard let image = FileManager.default.contents(atPath: input.imagePath) else {
      throw RecordCheck.Failure("cannot read image file \(input.imagePath)")
    }
    guard let label = FileManager.default.contents(atPath: input.labelPath) else {
      throw RecordCheck.Failure("cannot read label file \(input.labelPath)")
    }
    let img = [UInt8](image), lab = [UInt8](label)
    _ = try RecordCheck.decode(imageBytes: img, labelBytes: lab, labelMap: spec.labelMap,
                               numClasses: spec.numClasses, name: input.name)
    func squeeze(_ b: [UInt8]) throws -> ([UInt8], ShardRecord.Encoding) {
      let z = try Zstd.compress(b, level: level)
      return z.count < b.count ? (z, .zstd) : (b, .raw)
    }
    let (si, ei) = try squeeze(img), (sl, el) = try squeeze(lab)
    return (ShardRecord(name: input.name, image: si, imageEncoding: ei, label: sl, labelEncoding: el), img.count + lab.count)
  }

  /// Write to a temporary name, then rename: a crash never leaves a file under the final name.
  static func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    let tmp = path + ".tmp"
    guard FileManager.default.createFile(atPath: tmp, contents: Data(bytes)) else {
      throw DataError.io(path: tmp, "cannot write")
    }
    if FileManager.default.fileExists(atPath: path) { try? FileManager.default.removeItem(atPath: path) }
    do { try FileManager.default.moveItem(atPath: tmp, toPath: path) } catch {
      throw DataError.io(path: path, "cannot rename from \(tmp): \(error.localizedDescription)")
    }
  }
}

/// One self-overwriting progress line with rate and ETA on stderr, at most twice a second.
public final class ProgressLine: @unchecked Sendable {  // state behind `lock`
  let label: String, total: Int, enabled: Bool
  private let lock = NSLock()
  private var done = 0
  private let start = Date()
  private var lastPrint = Date.distantPast

  public init(label: String, total: Int, enabled: Bool) {
    self.label = label; self.total = total; self.enabled = enabled
  }

  public func advance(_ n: Int = 1) {
    lock.lock(); defer { lock.unlock() }
    done += n
    guard enabled, Date().timeIntervalSince(lastPrint) >= 0.5 else { return }
    lastPrint = Date(); print(final: false)
  }

  public func finish() {
    lock.lock(); defer { lock.unlock() }
    if enabled { print(final: true) }
  }

  private func print(final: Bool) {
    let t = Date().timeIntervalSince(start)
    let rate = t > 0 ? Double(done) / t : 0
    let eta = rate > 0 ? Double(total - done) / rate : 0
    let pct = total > 0 ? 100 * Double(done) / Double(total) : 100
    let line = String(format: "\r%@: %d/%d (%.1f%%) %.1f/s %@ %@", label, done, total, pct, rate,
                      final ? "took" : "ETA", ProgressLine.clock(final ? t : eta)) + (final ? "\n" : "")
    FileHandle.standardError.write(line.data(using: .utf8)!)
  }

  static func clock(_ s: Double) -> String {
    let x = Int(s.rounded())
    return x >= 3600 ? String(format: "%dh%02dm%02ds", x / 3600, x / 60 % 60, x % 60) : String(format: "%dm%02ds", x / 60, x % 60)
  }
}
