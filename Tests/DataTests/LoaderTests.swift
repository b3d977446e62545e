import Data
import Foundation
import XCTest

final class SamplerTests: XCTestCase {
  func testDisjointDeterministicAndCoveringFor1To4Ranks() throws {
    for n in [10, 11, 13] {
      for r in 1...4 {
        // dropTail: equal counts, disjoint, union = the first epochLength positions of the permutation.
        let drop = try (0..<r).map { try EpochSampler(count: n, seed: 5, rank: $0, worldSize: r) }
        let per = drop.map { $0.indices(epoch: 3) }
        XCTAssertTrue(per.allSatisfy { $0.count == n / r }, "n \(n) R \(r)")
        let union = per.flatMap { $0 }
        XCTAssertEqual(Set(union).count, union.count, "disjoint, n \(n) R \(r)")
        XCTAssertEqual(Set(union), Set(drop[0].permutation(epoch: 3).prefix(n / r * r)))
        XCTAssertEqual(per, try (0..<r).map { try EpochSampler(count: n, seed: 5, rank: $0, worldSize: r).indices(epoch: 3) })
        // padByWrapping: union = every record; repeats are exactly the positions marked as padding.
        let pad = try (0..<r).map { try EpochSampler(count: n, seed: 5, rank: $0, worldSize: r, remainder: .padByWrapping) }
        let pu = pad.map { $0.indices(epoch: 3) }
        XCTAssertEqual(Set(pu.flatMap { $0 }), Set(0..<n), "n \(n) R \(r)")
        XCTAssertTrue(pu.allSatisfy { $0.count == (n + r - 1) / r })
        let real = zip(pad, pu).flatMap { s, idx in idx.enumerated().filter { !s.isPadding($0.offset) }.map(\.element) }
        XCTAssertEqual(real.sorted(), Array(0..<n), "non-padding positions are each record once")
      }
    }
  }

  func testPermutationDependsOnlyOnSeedAndEpoch() throws {
    let s = try EpochSampler(count: 50, seed: 1)
    XCTAssertEqual(s.permutation(epoch: 0).sorted(), Array(0..<50))
    XCTAssertEqual(s.permutation(epoch: 2), try EpochSampler(count: 50, seed: 1, rank: 1, worldSize: 3).permutation(epoch: 2))
    XCTAssertNotEqual(s.permutation(epoch: 0), s.permutation(epoch: 1))
    XCTAssertNotEqual(s.permutation(epoch: 0), try EpochSampler(count: 50, seed: 2).permutation(epoch: 0))
    XCTAssertEqual(try EpochSampler(count: 5, seed: 1, shuffle: false).indices(epoch: 9), [0, 1, 2, 3, 4])
    XCTAssertThrowsError(try EpochSampler(count: 5, seed: 1, rank: 2, worldSize: 2))
    XCTAssertThrowsError(try EpochSampler(count: 2, seed: 1, rank: 0, worldSize: 3))
  }

  func testGlobalBatchesDoNotDependOnWorldSize() throws {
    // Global batch 4: 1 rank × 4, 2 ranks × 2, 4 ranks × 1 read the same records per step.
    let n = 24, g = 4
    func steps(_ r: Int) throws -> [Set<Int>] {
      let per = try (0..<r).map { try EpochSampler(count: n, seed: 9, rank: $0, worldSize: r).indices(epoch: 1) }
      let b = g / r
      return (0..<(n / g)).map { k in Set(per.flatMap { $0[(k * b)..<((k + 1) * b)] }) }
    }
    XCTAssertEqual(try steps(1), try steps(2))
    XCTAssertEqual(try steps(1), try steps(4))
  }
}

final class AugmentTests: XCTestCase {
  func testKeepRatioSizeMatchesMMCV() {
    // mmcv.rescale_size((500, 375), (2048, 512)) = (683, 512).
    XCTAssertTrue(Resize.keepRatioSize(width: 500, height: 375, long: 2048, short: 512) == (683, 512))
    XCTAssertTrue(Resize.keepRatioSize(width: 2048, height: 1024, long: 1024, short: 512) == (1024, 512))
    XCTAssertTrue(Resize.keepRatioSize(width: 100, height: 300, long: 2048, short: 512) == (512, 1536))
  }

