// The Swift side of our packed-panel GEMM kernels (CShims/bf16_gemm.c and
// CShims/f32_gemm.c): both expose the same C shape — pack op(B) into 32-column
// panels (any column range), and compute any row × column block of C from the
// packed B with a caller-provided A scratch — so one driver owns the threads
// and the memory for both. It packs op(B) once into pooled scratch (its panels
// split over the threads), then splits C over `Parallel.forRange`, each task
// with its own A scratch. Letters: M, N, K the GEMM sizes (op(A) M×K, op(B)
// K×N, C M×N); MR, NR the kernel's register tile.
import CShims

/// The checks and trivial cases both packed-GEMM entry points (`gemmBF16`,
/// `gemmF32Kernel`) keep before any kernel runs, with cblas semantics: sizes
/// checked; an empty C returns before anything else; k == 0 or alpha == 0
/// leaves C = beta·C (beta 0 writes zeros without reading C), plus the bias row
/// if any; A's and B's leading dimensions are checked only when they will be
/// read. True when C is already final.
func gemmFinishedWithoutKernel(_ name: String, transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                               lda: Int, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                               bias: UnsafePointer<Float>? = nil) -> Bool {
  precondition(m >= 0 && n >= 0 && k >= 0, "\(name): negative size m \(m) n \(n) k \(k)")
  if m == 0 || n == 0 { return true }
  precondition(ldc >= n, "\(name): ldc \(ldc) < n \(n)")
  if k == 0 || alpha == 0 {
    for i in 0..<m {
      let row = c + i * ldc
      if beta == 0 { row.update(repeating: 0, count: n) } else { for j in 0..<n { row[j] *= beta } }
      if let bias = bias { for j in 0..<n { row[j] += bias[j] } }
    }
    return true
  }
  precondition(lda >= (transA ? m : k), "\(name): lda \(lda) < \(transA ? "m" : "k") (m \(m) k \(k), transA \(transA))")
  precondition(ldb >= (transB ? k : n), "\(name): ldb \(ldb) < \(transB ? "k" : "n") (k \(k) n \(n), transB \(transB))")
  return false
}

struct PackedGEMMKernel {
  typealias PackB = @convention(c) (Int32, Int, Int, UnsafePointer<Float>?, Int, Int, Int, UnsafeMutableRawPointer?) -> Void
  typealias Compute = @convention(c) (Int32, Int, Int, Int, Float, UnsafePointer<Float>?, Int, UnsafeRawPointer?, Float,
                                      UnsafeMutablePointer<Float>?, Int, UnsafePointer<Float>?, Int, Int, Int, Int,
                                      UnsafeMutableRawPointer?) -> Void
  typealias TapsCompute = @convention(c) (Int, Int, Int, Int, UnsafePointer<Int>?, Float, UnsafePointer<Float>?, Int,
                                          UnsafeRawPointer?, Float, UnsafeMutablePointer<Float>?, Int, Int, Int, Int, Int,
                                          UnsafeMutableRawPointer?) -> Void
  typealias KTapsCompute = @convention(c) (Int, Int, Int, Int, UnsafePointer<Int>?, Float, UnsafePointer<Float>?, Int,
                                           UnsafeRawPointer?, Float, UnsafeMutablePointer<Float>?, Int, Int, Int, Int,
                                           Int, Int, UnsafeMutableRawPointer?) -> Void
  let mr: Int, nr: Int
  /// Floats of A scratch per task, rounded up to 64 bytes so every task's slice stays aligned.
  let scratchFloats: Int
  let packedBBytes: @convention(c) (Int, Int) -> Int
  let packB: PackB
  let compute: Compute
  /// The shifted-taps GEMM (`gemm_taps_compute`) and its A scratch bytes for a span.
  let tapsScratchBytes: @convention(c) (Int) -> Int
  let tapsCompute: TapsCompute
  /// The K-shifted taps GEMM (`gemm_ktaps_compute`) and its A scratch bytes for a span.
  let kTapsScratchBytes: @convention(c) (Int) -> Int
  let kTapsCompute: KTapsCompute
  /// Rows per A block of `compute` (the kernel's MC, whole MR strips): the row
  /// block of `linearBackward`. 0: this kernel has no fused linear backward.
  var rowBlock = 0
  /// `compute` with C's stores past the caches (`ecenet_f32_gemm_compute_streaming`:
  /// the same values; applied by the kernel only where C is written once). nil: none.
  var computeStreaming: Compute? = nil

