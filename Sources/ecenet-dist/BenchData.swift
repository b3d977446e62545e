// `ecenet-dist bench data`: loader throughput at the ADE20K 640² recipe
// (TrainAugment.ade20k) against what the trainer consumes (issue 5, issue 9 §4).
//
// No real ADE20K here (no downloads), so a fixture set of ADE20K-sized inputs
// is drawn into a temporary folder: 683×512 JPEGs at quality 90 whose texture
// (1/f value noise plus grain over coloured regions) makes them ≈ real ADE20K
// sizes, and 8-bit label PNGs with 10–24 regions over 30 classes (the
// synthetic generator's shapes on top of a warped Voronoi partition, so crops
// hold several classes as ADE20K's do). They are packed with the real packer
// (`pack --format folder`) and read back through the real loader.
//
// Figures, every one the best of `reps` passes over the set (the machine is shared):
//   decode   ShardedDataset.sample(at:) on one thread: CRC, zstd, JPEG + PNG decode, label map
//   augment  TrainAugment.ade20k.apply on pre-decoded samples, one thread
//   parallel decode+augment on `cores` threads (concurrentPerform, no loader): the loader's overhead is the gap
//   loader   DataLoader.training with 1 and 2 workers, drained by this thread;
//            wall images/s, per core (÷ workers, at most the cores), and images per CPU-second
//            (process user+sys time, so a busy machine does not count against it)
//   bytes    shard bytes per image vs the raw JPEG+PNG files
// The trainer's rate comes from BENCH_TRAINER_IMAGES_PER_SECOND (images/s on
// BENCH_TRAINER_CORES cores, default all); unset, issue 9's Swin-B 640² batch-1
// targets at 2 threads are used: 0.8 × PyTorch's 6.2 s fp32 and 2.4 s bf16 step.
import Data
import Foundation

struct DataBenchOptions {
  var images = 64
  var width = 683, height = 512
  var quality = 90
  var numClasses = 30
  var batchSize = 2
  var prefetch = 2
  var workerCounts = [1, 2]
  /// Loader passes are at least this many images (several epochs of the set).
  var loaderImages = 128
}

/// Draws the fixture set: `images` JPEG + label-PNG pairs in `dir`/img and `dir`/lab.
/// Deterministic (seeded); returns the total raw bytes (JPEG, PNG).
func writeDataBenchFixture(_ o: DataBenchOptions, dir: String) throws -> (jpeg: Int, png: Int) {
  let fm = FileManager.default
  let imgDir = (dir as NSString).appendingPathComponent("img"), labDir = (dir as NSString).appendingPathComponent("lab")
  try fm.createDirectory(atPath: imgDir, withIntermediateDirectories: true)
  try fm.createDirectory(atPath: labDir, withIntermediateDirectories: true)
  let synth = try SyntheticDataset(count: o.images, numClasses: o.numClasses, width: o.width, height: o.height, seed: 5)
  var jpegBytes = 0, pngBytes = 0
  for i in 0..<o.images {
    let s = try synth.sample(at: i)
    let (img, lab) = naturalize(s, index: i, numClasses: o.numClasses)
    let jpg = try JPEGCodec.encode(img, quality: o.quality), png = try PNGCodec.encode(lab)
    let stem = String(format: "ADE_train_%08d", i + 1)
    try Data(jpg).write(to: URL(fileURLWithPath: (imgDir as NSString).appendingPathComponent(stem + ".jpg")))
    try Data(png).write(to: URL(fileURLWithPath: (labDir as NSString).appendingPathComponent(stem + ".png")))
    jpegBytes += jpg.count; pngBytes += png.count
  }
  return (jpegBytes, pngBytes)
}

/// Value noise in [-1, 1] on a lattice of `cell` pixels, smoothstep-interpolated.
private func valueNoise(width w: Int, height h: Int, cell: Int, key: UInt64) -> [Float] {
  let gw = w / cell + 2, gh = h / cell + 2
  let grid = (0..<(gw * gh)).map { Float(splitmix64Mix(key ^ UInt64($0)) >> 40) / Float(1 << 23) - 1 }
  var out = [Float](repeating: 0, count: w * h)
  for y in 0..<h {
    let gy = y / cell, ty = Float(y % cell) / Float(cell), sy = ty * ty * (3 - 2 * ty)
    for x in 0..<w {
      let gx = x / cell, tx = Float(x % cell) / Float(cell), sx = tx * tx * (3 - 2 * tx)
      let a = grid[gy * gw + gx], b = grid[gy * gw + gx + 1], c = grid[(gy + 1) * gw + gx], d = grid[(gy + 1) * gw + gx + 1]
      out[y * w + x] = (a + (b - a) * sx) * (1 - sy) + (c + (d - c) * sx) * sy
    }
  }
  return out
}

