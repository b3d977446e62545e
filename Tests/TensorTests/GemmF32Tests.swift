import CShims
import Foundation
import XCTest

@testable import Tensor

/// gemmF32Kernel (the AVX-512F fp32 kernel) against a Double loop, so the only
/// allowed difference is the fp32 summation order (tolerance 1e-5·Σ|α·a·b| +
/// |β·c| per element). Skipped on CPUs without AVX-512F.
final class GemmF32Tests: XCTestCase, PackedGEMMTesting {
  static let referenceRoundsToBF16 = false

  override func setUpWithError() throws {
    guard f32GEMMKernelAvailable else { throw XCTSkip("no AVX-512F on this CPU") }
  }

  func runKernel(_ t: Case, _ o: Operands) -> [Float] { runGemm(t, o) }

  func runGemm(_ t: Case, _ o: Operands, onThisThread: Bool = false) -> [Float] {
    var c = o.c0
    o.a.withUnsafeBufferPointer { pa in
      o.b.withUnsafeBufferPointer { pb in
        c.withUnsafeMutableBufferPointer { pc in
          if onThisThread {
            gemmF32KernelOnThisThread(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                                      a: pa.baseAddress!, lda: o.lda, b: pb.baseAddress!, ldb: o.ldb,
                                      beta: t.beta, c: pc.baseAddress!, ldc: o.ldc)
          } else {
            gemmF32Kernel(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                          a: pa.baseAddress!, lda: o.lda, b: pb.baseAddress!, ldb: o.ldb,
                          beta: t.beta, c: pc.baseAddress!, ldc: o.ldc, bias: o.bias, parallel: true)
          }
        }
      }
    }
    return c
  }

  /// Runs one case (threaded entry) and checks it.
  @discardableResult
  func check(_ t: Case, seed: UInt64 = 1, file: StaticString = #filePath, line: UInt = #line) -> [Float] {
    let o = makeOperands(t, seed: seed)
    let got = runGemm(t, o)
    verify(t, o, got, file: file, line: line)
    return got
  }

  func testAllTransposesOddSizesStridesAlphaBeta() {
    // Exactly one panel / one tile / one transpose block, and sizes one past them;
    // per transpose, primes around the tile (14), panel (32) and transpose block (16) sizes.
    checkTransposesAndEdges([(14, 32, 16), (15, 33, 17), (28, 64, 64), (29, 65, 65)], perTranspose: { ta, tb in
      [Case(transA: ta, transB: tb, m: 13, n: 31, k: 17, alpha: -1, beta: 1, padA: 2, padB: 3, padC: 1),
       Case(transA: ta, transB: tb, m: 43, n: 97, k: 5, alpha: 1, beta: 0, padA: 0, padB: 7, padC: 2)]
    }) { check($0) }
  }

  func testDegenerateSizes() { checkDegenerateSizes() }