  /// Whether a product's C goes out through `computeStreaming`: when beta is 0
  /// and the pass (op(A) read, C written) moves at least
  /// `StreamingStores.minimumPassBytes`, the rule of the elementwise passes: C
  /// cannot stay cached for the next op anyway, and ordinary stores would first
  /// read each of its lines from memory. Measured on the 1×1 conv 160²×128→256
  /// forward (A 13 MB, C 26 MB), 2 threads: 8.06–8.22 → 7.87–7.95 ms.
  func streamsC(m: Int, n: Int, k: Int, beta: Float) -> Bool {
    computeStreaming != nil && beta == 0 && (m * n + m * k) * 4 >= StreamingStores.minimumPassBytes
  }

  /// C = alpha·op(A)·op(B) + beta·C (+ bias[j] in every row's column j) for k ≥ 1,
  /// m, n ≥ 1 (callers handle the rest), on the calling thread only unless `parallel`.
  func run(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil, parallel: Bool) {
    if !parallel {
      // On one thread — usually one of many pool threads, each running thousands
      // of small GEMMs a step (attention's slices) — packed B and the A scratch
      // live in the thread's own buffer. From the shared pool, two takes and two
      // gives per call serialised the threads on its lock: bf16 attention ran 10×
      // slower than fp32's pool-free small kernel at 16 threads (BENCHMARKS.md).
      let bBytes = (packedBBytes(k, n) + 63) / 64 * 64
      guard let buffer = ecenet_thread_scratch(bBytes + scratchFloats * 4) else {
        fatalError("GEMM: out of memory for \(bBytes + scratchFloats * 4) bytes of thread scratch")
      }
      packB(transB ? 1 : 0, k, n, b, ldb, 0, n, buffer)
      compute(transA ? 1 : 0, m, n, k, alpha, a, lda, UnsafeRawPointer(buffer), beta, c, ldc, bias, 0, m, 0, n,
              buffer + bBytes)
      return
    }
    runPacked(transA: transA, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              packed: packedB(transB: transB, k: k, n: n, b: b, ldb: ldb, parallel: true),
              beta: beta, c: c, ldc: ldc, bias: bias, streamC: streamsC(m: m, n: n, k: k, beta: beta))
  }

  /// Row groups of `linearBackward` over `rows` rows: 1 when it should not run
  /// (no `rowBlock`, a weight gradient of more than `fusedMaximumWeightFloats`,
  /// or fewer than 16 row blocks), else up to 16 groups of at least 4 blocks. A
  /// function of the shape only, never of the thread count, so neither are the sums.
  func linearBackwardGroups(rows: Int, outFeatures: Int, inFeatures: Int) -> Int {
    guard rowBlock > 0, outFeatures * inFeatures <= Self.fusedMaximumWeightFloats else { return 1 }
    let blocks = (rows + rowBlock - 1) / rowBlock
    return blocks < 16 ? 1 : min(16, blocks / 4)
  }
  /// Largest weight (floats) of a fused linear backward: each group sums its share
  /// of dW in a partial that stays in L2 (fc1's 512×128 is 64 Ki floats).
  static let fusedMaximumWeightFloats = 1 << 17

