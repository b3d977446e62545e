// The buffer pool's best fit, on a pool of its own (the shared one holds
// whatever other tests left in it).
@testable import Tensor
import XCTest

final class PoolTests: XCTestCase {
  /// A request takes the smallest cached buffer that is at most 1/4 larger
  /// than it asks for; never a smaller one, never one more than 1/4 larger.
  func testBestFitWithinAQuarter() {
    let pool = BufferPool()
    let (a, capA) = pool.take(1000)
    let (b, _) = pool.take(1200)
    XCTAssertEqual(capA, 1000)
    XCTAssertEqual(pool.mallocCount, 2)
    pool.give(a, 1000); pool.give(b, 1200)

    let (c, capC) = pool.take(900)  // at most 1125: 1000 fits, 1200 does not
    XCTAssertEqual(c, a); XCTAssertEqual(capC, 1000)
    let (d, capD) = pool.take(1000)  // 1000 is taken: 1200 ≤ 1250 fits
    XCTAssertEqual(d, b); XCTAssertEqual(capD, 1200)
    XCTAssertEqual(pool.mallocCount, 2)
    pool.give(c, capC); pool.give(d, capD)

    let (e, capE) = pool.take(700)  // 875 at most: nothing cached fits
    XCTAssertEqual(capE, 700)
    XCTAssertEqual(pool.mallocCount, 3)
    let (f, _) = pool.take(1300)  // larger than every cached buffer
    XCTAssertEqual(pool.mallocCount, 4)
    XCTAssertEqual(pool.bytesLive, (700 + 1300) * 4)
    XCTAssertEqual(pool.bytesCached, (1000 + 1200) * 4)
    pool.give(e, capE); pool.give(f, 1300)
    pool.trim()
    XCTAssertEqual(pool.bytesCached, 0)
  }

  /// Buffers of 2 MiB and more are 2 MiB-aligned and advised for huge pages
  /// (the kernel marks the mapping "hg" in /proc/self/smaps); smaller ones,
  /// and every buffer with HugePages off, are 64-byte aligned and not advised.
  func testLargeBuffersAreAdvisedForHugePages() throws {
    try XCTSkipUnless(FileManager.default.fileExists(atPath: "/sys/kernel/mm/transparent_hugepage/enabled"),
                      "this kernel has no transparent huge pages")
    let saved = HugePages.enabled
    defer { HugePages.enabled = saved }
    func advised(_ p: UnsafeMutablePointer<Float>) throws -> Bool {
      // smaps: a header line "start-end perms ..." per mapping, then its fields, VmFlags last.
      // Read to EOF: /proc files report size 0, and a read by size gets nothing.
      let handle = try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/self/smaps"))
      let smaps = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
      try handle.close()
      let address = UInt(bitPattern: p)
      var inside = false
      for line in smaps.split(separator: "\n") {
        let head = line.split(separator: " ", maxSplits: 1).first ?? ""
        let bounds = head.split(separator: "-")
        if bounds.count == 2, let lo = UInt(bounds[0], radix: 16), let hi = UInt(bounds[1], radix: 16) {
          inside = lo <= address && address < hi
        } else if inside && line.hasPrefix("VmFlags:") {
          return line.split(separator: " ").contains("hg")
        }
      }
      XCTFail("no mapping in /proc/self/smaps holds \(p)")
      return false
    }
    let large = 3 * HugePages.bytes / 4 + 1000  // floats: 6 MiB and a bit
    HugePages.enabled = true
    let big = BufferPool.alignedAlloc(large), small = BufferPool.alignedAlloc(1000)
    defer { free(big); free(small) }
    XCTAssertEqual(Int(bitPattern: big) % HugePages.bytes, 0)
    XCTAssertTrue(try advised(big), "a 6 MiB buffer was not advised for huge pages")
    XCTAssertEqual(Int(bitPattern: small) % 64, 0)
    XCTAssertFalse(try advised(small), "a 4 KB buffer was advised for huge pages")
    HugePages.enabled = false
    let plain = BufferPool.alignedAlloc(large)
    defer { free(plain) }
    XCTAssertEqual(Int(bitPattern: plain) % 64, 0)
    XCTAssertFalse(try advised(plain), "ECENET_HUGEPAGES=0 still advised a buffer")
  }
}
