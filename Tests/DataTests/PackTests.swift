import Data
import Foundation
import XCTest

final class PackTests: XCTestCase {
  func testCRC32CKnownValue() {
    XCTAssertEqual(CRC32C.checksum(Array("123456789".utf8)), 0xE306_9283)
    XCTAssertEqual(CRC32C.checksum([]), 0)
  }

  /// Packs `spec`, reads everything back and compares labels with `expected` (by source name).
  func roundTrip(_ spec: DatasetSpec, _ expected: [String: [UInt8]], out: String,
                 file: StaticString = #filePath, line: UInt = #line) throws -> ShardedDataset {
    let r = try Packer.pack(spec, into: out, options: Fixture.quiet())
    XCTAssertEqual(r.records, expected.count, file: file, line: line)
    let ds = try ShardedDataset(directory: r.directory)
    XCTAssertEqual(ds.count, expected.count, file: file, line: line)
    XCTAssertEqual(ds.manifest.shards.count, (expected.count + 1) / 2, file: file, line: line)
    var names: [String] = []
    for i in 0..<ds.count {
      let s = try ds.sample(at: i)
      names.append(s.name)
      XCTAssertEqual(s.label.pixels, expected[s.name], "labels of \(s.name)", file: file, line: line)
      XCTAssertEqual([s.image.width, s.image.height, s.image.channels], [s.label.width, s.label.height, 3], file: file, line: line)
    }
    XCTAssertEqual(names, names.sorted(), "records in sorted order", file: file, line: line)
    XCTAssertEqual(Set(names), Set(expected.keys), file: file, line: line)
    let v = ShardVerifier.verify(directory: out, all: true)
    XCTAssertEqual(v.errors, [], file: file, line: line)
    XCTAssertEqual(v.recordsChecked, expected.count, file: file, line: line)
    return ds
  }

  func testADE20KRoundTrip() throws {
    let t = TempDir()
    let exp = Fixture.ade20k(t.sub("ADE"))
    let ds = try roundTrip(try DatasetLayout.ade20k(root: t.sub("ADE"), split: "train"), exp, out: t.sub("out"))
    XCTAssertEqual(ds.numClasses, 150)
    XCTAssertEqual(ds.manifest.classNames.count, 150)
    XCTAssertEqual(ds.manifest.classNames.first, "wall")
    XCTAssertEqual(ds.manifest.labelMap.table[0], 255)
    XCTAssertEqual(ds.manifest.labelMap.table[1], 0)
  }

  func testCityscapesRoundTripKeepsOriginalPNGBytes() throws {
    let t = TempDir()
    let exp = Fixture.cityscapes(t.sub("cs"))
    let ds = try roundTrip(try DatasetLayout.cityscapes(root: t.sub("cs"), split: "train"), exp, out: t.sub("out"))
    XCTAssertEqual(ds.numClasses, 19)
    // The record holds the original file's bytes, not a re-encoding.
    let rec = try ds.record(at: 0)
    let original = FileManager.default.contents(atPath: t.sub("cs") + "/" + rec.name)!
    XCTAssertEqual(try rec.imageBytes(), [UInt8](original))
  }

  func testPascalContextRoundTripUsesTheSplitList() throws {
    let t = TempDir()
    let exp = Fixture.pascalContext(t.sub("pc"))
    let ds = try roundTrip(try DatasetLayout.pascalContext(root: t.sub("pc"), split: "train"), exp, out: t.sub("out"))
    XCTAssertEqual(ds.numClasses, 59)
    XCTAssertEqual(try DatasetLayout.pascalContext(root: t.sub("pc"), split: "val").inputs.map(\.name), ["JPEGImages/2010_000005.jpg"])
  }

