// Image and byte codecs over libpng, libjpeg-turbo and zstd (through CShims).
// Every failure is a thrown `CodecError` with a message; a truncated or corrupt
// input never crashes the process.
import CShims
import Foundation

public enum CodecError: Error, CustomStringConvertible, Equatable {
  case png(String)
  case jpeg(String)
  case zstd(String)
  case unknownImageFormat(firstBytes: String)

  public var description: String {
    switch self {
    case .png(let m): return "PNG: \(m)"
    case .jpeg(let m): return "JPEG: \(m)"
    case .zstd(let m): return "zstd: \(m)"
    case .unknownImageFormat(let b):
      return "unknown image format (first bytes \(b)); expected JPEG or PNG"
    }
  }
}

/// An 8-bit image, rows of `width * channels` bytes (HWC, interleaved RGB or one channel).
public struct Image8: Equatable, Sendable {
  public var width: Int
  public var height: Int
  public var channels: Int
  public var pixels: [UInt8]

  public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
    precondition(pixels.count == width * height * channels, "Image8: pixel count does not match size")
    self.width = width; self.height = height; self.channels = channels; self.pixels = pixels
  }
  public init(width: Int, height: Int, channels: Int, fill: UInt8 = 0) {
    self.init(width: width, height: height, channels: channels,
              pixels: [UInt8](repeating: fill, count: width * height * channels))
  }
}

public enum PNGCodec {
  /// Decodes an RGB image (grey, palette, alpha and 16-bit inputs are converted).
  public static func decodeRGB(_ data: [UInt8]) throws -> Image8 { try decode(data, mode: 1) }

  /// Decodes a label map: the stored 8-bit values or palette indices, exactly.
  public static func decodeLabel(_ data: [UInt8]) throws -> Image8 { try decode(data, mode: 0) }

  private static func decode(_ data: [UInt8], mode: Int32) throws -> Image8 {
    var out: UnsafeMutablePointer<UInt8>? = nil
    var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0
    var err = [CChar](repeating: 0, count: 256)
    let rc = data.withUnsafeBufferPointer { buf in
      ecenet_png_decode(buf.baseAddress, buf.count, mode, &out, &w, &h, &c, &err, err.count)
    }
    guard rc == 0, let px = out else { throw CodecError.png(String(cString: err)) }
    defer { free(px) }
    let n = Int(w) * Int(h) * Int(c)
    return Image8(width: Int(w), height: Int(h), channels: Int(c),
                  pixels: Array(UnsafeBufferPointer(start: px, count: n)))
  }

  /// Encodes a 1- or 3-channel image. A 1-channel image with a palette is
  /// written as an indexed PNG (label maps that viewers show in colour).
  public static func encode(_ image: Image8, palette: [UInt8]? = nil) throws -> [UInt8] {
    var out: UnsafeMutablePointer<UInt8>? = nil
    var len = 0
    var err = [CChar](repeating: 0, count: 256)
    let pal = palette ?? []
    let rc = image.pixels.withUnsafeBufferPointer { px in
      pal.withUnsafeBufferPointer { p in
        ecenet_png_encode(px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.channels),
                          p.baseAddress, Int32(pal.count / 3), &out, &len, &err, err.count)
      }
    }
    guard rc == 0, let buf = out else { throw CodecError.png(String(cString: err)) }
    defer { free(buf) }
    return Array(UnsafeBufferPointer(start: buf, count: len))
  }
}

public enum JPEGCodec {
  /// Decodes a JPEG to 8-bit RGB with libjpeg-turbo.
  public static func decodeRGB(_ data: [UInt8]) throws -> Image8 {
    guard let h = tjInitDecompress() else { throw CodecError.jpeg("cannot create decoder") }
    defer { tjDestroy(h) }
    var w: Int32 = 0, ht: Int32 = 0, sub: Int32 = 0, cs: Int32 = 0
    let rc = data.withUnsafeBufferPointer { buf in
      tjDecompressHeader3(h, buf.baseAddress, UInt(buf.count), &w, &ht, &sub, &cs)
    }
    guard rc == 0, w > 0, ht > 0 else { throw CodecError.jpeg(String(cString: tjGetErrorStr2(h))) }
    var pixels = [UInt8](repeating: 0, count: Int(w) * Int(ht) * 3)
    let rc2 = data.withUnsafeBufferPointer { buf in
      pixels.withUnsafeMutableBufferPointer { px in
        tjDecompress2(h, buf.baseAddress, UInt(buf.count), px.baseAddress, w, 0, ht,
                      Int32(TJPF_RGB.rawValue), Int32(TJFLAG_ACCURATEDCT))
      }
    }
    // A truncated JPEG decodes with a warning (grey rows at the bottom): that is
    // corrupt data for us, not an image, so warnings count as errors.
    guard rc2 == 0 else { throw CodecError.jpeg(String(cString: tjGetErrorStr2(h))) }
    return Image8(width: Int(w), height: Int(ht), channels: 3, pixels: pixels)
  }

