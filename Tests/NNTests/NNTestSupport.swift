// Helpers shared by the NN tests: golden-file lookup (NNTests has no bundled
// resources, so files are found next to this source file), closeness checks
// and temporary directories.
import Foundation
import XCTest
import Tensor

/// Tests/NNTests/Golden/<name>, located from this file's path.
func goldenURL(_ name: String) -> URL {
  URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("Golden").appendingPathComponent(name)
}

/// Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, naming the first bad index.
func assertAllClose(_ actual: [Float], _ expected: [Double], rtol: Double, atol: Double = 0,
                    _ what: String, file: StaticString = #filePath, line: UInt = #line) {
  guard actual.count == expected.count else {
    XCTFail("\(what): \(actual.count) values, expected \(expected.count)", file: file, line: line); return
  }
  var worst = 0.0, worstIndex = -1
  for i in actual.indices {
    let err = abs(Double(actual[i]) - expected[i]) / (atol + rtol * abs(expected[i]))
    if !(err <= worst) { worst = err; worstIndex = i }
  }
  if !(worst <= 1) {
    XCTFail("\(what): index \(worstIndex): \(actual[worstIndex]) vs expected \(expected[worstIndex]) (rtol \(rtol), atol \(atol))",
            file: file, line: line)
  }
}

func assertAllClose(_ actual: [Float], _ expected: [Float], rtol: Double, atol: Double = 0,
                    _ what: String, file: StaticString = #filePath, line: UInt = #line) {
  assertAllClose(actual, expected.map(Double.init), rtol: rtol, atol: atol, what, file: file, line: line)
}

/// A fresh temporary directory, removed when the test case tears down.
func temporaryDirectory(_ test: XCTestCase) throws -> URL {
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nntests-\(UUID().uuidString)")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  test.addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
  return dir
}

/// Random values from the project's generator.
func randomValues(_ n: Int, seed: UInt64, scale: Float = 1) -> [Float] {
  var rng = RandomGenerator(seed: seed)
  return (0..<n).map { _ in scale * rng.normal() }
}

/// Runs `body` with `Parallel.threads` set to `n`, restoring it afterwards.
func withThreads<T>(_ n: Int, _ body: () throws -> T) rethrows -> T {
  let saved = Parallel.threads
  Parallel.threads = n
  defer { Parallel.threads = saved }
  return try body()
}

/// |actual − expected| ≤ rtol·(|expected| + max|expected|): relative error, with
/// elements near zero judged against the tensor's scale. Values formed by
/// cancellation (m = 0.9·m + 0.1·g with opposite signs) carry float rounding
/// of the size of their terms, not of their result.
func assertCloseToScale(_ actual: [Float], _ expected: [Double], rtol: Double,
                        _ what: String, file: StaticString = #filePath, line: UInt = #line) {
  let scale = expected.map(abs).max() ?? 0
  assertAllClose(actual, expected, rtol: rtol, atol: rtol * scale, what, file: file, line: line)
}

func assertCloseToScale(_ actual: [Float], _ expected: [Float], rtol: Double,
                        _ what: String, file: StaticString = #filePath, line: UInt = #line) {
  assertCloseToScale(actual, expected.map(Double.init), rtol: rtol, what, file: file, line: line)
}