  func testFolderRoundTripWithIgnoreValueAndClassNames() throws {
    let t = TempDir()
    let exp = Fixture.folder(t.sub("img"), t.sub("lab"))
    Fixture.write(Array("sky\nroad\n\ncar\ntree\nperson\n".utf8), t.sub("names.txt"))
    let names = try DatasetLayout.readClassNames(t.sub("names.txt"))
    let spec = try DatasetLayout.folder(images: t.sub("img"), labels: t.sub("lab"), split: "val", numClasses: 5,
                                        ignoreValue: 254, classNames: names)
    let ds = try roundTrip(spec, exp, out: t.sub("out"))
    XCTAssertEqual(ds.manifest.classNames, ["sky", "road", "car", "tree", "person"])
    XCTAssertEqual(ds.manifest.split, "val")
    // PNG images come back exactly.
    let s = try ds.sample(at: 0)
    XCTAssertEqual(s.name, "img00.png")
    XCTAssertEqual(s.image, Fixture.scene(30).image)
    XCTAssertThrowsError(try DatasetLayout.folder(images: t.sub("img"), labels: t.sub("lab"), split: "val",
                                                  numClasses: 5, classNames: ["a"]))
    XCTAssertThrowsError(try DatasetLayout.folder(images: t.sub("img"), labels: t.sub("lab"), split: "val",
                                                  numClasses: 5, ignoreValue: 3))
  }

  func testSameInputSameBytesForAnyThreadCount() throws {
    let t = TempDir()
    Fixture.folder(t.sub("img"), t.sub("lab"), count: 7)
    let spec = try DatasetLayout.folder(images: t.sub("img"), labels: t.sub("lab"), split: "train", numClasses: 5, ignoreValue: 254)
    _ = try Packer.pack(spec, into: t.sub("a"), options: Fixture.quiet(threads: 1, perShard: 3))
    _ = try Packer.pack(spec, into: t.sub("b"), options: Fixture.quiet(threads: 4, perShard: 3))
    let files = try FileManager.default.contentsOfDirectory(atPath: t.sub("a/train")).sorted()
    XCTAssertEqual(files, ["manifest.json", "shard-00000.ecs", "shard-00001.ecs", "shard-00002.ecs"])
    XCTAssertEqual(files, try FileManager.default.contentsOfDirectory(atPath: t.sub("b/train")).sorted())
    for f in files {
      XCTAssertEqual(FileManager.default.contents(atPath: t.sub("a/train/" + f)),
                     FileManager.default.contents(atPath: t.sub("b/train/" + f)), f)
    }
    // A byte limit closes shards early, as deterministically.
    var small = Fixture.quiet(threads: 3, perShard: 100)
    small.maxShardBytes = 1
    XCTAssertEqual(try Packer.pack(spec, into: t.sub("c"), options: small).shards, 7)
    XCTAssertThrowsError(try Packer.pack(spec, into: t.sub("a"), options: Fixture.quiet())) {
      XCTAssertTrue("\($0)".contains("already holds"), "\($0)")
    }
  }

  // MARK: bad inputs while packing

  func assertPackFails(_ spec: DatasetSpec, out: String, mentions: [String],
                       file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertThrowsError(try Packer.pack(spec, into: out, options: Fixture.quiet()), file: file, line: line) { e in
      for m in mentions { XCTAssertTrue("\(e)".contains(m), "\"\(e)\" should mention \"\(m)\"", file: file, line: line) }
    }
    XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/" + spec.split + "/manifest.json"), file: file, line: line)
  }

  func testLabelValueOutOfRangeNamesTheSource() throws {
    let t = TempDir()
    Fixture.ade20k(t.sub("ADE"))
    let s = Fixture.scene(1)
    var raw = s.label.pixels.map { $0 + 1 }
    raw[5] = 151
    Fixture.write(Fixture.png(Fixture.labelImage(raw, like: s)), t.sub("ADE/annotations/training/ADE_train_00000002.png"))
    let spec = try DatasetLayout.ade20k(root: t.sub("ADE"), split: "train")
    assertPackFails(spec, out: t.sub("out"), mentions: ["images/training/ADE_train_00000002.jpg", "label value 151", "pixel 5"])
    // --skip-bad: skipped, counted, listed in the manifest.
    let r = try Packer.pack(spec, into: t.sub("out2"), options: Fixture.quiet(skipBad: true))
    XCTAssertEqual(r.records, 2)
    XCTAssertEqual(r.skipped.map(\.source), ["images/training/ADE_train_00000002.jpg"])
    XCTAssertEqual(try ShardedDataset(directory: r.directory).manifest.skipped.count, 1)
  }