  /// C's stores past the caches (`computeStreaming`, which `run` takes when the pass
  /// is at least `StreamingStores.minimumPassBytes`: 0 here) give the same bits as
  /// cached stores: on 64-byte-aligned C (Tensor storage) with full and edge
  /// panels and a short last strip, and where the kernel must keep ordinary stores
  /// (K past one block, rows off 64-byte alignment, beta ≠ 0).
  func testStreamedCStoresGiveTheSameBits() {
    let saved = StreamingStores.minimumPassBytes
    defer { StreamingStores.minimumPassBytes = saved }
    var rng = TestRNG(seed: 5)
    let cases: [(m: Int, n: Int, k: Int, ldc: Int, beta: Float)] =
      [(300, 96, 64, 96, 0), (301, 75, 40, 80, 0), (290, 64, 300, 64, 0), (300, 64, 64, 70, 0), (300, 64, 64, 64, 0.5)]
    for t in cases {
      let a = rng.tensor([t.m, t.k]), b = rng.tensor([t.n, t.k]), c0 = rng.tensor([t.m, t.ldc])
      var out: [[Float]] = []
      for minimum in [Int.max, 0] {
        StreamingStores.minimumPassBytes = minimum
        XCTAssertEqual(F32GEMM.kernel.streamsC(m: t.m, n: t.n, k: t.k, beta: t.beta), minimum == 0 && t.beta == 0)
        let c = c0.copy()
        gemmF32Kernel(transA: false, transB: true, m: t.m, n: t.n, k: t.k, alpha: 0.75, a: a.data, lda: t.k,
                      b: b.data, ldb: t.k, beta: t.beta, c: c.data, ldc: t.ldc, parallel: true)
        out.append(c.toArray())
      }
      XCTAssertTrue(out[0] == out[1], "streamed and cached stores differ: \(t)")
      let o = Operands(a: a.toArray(), b: b.toArray(), c0: c0.toArray(), lda: t.k, ldb: t.k, ldc: t.ldc)
      let (ref, scale) = reference(Case(transA: false, transB: true, m: t.m, n: t.n, k: t.k, alpha: 0.75, beta: t.beta), o)
      let worst = (0..<t.m * t.n).map { abs(Double(out[1][$0 / t.n * t.ldc + $0 % t.n]) - ref[$0]) / (1e-5 * scale[$0] + 1e-30) }.max()!
      XCTAssertLessThanOrEqual(worst, 1, "streamed C against the Double reference: \(t)")
    }
  }

  func testBiasAddedInTheStore() { checkBias() }

