import Train
import XCTest

final class SegMetricsTests: XCTestCase {
  func testConfusionMatrixIoUAgainstHandComputedValues() {
    var m = ConfusionMatrix(numClasses: 3)
    // gt:   0 0 1 1 2 255
    // pred: 0 1 1 1 0 2
    m.add(prediction: [0, 1, 1, 1, 0, 2], label: [0, 0, 1, 1, 2, 255])
    // class 0: tp 1, gt 2, pred 2 → IoU 1/3; class 1: tp 2, gt 2, pred 3 → 2/3; class 2: tp 0, gt 1 → 0
    let iou = m.iou
    XCTAssertEqual(iou[0]!, 1.0 / 3, accuracy: 1e-12)
    XCTAssertEqual(iou[1]!, 2.0 / 3, accuracy: 1e-12)
    XCTAssertEqual(iou[2]!, 0, accuracy: 1e-12)
    XCTAssertEqual(m.meanIoU, 1.0 / 3, accuracy: 1e-12)
    XCTAssertEqual(m.allAccuracy, 3.0 / 5, accuracy: 1e-12)
    XCTAssertEqual(m.accuracy[0]!, 0.5, accuracy: 1e-12)
    XCTAssertEqual(m.topConfusions(1).first!.gt, 0)
    XCTAssertTrue(m.table(classNames: ["sky", "road", "car"]).contains("| road  |  66.67 | 100.00 |"))
  }

  func testClassesAbsentFromGroundTruthAreLeftOutOfTheMean() {
    var m = ConfusionMatrix(numClasses: 4)
    m.add(prediction: [0, 0, 3], label: [0, 0, 0])
    XCTAssertNil(m.iou[3])
    XCTAssertEqual(m.meanIoU, 2.0 / 3, accuracy: 1e-12)
  }

  func testMergingHalvesEqualsWhole() {
    var whole = ConfusionMatrix(numClasses: 3), a = whole, b = whole
    let pred: [Int32] = [0, 2, 1, 1, 0, 2, 2, 1]
    let gt: [UInt8] = [0, 2, 2, 1, 255, 2, 0, 1]
    whole.add(prediction: pred, label: gt)
    a.add(prediction: Array(pred[..<3]), label: Array(gt[..<3]))
    b.add(prediction: Array(pred[3...]), label: Array(gt[3...]))
    a.merge(b)
    XCTAssertEqual(a, whole)
  }
}
