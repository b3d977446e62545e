// PolyLRSchedule: values at the warmup and poly boundaries against the mmcv
// formulas written out by hand, per-group multipliers, and `scaled`.
import Foundation
import XCTest
@testable import NN

final class ScheduleTests: XCTestCase {
  let ecenet = PolyLRSchedule()   // 6e-5, 160k, power 1, warmup 1500 from 1e-6

  func testWarmupStartsAtRatioTimesPoly() {
    // 1 − (1 − 1e-6) is 1e-6 only to 1e-10 in Double, in mmcv's Python as here.
    XCTAssertEqual(ecenet.lr(at: 0), 6e-5 * 1e-6, accuracy: 6e-11 * 1e-9)
    // i = 1: poly(1)·(1 − (1 − 1/1500)(1 − 1e-6))
    let poly1 = 6e-5 * (1 - 1.0 / 160_000)
    XCTAssertEqual(ecenet.lr(at: 1), poly1 * (1 - (1 - 1.0 / 1500) * (1 - 1e-6)), accuracy: 1e-20)
  }

  func testWarmupEndsOnThePolyCurve() {
    let poly = { (i: Int) in 6e-5 * (1 - Double(i) / 160_000) }
    XCTAssertEqual(ecenet.lr(at: 1499), poly(1499) * (1 - (1.0 / 1500) * (1 - 1e-6)), accuracy: 1e-18)
    XCTAssertEqual(ecenet.lr(at: 1500), poly(1500), accuracy: 1e-18)
    XCTAssertEqual(ecenet.lr(at: 1501), poly(1501), accuracy: 1e-18)
    XCTAssertLessThan(ecenet.lr(at: 1499), ecenet.lr(at: 1500))
  }

  func testMonotoneUpThenDown() {
    var prev = -1.0
    for i in stride(from: 0, through: 1500, by: 50) { XCTAssertGreaterThan(ecenet.lr(at: i), prev); prev = ecenet.lr(at: i) }
    for i in stride(from: 1550, through: 160_000, by: 997) { XCTAssertLessThan(ecenet.lr(at: i), prev); prev = ecenet.lr(at: i) }
  }

  func testEndOfRun() {
    XCTAssertEqual(ecenet.lr(at: 159_999), 6e-5 / 160_000, accuracy: 1e-20)
    XCTAssertEqual(ecenet.lr(at: 160_000), 0)
    XCTAssertEqual(ecenet.lr(at: 170_000), 0, "past the end the poly factor stays 0")
  }

  func testPowerAndMinLR() {
    let s = PolyLRSchedule(baseLR: 0.01, maxIterations: 100, power: 0.9, minLR: 1e-4, warmupIterations: 0)
    XCTAssertEqual(s.lr(at: 0), 0.01, accuracy: 1e-15)
    XCTAssertEqual(s.lr(at: 40), (0.01 - 1e-4) * pow(0.6, 0.9) + 1e-4, accuracy: 1e-15)
    XCTAssertEqual(s.lr(at: 100), 1e-4, accuracy: 1e-15)
  }

  func testGroupMultiplier() {
    for i in [0, 700, 1500, 90_000] {
      XCTAssertEqual(ecenet.lr(at: i, lrMultiplier: 10), 10 * ecenet.lr(at: i), accuracy: 1e-15 * ecenet.lr(at: i) + 1e-25)
    }
    // With min_lr, mmcv schedules the group's own initial lr: (10·base − min)·coeff + min.
    let s = PolyLRSchedule(baseLR: 1e-3, maxIterations: 10, minLR: 1e-4, warmupIterations: 0)
    XCTAssertEqual(s.lr(at: 5, lrMultiplier: 10), (1e-2 - 1e-4) * 0.5 + 1e-4, accuracy: 1e-15)
  }

  func testScaledToShortRun() {
    let s = ecenet.scaled(toIterations: 1600)
    XCTAssertEqual(s.maxIterations, 1600)
    XCTAssertEqual(s.warmupIterations, 15)
    XCTAssertEqual(s.baseLR, ecenet.baseLR)
    XCTAssertEqual(s.lr(at: 15), 6e-5 * (1 - 15.0 / 1600), accuracy: 1e-18)
    XCTAssertEqual(ecenet.scaled(toIterations: 10).warmupIterations, 1, "a warmup never disappears")
    XCTAssertEqual(ecenet.scaled(toIterations: 160_000), ecenet)
    XCTAssertEqual(PolyLRSchedule(warmupIterations: 0).scaled(toIterations: 50).warmupIterations, 0)
  }
}