  /// A linear layer's backward, dy [R, O], x [R, I], weight [O, I] (row-major):
  /// dW = dyᵀ·x + dW and, with `dx`, dx = dy·W + dxBeta·dx, in one pass over
  /// row blocks of dy (`rowBlock` rows, one A block). Two GEMMs would read dy from
  /// memory twice, the weight gradient's in short runs (its A is dy transposed:
  /// a column slice of each 1 KiB row, ≈ 11 GB/s) and all of x through a packed
  /// copy; here each block of dy is packed for dx and read again for dW while it
  /// is in L2, and x is packed a block at a time.
  ///
  /// Rows form `groups` fixed groups (`linearBackwardGroups`): group g sums its
  /// blocks in order, group 0 into dW, the others into partials from zero, and dW
  /// then gets the partials added in group order, so the result does not depend
  /// on the thread count. dx rows are disjoint, each the same sums as `run`'s.
  func linearBackward(groups: Int, rows: Int, outFeatures o: Int, inFeatures i: Int,
                      dy: UnsafePointer<Float>, x: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                      dx: UnsafeMutablePointer<Float>?, dxBeta: Float, dWeight: UnsafeMutablePointer<Float>) {
    precondition(groups >= 1 && rowBlock > 0 && rows >= 1 && o >= 1 && i >= 1,
                 "linearBackward: \(groups) groups, rows \(rows) o \(o) i \(i), row block \(rowBlock)")
    let blocks = (rows + rowBlock - 1) / rowBlock
    // dx = dy·W: op(B) is W itself (O×I, K = O), packed once for every block.
    let packedW = dx == nil ? nil : packedB(transB: false, k: o, n: i, b: weight, ldb: i, parallel: true)
    let xFloats = (packedBBytes(rowBlock, i) + 63) / 64 * 16
    let taskFloats = xFloats + (scratchFloats + 15) / 16 * 16
    let scratch = Tensor(uninitialized: [groups * taskFloats])
    let partials = Tensor(uninitialized: [(groups - 1) * o * i])
    let (sp, pp) = (scratch.data, partials.data)
    let dxCompute = streamsC(m: rows, n: i, k: o, beta: dxBeta) ? computeStreaming ?? compute : compute
    Parallel.forRange(groups) { r in
      for g in r {
        let packedX = sp + g * taskFloats, aScratch = UnsafeMutableRawPointer(packedX + xFloats)
        let dst = g == 0 ? dWeight : pp + (g - 1) * o * i
        let q0 = blocks * g / groups, q1 = blocks * (g + 1) / groups
        for q in q0..<q1 {
          let r0 = q * rowBlock, r1 = min(rows, r0 + rowBlock)
          if let dx = dx, let packedW = packedW {
            dxCompute(0, rows, i, o, 1, dy, o, packedW.data, dxBeta, dx, i, nil, r0, r1, 0, i, aScratch)
          }
          packB(0, r1 - r0, i, x + r0 * i, i, 0, i, packedX)
          compute(1, o, i, r1 - r0, 1, dy + r0 * o, o, packedX, q > q0 || g == 0 ? 1 : 0, dst, i, nil,
                  0, o, 0, i, aScratch)
        }
      }
    }
    if groups > 1 {
      Parallel.forRange(o, grain: max(1, 16384 / (i * groups))) { r in
        for row in r {
          let d = dWeight + row * i
          for g in 1..<groups {
            let p = pp + (g - 1) * o * i + row * i
            for j in 0..<i { d[j] += p[j] }
          }
        }
      }
    }
    withExtendedLifetime((packedW, scratch, partials)) {}
  }

  /// op(B) packed once for several `runPacked` calls that share it (Winograd's
  /// filters, over its chunks of tiles): `run` would pack it again per call.
  func packedOnce(transB: Bool, k: Int, n: Int, b: UnsafePointer<Float>, ldb: Int) -> Tensor {
    packedB(transB: transB, k: k, n: n, b: b, ldb: ldb, parallel: true)
  }

  /// C = alpha·op(A)·B + beta·C (+ bias) on all threads, B packed by
  /// `packedOnce` (or `run`) with the same k and n; `streamC`: through
  /// `computeStreaming` where there is one.
  func runPacked(transA: Bool, m: Int, n: Int, k: Int, alpha: Float = 1, a: UnsafePointer<Float>, lda: Int,
                 packed: Tensor, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                 bias: UnsafePointer<Float>? = nil, streamC: Bool = false) {
    precondition(m >= 1 && n >= 1 && k >= 1 && packed.count * 4 >= packedBBytes(k, n), "runPacked: \(m)×\(n)×\(k), packed \(packed.count)")
    let compute = streamC ? computeStreaming ?? self.compute : self.compute
    forEachGridTask(m: m, n: n, multiplyAdds: m * n * k, parallel: true, scratchFloats: scratchFloats) {
      m0, m1, n0, n1, scratch in
      compute(transA ? 1 : 0, m, n, k, alpha, a, lda, packed.data, beta, c, ldc, bias, m0, m1, n0, n1, scratch)
    }
    withExtendedLifetime(packed) {}
  }

