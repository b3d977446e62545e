// The shard file: immutable, checksummed records with the index at the end.
// Byte layout (all integers little-endian; docs/data.md has the same table):
//
//   header  (16 B)  magic "ECESHARD" | version u32 (=1) | header size u32 (=16)
//   record i        magic u32 "ERec" | crc32c u32 of the rest of the record |
//                   image length u32 | label length u32 | name length u16 |
//                   image encoding u8 | label encoding u8 | name | image | label
//   index   (16 B × n)  record offset u64 | record length u32 | record crc32c u32
//   footer  (24 B)  index offset u64 | record count u32 | index crc32c u32 | magic "ECEINDEX"
//
// Encoding 0 = the source file's bytes as they were (JPEG or PNG); 1 = zstd
// of those bytes (used only when it makes them smaller). The footer at the end
// means a writer that died midway leaves a file that cannot be mistaken for a
// complete one, and a reader finds every record without scanning.
import Foundation

public enum ShardFormat {
  public static let magic: [UInt8] = Array("ECESHARD".utf8)
  public static let footerMagic: [UInt8] = Array("ECEINDEX".utf8)
  public static let recordMagic: UInt32 = 0x6365_5245  // "ERec" read little-endian
  public static let version: UInt32 = 1
  public static let headerSize = 16
  public static let recordHeaderSize = 20
  public static let indexEntrySize = 16
  public static let footerSize = 24
}

/// One record as stored: the source name and the encoded image and label bytes.
public struct ShardRecord: Equatable, Sendable {
  public enum Encoding: UInt8, Sendable { case raw = 0, zstd = 1 }
  public var name: String
  public var image: [UInt8]
  public var imageEncoding: Encoding
  public var label: [UInt8]
  public var labelEncoding: Encoding

  public init(name: String, image: [UInt8], imageEncoding: Encoding, label: [UInt8], labelEncoding: Encoding) {
    self.name = name; self.image = image; self.imageEncoding = imageEncoding
    self.label = label; self.labelEncoding = labelEncoding
  }

  /// The image file's original bytes (zstd undone).
  public func imageBytes() throws -> [UInt8] { imageEncoding == .zstd ? try Zstd.decompress(image) : image }
  public func labelBytes() throws -> [UInt8] { labelEncoding == .zstd ? try Zstd.decompress(label) : label }

  /// Serialises the record, checksum included.
  func encoded() -> [UInt8] {
    let nameBytes = Array(name.utf8)
    var out = [UInt8]()
    out.reserveCapacity(ShardFormat.recordHeaderSize + nameBytes.count + image.count + label.count)
    out.appendLE(ShardFormat.recordMagic)
    out.appendLE(UInt32(0))  // checksum, filled below
    out.appendLE(UInt32(image.count))
    out.appendLE(UInt32(label.count))
    out.appendLE(UInt16(nameBytes.count))
    out.append(imageEncoding.rawValue)
    out.append(labelEncoding.rawValue)
    out += nameBytes; out += image; out += label
    let crc = out.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[8...])) }
    withUnsafeBytes(of: crc.littleEndian) { c in for k in 0..<4 { out[4 + k] = c[k] } }
    return out
  }
}

/// Builds one shard in memory; `finish()` returns the complete file's bytes.
public struct ShardWriter {
  private var bytes: [UInt8]
  private var index: [(offset: UInt64, length: UInt32, crc: UInt32)] = []

  public init() {
    bytes = ShardFormat.magic
    bytes.appendLE(ShardFormat.version)
    bytes.appendLE(UInt32(ShardFormat.headerSize))
  }

  public var count: Int { index.count }
  public var byteCount: Int { bytes.count }

  public mutating func append(_ record: ShardRecord) {
    let r = record.encoded()
    let crc = r.withUnsafeBytes { $0.readLE(UInt32.self, at: 4) }
    index.append((UInt64(bytes.count), UInt32(r.count), crc))
    bytes += r
  }

  public func finish() -> [UInt8] {
    var out = bytes
    let indexOffset = UInt64(out.count)
    var idx = [UInt8]()
    for e in index { idx.appendLE(e.offset); idx.appendLE(e.length); idx.appendLE(e.crc) }
    out += idx
    out.appendLE(indexOffset)
    out.appendLE(UInt32(index.count))
    out.appendLE(CRC32C.checksum(idx))
    out += ShardFormat.footerMagic
    return out
  }
}

/// A shard opened for reading: the file is memory-mapped, the header, footer
/// and index are checked at open; each record's checksum is checked when read.
public final class ShardFile: @unchecked Sendable {  // immutable after init; Data is read-only
  public let path: String
  public let count: Int
  private let data: Data
  private let offsets: [Int]
  private let lengths: [Int]
  private let crcs: [UInt32]

