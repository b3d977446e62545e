// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the checksum of
// iSCSI, ext4 and SSE4.2's crc32 instruction. Table-driven, one byte per step:
// simple, and fast enough next to image decoding (which costs far more per byte).

public enum CRC32C {
  static let table: [UInt32] = (0..<256).map { (i: Int) -> UInt32 in
    var c = UInt32(i)
    for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    return c
  }

  /// Continues a running checksum (start with 0) over `bytes`.
  public static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
    var c = ~crc
    table.withUnsafeBufferPointer { t in
      for b in bytes { c = t[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    }
    return ~c
  }

  public static func checksum(_ bytes: [UInt8]) -> UInt32 {
    bytes.withUnsafeBytes { update(0, $0) }
  }

  public static func checksum(_ bytes: UnsafeRawBufferPointer) -> UInt32 { update(0, bytes) }

  /// The 8-hex-digit form the manifest stores.
  public static func hex(_ crc: UInt32) -> String {
    let s = String(crc, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
  }
}

/// Little-endian append and read helpers for the shard format.
extension Array where Element == UInt8 {
  mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
    var x = v.littleEndian
    Swift.withUnsafeBytes(of: &x) { append(contentsOf: $0) }
  }
}

extension UnsafeRawBufferPointer {
  func readLE<T: FixedWidthInteger>(_ type: T.Type, at offset: Int) -> T {
    var v = T.zero
    Swift.withUnsafeMutableBytes(of: &v) { dst in
      dst.copyMemory(from: UnsafeRawBufferPointer(rebasing: self[offset..<(offset + MemoryLayout<T>.size)]))
    }
    return T(littleEndian: v)
  }
}
