// Real `ecenet-dist pack` command lines: exit codes and what the user reads.
// The binary is the one `swift build --build-tests` puts next to the test bundle.
import Data
import Foundation
import XCTest

final class PackCLITests: XCTestCase {
  func binary() throws -> String {
    // Linux: the bundle path is the build folder itself; macOS: the .xctest bundle inside it.
    let bundle = Bundle(for: PackCLITests.self).bundlePath
    let candidates = [bundle, (bundle as NSString).deletingLastPathComponent,
                      (CommandLine.arguments[0] as NSString).deletingLastPathComponent].map { $0 + "/ecenet-dist" }
    guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
      throw XCTSkip("no ecenet-dist binary in \(candidates); run `swift build --build-tests` first")
    }
    return path
  }

  func run(_ args: [String]) throws -> (code: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: try binary())
    p.arguments = args
    let o = Pipe(), e = Pipe()
    p.standardOutput = o; p.standardError = e
    try p.run()
    let out = o.fileHandleForReading.readDataToEndOfFile(), err = e.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
  }

  func testPackVerifyAndReportABadRecord() throws {
    let t = TempDir()
    Fixture.folder(t.sub("img"), t.sub("lab"), count: 4)
    let packed = try run(["pack", "--format", "folder", "--images", t.sub("img"), "--labels", t.sub("lab"),
                          "--num-classes", "5", "--ignore-value", "254", "--records-per-shard", "3",
                          "--out", t.sub("out"), "--quiet"])
    XCTAssertEqual(packed.code, 0, packed.err)
    XCTAssertTrue(packed.out.contains("4 records in 2 shard(s)"), packed.out)
    let ok = try run(["pack", "--verify", t.sub("out"), "--quiet"])
    XCTAssertEqual(ok.code, 0, ok.err)
    XCTAssertTrue(ok.out.contains("OK, 4 records"), ok.out)
    // Flip one byte in the second shard's only record (img03.jpg).
    let shard = t.sub("out/train/shard-00001.ecs")
    var b = [UInt8](FileManager.default.contents(atPath: shard)!)
    b[80] ^= 0x01
    _ = FileManager.default.createFile(atPath: shard, contents: Data(b))
    let bad = try run(["pack", "--verify", t.sub("out"), "--all", "--quiet"])
    XCTAssertEqual(bad.code, 1)
    XCTAssertTrue(bad.err.contains("shard shard-00001.ecs, record 0 (source img03.jpg)"), bad.err)
    XCTAssertTrue(bad.err.contains("FAILED, 1 error(s)"), bad.err)
  }

  func testBadInputAndSkipBad() throws {
    let t = TempDir()
    Fixture.folder(t.sub("img"), t.sub("lab"), count: 3)
    Fixture.write([0xFF, 0xD8, 0xFF, 0, 1, 2], t.sub("img/img01.jpg"))
    let args = ["pack", "--format", "folder", "--images", t.sub("img"), "--labels", t.sub("lab"),
                "--num-classes", "5", "--ignore-value", "254", "--quiet"]
    let failed = try run(args + ["--out", t.sub("a")])
    XCTAssertEqual(failed.code, 1)
    XCTAssertTrue(failed.err.contains("input img01.jpg: image does not decode"), failed.err)
    let skipped = try run(args + ["--out", t.sub("b"), "--skip-bad"])
    XCTAssertEqual(skipped.code, 0, skipped.err)
    XCTAssertTrue(skipped.out.contains("2 records"), skipped.out)
    XCTAssertTrue(skipped.err.contains("skipped 1 bad input(s)"), skipped.err)
    let usage = try run(["pack", "--format", "folder", "--out", t.sub("c")])
    XCTAssertEqual(usage.code, 64)
    XCTAssertTrue(usage.err.contains("--images DIR --labels DIR --num-classes N"), usage.err)
  }
}