  /// Encodes 8-bit RGB (or grey) at the given quality (1…100), 4:2:0 subsampling for colour.
  public static func encode(_ image: Image8, quality: Int = 95) throws -> [UInt8] {
    guard image.channels == 3 || image.channels == 1 else { throw CodecError.jpeg("channels must be 1 or 3") }
    guard let h = tjInitCompress() else { throw CodecError.jpeg("cannot create encoder") }
    defer { tjDestroy(h) }
    var out: UnsafeMutablePointer<UInt8>? = nil
    var len: UInt = 0
    let fmt = image.channels == 3 ? TJPF_RGB : TJPF_GRAY
    let sub = image.channels == 3 ? TJSAMP_420 : TJSAMP_GRAY
    let rc = image.pixels.withUnsafeBufferPointer { px in
      tjCompress2(h, px.baseAddress, Int32(image.width), 0, Int32(image.height), Int32(fmt.rawValue),
                  &out, &len, Int32(sub.rawValue), Int32(quality), Int32(TJFLAG_ACCURATEDCT))
    }
    guard rc == 0, let buf = out else { throw CodecError.jpeg(String(cString: tjGetErrorStr2(h))) }
    defer { tjFree(buf) }
    return Array(UnsafeBufferPointer(start: buf, count: Int(len)))
  }
}

public enum ImageCodec {
  /// Decodes JPEG or PNG by magic number into RGB.
  public static func decodeRGB(_ data: [UInt8]) throws -> Image8 {
    if data.count >= 3, data[0] == 0xFF, data[1] == 0xD8, data[2] == 0xFF { return try JPEGCodec.decodeRGB(data) }
    if data.count >= 8, data[0] == 0x89, data[1] == 0x50 { return try PNGCodec.decodeRGB(data) }
    throw CodecError.unknownImageFormat(firstBytes: data.prefix(4).map { String(format: "%02x", $0) }.joined(separator: " "))
  }
}

public enum Zstd {
  /// Compresses into one frame that records its content size and carries
  /// zstd's content checksum, so a flipped byte is caught on decompression.
  public static func compress(_ data: [UInt8], level: Int32 = 3) throws -> [UInt8] {
    let bound = ZSTD_compressBound(data.count)
    var out = [UInt8](repeating: 0, count: bound)
    guard let cctx = ZSTD_createCCtx() else { throw CodecError.zstd("cannot create compression context") }
    defer { ZSTD_freeCCtx(cctx) }
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level)
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
    let n = data.withUnsafeBytes { src in
      out.withUnsafeMutableBytes { dst in
        ZSTD_compress2(cctx, dst.baseAddress, bound, src.baseAddress, src.count)
      }
    }
    if ZSTD_isError(n) != 0 { throw CodecError.zstd(String(cString: ZSTD_getErrorName(n))) }
    out.removeSubrange(n...)
    return out
  }

  /// Decompresses one frame; the frame must record its content size (ours do).
  public static func decompress(_ data: [UInt8], maxSize: Int = 1 << 31) throws -> [UInt8] {
    let size = data.withUnsafeBytes { ecenet_zstd_frame_size($0.baseAddress, $0.count) }
    guard size >= 0 else { throw CodecError.zstd(size == -1 ? "frame without content size" : "not a zstd frame") }
    guard size <= maxSize else { throw CodecError.zstd("frame claims \(size) bytes, above the limit \(maxSize)") }
    var out = [UInt8](repeating: 0, count: Int(size))
    let n = data.withUnsafeBytes { src in
      out.withUnsafeMutableBytes { dst in
        ZSTD_decompress(dst.baseAddress, Int(size), src.baseAddress, src.count)
      }
    }
    if ZSTD_isError(n) != 0 { throw CodecError.zstd(String(cString: ZSTD_getErrorName(n))) }
    guard n == Int(size) else { throw CodecError.zstd("decompressed \(n) bytes, frame header said \(size)") }
    return out
  }
}