/// Turns a synthetic scene into something a JPEG codec sees like a photo: the
/// background (class 0) becomes a warped Voronoi partition of other classes,
/// and the whole image gets shading (1/f noise over 6 octaves) and grain.
private func naturalize(_ s: SegSample, index: Int, numClasses: Int) -> (Image8, Image8) {
  let w = s.image.width, h = s.image.height
  var rng = SampleRNG(seed: 0xDA7A, index: UInt64(index), stream: .synthetic)
  let cells = 10 + rng.below(15)
  let seeds = (0..<cells).map { _ in (Float(rng.uniform(0, Double(w))), Float(rng.uniform(0, Double(h))), 1 + rng.below(numClasses - 1)) }
  let colour = (0..<cells).map { _ in (Float(rng.uniform(30, 225)), Float(rng.uniform(30, 225)), Float(rng.uniform(30, 225))) }
  let key = rng.next()
  let warpX = valueNoise(width: w, height: h, cell: 48, key: key ^ 1), warpY = valueNoise(width: w, height: h, cell: 48, key: key ^ 2)
  var shade = [Float](repeating: 0, count: w * h), amp: Float = 36
  for (o, cell) in [64, 32, 16, 8, 4, 2].enumerated() {
    let n = valueNoise(width: w, height: h, cell: cell, key: key ^ UInt64(10 + o))
    for p in 0..<(w * h) { shade[p] += amp * n[p] }
    amp *= 0.62
  }
  var px = s.image.pixels, lab = s.label.pixels
  for y in 0..<h {
    for x in 0..<w {
      let p = y * w + x
      var base: (Float, Float, Float)
      if lab[p] == 0 {
        let fx = Float(x) + 25 * warpX[p], fy = Float(y) + 25 * warpY[p]
        var best = 0, bd = Float.infinity
        for (k, sd) in seeds.enumerated() {
          let d = (fx - sd.0) * (fx - sd.0) + (fy - sd.1) * (fy - sd.1)
          if d < bd { bd = d; best = k }
        }
        lab[p] = UInt8(seeds[best].2)
        base = colour[best]
      } else {
        base = (Float(px[3 * p]), Float(px[3 * p + 1]), Float(px[3 * p + 2]))
      }
      let grain = Float(Int(splitmix64Mix(key ^ UInt64(p) &* 0x9E37_79B9) & 7)) - 3.5
      func byte(_ v: Float) -> UInt8 { UInt8(max(0, min(255, v.rounded()))) }
      px[3 * p] = byte(base.0 + shade[p] + grain)
      px[3 * p + 1] = byte(base.1 + shade[p] * 0.9 + grain)
      px[3 * p + 2] = byte(base.2 + shade[p] * 0.8 + grain)
    }
  }
  return (Image8(width: w, height: h, channels: 3, pixels: px), Image8(width: w, height: h, channels: 1, pixels: lab))
}

private func wallNow() -> Double { Double(DispatchTime.now().uptimeNanoseconds) * 1e-9 }

/// User + system CPU seconds of this process (all threads).
private func cpuNow() -> Double {
  var u = rusage()
  getrusage(RUSAGE_SELF.rawValue, &u)
  return Double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + Double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6
}

