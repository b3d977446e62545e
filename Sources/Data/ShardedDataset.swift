// Reading a packed split: the manifest, then every shard (memory-mapped, index
// checked at open). Random access by global record index; each read checks the
// record's checksum and decodes and maps its label through the manifest's
// label map, so a bad record is an error naming shard, record and source.
import Foundation

public final class ShardedDataset: SegmentationSource, @unchecked Sendable {  // immutable after init
  public let directory: String
  public let manifest: Manifest
  public let shards: [ShardFile]
  /// starts[s] = global index of shard s's first record.
  private let starts: [Int]

  public var count: Int { manifest.records }
  public var numClasses: Int { manifest.numClasses }

  /// Opens the split in `directory` (the folder holding manifest.json).
  public init(directory: String) throws {
    self.directory = directory
    let m = try Manifest.load(directory: directory)
    let mpath = (directory as NSString).appendingPathComponent(Manifest.fileName)
    var files: [ShardFile] = [], starts: [Int] = [], total = 0
    for info in m.shards {
      let path = (directory as NSString).appendingPathComponent(info.file)
      guard let attrs = try? FileManager.default.attributesOfItem(atPath: path),
            let size = (attrs[.size] as? NSNumber)?.intValue else {
        throw DataError.badManifest(path: mpath, "lists shard \(info.file), which is missing")
      }
      guard size == info.bytes else {
        throw DataError.badShard(file: info.file, "is \(size) bytes but the manifest says \(info.bytes) (truncated or replaced)")
      }
      let f = try ShardFile(path: path)
      guard f.count == info.records else {
        throw DataError.badManifest(path: mpath, "says shard \(info.file) holds \(info.records) records, its index has \(f.count)")
      }
      files.append(f); starts.append(total); total += f.count
    }
    manifest = m; shards = files; self.starts = starts
  }

  /// (shard, record within shard) of a global index.
  public func locate(_ index: Int) -> (shard: Int, record: Int) {
    precondition((0..<count).contains(index), "record \(index) out of range 0..<\(count)")
    var lo = 0, hi = starts.count - 1
    while lo < hi { let mid = (lo + hi + 1) / 2; if starts[mid] <= index { lo = mid } else { hi = mid - 1 } }
    return (lo, index - starts[lo])
  }

  public func record(at index: Int) throws -> ShardRecord {
    let (s, r) = locate(index)
    return try shards[s].record(r)
  }

  public func sample(at index: Int) throws -> SegSample {
    guard (0..<count).contains(index) else {
      throw DataError.invalidArgument("record \(index) out of range 0..<\(count) in \(directory)")
    }
    let (s, r) = locate(index)
    let rec = try shards[s].record(r)
    do {
      return try RecordCheck.decode(imageBytes: try rec.imageBytes(), labelBytes: try rec.labelBytes(),
                                    labelMap: manifest.labelMap, numClasses: numClasses, name: rec.name)
    } catch {
      throw DataError.badRecord(file: shards[s].fileName, record: r, source: rec.name, "\(error)")
    }
  }
}

/// `pack --verify`: everything a reader would check, for every record, plus the
/// whole-file checksums and sizes the manifest records.
public enum ShardVerifier {
  public struct Report: Sendable {
    public var splits: [String] = []
    public var recordsChecked = 0
    public var errors: [DataError] = []
  }

  /// Verifies `directory`: a split folder (with manifest.json) or a folder of split folders.
  /// Stops at the first error unless `all`.
  public static func verify(directory: String, all: Bool, threads: Int = 1, progress: Bool = false) -> Report {
    var report = Report()
    let fm = FileManager.default
    var splits: [String] = []
    if fm.fileExists(atPath: (directory as NSString).appendingPathComponent(Manifest.fileName)) {
      splits = [directory]
    } else {
      let subs = ((try? fm.contentsOfDirectory(atPath: directory)) ?? []).sorted()
      splits = subs.map { (directory as NSString).appendingPathComponent($0) }
        .filter { fm.fileExists(atPath: ($0 as NSString).appendingPathComponent(Manifest.fileName)) }
    }
    guard !splits.isEmpty else {
      report.errors.append(.badManifest(path: (directory as NSString).appendingPathComponent(Manifest.fileName),
                                        "no manifest.json here or in any subfolder: not a packed dataset"))
      return report
    }
    for split in splits {
      report.splits.append(split)
      verifySplit(split, all: all, threads: threads, progress: progress, into: &report)
      if !all && !report.errors.isEmpty { break }
    }
    return report
  }

  static func verifySplit(_ dir: String, all: Bool, threads: Int, progress: Bool, into report: inout Report) {
    let manifest: Manifest
    do { manifest = try Manifest.load(directory: dir) } catch { report.errors.append(asDataError(error)); return }
    for info in manifest.shards {
      if !all && !report.errors.isEmpty { return }
      let path = (dir as NSString).appendingPathComponent(info.file)
      guard FileManager.default.fileExists(atPath: path) else {
        report.errors.append(.badManifest(path: (dir as NSString).appendingPathComponent(Manifest.fileName),
                                          "lists shard \(info.file), which is missing")); continue
      }
      let before = report.errors.count
      let file: ShardFile
      do { file = try ShardFile(path: path) } catch { report.errors.append(asDataError(error)); continue }
      if file.byteCount != info.bytes {
        report.errors.append(.badShard(file: info.file, "is \(file.byteCount) bytes but the manifest says \(info.bytes) (truncated or replaced)"))
      }
      if file.count != info.records {
        report.errors.append(.badManifest(path: (dir as NSString).appendingPathComponent(Manifest.fileName),
                                          "says shard \(info.file) holds \(info.records) records, its index has \(file.count)"))
      }
      // Every record, in parallel; errors are kept in record order.
      let line = ProgressLine(label: "verify \(info.file)", total: file.count, enabled: progress)
      var found = [DataError?](repeating: nil, count: file.count)
      let lock = NSLock()
      var next = 0
      found.withUnsafeMutableBufferPointer { slots in
        let out = slots
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, file.count))) { _ in
          while true {
            lock.lock(); let i = next; next += 1; lock.unlock()
            if i >= file.count { return }
            out[i] = check(file, i, manifest)
            line.advance()
          }
        }
      }
      line.finish()
      report.recordsChecked += file.count
      report.errors += found.compactMap { $0 }
      // A whole-file checksum mismatch that no record check explains (e.g. in padding) still counts.
      let crc = file.fileChecksum()
      if report.errors.count == before && CRC32C.hex(crc) != info.crc32c {
        report.errors.append(.badShard(file: info.file, "file checksum \(CRC32C.hex(crc)) differs from the manifest's \(info.crc32c)"))
      }
    }
  }

  static func check(_ file: ShardFile, _ i: Int, _ m: Manifest) -> DataError? {
    let rec: ShardRecord
    do { rec = try file.record(i) } catch { return asDataError(error) }
    do {
      _ = try RecordCheck.decode(imageBytes: try rec.imageBytes(), labelBytes: try rec.labelBytes(),
                                 labelMap: m.labelMap, numClasses: m.numClasses, name: rec.name)
      return nil
    } catch {
      return .badRecord(file: file.fileName, record: i, source: rec.name, "\(error)")
    }
  }

  static func asDataError(_ e: Error) -> DataError { (e as? DataError) ?? .invalidArgument("\(e)") }
}