  func testResizedLabelsHoldOnlyOriginalValues() throws {
    let s = try SyntheticDataset(count: 3, numClasses: 6, width: 37, height: 29, seed: 4, ignoreBorder: 1).sample(at: 1)
    let original = Set(s.label.pixels)
    for (w, h) in [(18, 14), (74, 58), (50, 21), (1, 1)] {
      let r = Resize.nearest(s.label, width: w, height: h)
      XCTAssertEqual([r.width, r.height], [w, h])
      XCTAssertTrue(Set(r.pixels).isSubset(of: original), "\(w)×\(h)")
    }
    // Bilinear keeps a constant image constant and a 2× up/down round trip close.
    let flat = Image8(width: 9, height: 7, channels: 3, fill: 77)
    XCTAssertTrue(Resize.bilinear(flat, width: 20, height: 3).pixels.allSatisfy { $0 == 77 })
    let up = Resize.bilinear(s.image, width: 74, height: 58)
    XCTAssertEqual(up.pixels.count, 74 * 58 * 3)
    // Resizing only a region gives exactly the crop of the full resize (the fast path the pipeline takes).
    for box in [Crop.Box(x: 0, y: 0, width: 74, height: 58), Crop.Box(x: 13, y: 7, width: 30, height: 20),
                Crop.Box(x: 73, y: 57, width: 1, height: 1)] {
      XCTAssertEqual(Resize.bilinear(s.image, width: 74, height: 58, region: box), Crop.apply(up, box), "\(box)")
    }
    let down = Resize.bilinear(s.image, width: 20, height: 11)
    XCTAssertEqual(Resize.bilinear(s.image, width: 20, height: 11, region: Crop.Box(x: 5, y: 2, width: 10, height: 9)),
                   Crop.apply(down, Crop.Box(x: 5, y: 2, width: 10, height: 9)))
    // Through the whole pipeline, labels keep only original values (plus 255 padding).
    var aug = TrainAugment(scaleLong: 60, scaleShort: 40, cropHeight: 32, cropWidth: 32)
    aug.photometric = false
    for e in 0..<5 {
      let t = aug.apply(s, seed: 1, epoch: e, index: 1)
      XCTAssertTrue(Set(t.label).isSubset(of: original.union([255])))
    }
  }

  func testCropFollowsTheCategoryRatioRule() throws {
    // Left half class 1, a 6-px stripe of class 2, the rest ignore: some boxes pass, many do not.
    let w = 40, h = 30
    var px = [UInt8](repeating: 255, count: w * h)
    for y in 0..<h { for x in 0..<w { if x < 20 { px[y * w + x] = 1 } else if x < 26 { px[y * w + x] = 2 } } }
    let label = Image8(width: w, height: h, channels: 1, pixels: px)
    var outcomes = Set<String>()
    for seed in 0..<200 {
      var a = SampleRNG(seed: UInt64(seed), stream: .augment), b = a
      let chosen = Crop.choose(label: label, cropHeight: 12, cropWidth: 12, catMaxRatio: 0.75, rng: &a)
      // Replay mmseg's loop: first draw, then up to 10 checks, each failure draws again.
      var boxes: [Crop.Box] = []
      for _ in 0..<11 {
        let oy = b.int(0, through: h - 12), ox = b.int(0, through: w - 12)
        boxes.append(Crop.Box(x: ox, y: oy, width: 12, height: 12))
      }
      let expected = boxes.prefix(10).first { Crop.passes(label, $0, 0.75) } ?? boxes[10]
      XCTAssertEqual(chosen, expected, "seed \(seed)")
      outcomes.insert(Crop.passes(label, chosen, 0.75) ? "pass" : "gave up")
    }
    XCTAssertEqual(outcomes, ["pass", "gave up"], "both branches exercised")
    // The rule itself: 255 does not count, one class never passes, 3:1 is not < 0.75.
    func lab(_ v: [UInt8]) -> Image8 { Image8(width: v.count, height: 1, channels: 1, pixels: v) }
    let all = Crop.Box(x: 0, y: 0, width: 4, height: 1)
    XCTAssertFalse(Crop.passes(lab([1, 255, 255, 255]), all, 0.75))
    XCTAssertFalse(Crop.passes(lab([1, 1, 1, 2]), all, 0.75))
    XCTAssertTrue(Crop.passes(lab([1, 1, 2, 255]), all, 0.75))
  }

  /// Image whose red channel is 20 × label, with vertical stripes so that a flip shows.
  func stripes(width: Int = 20, height: Int = 10) -> SegSample {
    var img = [UInt8](), lab = [UInt8]()
    for _ in 0..<height { for x in 0..<width { let c = UInt8(x / 4); lab.append(c); img += [c * 20, 100, 50] } }
    return SegSample(image: Image8(width: width, height: height, channels: 3, pixels: img),
                     label: Image8(width: width, height: height, channels: 1, pixels: lab), name: "stripes")
  }

  func identityAugment(crop: (Int, Int)) -> TrainAugment {
    var a = TrainAugment(scaleLong: 20, scaleShort: 10, cropHeight: crop.0, cropWidth: crop.1)
    a.ratioRange = 1...1; a.photometric = false; a.catMaxRatio = 1; a.mean = [0, 0, 0]; a.std = [1, 1, 1]
    return a
  }