  /// op(B) (K×N, or N×K when transB) packed into pooled scratch, its panels split
  /// over the threads when `parallel`.
  private func packedB(transB: Bool, k: Int, n: Int, b: UnsafePointer<Float>, ldb: Int, parallel: Bool) -> Tensor {
    let packed = Tensor(uninitialized: [(packedBBytes(k, n) + 3) / 4])
    let pb = UnsafeMutableRawPointer(packed.data)
    let panels = (n + nr - 1) / nr
    // A panel is 32·K copies; below ~32k per chunk a thread hand-off costs more than it saves.
    if parallel {
      Parallel.forRange(panels, grain: max(1, 32768 / (nr * k))) { r in
        packB(transB ? 1 : 0, k, n, b, ldb, r.lowerBound * nr, min(n, r.upperBound * nr), pb)
      }
    } else {
      packB(transB ? 1 : 0, k, n, b, ldb, 0, n, pb)
    }
    return packed
  }

  /// Splits an M×N product of `multiplyAdds` into a grid of tasks — row groups of
  /// whole MR strips × column groups of whole NR panels (`grid`) — and runs
  /// `body(m0, m1, n0, n1, scratch)` for each, with `scratchFloats` of A scratch
  /// of its own (64-byte aligned). Products under 2²¹ multiply-adds (≈10 µs on one
  /// thread) stay on one thread: two threads were no faster at 2²¹ and half as fast
  /// at 2¹⁹. The kernels sum each element in the same order for every split, so the
  /// thread count never changes the result.
  private func forEachGridTask(m: Int, n: Int, multiplyAdds: Int, parallel: Bool, scratchFloats: Int,
                               _ body: (Int, Int, Int, Int, UnsafeMutableRawPointer) -> Void) {
    let strips = (m + mr - 1) / mr, panels = (n + nr - 1) / nr
    let threads = !parallel || multiplyAdds < 1 << 21 ? 1 : Parallel.threads
    let (rowGroups, columnGroups) = Self.grid(m: m, n: n, mr: mr, nr: nr, threads: threads)
    let tasks = rowGroups * columnGroups
    let perTask = (scratchFloats + 15) / 16 * 16
    let scratch = Tensor(uninitialized: [tasks * perTask])
    let sp = scratch.data
    func runTasks(_ r: Range<Int>) {
      for t in r {
        let (gr, gc) = (t / columnGroups, t % columnGroups)
        let m0 = min(m, strips * gr / rowGroups * mr), m1 = min(m, strips * (gr + 1) / rowGroups * mr)
        let n0 = min(n, panels * gc / columnGroups * nr), n1 = min(n, panels * (gc + 1) / columnGroups * nr)
        body(m0, m1, n0, n1, UnsafeMutableRawPointer(sp + t * perTask))
      }
    }
    if tasks == 1 { runTasks(0..<1) } else { Parallel.forRange(tasks, runTasks) }
    withExtendedLifetime(scratch) {}
  }

  /// C_t = Σ_{q<K} A[q + offsets[t], i] · B[q, j] + beta·C_t for every tap t, C_t at
  /// c + t·tapStride (M×N, row stride ldc): the shifted-taps convolution's weight
  /// gradient (`gemm_ktaps_compute` in CShims/gemm_driver.h). A is K + max(offsets)
  /// rows of M (row stride lda), read transposed; B is K×N. B is packed once, A once
  /// per row and K block for all the taps; C is split over the threads as `run`
  /// splits it, and the result does not depend on the split.
  func runKTaps(m: Int, n: Int, k: Int, offsets: [Int], a: UnsafePointer<Float>, lda: Int,
                b: UnsafePointer<Float>, ldb: Int, beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int,
                tapStride: Int) {
    precondition(offsets.allSatisfy { $0 >= 0 }, "runKTaps: negative offset in \(offsets)")
    precondition(m >= 1 && n >= 1 && k >= 1 && lda >= m && ldb >= n && ldc >= n,
                 "runKTaps: m \(m) n \(n) k \(k) lda \(lda) ldb \(ldb) ldc \(ldc)")
    let packed = packedB(transB: false, k: k, n: n, b: b, ldb: ldb, parallel: true)
    let scratchBytes = kTapsScratchBytes(offsets.max() ?? 0)
    offsets.withUnsafeBufferPointer { off in
      forEachGridTask(m: m, n: n, multiplyAdds: m * n * k * offsets.count, parallel: true,
                      scratchFloats: (scratchBytes + 3) / 4) { m0, m1, n0, n1, scratch in
        kTapsCompute(m, n, k, off.count, off.baseAddress, 1, a, lda, packed.data, beta, c, ldc, tapStride,
                     m0, m1, n0, n1, scratch)
      }
    }
    withExtendedLifetime(packed) {}
  }

