import Data
import XCTest

final class CodecTests: XCTestCase {
  func gradientImage(width: Int, height: Int) -> Image8 {
    var px = [UInt8]()
    for y in 0..<height {
      for x in 0..<width {
        px.append(UInt8(x * 255 / max(1, width - 1)))
        px.append(UInt8(y * 255 / max(1, height - 1)))
        px.append(UInt8((x + y) % 256))
      }
    }
    return Image8(width: width, height: height, channels: 3, pixels: px)
  }

  func labelImage(width: Int, height: Int) -> Image8 {
    // Values 0...149 and the ignore value 255.
    let px: [UInt8] = (0..<(width * height)).map { (i: Int) -> UInt8 in
      let v = (i * 7 + i / width) % 151
      return v == 150 ? 255 : UInt8(v)
    }
    return Image8(width: width, height: height, channels: 1, pixels: px)
  }

  func testPNGRoundTripRGBExact() throws {
    let img = gradientImage(width: 37, height: 23)
    let back = try PNGCodec.decodeRGB(try PNGCodec.encode(img))
    XCTAssertEqual(back, img)
  }

  func testPNGLabelsComeBackExactGreyAndPalette() throws {
    let lab = labelImage(width: 41, height: 19)
    XCTAssertEqual(try PNGCodec.decodeLabel(try PNGCodec.encode(lab)), lab)
    // Palette PNG: the indices, not the colours, must come back.
    var palette = [UInt8]()
    for i in 0..<256 { palette += [UInt8(i), UInt8(255 - i), UInt8((i * 3) % 256)] }
    XCTAssertEqual(try PNGCodec.decodeLabel(try PNGCodec.encode(lab, palette: palette)), lab)
  }

  func testPNGRejectsColourLabelAndTruncatedFile() throws {
    let rgb = try PNGCodec.encode(gradientImage(width: 8, height: 8))
    XCTAssertThrowsError(try PNGCodec.decodeLabel(rgb)) { XCTAssertTrue("\($0)".contains("colour")) }
    let full = try PNGCodec.encode(gradientImage(width: 64, height: 64))
    for cut in [4, 40, full.count / 2, full.count - 13] {
      XCTAssertThrowsError(try PNGCodec.decodeRGB(Array(full.prefix(cut))), "cut at \(cut)")
    }
  }

  func testJPEGRoundTripIsClose() throws {
    let img = gradientImage(width: 64, height: 48)
    let back = try JPEGCodec.decodeRGB(try JPEGCodec.encode(img, quality: 98))
    XCTAssertEqual(back.width, 64); XCTAssertEqual(back.height, 48); XCTAssertEqual(back.channels, 3)
    let meanAbs = zip(back.pixels, img.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +) / img.pixels.count
    XCTAssertLessThanOrEqual(meanAbs, 3)
    // ImageCodec sniffs the format.
    XCTAssertEqual(try ImageCodec.decodeRGB(try JPEGCodec.encode(img)).width, 64)
    XCTAssertEqual(try ImageCodec.decodeRGB(try PNGCodec.encode(img)), img)
  }

  func testJPEGTruncatedIsAnError() throws {
    let full = try JPEGCodec.encode(gradientImage(width: 64, height: 64))
    for cut in [2, 100, full.count / 2] {
      XCTAssertThrowsError(try JPEGCodec.decodeRGB(Array(full.prefix(cut))), "cut at \(cut)")
    }
    XCTAssertThrowsError(try ImageCodec.decodeRGB([1, 2, 3, 4, 5, 6, 7, 8]))
  }

  func testZstdRoundTripAndCorruption() throws {
    let data: [UInt8] = (0..<100_000).map { (i: Int) -> UInt8 in UInt8((i * 31 + i / 7) % 251) }
    let z = try Zstd.compress(data)
    XCTAssertLessThan(z.count, data.count)
    XCTAssertEqual(try Zstd.decompress(z), data)
    XCTAssertEqual(try Zstd.decompress(try Zstd.compress([])), [])
    var bad = z
    bad[bad.count / 2] ^= 0xFF
    bad[bad.count / 2 + 1] ^= 0x5A
    XCTAssertThrowsError(try Zstd.decompress(bad))
    XCTAssertThrowsError(try Zstd.decompress(Array(z.prefix(z.count - 5))))
    XCTAssertThrowsError(try Zstd.decompress([0, 1, 2, 3, 4, 5, 6, 7]))
  }
}