  func testSizeMismatchUnreadableImageAndMissingLabel() throws {
    let t = TempDir()
    Fixture.folder(t.sub("img"), t.sub("lab"), count: 3)
    let spec = { try DatasetLayout.folder(images: t.sub("img"), labels: t.sub("lab"), split: "train", numClasses: 5, ignoreValue: 254) }
    // Size mismatch.
    let big = Fixture.scene(3, width: 30, height: 16)
    Fixture.write(Fixture.png(big.label), t.sub("lab/img01.png"))
    assertPackFails(try spec(), out: t.sub("o1"), mentions: ["img01.jpg", "24×16", "30×16"])
    Fixture.folder(t.sub("img"), t.sub("lab"), count: 3)
    // Unreadable image.
    Fixture.write([0x89, 0x50, 0x4E, 0x47, 1, 2, 3, 4, 5, 6, 7], t.sub("img/img02.png"))
    assertPackFails(try spec(), out: t.sub("o2"), mentions: ["img02.png", "image does not decode"])
    Fixture.folder(t.sub("img"), t.sub("lab"), count: 3)
    // Missing label.
    try FileManager.default.removeItem(atPath: t.sub("lab/img00.png"))
    assertPackFails(try spec(), out: t.sub("o3"), mentions: ["img00.png", "no label"])
    let r = try Packer.pack(try spec(), into: t.sub("o4"), options: Fixture.quiet(skipBad: true))
    XCTAssertEqual(r.records, 2); XCTAssertEqual(r.skipped.count, 1)
  }

  func testEmptySplitIsAnError() throws {
    let t = TempDir()
    try FileManager.default.createDirectory(atPath: t.sub("ADE/images/validation"), withIntermediateDirectories: true)
    XCTAssertThrowsError(try DatasetLayout.ade20k(root: t.sub("ADE"), split: "val")) {
      XCTAssertTrue("\($0)".contains("empty split"), "\($0)")
    }
    XCTAssertThrowsError(try DatasetLayout.ade20k(root: t.sub("nowhere"), split: "train")) {
      XCTAssertTrue("\($0)".contains("nowhere/images/training"), "\($0)")
    }
    XCTAssertThrowsError(try DatasetLayout.ade20k(root: t.sub("ADE"), split: "test"))
    // All inputs bad + --skip-bad: still an error, not an empty dataset.
    Fixture.folder(t.sub("img"), t.sub("lab"), count: 1)
    Fixture.write([1, 2, 3], t.sub("img/img00.png"))
    let spec = try DatasetLayout.folder(images: t.sub("img"), labels: t.sub("lab"), split: "train", numClasses: 5, ignoreValue: 254)
    XCTAssertThrowsError(try Packer.pack(spec, into: t.sub("o"), options: Fixture.quiet(skipBad: true))) {
      XCTAssertTrue("\($0)".contains("every one of the 1 inputs was bad"), "\($0)")
    }
  }

  // MARK: damaged shards and manifests

  func packedFolder(_ t: TempDir, count: Int = 5) throws -> String {
    Fixture.folder(t.sub("img"), t.sub("lab"), count: count)
    let spec = try DatasetLayout.folder(images: t.sub("img"), labels: t.sub("lab"), split: "train", numClasses: 5, ignoreValue: 254)
    return try Packer.pack(spec, into: t.sub("out"), options: Fixture.quiet()).directory
  }