  public init(path: String) throws {
    self.path = path
    let name = (path as NSString).lastPathComponent
    let d: Data
    do { d = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
      throw DataError.badShard(file: path, "cannot read: \(error.localizedDescription)")
    }
    data = d
    let size = d.count
    func bad(_ m: String) -> DataError { .badShard(file: name, m) }
    guard size >= ShardFormat.headerSize else { throw bad("\(size) bytes, too short for the 16-byte header (truncated?)") }
    let parsed: (Int, [Int], [Int], [UInt32]) = try d.withUnsafeBytes { (p: UnsafeRawBufferPointer) in
      let head = Array(p[0..<8])
      guard head == ShardFormat.magic else {
        throw bad("wrong magic \(head.map { String(format: "%02x", $0) }.joined()) (expected \"ECESHARD\"): not a shard file")
      }
      let version = p.readLE(UInt32.self, at: 8)
      guard version == ShardFormat.version else {
        throw bad("format version \(version), this build reads version \(ShardFormat.version); repack with this build")
      }
      guard p.readLE(UInt32.self, at: 12) == UInt32(ShardFormat.headerSize) else {
        throw bad("header size field is \(p.readLE(UInt32.self, at: 12)), expected \(ShardFormat.headerSize): corrupt header")
      }
      guard size >= ShardFormat.headerSize + ShardFormat.footerSize,
            Array(p[(size - 8)..<size]) == ShardFormat.footerMagic else {
        throw bad("footer magic missing: the file is truncated or was not completely written (\(size) bytes)")
      }
      let f = size - ShardFormat.footerSize
      let indexOffset = Int(clamping: p.readLE(UInt64.self, at: f))  // a corrupt value must not trap
      let n = Int(p.readLE(UInt32.self, at: f + 8))
      let indexCRC = p.readLE(UInt32.self, at: f + 12)
      guard indexOffset >= ShardFormat.headerSize, indexOffset + n * ShardFormat.indexEntrySize == f else {
        throw bad("footer says \(n) records with the index at \(indexOffset), which does not fit a \(size)-byte file (truncated or corrupt)")
      }
      let idx = UnsafeRawBufferPointer(rebasing: p[indexOffset..<f])
      let got = CRC32C.checksum(idx)
      guard got == indexCRC else {
        throw bad("index checksum \(CRC32C.hex(got)) differs from the footer's \(CRC32C.hex(indexCRC)): the index is corrupt")
      }
      var offs = [Int](), lens = [Int](), cs = [UInt32]()
      var expected = ShardFormat.headerSize
      for i in 0..<n {
        let e = i * ShardFormat.indexEntrySize
        let o = Int(clamping: idx.readLE(UInt64.self, at: e)), l = Int(idx.readLE(UInt32.self, at: e + 8))
        guard o == expected, l >= ShardFormat.recordHeaderSize, o + l <= indexOffset else {
          throw bad("index entry \(i) (offset \(o), length \(l)) does not follow the previous record (expected offset \(expected))")
        }
        expected = o + l
        offs.append(o); lens.append(l); cs.append(idx.readLE(UInt32.self, at: e + 12))
      }
      guard expected == indexOffset else { throw bad("records end at \(expected) but the index starts at \(indexOffset)") }
      return (n, offs, lens, cs)
    }
    (count, offsets, lengths, crcs) = parsed
  }

  public var fileName: String { (path as NSString).lastPathComponent }
  public var byteCount: Int { data.count }

  /// CRC-32C of the whole file (what the manifest records), read through the mapping.
  public func fileChecksum() -> UInt32 { data.withUnsafeBytes { CRC32C.checksum($0) } }

  /// Reads and checks record `i`. `source` in errors is the record's name when it can be read.
  public func record(_ i: Int) throws -> ShardRecord {
    guard (0..<count).contains(i) else {
      throw DataError.badRecord(file: fileName, record: i, source: "?", "index out of range 0..<\(count)")
    }
    let o = offsets[i], l = lengths[i]
    return try data.withUnsafeBytes { (all: UnsafeRawBufferPointer) in
      let p = UnsafeRawBufferPointer(rebasing: all[o..<(o + l)])
      let nameLen = Int(p.readLE(UInt16.self, at: 16))
      let hdr = ShardFormat.recordHeaderSize
      // The name is read before the checksum so the error can name the source;
      // it is only a label for the message until the checksum has passed.
      let nameGuess = hdr + nameLen <= l
        ? String(decoding: UnsafeRawBufferPointer(rebasing: p[hdr..<(hdr + nameLen)]), as: UTF8.self) : "?"
      func bad(_ m: String) -> DataError { .badRecord(file: fileName, record: i, source: nameGuess, m) }
      guard p.readLE(UInt32.self, at: 0) == ShardFormat.recordMagic else { throw bad("record magic missing") }
      let stored = p.readLE(UInt32.self, at: 4)
      let got = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: p[8...]))
      guard got == stored, got == crcs[i] else {
        throw bad("checksum mismatch (stored \(CRC32C.hex(stored)), index \(CRC32C.hex(crcs[i])), computed \(CRC32C.hex(got))): the record is corrupt (its source name, read from the damaged record, may be damaged too)")
      }
      let il = Int(p.readLE(UInt32.self, at: 8)), ll = Int(p.readLE(UInt32.self, at: 12))
      guard hdr + nameLen + il + ll == l else { throw bad("lengths \(nameLen)+\(il)+\(ll) do not add up to the record's \(l) bytes") }
      guard let ie = ShardRecord.Encoding(rawValue: p[18]), let le = ShardRecord.Encoding(rawValue: p[19]) else {
        throw bad("unknown encoding \(p[18])/\(p[19])")
      }
      let s = hdr + nameLen
      return ShardRecord(name: nameGuess, image: Array(p[s..<(s + il)]), imageEncoding: ie,
                         label: Array(p[(s + il)..<(s + il + ll)]), labelEncoding: le)
    }
  }
}
