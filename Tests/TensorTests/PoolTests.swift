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
}