  func mutate(_ path: String, _ f: (inout [UInt8]) -> Void) {
    var b = [UInt8](FileManager.default.contents(atPath: path)!)
    f(&b)
    XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(b)))
  }

  func testFlippedByteNamesShardRecordAndSource() throws {
    let t = TempDir()
    let dir = try packedFolder(t)
    let shard = dir + "/shard-00001.ecs"
    // Record 1 of shard 1 is global record 3 = img03.jpg; flip a byte inside its image payload.
    let f = try ShardFile(path: shard)
    XCTAssertEqual(try f.record(1).name, "img03.jpg")
    let size = FileManager.default.contents(atPath: shard)!.count
    mutate(shard) { $0[size - 24 - 32 - 40] ^= 0x10 }
    let ds = try ShardedDataset(directory: dir)
    XCTAssertNoThrow(try ds.sample(at: 2))
    XCTAssertThrowsError(try ds.sample(at: 3)) { e in
      XCTAssertEqual("\(e)".contains("shard shard-00001.ecs, record 1 (source img03.jpg)"), true, "\(e)")
      XCTAssertTrue("\(e)".contains("checksum mismatch"), "\(e)")
    }
    let v = ShardVerifier.verify(directory: t.sub("out"), all: true)
    XCTAssertEqual(v.errors.count, 1, "\(v.errors)")
    XCTAssertTrue("\(v.errors)".contains("record 1 (source img03.jpg)"))
  }

  func testVerifyStopsAtFirstUnlessAll() throws {
    let t = TempDir()
    let dir = try packedFolder(t)
    mutate(dir + "/shard-00000.ecs") { $0[70] ^= 1 }   // inside record 0's image bytes
    mutate(dir + "/shard-00002.ecs") { $0[70] ^= 1 }
    XCTAssertEqual(ShardVerifier.verify(directory: dir, all: false).errors.count, 1)
    let all = ShardVerifier.verify(directory: dir, all: true)
    XCTAssertEqual(all.errors.count, 2, "\(all.errors)")
    XCTAssertEqual(all.recordsChecked, 5)
    XCTAssertTrue("\(all.errors[1])".contains("shard-00002.ecs, record 0 (source img04.png)"), "\(all.errors[1])")
  }

  func testTruncatedShardAndWrongMagic() throws {
    let t = TempDir()
    let dir = try packedFolder(t)
    mutate(dir + "/shard-00001.ecs") { $0.removeLast(7) }
    XCTAssertThrowsError(try ShardFile(path: dir + "/shard-00001.ecs")) {
      XCTAssertTrue("\($0)".contains("truncated"), "\($0)")
    }
    XCTAssertThrowsError(try ShardedDataset(directory: dir)) {
      XCTAssertTrue("\($0)".contains("shard-00001.ecs"), "\($0)")
    }
    XCTAssertFalse(ShardVerifier.verify(directory: dir, all: true).errors.isEmpty)
    mutate(dir + "/shard-00000.ecs") { $0[0] = UInt8(ascii: "X") }
    XCTAssertThrowsError(try ShardFile(path: dir + "/shard-00000.ecs")) {
      XCTAssertTrue("\($0)".contains("wrong magic"), "\($0)")
    }
    // A corrupt index is caught by its checksum.
    let t2 = TempDir()
    let d2 = try packedFolder(t2)
    let n = FileManager.default.contents(atPath: d2 + "/shard-00000.ecs")!.count
    mutate(d2 + "/shard-00000.ecs") { $0[n - 24 - 3] ^= 0x80 }
    XCTAssertThrowsError(try ShardFile(path: d2 + "/shard-00000.ecs")) {
      XCTAssertTrue("\($0)".contains("index checksum"), "\($0)")
    }
  }

  func testMissingAndInconsistentManifest() throws {
    let t = TempDir()
    let dir = try packedFolder(t)
    let mpath = dir + "/manifest.json"
    let good = FileManager.default.contents(atPath: mpath)!
    // Inconsistent record count.
    var json = String(decoding: good, as: UTF8.self)
    json = json.replacingOccurrences(of: "\"records\" : 5", with: "\"records\" : 6")
    Fixture.write(Array(json.utf8), mpath)
    XCTAssertThrowsError(try ShardedDataset(directory: dir)) { XCTAssertTrue("\($0)".contains("says 6"), "\($0)") }
    // A shard count that disagrees with the shard's index.
    json = String(decoding: good, as: UTF8.self)
    var m = try JSONDecoder().decode(Manifest.self, from: good)
    m.shards[0].records = 1; m.shards[1].records = 3
    Fixture.write(Array(try m.encoded()), mpath)
    XCTAssertThrowsError(try ShardedDataset(directory: dir)) { XCTAssertTrue("\($0)".contains("its index has 2"), "\($0)") }
    // Missing shard file.
    Fixture.write(Array(good), mpath)
    try FileManager.default.removeItem(atPath: dir + "/shard-00002.ecs")
    XCTAssertThrowsError(try ShardedDataset(directory: dir)) { XCTAssertTrue("\($0)".contains("shard-00002.ecs, which is missing"), "\($0)") }
    // Missing manifest.
    try FileManager.default.removeItem(atPath: mpath)
    XCTAssertThrowsError(try ShardedDataset(directory: dir)) { XCTAssertTrue("\($0)".contains("missing"), "\($0)") }
    let v = ShardVerifier.verify(directory: t.sub("out"), all: false)
    XCTAssertTrue("\(v.errors)".contains("not a packed dataset"), "\(v.errors)")
    // Not JSON.
    Fixture.write(Array("{oops".utf8), mpath)
    XCTAssertThrowsError(try ShardedDataset(directory: dir)) { XCTAssertTrue("\($0)".contains("not valid manifest JSON"), "\($0)") }
  }

  func testEveryFlippedByteIsCaughtNeverSilentNeverACrash() throws {
    let t = TempDir()
    Fixture.folder(t.sub("img"), t.sub("lab"), count: 2)
    let spec = try DatasetLayout.folder(images: t.sub("img"), labels: t.sub("lab"), split: "train", numClasses: 5, ignoreValue: 254)
    let dir = try Packer.pack(spec, into: t.sub("out"), options: Fixture.quiet()).directory
    let path = dir + "/shard-00000.ecs"
    let good = [UInt8](FileManager.default.contents(atPath: path)!)
    let reference = try (0..<2).map { try ShardFile(path: path).record($0) }
    // Every byte of the header, first record header, index and footer; every 17th byte elsewhere (debug builds are slow).
    let positions = (0..<good.count).filter { $0 < 80 || $0 >= good.count - 24 - 2 * 16 - 8 || $0 % 17 == 0 }
    var caught = 0
    for pos in positions {
      var bad = good
      bad[pos] ^= 0x04
      XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bad)))
      // Either opening fails, or some record read fails; a read that succeeds must return the original record.
      guard let f = try? ShardFile(path: path) else { caught += 1; continue }
      var failed = false
      for i in 0..<2 {
        if let r = try? f.record(i) { XCTAssertEqual(r, reference[i], "byte \(pos) changed record \(i) silently") } else { failed = true }
      }
      XCTAssertTrue(failed, "flipping byte \(pos) of \(good.count) went unnoticed")
      if failed { caught += 1 }
    }
    XCTAssertEqual(caught, positions.count)
  }

  func testLabelValueInvalidUnderTheManifestMapIsCaughtWhenReading() throws {
    let t = TempDir()
    Fixture.folder(t.sub("img"), t.sub("lab"), count: 2)
    let spec = try DatasetLayout.folder(images: t.sub("img"), labels: t.sub("lab"), split: "train", numClasses: 5, ignoreValue: 254)
    let dir = try Packer.pack(spec, into: t.sub("out"), options: Fixture.quiet()).directory
    // Someone edits the manifest so that 254 is no longer the ignore value.
    var m = try Manifest.load(directory: dir)
    m.labelMap.table[254] = -1
    Fixture.write(Array(try m.encoded()), dir + "/manifest.json")
    let ds = try ShardedDataset(directory: dir)
    XCTAssertThrowsError(try ds.sample(at: 0)) { e in
      XCTAssertTrue("\(e)".contains("shard shard-00000.ecs, record 0 (source img00.png)"), "\(e)")
      XCTAssertTrue("\(e)".contains("label value 254 at pixel 2 is out of range"), "\(e)")
    }
  }
}