private func loadAverage() -> String {
  (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(separator: " ") ?? "NA"
}

/// Best (wall seconds, CPU seconds) of `reps` runs of `body`, chosen by wall time.
private func bestOf(_ reps: Int, _ body: (Int) throws -> Void) rethrows -> (wall: Double, cpu: Double) {
  var best = (wall: Double.infinity, cpu: 0.0)
  for r in 0..<reps {
    let w0 = wallNow(), c0 = cpuNow()
    try body(r)
    let w = wallNow() - w0, c = cpuNow() - c0
    if w < best.wall { best = (w, c) }
  }
  return best
}

func runDataBench(threads: Int?, reps: Int, quick: Bool, json: Bool) throws {
  var o = DataBenchOptions()
  if quick { o.images = 16; o.loaderImages = 32 }
  let cores = threads ?? ProcessInfo.processInfo.activeProcessorCount
  let env = ProcessInfo.processInfo.environment
  let loadBefore = loadAverage()
  let log: (String) -> Void = { m in FileHandle.standardError.write(Data("bench data: \(m)\n".utf8)) }

  let root = (NSTemporaryDirectory() as NSString).appendingPathComponent("ecenet-bench-data-\(getpid())")
  defer { try? FileManager.default.removeItem(atPath: root) }
  log("drawing \(o.images) fixture images \(o.width)×\(o.height) (JPEG q\(o.quality), label PNG) in \(root)")
  let raw = try writeDataBenchFixture(o, dir: root)

  // Pack with the real packer (the `pack --format folder` path).
  let spec = try DatasetLayout.folder(images: (root as NSString).appendingPathComponent("img"),
                                      labels: (root as NSString).appendingPathComponent("lab"),
                                      split: "train", numClasses: o.numClasses)
  var popts = PackOptions(); popts.progress = false; popts.threads = cores
  let packT0 = wallNow()
  let report = try Packer.pack(spec, into: (root as NSString).appendingPathComponent("packed"), options: popts)
  let packSeconds = wallNow() - packT0
  let ds = try ShardedDataset(directory: report.directory)
  var storedImage = 0, storedLabel = 0, zstdLabels = 0
  for i in 0..<ds.count {
    let r = try ds.record(at: i)
    storedImage += r.image.count; storedLabel += r.label.count
    if r.labelEncoding == .zstd { zstdLabels += 1 }
  }

  // Decode only (one thread), and the JPEG decode inside it.
  log("decode (\(reps) passes)")
  let dec = try bestOf(reps) { _ in for i in 0..<ds.count { _ = try ds.sample(at: i) } }
  let jpegs = try (0..<ds.count).map { try ds.record(at: $0).imageBytes() }
  let jpg = try bestOf(reps) { _ in for b in jpegs { _ = try JPEGCodec.decodeRGB(b) } }

  // Augment only (one thread), on decoded samples; epoch 0 every pass so the passes are the same work.
  log("augment (\(reps) passes)")
  let samples = try (0..<ds.count).map { try ds.sample(at: $0) }
  let aug = TrainAugment.ade20k
  let augT = bestOf(reps) { _ in for (i, s) in samples.enumerated() { _ = aug.apply(s, seed: 1, epoch: 0, index: i) } }

  // Decode + augment on `cores` threads with no loader around it: the
  // machine's own scaling, to tell the loader's overhead from the cores'.
  log("decode+augment on \(cores) threads, no loader (\(reps) passes)")
  let par = bestOf(reps) { _ in
    DispatchQueue.concurrentPerform(iterations: cores) { t in
      for i in stride(from: t, to: ds.count, by: cores) { if let s = try? ds.sample(at: i) { _ = aug.apply(s, seed: 1, epoch: 0, index: i) } }
    }
  }


  // The real loader, drained as fast as possible by this thread.
  let sampler = try EpochSampler(count: ds.count, seed: 1)
  let epochs = max(1, (o.loaderImages + ds.count - 1) / ds.count)
  var loader: [(workers: Int, images: Int, wall: Double, cpu: Double)] = []
  for wk in o.workerCounts {
    log("loader, \(wk) worker(s), \(epochs) epoch(s) per pass, \(reps) passes")
    var n = 0
    let t = try bestOf(reps) { r in
      n = 0
      for e in 0..<epochs {
        let stream = try DataLoader.training(source: ds, sampler: sampler, epoch: r * epochs + e, augment: aug, seed: 1,
                                             batchSize: o.batchSize, workers: wk, prefetchBatches: o.prefetch)
        while let b = try stream.next() { n += b.count }
      }
    }
    loader.append((wk, n, t.wall, t.cpu))
  }
  let loadAfter = loadAverage()

  // What the trainer consumes.
  let trainerCores = Int(env["BENCH_TRAINER_CORES"] ?? "") ?? cores
  var trainer: [(String, Double)] = []
  if let s = env["BENCH_TRAINER_IMAGES_PER_SECOND"], let v = Double(s), v > 0 {
    trainer = [("given (BENCH_TRAINER_IMAGES_PER_SECOND)", v)]
  } else {
    trainer = [("Swin-B 640² b1 fp32 target 0.8×6.2 s", 1 / (0.8 * 6.2)), ("Swin-B 640² b1 bf16 target 0.8×2.4 s", 1 / (0.8 * 2.4))]
  }
  let top = loader.max { $0.workers < $1.workers }!
  let loaderPerCore = Double(top.images) / top.wall / Double(min(top.workers, cores))
  let n = Double(ds.count)
  let decIPS = n / dec.wall, augIPS = n / augT.wall
  let shardPerImage = Double(report.shardBytes) / n, rawPerImage = Double(raw.jpeg + raw.png) / n

  // With --json the table goes to stderr and the JSON object to stdout.
  let say: (String) -> Void = { json ? FileHandle.standardError.write(Data(($0 + "\n").utf8)) : print($0) }
  func f(_ v: Double, _ p: Int = 1) -> String { String(format: "%.\(p)f", v) }
  say("bench data: \(ds.count) images \(o.width)×\(o.height), JPEG q\(o.quality) + label PNG (\(o.numClasses) classes); "
    + "TrainAugment.ade20k (2560×640 × U[0.5,2], crop 640², cat-max 0.75, flip, photometric, normalise, pad); "
    + "\(cores) core(s); best of \(reps); load average \(loadBefore) → \(loadAfter)")
  say("bytes/image: raw JPEG \(f(Double(raw.jpeg) / n / 1000)) kB + PNG \(f(Double(raw.png) / n / 1000)) kB = \(f(rawPerImage / 1000)) kB; "
    + "shard \(f(shardPerImage / 1000)) kB (\(f(shardPerImage / rawPerImage, 3))× raw; labels zstd'd: \(zstdLabels)/\(ds.count)); "
    + "pack \(f(packSeconds, 2)) s")
  say("one thread: decode \(f(decIPS)) img/s (JPEG alone \(f(n / jpg.wall))), augment \(f(augIPS)) img/s, "
    + "decode+augment \(f(1 / (1 / decIPS + 1 / augIPS))) img/s; on \(cores) threads without the loader \(f(n / par.wall)) img/s "
    + "(\(f(n / par.cpu)) img/CPU-s)")
  say("workers  images  wall s  img/s  img/s/core  img/CPU-s")
  for l in loader {
    say(String(format: "%7d  %6d  %6.2f  %5.1f  %10.1f  %9.1f", l.workers, l.images, l.wall, Double(l.images) / l.wall,
                 Double(l.images) / l.wall / Double(min(l.workers, cores)), Double(l.images) / l.cpu))
  }
  for (what, ips) in trainer {
    say("trainer \(what): \(f(ips, 3)) img/s on \(trainerCores) core(s); loader (\(f(loaderPerCore)) img/s/core × \(trainerCores)) "
      + "outruns it \(f(loaderPerCore * Double(trainerCores) / ips))× (issue 5 needs ≥ 4×)")
  }
  if json {
    var obj: [String: Any] = [
      "images": ds.count, "width": o.width, "height": o.height, "jpeg_quality": o.quality, "cores": cores, "reps": reps,
      "load_before": loadBefore, "load_after": loadAfter,
      "raw_jpeg_bytes_per_image": Double(raw.jpeg) / n, "raw_png_bytes_per_image": Double(raw.png) / n,
      "shard_bytes_per_image": shardPerImage, "shard_over_raw": shardPerImage / rawPerImage,
      "stored_image_bytes_per_image": Double(storedImage) / n, "stored_label_bytes_per_image": Double(storedLabel) / n,
      "labels_zstd": zstdLabels, "pack_seconds": packSeconds,
      "decode_images_per_second": decIPS, "jpeg_decode_images_per_second": n / jpg.wall,
      "augment_images_per_second": augIPS, "decode_plus_augment_images_per_second": 1 / (1 / decIPS + 1 / augIPS),
      "decode_plus_augment_all_cores_images_per_second": n / par.wall, "decode_plus_augment_all_cores_images_per_cpu_second": n / par.cpu,
      "loader_images_per_second_per_core": loaderPerCore, "trainer_cores": trainerCores,
    ]
    obj["loader"] = loader.map { ["workers": $0.workers, "images": $0.images, "wall_s": $0.wall, "cpu_s": $0.cpu,
                                  "images_per_second": Double($0.images) / $0.wall,
                                  "images_per_cpu_second": Double($0.images) / $0.cpu] }
    obj["trainer"] = trainer.map { ["what": $0.0, "images_per_second": $0.1,
                                    "loader_over_trainer": loaderPerCore * Double(trainerCores) / $0.1] }
    let d = try JSONSerialization.data(withJSONObject: obj, options: [.prettyPrinted, .sortedKeys])
    print(String(decoding: d, as: UTF8.self))
  }
}
