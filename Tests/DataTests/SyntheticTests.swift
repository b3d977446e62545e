import Data
import XCTest

final class SyntheticTests: XCTestCase {
  func testSameSeedAndIndexGiveSameBytesOtherSeedDiffers() throws {
    let a = try SyntheticDataset(count: 10, numClasses: 8, width: 64, height: 48, seed: 7)
    let b = try SyntheticDataset(count: 10, numClasses: 8, width: 64, height: 48, seed: 7)
    let c = try SyntheticDataset(count: 10, numClasses: 8, width: 64, height: 48, seed: 8)
    for i in [0, 3, 9] {
      let sa = try a.sample(at: i), sb = try b.sample(at: i)
      XCTAssertEqual(sa.image, sb.image, "image \(i)")
      XCTAssertEqual(sa.label, sb.label, "label \(i)")
      XCTAssertNotEqual(sa.label, try c.sample(at: i).label, "seed 8 should draw another scene at \(i)")
    }
    XCTAssertNotEqual(try a.sample(at: 0).label, try a.sample(at: 1).label)
  }

  func testSizesLabelRangeAndEveryClassAppears() throws {
    let k = 8
    let ds = try SyntheticDataset(count: 20, numClasses: k, width: 40, height: 30, seed: 1)
    var seen = Set<UInt8>()
    for i in 0..<(k - 1) {
      let s = try ds.sample(at: i)
      XCTAssertEqual([s.image.width, s.image.height, s.image.channels], [40, 30, 3])
      XCTAssertEqual([s.label.width, s.label.height, s.label.channels], [40, 30, 1])
      XCTAssertTrue(s.label.pixels.allSatisfy { Int($0) < k }, "label out of range in sample \(i)")
      seen.formUnion(s.label.pixels)
    }
    XCTAssertEqual(seen, Set((0..<k).map(UInt8.init)), "every class, background included, in \(k - 1) samples")
  }

  func testIgnoreBordersMarkOnlyBoundaries() throws {
    let plain = try SyntheticDataset(count: 4, numClasses: 5, width: 64, height: 64, seed: 3)
    let bordered = try SyntheticDataset(count: 4, numClasses: 5, width: 64, height: 64, seed: 3, ignoreBorder: 1)
    let p = try plain.sample(at: 2), b = try bordered.sample(at: 2)
    XCTAssertEqual(p.image, b.image, "borders change labels only")
    XCTAssertFalse(p.label.pixels.contains(255))
    let ignored = b.label.pixels.filter { $0 == 255 }.count
    XCTAssertGreaterThan(ignored, 0)
    XCTAssertLessThan(ignored, p.label.pixels.count / 3)
    for (x, y) in zip(p.label.pixels, b.label.pixels) where y != 255 { XCTAssertEqual(x, y) }
  }

  func testClassesAreSeparableByColour() throws {
    // A tiny network must learn this; at least the mean colour per class must differ.
    let ds = try SyntheticDataset(count: 8, numClasses: 6, width: 64, height: 64, seed: 0)
    var sums = [[Double]](repeating: [0, 0, 0, 0], count: 6)
    for i in 0..<8 {
      let s = try ds.sample(at: i)
      for p in 0..<(64 * 64) {
        let c = Int(s.label.pixels[p])
        for ch in 0..<3 { sums[c][ch] += Double(s.image.pixels[p * 3 + ch]) }
        sums[c][3] += 1
      }
    }
    let means = sums.map { s in (0..<3).map { s[$0] / max(1, s[3]) } }
    for a in 0..<6 { for b in (a + 1)..<6 {
      let d = zip(means[a], means[b]).map { abs($0 - $1) }.max()!
      XCTAssertGreaterThan(d, 10, "classes \(a) and \(b) have nearly the same mean colour")
    } }
  }

  func testRejectsBadSettings() {
    XCTAssertThrowsError(try SyntheticDataset(numClasses: 1))
    XCTAssertThrowsError(try SyntheticDataset(numClasses: 256))
    XCTAssertThrowsError(try SyntheticDataset(width: 4))
    XCTAssertThrowsError(try SyntheticDataset(count: 3).sample(at: 3))
  }

  func testRNGIsFixedAndKeyed() {
    var a = SampleRNG(seed: 1, epoch: 2, index: 3, stream: .augment)
    var b = SampleRNG(seed: 1, epoch: 2, index: 3, stream: .augment)
    var c = SampleRNG(seed: 1, epoch: 3, index: 2, stream: .augment)
    let xa = (0..<4).map { _ in a.next() }
    XCTAssertEqual(xa, (0..<4).map { _ in b.next() })
    XCTAssertNotEqual(xa, (0..<4).map { _ in c.next() })
    var r = SampleRNG(seed: 9, stream: .shuffle)
    var counts = [Int](repeating: 0, count: 3)
    for _ in 0..<3000 { counts[r.int(-1, through: 1) + 1] += 1 }
    XCTAssertTrue(counts.allSatisfy { $0 > 850 && $0 < 1150 }, "\(counts)")
  }
}