  func testFlipMovesImageAndLabelTogether() {
    let s = stripes()
    XCTAssertEqual(Flip.horizontal(Flip.horizontal(s.image)), s.image)
    let a = identityAugment(crop: (10, 20))
    var flipped = 0
    for i in 0..<40 {
      let t = a.apply(s, seed: 3, epoch: 0, index: i)
      for p in 0..<(10 * 20) { XCTAssertEqual(t.image[p * 3], Float(t.label[p]) * 20, "pixel \(p) of index \(i)") }
      if t.label[0] == 4 { flipped += 1 } else { XCTAssertEqual(t.label[0], 0) }
    }
    XCTAssertTrue((8...32).contains(flipped), "about half flipped, got \(flipped) of 40")
  }

  func testPadIsIgnoreForLabelsAndZeroForImages() {
    let a = identityAugment(crop: (16, 24))
    let t = a.apply(stripes(), seed: 0, epoch: 0, index: 0)
    XCTAssertEqual(t.label.count, 16 * 24); XCTAssertEqual(t.image.count, 16 * 24 * 3)
    for y in 0..<16 { for x in 0..<24 where y >= 10 || x >= 20 {
      XCTAssertEqual(t.label[y * 24 + x], 255, "(\(x), \(y))")
      XCTAssertEqual(t.image[(y * 24 + x) * 3 + 1], 0)
    } }
    XCTAssertEqual(t.image[1], 100)  // inside: normalised with mean 0, std 1
  }

  func testAugmentationIsAPureFunctionOfSeedEpochIndex() throws {
    let s = try SyntheticDataset(count: 2, numClasses: 5, width: 48, height: 40, seed: 0).sample(at: 0)
    let a = TrainAugment(scaleLong: 64, scaleShort: 48, cropHeight: 32, cropWidth: 32)
    let x = a.apply(s, seed: 7, epoch: 1, index: 0), y = a.apply(s, seed: 7, epoch: 1, index: 0)
    XCTAssertEqual(x.image, y.image); XCTAssertEqual(x.label, y.label)
    XCTAssertNotEqual(x.image, a.apply(s, seed: 7, epoch: 2, index: 0).image)
    // Normalised values lie in the range that 0…255 maps to.
    XCTAssertTrue(x.image.allSatisfy { $0 >= -2.2 && $0 <= 2.7 })
  }

  func testPhotometricKeepsGeometryAndHSVRoundTripIsClose() throws {
    let s = try SyntheticDataset(count: 2, numClasses: 5, width: 16, height: 16, seed: 0).sample(at: 1)
    var changed = 0
    for i in 0..<20 {
      var rng = SampleRNG(seed: UInt64(i), stream: .augment)
      let d = Photometric.distort(s.image, rng: &rng)
      XCTAssertEqual([d.width, d.height, d.channels], [16, 16, 3])
      if d != s.image { changed += 1 }
    }
    XCTAssertGreaterThan(changed, 15, "almost every draw changes something")
    // Saturation ×1 and hue +0 must give back nearly the same colours.
    var rng = SampleRNG(seed: 0, stream: .augment)
    let same = Photometric.distort(s.image, rng: &rng, brightnessDelta: 0, contrast: 1...1, saturation: 1...1, hueDelta: 1)
    let diff = zip(same.pixels, s.image.pixels).map { abs(Int($0) - Int($1)) }.max()!
    XCTAssertLessThanOrEqual(diff, 3)
  }

  func testValidationKeepsLabelsAtOriginalSize() throws {
    let s = try SyntheticDataset(count: 1, numClasses: 5, width: 50, height: 30, seed: 0).sample(at: 0)
    let e = EvalAugment(scaleLong: 100, scaleShort: 40).apply(s, index: 0)
    XCTAssertEqual([e.width, e.height], [67, 40])
    XCTAssertEqual(e.image.count, 67 * 40 * 3)
    XCTAssertEqual(e.label, s.label.pixels)
    XCTAssertEqual([e.labelWidth, e.labelHeight], [50, 30])
  }
}

final class LoaderTests: XCTestCase {
  func batches(_ src: any SegmentationSource, workers: Int, prefetch: Int, rank: Int = 0, world: Int = 1) throws -> [TrainBatch] {
    let sampler = try EpochSampler(count: src.count, seed: 11, rank: rank, worldSize: world)
    let aug = TrainAugment(scaleLong: 48, scaleShort: 32, cropHeight: 24, cropWidth: 24)
    let stream = try DataLoader.training(source: src, sampler: sampler, epoch: 2, augment: aug, seed: 11,
                                         batchSize: 3, workers: workers, prefetchBatches: prefetch)
    var out: [TrainBatch] = []
    while let b = try stream.next() { out.append(TrainBatch(b)) }
    XCTAssertEqual(out.count, stream.numBatches)
    return out
  }