  /// C = Σ_t A[row + offsets[t], :] · op(B_t) + beta·C for rows 0..<m (the shifted-taps
  /// convolution; `gemm_taps_compute` in CShims/gemm_driver.h): A is M+max(offsets) rows
  /// of K with row stride lda; B_t starts at b + t·tapStride (K×N, or N×K when transB).
  /// The taps' B are packed once, then C is split by whole MR strips over the threads,
  /// each task with its own A block; the result does not depend on the split.
  func runTaps(m: Int, n: Int, k: Int, offsets: [Int], a: UnsafePointer<Float>, lda: Int,
               transB: Bool, b: UnsafePointer<Float>, ldb: Int, tapStride: Int,
               beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    precondition(offsets.allSatisfy { $0 >= 0 }, "runTaps: negative offset in \(offsets)")
    let taps = offsets.count, tapBytes = packedBBytes(k, n)
    let packed = Tensor(uninitialized: [(taps * tapBytes + 3) / 4])
    let pb = UnsafeMutableRawPointer(packed.data)
    Parallel.forRange(taps) { r in
      for t in r { packB(transB ? 1 : 0, k, n, b + t * tapStride, ldb, 0, n, pb + t * tapBytes) }
    }
    let strips = (m + mr - 1) / mr
    let tasks = m * n * k * taps < 1 << 21 ? 1 : max(1, min(Parallel.threads, strips))
    let span = offsets.max() ?? 0
    let scratchFloatsPerTask = (tapsScratchBytes(span) + 63) / 64 * 16
    let scratch = Tensor(uninitialized: [tasks * scratchFloatsPerTask])
    let sp = scratch.data
    offsets.withUnsafeBufferPointer { off in
      let body = { (r: Range<Int>) in
        for t in r {
          let m0 = min(m, strips * t / tasks * mr), m1 = min(m, strips * (t + 1) / tasks * mr)
          tapsCompute(m, n, k, taps, off.baseAddress, 1, a, lda, pb, beta, c, ldc, m0, m1, 0, n,
                      UnsafeMutableRawPointer(sp + t * scratchFloatsPerTask))
        }
      }
      if tasks == 1 { body(0..<1) } else { Parallel.forRange(tasks, body) }
    }
    withExtendedLifetime((packed, scratch)) {}
  }

  /// The task grid for an M×N product on `threads` threads: (row groups, column
  /// groups), at most `threads` tasks. A task packs its rows of A for every K
  /// block and streams its columns of the packed B once per MC-row block, so a
  /// grid of r × c tasks packs A c times over and streams B about r times over.
  ///
  /// Up to 4 threads C is split one way only, as measured on 2 threads: by
  /// whole MR-row strips, or by NR-column panels when C is wider than tall or has
  /// fewer strips than threads (small M). The split keeps the larger operand
  /// divided (the M 128 N 512 K 25600 weight gradient gained ≈ 5% by columns).
  /// On more threads a one-way split repeats too much: by columns every task
  /// packs all of A (a weight gradient of M 96, N 384 packed it 12 times on 16
  /// threads), by rows small-M products leave threads idle. There the grid
  /// with the least estimated time per task wins (ties: fewer tasks): the
  /// multiply-adds of its block, plus A packing and B streaming in multiply-add
  /// units (one A element packed ≈ 16, one packed-B element streamed ≈ 8: rough
  /// costs of a converted, transposed copy and of an L3 read beside a 16-wide
  /// FMA; not yet measured on a many-core machine).
  static func grid(m: Int, n: Int, mr: Int, nr: Int, threads: Int) -> (rows: Int, columns: Int) {
    let strips = (m + mr - 1) / mr, panels = (n + nr - 1) / nr
    if threads <= 1 { return (1, 1) }
    if threads <= 4 {
      let byRows = (strips >= threads && (m >= n || panels < threads)) || strips >= panels
      return byRows ? (max(1, min(threads, strips)), 1) : (1, max(1, min(threads, panels)))
    }
    var best = (rows: 1, columns: 1), bestCost = Int.max
    for r in 1...min(strips, threads) {
      let c = min(panels, threads / r)
      let rows = min(m, (strips + r - 1) / r * mr), cols = min(n, (panels + c - 1) / c * nr)
      let cost = rows * cols + 16 * rows + 8 * cols * ((rows + 167) / 168)
      if cost < bestCost || (cost == bestCost && r * c < best.rows * best.columns) {
        best = (r, c); bestCost = cost
      }
    }
    return best
  }
}
