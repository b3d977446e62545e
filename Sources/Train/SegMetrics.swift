// Segmentation metrics as mmseg computes them (spec §8): one confusion matrix
// summed over all images (and over ranks), then IoU and accuracy per class,
// mIoU as the mean over classes that occur in the ground truth, and aAcc.

public struct ConfusionMatrix: Equatable, Sendable {
  public let numClasses: Int
  /// counts[gt * numClasses + pred]
  public var counts: [Int64]

  public init(numClasses: Int) {
    self.numClasses = numClasses
    counts = [Int64](repeating: 0, count: numClasses * numClasses)
  }

  /// Adds one image: predictions and labels of equal size; labels ≥ numClasses (255) are ignored.
  public mutating func add(prediction: [Int32], label: [UInt8]) {
    precondition(prediction.count == label.count, "prediction \(prediction.count) vs label \(label.count) pixels")
    let n = numClasses
    counts.withUnsafeMutableBufferPointer { c in
      for i in 0..<label.count {
        let g = Int(label[i])
        if g >= n { continue }
        let p = Int(prediction[i])
        precondition(p >= 0 && p < n, "prediction \(p) outside 0..<\(n)")
        c[g * n + p] += 1
      }
    }
  }

  public mutating func merge(_ other: ConfusionMatrix) {
    precondition(other.numClasses == numClasses)
    for i in counts.indices { counts[i] += other.counts[i] }
  }

  public func gtCount(_ c: Int) -> Int64 { (0..<numClasses).reduce(0) { $0 + counts[c * numClasses + $1] } }
  public func predCount(_ c: Int) -> Int64 { (0..<numClasses).reduce(0) { $0 + counts[$1 * numClasses + c] } }
  public func truePositives(_ c: Int) -> Int64 { counts[c * numClasses + c] }

  /// IoU per class; nil for a class absent from both ground truth and predictions... and, as
  /// mmseg, classes absent from the ground truth are excluded from the mean (nil).
  public var iou: [Double?] {
    (0..<numClasses).map { c in
      let gt = gtCount(c)
      if gt == 0 { return nil }
      let tp = truePositives(c), union = gt + predCount(c) - tp
      return Double(tp) / Double(union)
    }
  }

  public var accuracy: [Double?] {
    (0..<numClasses).map { c in
      let gt = gtCount(c)
      return gt == 0 ? nil : Double(truePositives(c)) / Double(gt)
    }
  }

  public var meanIoU: Double {
    let v = iou.compactMap { $0 }
    return v.isEmpty ? 0 : v.reduce(0, +) / Double(v.count)
  }

  /// Overall pixel accuracy.
  public var allAccuracy: Double {
    let total = counts.reduce(0, +)
    let tp = (0..<numClasses).reduce(Int64(0)) { $0 + truePositives($1) }
    return total == 0 ? 0 : Double(tp) / Double(total)
  }

  /// The most confused (ground truth, prediction) pairs, off-diagonal, largest first.
  public func topConfusions(_ k: Int) -> [(gt: Int, pred: Int, count: Int64)] {
    var pairs: [(gt: Int, pred: Int, count: Int64)] = []
    for g in 0..<numClasses { for p in 0..<numClasses where p != g && counts[g * numClasses + p] > 0 {
      pairs.append((g, p, counts[g * numClasses + p]))
    } }
    return Array(pairs.sorted { $0.count > $1.count }.prefix(k))
  }

  /// An aligned per-class table, as mmseg prints it.
  public func table(classNames: [String]) -> String {
    let names = (0..<numClasses).map { $0 < classNames.count ? classNames[$0] : "class\($0)" }
    let w = max(5, names.map(\.count).max() ?? 5)
    func pad(_ s: String, _ n: Int) -> String { s + String(repeating: " ", count: max(0, n - s.count)) }
    func pct(_ v: Double?) -> String { v.map { String(format: "%6.2f", $0 * 100) } ?? "   nan" }
    var lines = ["| \(pad("Class", w)) |  IoU   |  Acc   |", "|\(String(repeating: "-", count: w + 2))|--------|--------|"]
    let (i, a) = (iou, accuracy)
    for c in 0..<numClasses { lines.append("| \(pad(names[c], w)) | \(pct(i[c])) | \(pct(a[c])) |") }
    lines.append(String(format: "mIoU %.2f  aAcc %.2f", meanIoU * 100, allAccuracy * 100))
    return lines.joined(separator: "\n")
  }
}

import Foundation