  /// `gemmAddingBias` in fp32: on our kernel (routed shape) and on OpenBLAS (routing
  /// off, and a shape under the threshold), C = op(A)·op(B) + bias over NaN C.
  func testGemmAddingBiasOnKernelAndOpenBLAS() {
    let saved = (F32GEMM.routeSgemm, Parallel.gemmThreading, GEMMPrecision.current)
    defer { (F32GEMM.routeSgemm, Parallel.gemmThreading, GEMMPrecision.current) = saved }
    (Parallel.gemmThreading, GEMMPrecision.current) = (.ours, .fp32)
    for (t, route) in [(Case(transA: false, transB: true, m: 256, n: 40, k: 500, alpha: 1, beta: 0, bias: true), true),
                       (Case(transA: false, transB: true, m: 256, n: 40, k: 500, alpha: 1, beta: 0, bias: true), false),
                       (Case(transA: true, transB: false, m: 30, n: 17, k: 9, alpha: 1, beta: 0, bias: true), true)] {
      F32GEMM.routeSgemm = route
      let o = makeOperands(t, seed: 31)
      var c = o.c0
      o.a.withUnsafeBufferPointer { pa in o.b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
        gemmAddingBias(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, a: pa.baseAddress!, lda: o.lda,
                       b: pb.baseAddress!, ldb: o.ldb, bias: o.bias!, c: pc.baseAddress!, ldc: o.ldc)
      } } }
      verify(t, o, c, label: "\(t) routing \(route), kernel \(sgemmUsesF32Kernel(m: t.m, n: t.n, k: t.k))")
    }
  }

  /// Larger than every cache block of the kernel (MC 168 rows, KC 256, many panels),
  /// with beta 0 over NaN so the K blocks after the first must add, not reread garbage.
  func testShapesLargerThanCacheBlocks() {
    check(Case(transA: false, transB: false, m: 300, n: 700, k: 530, alpha: 1, beta: 0.5, padA: 1, padB: 2, padC: 3))
    check(Case(transA: true, transB: true, m: 300, n: 700, k: 530, alpha: 0.5, beta: 0, padA: 0, padB: 1, padC: 0))
    check(Case(transA: false, transB: true, m: 341, n: 67, k: 1031, alpha: 1, beta: 0, padA: 2, padB: 0, padC: 1))
    check(Case(transA: true, transB: false, m: 170, n: 40, k: 777, alpha: -1, beta: 1, padA: 1, padB: 1, padC: 0))
  }

  /// The same answers as OpenBLAS (through `sgemmOnThisThread`, which never routes
  /// to this kernel for these shapes... or if it does, the bound still holds).
  func testAgreesWithOpenBLAS() {
    for transA in [false, true] {
      for transB in [false, true] {
        let t = Case(transA: transA, transB: transB, m: 61, n: 75, k: 90, alpha: 0.5, beta: 1)
        let o = makeOperands(t, seed: 11)
        let got = runGemm(t, o)
        var blas = o.c0
        o.a.withUnsafeBufferPointer { pa in o.b.withUnsafeBufferPointer { pb in
          cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                      Int32(t.m), Int32(t.n), Int32(t.k), t.alpha, pa.baseAddress!, Int32(o.lda),
                      pb.baseAddress!, Int32(o.ldb), t.beta, &blas, Int32(o.ldc))
        } }
        let (_, scale) = reference(t, o)
        for i in 0..<t.m {
          for j in 0..<t.n {
            XCTAssertLessThanOrEqual(abs(Double(got[i * o.ldc + j]) - Double(blas[i * o.ldc + j])),
                                     2e-5 * scale[i * t.n + j], "\(t) at \(i), \(j)")
          }
        }
      }
    }
  }

  /// C is split over the threads in whole tiles (rows, or columns when M is
  /// small) and each element is summed in the same order, so every thread
  /// count gives bit-identical C. (Sizes above the 2²¹ multiply-adds below
  /// which the kernel stays on one thread.)
  func testThreadCountsGiveIdenticalResults() {
    for t in [Case(transA: true, transB: true, m: 201, n: 77, k: 301, alpha: 1, beta: 0.5),
              Case(transA: false, transB: false, m: 5, n: 700, k: 777, alpha: 1, beta: 0),
              Case(transA: false, transB: true, m: 20, n: 70, k: 1999, alpha: 1, beta: 1),
              Case(transA: false, transB: false, m: 96, n: 384, k: 300, alpha: 1, beta: 0.5)] {
      let o = makeOperands(t, seed: 3)
      let saved = Parallel.threads
      defer { Parallel.threads = saved }
      Parallel.threads = 1
      let one = runGemm(t, o)
      XCTAssertEqual(runGemm(t, o, onThisThread: true).map(\.bitPattern), one.map(\.bitPattern), "\(t) on this thread")
      for threads in [2, 3, 5, 8, 16] {  // 8 and 16 split C both ways (PackedGEMMKernel.grid)
        Parallel.threads = threads
        let many = runGemm(t, o)
        XCTAssertEqual(many.map(\.bitPattern), one.map(\.bitPattern), "\(t) threads \(threads)")
      }
      verify(t, o, one)
    }
  }

  /// The task grid of both packed kernels: never more tasks than threads or
  /// blocks than strips and panels; one-way up to 4 threads (the split measured
  /// on 2); on 16 threads the M 96 N 384 weight gradient no longer packs all of
  /// A in each of 12 column tasks, and keeps at least as many tasks busy.
  func testTaskGridBoundsAndTwoWaySplitOnManyThreads() {
    let (mr, nr) = (14, 32)
    for threads in [1, 2, 3, 4, 5, 8, 16, 64] {
      for m in [1, 13, 14, 96, 128, 301, 4096] {
        for n in [1, 31, 32, 96, 384, 512, 3072] {
          let g = PackedGEMMKernel.grid(m: m, n: n, mr: mr, nr: nr, threads: threads)
          let (strips, panels) = ((m + mr - 1) / mr, (n + nr - 1) / nr)
          XCTAssertTrue(g.rows >= 1 && g.columns >= 1 && g.rows * g.columns <= max(1, threads), "\(m)×\(n) on \(threads): \(g)")
          XCTAssertTrue(g.rows <= strips && g.columns <= panels, "\(m)×\(n) on \(threads): \(g)")
          if threads <= 4 { XCTAssertTrue(g.rows == 1 || g.columns == 1, "\(m)×\(n) on \(threads): \(g)") }
        }
      }
    }
    XCTAssertTrue(PackedGEMMKernel.grid(m: 128, n: 512, mr: mr, nr: nr, threads: 2) == (1, 2))
    XCTAssertTrue(PackedGEMMKernel.grid(m: 25600, n: 512, mr: mr, nr: nr, threads: 2) == (2, 1))
    let g = PackedGEMMKernel.grid(m: 96, n: 384, mr: mr, nr: nr, threads: 16)
    XCTAssertLessThan(g.columns, 12, "\(g)")
    XCTAssertGreaterThanOrEqual(g.rows * g.columns, 12, "\(g)")
  }

  /// The kernel's scratch (packed B, A blocks) comes from the pool and may hold
  /// NaN from earlier use. Edge panels and tiles are zero padded; a pad left as
  /// garbage would turn 0·NaN into NaN in real elements.
  func testEdgePaddingIsZeroEvenOverNaNScratch() {
    for (transA, transB) in [(false, false), (true, true), (false, true), (true, false)] {
      let t = Case(transA: transA, transB: transB, m: 15, n: 33, k: 7, alpha: 1, beta: 0.5)
      poisonPool(floatCounts: [(Int(ecenet_f32_gemm_packed_b_bytes(t.k, t.n)) + 3) / 4, F32GEMM.kernel.scratchFloats])
      check(t)
    }
  }

  func testNaNAndInfStayInTheirRowAndColumn() { checkNaNAndInfStayInTheirRowAndColumn() }

  func testSteadyStateMakesNoNewAllocations() { checkSteadyStateMakesNoNewAllocations() }

  /// Mixed sizes on concurrent threads: the thread-local scratch (no pool buffers).
  func testOnThisThreadMixedSizesUseNoPool() { checkOnThisThreadMixedSizesUseNoPool(gemmF32KernelOnThisThread) }

  /// gemmF32KernelOnThisThread from inside Parallel.forRange (attention's per-slice
  /// GEMMs): every slice equals gemmF32Kernel on its own, bit for bit, and the reference.
  func testOnThisThreadInsideParallelForRange() {
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    Parallel.threads = 3
    for t in [Case(transA: false, transB: true, m: 49, n: 49, k: 33, alpha: 0.5, beta: 1),
              Case(transA: false, transB: false, m: 49, n: 33, k: 49, alpha: 1, beta: 0)] {
      let ops = (0..<12).map { makeOperands(t, seed: UInt64(100 + $0)) }
      for (i, got) in slicesOnThisThread(t, ops, gemmF32KernelOnThisThread).enumerated() {
        XCTAssertEqual(got.map(\.bitPattern), runGemm(t, ops[i]).map(\.bitPattern), "\(t) slice \(i)")
        verify(t, ops[i], got)
      }
    }
  }

  // MARK: sgemm routing

  /// `sgemm` / `sgemmOnThisThread` on a shape of `sgemmUsesF32Kernel` (M ≥ 256, ≥ 2²²
  /// multiply-adds) give the kernel's bits when routing is on and OpenBLAS's when it is
  /// off or under `.openBLAS` threading; other shapes always OpenBLAS's. The two differ,
  /// so the routing is visible.
  func testSgemmRoutesByShape() {
    let savedRoute = F32GEMM.routeSgemm, savedThreading = Parallel.gemmThreading
    defer { F32GEMM.routeSgemm = savedRoute; Parallel.gemmThreading = savedThreading }
    func viaSgemm(_ t: Case, _ o: Operands, onThisThread: Bool) -> [UInt32] {
      gemmRouted(t, o, onThisThread: onThisThread).map(\.bitPattern)
    }
    func viaBLAS(_ t: Case, _ o: Operands) -> [UInt32] {
      var c = o.c0
      o.a.withUnsafeBufferPointer { pa in o.b.withUnsafeBufferPointer { pb in
        cblas_sgemm(CblasRowMajor, t.transA ? CblasTrans : CblasNoTrans, t.transB ? CblasTrans : CblasNoTrans,
                    Int32(t.m), Int32(t.n), Int32(t.k), t.alpha, pa.baseAddress!, Int32(o.lda),
                    pb.baseAddress!, Int32(o.ldb), t.beta, &c, Int32(o.ldc))
      } }
      return c.map(\.bitPattern)
    }
    Parallel.gemmThreading = .ours
    // K over both libraries' K blocks, so their sums round differently (below one K block
    // both add the products in k order with one FMA each, giving identical bits).
    let routed = Case(transA: false, transB: true, m: 256, n: 40, k: 1000, alpha: 1, beta: 0.5)
    XCTAssertTrue({ F32GEMM.routeSgemm = true; return sgemmUsesF32Kernel(m: routed.m, n: routed.n, k: routed.k) }())
    let o = makeOperands(routed, seed: 21)
    let kernel = runGemm(routed, o)
    verify(routed, o, kernel)
    let kernelBits = kernel.map(\.bitPattern), blasBits = viaBLAS(routed, o)
    XCTAssertTrue(kernelBits != blasBits, "kernel and OpenBLAS must differ somewhere for the test to see the route")
    for onThisThread in [false, true] {
      F32GEMM.routeSgemm = true
      Parallel.gemmThreading = .ours
      XCTAssertTrue(viaSgemm(routed, o, onThisThread: onThisThread) == kernelBits, "routed, onThisThread \(onThisThread)")
      Parallel.gemmThreading = .openBLAS
      // (OpenBLAS threads itself then, which may change its blocking: compare with it in that mode.)
      XCTAssertTrue(viaSgemm(routed, o, onThisThread: onThisThread) == viaBLAS(routed, o),
                    ".openBLAS threading, onThisThread \(onThisThread)")
      XCTAssertTrue(viaSgemm(routed, o, onThisThread: onThisThread) != kernelBits, ".openBLAS threading")
      Parallel.gemmThreading = .ours
      F32GEMM.routeSgemm = false
      XCTAssertTrue(viaSgemm(routed, o, onThisThread: onThisThread) == blasBits, "routing off, onThisThread \(onThisThread)")
    }
    // Under the size or row thresholds: OpenBLAS even with routing on.
    F32GEMM.routeSgemm = true
    for t in [Case(transA: false, transB: true, m: 255, n: 40, k: 1000, alpha: 1, beta: 0.5),
              Case(transA: true, transB: false, m: 300, n: 13, k: 1000, alpha: 1, beta: 0.5)] {
      XCTAssertFalse(sgemmUsesF32Kernel(m: t.m, n: t.n, k: t.k), "\(t)")
      let o = makeOperands(t, seed: 22)
      let blas = viaBLAS(t, o)
      XCTAssertTrue(runGemm(t, o).map(\.bitPattern) != blas, "\(t): kernel and OpenBLAS must differ")
      XCTAssertTrue(viaSgemm(t, o, onThisThread: true) == blas, "\(t)")
      XCTAssertTrue(viaSgemm(t, o, onThisThread: false) == blas, "\(t)")
    }
  }

  /// Routing is on by default exactly when the kernel runs and was compiled optimized
  /// (unless ECENET_SGEMM_KERNEL overrides it); a debug build compiles C unoptimized.
  func testRoutingDefaultFollowsTheBuild() throws {
    guard ProcessInfo.processInfo.environment["ECENET_SGEMM_KERNEL"] == nil else {
      throw XCTSkip("ECENET_SGEMM_KERNEL set")
    }
    // Every test that changes routeSgemm restores it, so this reads the default.
    XCTAssertEqual(F32GEMM.routeSgemm, f32GEMMKernelAvailable && ecenet_f32_gemm_optimized() != 0)
    #if DEBUG
    XCTAssertEqual(ecenet_f32_gemm_optimized(), 0, "debug build with optimized C")
    #endif
  }

  /// The runtime check agrees with the kernel's own view of the CPU (Linux).
  func testAvailabilityMatchesCPUInfo() throws {
    XCTAssertEqual(f32GEMMKernelAvailable, try cpuInfoFlags().contains("avx512f"))
  }
}