  func testSameBatchesForAnyWorkerCountAndPrefetchDepth() throws {
    let src = try SyntheticDataset(count: 14, numClasses: 5, width: 32, height: 28, seed: 2)
    let ref = try batches(src, workers: 0, prefetch: 1)
    XCTAssertEqual(ref.count, 4, "14 records, batch 3, partial batch dropped")
    for (w, p) in [(1, 1), (3, 1), (2, 4), (4, 2)] {
      let got = try batches(src, workers: w, prefetch: p)
      XCTAssertEqual(got.map(\.indices), ref.map(\.indices), "workers \(w) prefetch \(p)")
      XCTAssertEqual(got.map(\.images), ref.map(\.images), "workers \(w) prefetch \(p)")
      XCTAssertEqual(got.map(\.labels), ref.map(\.labels), "workers \(w) prefetch \(p)")
    }
    XCTAssertEqual(ref[0].images.count, 3 * 24 * 24 * 3)
    XCTAssertEqual(ref[0].labels.count, 3 * 24 * 24)
  }

  func testRanksReadDisjointSharesOfPackedShardsAndSamplesDoNotDependOnRank() throws {
    let t = TempDir()
    Fixture.folder(t.sub("img"), t.sub("lab"), count: 13)
    let spec = try DatasetLayout.folder(images: t.sub("img"), labels: t.sub("lab"), split: "train", numClasses: 5, ignoreValue: 254)
    let ds = try ShardedDataset(directory: try Packer.pack(spec, into: t.sub("out"), options: Fixture.quiet(perShard: 4)).directory)
    let one = try batches(ds, workers: 2, prefetch: 2)
    var byIndex: [Int: [Float]] = [:]
    for b in one { for (k, i) in b.indices.enumerated() { byIndex[i] = Array(b.images[(k * 24 * 24 * 3)..<((k + 1) * 24 * 24 * 3)]) } }
    for world in 2...3 {
      let per = try (0..<world).map { try batches(ds, workers: 2, prefetch: 1, rank: $0, world: world) }
      let idx = per.flatMap { $0.flatMap(\.indices) }
      XCTAssertEqual(Set(idx).count, idx.count, "disjoint over \(world) ranks")
      for b in per.flatMap({ $0 }) {
        for (k, i) in b.indices.enumerated() where byIndex[i] != nil {
          XCTAssertEqual(Array(b.images[(k * 24 * 24 * 3)..<((k + 1) * 24 * 24 * 3)]), byIndex[i], "record \(i) with \(world) ranks")
        }
      }
    }
  }

  struct FailingSource: SegmentationSource {
    let inner: SyntheticDataset
    var count: Int { inner.count }
    var numClasses: Int { inner.numClasses }
    func sample(at i: Int) throws -> SegSample {
      if i == 4 { throw DataError.badRecord(file: "shard-00000.ecs", record: 4, source: "bad.jpg", "checksum mismatch") }
      return try inner.sample(at: i)
    }
  }

  func testAFailingRecordFailsItsBatchWithItsName() throws {
    let src = FailingSource(inner: try SyntheticDataset(count: 9, numClasses: 4, width: 16, height: 16, seed: 0))
    let stream = try BatchStream(source: src, indices: Array(0..<9), batchSize: 3, workers: 2, prefetchBatches: 2,
                                 dropLast: false) { s, i in (i, s.name) }
    XCTAssertEqual(try stream.next()?.map(\.0), [0, 1, 2])
    XCTAssertThrowsError(try stream.next()) { XCTAssertTrue("\($0)".contains("record 4 (source bad.jpg)"), "\($0)") }
    XCTAssertEqual(try stream.next()?.map(\.0), [6, 7, 8])
    XCTAssertNil(try stream.next())
  }

  func testValidationPassCoversEveryRecordOnceInOrder() throws {
    let src = try SyntheticDataset(count: 5, numClasses: 4, width: 20, height: 10, seed: 0)
    let stream = try DataLoader.validation(source: src, indices: Array(0..<5), augment: EvalAugment(scaleLong: 40, scaleShort: 20), workers: 2)
    var seen: [Int] = []
    while let b = try stream.next() { seen += b.map(\.index); XCTAssertEqual(b[0].labelWidth, 20) }
    XCTAssertEqual(seen, [0, 1, 2, 3, 4])
  }

  func testAbandonedStreamStopsItsWorkers() throws {
    let src = try SyntheticDataset(count: 50, numClasses: 4, width: 16, height: 16, seed: 0)
    for _ in 0..<5 {
      let s = try BatchStream(source: src, indices: Array(0..<50), batchSize: 2, workers: 3, prefetchBatches: 2,
                              dropLast: true) { _, i in i }
      _ = try s.next()
    }  // deinit cancels and joins; a hang here fails the test by timeout
  }
}
