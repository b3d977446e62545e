import CShims
import Foundation
import XCTest

@testable import Tensor

/// gemmBF16 against a Double loop over bf16-rounded inputs, so the only
/// allowed difference is the fp32 summation order (tolerance 1e-5·Σ|α·a·b| +
/// |β·c| per element). Both the AVX512_BF16 kernel and the rounded-copy
/// OpenBLAS fallback are checked on this machine.
final class GemmBF16Tests: XCTestCase, PackedGEMMTesting {
  static let referenceRoundsToBF16 = true

  func runKernel(_ t: Case, _ o: Operands) -> [Float] { runGemm(t, o, fallback: false) }

  func runGemm(_ t: Case, _ o: Operands, fallback: Bool) -> [Float] {
    var c = o.c0
    let saved = BF16GEMM.forceFallback
    BF16GEMM.forceFallback = fallback
    defer { BF16GEMM.forceFallback = saved }
    o.a.withUnsafeBufferPointer { pa in
      o.b.withUnsafeBufferPointer { pb in
        c.withUnsafeMutableBufferPointer { pc in
          if let bias = o.bias {  // the kernel's bias (gemmAddingBias's bf16 kernel path)
            precondition(!fallback, "the fallback's bias is gemmAddingBias's (testGemmAddingBiasOnKernelAndFallback)")
            if gemmFinishedWithoutKernel("gemmBF16", transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k,
                                         alpha: t.alpha, lda: o.lda, ldb: o.ldb, beta: t.beta, c: pc.baseAddress!,
                                         ldc: o.ldc, bias: bias) { return }
            gemmBF16Kernel(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                           a: pa.baseAddress!, lda: o.lda, b: pb.baseAddress!, ldb: o.ldb,
                           beta: t.beta, c: pc.baseAddress!, ldc: o.ldc, bias: bias, parallel: true)
            return
          }
          gemmBF16(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                   a: pa.baseAddress!, lda: o.lda, b: pb.baseAddress!, ldb: o.ldb,
                   beta: t.beta, c: pc.baseAddress!, ldc: o.ldc)
        }
      }
    }
    return c
  }

  /// Runs one case on the chosen path and checks every element and C's padding.
  @discardableResult
  func check(_ t: Case, fallback: Bool = false, seed: UInt64 = 1,
             file: StaticString = #filePath, line: UInt = #line) -> [Float] {
    let o = makeOperands(t, seed: seed)
    let got = runGemm(t, o, fallback: fallback)
    verify(t, o, got, label: "\(t) fallback \(fallback)", file: file, line: line)
    return got
  }

  // MARK: gemmBF16

  func testAllTransposesOddSizesStridesAlphaBeta() {
    // Exactly one panel / one tile, and sizes one past them.
    checkTransposesAndEdges([(14, 32, 2), (15, 33, 3), (28, 64, 64), (29, 65, 65)]) { check($0) }
  }

  func testDegenerateSizes() { checkDegenerateSizes() }

  func testBiasAddedInTheStore() throws {
    guard bf16GEMMAvailable else { throw XCTSkip("no AVX512_BF16 on this CPU") }
    checkBias()
  }

  /// `gemmAddingBias` under bf16 precision: the kernel adds the bias in its store,
  /// the fallback fills C with it first; both give op(A)·op(B) + bias over NaN C.
  func testGemmAddingBiasOnKernelAndFallback() {
    let saved = (BF16GEMM.forceFallback, GEMMPrecision.current)
    defer { (BF16GEMM.forceFallback, GEMMPrecision.current) = saved }
    GEMMPrecision.current = .bf16
    let t = Case(transA: false, transB: true, m: 45, n: 50, k: 77, alpha: 1, beta: 0, bias: true)
    let o = makeOperands(t, seed: 32)
    for fallback in bf16GEMMAvailable ? [false, true] : [true] {
      BF16GEMM.forceFallback = fallback
      var c = o.c0
      o.a.withUnsafeBufferPointer { pa in o.b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
        gemmAddingBias(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, a: pa.baseAddress!, lda: o.lda,
                       b: pb.baseAddress!, ldb: o.ldb, bias: o.bias!, c: pc.baseAddress!, ldc: o.ldc)
      } } }
      verify(t, o, c, label: "\(t) fallback \(fallback)")
    }
  }

  /// Larger than every cache block of the kernel (MC 168 rows, KC 256 pairs, many panels),
  /// with beta 0 over NaN so the K blocks after the first must add, not reread garbage.
  func testShapesLargerThanCacheBlocks() {
    check(Case(transA: false, transB: false, m: 300, n: 700, k: 530, alpha: 1, beta: 0.5, padA: 1, padB: 2, padC: 3))
    check(Case(transA: true, transB: true, m: 300, n: 700, k: 530, alpha: 0.5, beta: 0, padA: 0, padB: 1, padC: 0))
  }

  func testFallbackPathGivesTheSameAnswers() {
    for transA in [false, true] {
      for transB in [false, true] {
        let t = Case(transA: transA, transB: transB, m: 37, n: 45, k: 67, alpha: 0.75, beta: transA ? 0 : 0.5)
        let viaFallback = check(t, fallback: true)
        let viaKernel = check(t, fallback: false)
        let (_, scale) = reference(t, makeOperands(t, seed: 1))
        for i in 0..<t.m {
          for j in 0..<t.n {
            let d = abs(Double(viaFallback[i * (t.n + t.padC) + j]) - Double(viaKernel[i * (t.n + t.padC) + j]))
            XCTAssertLessThanOrEqual(d, 2e-5 * scale[i * t.n + j], "\(t) at \(i), \(j)")
          }
        }
      }
    }
    check(Case(transA: true, transB: false, m: 200, n: 300, k: 531, alpha: 1, beta: 1), fallback: true)
    check(Case(m: 1, n: 1, k: 0, beta: 0), fallback: true)
  }

  /// The tolerance is far below the bf16 rounding: a GEMM that skipped the
  /// rounding (plain sgemm) must fail this comparison, so the tests can fail.
  func testReferenceDistinguishesBF16FromFP32() {
    let t = Case(m: 37, n: 45, k: 67, alpha: 1, beta: 0)
    let o = makeOperands(t, seed: 1)
    let (ref, scale) = reference(t, o)
    let (fp32, _) = reference(t, o, round: false)
    var outside = 0
    for i in 0..<ref.count where abs(ref[i] - fp32[i]) > 1e-5 * scale[i] { outside += 1 }
    XCTAssertGreaterThan(outside, ref.count / 2, "fp32 products would pass the bf16 tolerance")
  }

  /// C is split over the threads in whole tiles (rows, or columns when M is
  /// small) and each element is summed in the same order, so every thread
  /// count gives bit-identical C. (Sizes above the 2²¹ multiply-adds below
  /// which the kernel stays on one thread.)
  func testThreadCountsGiveIdenticalResults() {
    for t in [Case(transA: true, transB: true, m: 201, n: 77, k: 301, alpha: 1, beta: 0.5),
              Case(transA: false, transB: false, m: 5, n: 700, k: 777, alpha: 1, beta: 0),
              Case(transA: true, transB: false, m: 20, n: 70, k: 1999, alpha: 1, beta: 1),
              Case(transA: false, transB: false, m: 96, n: 384, k: 300, alpha: 1, beta: 0.5)] {
      let o = makeOperands(t, seed: 3)
      let saved = Parallel.threads
      defer { Parallel.threads = saved }
      Parallel.threads = 1
      let one = runGemm(t, o, fallback: false)
      for threads in [2, 3, 5, 8, 16] {  // 8 and 16 split C both ways (PackedGEMMKernel.grid)
        Parallel.threads = threads
        let many = runGemm(t, o, fallback: false)
        XCTAssertEqual(many.map(\.bitPattern), one.map(\.bitPattern), "\(t) threads \(threads)")
      }
      Parallel.threads = 3
      check(t, seed: 3)
    }
  }

  /// The kernel's scratch (packed B, A blocks) comes from the pool and may hold
  /// NaN from earlier use. Odd K pads each last pair with 0 on both sides; a pad
  /// left as garbage would turn 0·NaN into NaN in real elements.
  func testOddKPaddingIsZeroEvenOverNaNScratch() {
    for (transA, transB) in [(false, false), (true, true), (false, true), (true, false)] {
      let t = Case(transA: transA, transB: transB, m: 15, n: 33, k: 7, alpha: 1, beta: 0.5)
      poisonPool(floatCounts: [(Int(ecenet_bf16_gemm_packed_b_bytes(t.k, t.n)) + 3) / 4, BF16GEMM.kernel.scratchFloats])
      check(t)
    }
  }

  func testNaNAndInfStayInTheirRowAndColumn() { checkNaNAndInfStayInTheirRowAndColumn() }

  func testSteadyStateMakesNoNewAllocations() { checkSteadyStateMakesNoNewAllocations() }

  /// Mixed sizes on concurrent threads: the thread-local scratch (no pool buffers).
  func testOnThisThreadMixedSizesUseNoPool() throws {
    // The fallback's rounded copies are pool buffers; this is about the kernel.
    try XCTSkipUnless(bf16GEMMKernelInUse, "no AVX512_BF16 kernel on this CPU")
    checkOnThisThreadMixedSizesUseNoPool(gemmBF16OnThisThread)
  }

  /// gemmBF16OnThisThread from inside Parallel.forRange (attention's per-slice GEMMs):
  /// every slice equals gemmBF16 on its own, bit for bit, on both paths.
  func testOnThisThreadInsideParallelForRangeMatchesGemmBF16() {
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    Parallel.threads = 3
    let t = Case(transA: false, transB: true, m: 49, n: 49, k: 33, alpha: 0.5, beta: 1)
    let ops = (0..<12).map { makeOperands(t, seed: UInt64(100 + $0)) }
    for fallback in [false, true] {
      let saved = BF16GEMM.forceFallback
      BF16GEMM.forceFallback = fallback
      defer { BF16GEMM.forceFallback = saved }
      for (i, got) in slicesOnThisThread(t, ops, gemmBF16OnThisThread).enumerated() {
        XCTAssertEqual(got.map(\.bitPattern), runGemm(t, ops[i], fallback: fallback).map(\.bitPattern),
                       "slice \(i) fallback \(fallback)")
      }
    }
    check(t)
  }

  /// GEMMPrecision.current routes every `gemm` / `gemmOnThisThread` of the
  /// engine: under .bf16 they give gemmBF16's bits, under .fp32 sgemm's, and
  /// the two differ (so the routing is visible).
  func testGEMMPrecisionRoutesGemmAndGemmOnThisThread() {
    let t = Case(transA: true, transB: false, m: 61, n: 70, k: 90, alpha: 1, beta: 0)
    let o = makeOperands(t, seed: 77)
    let saved = GEMMPrecision.current
    defer { GEMMPrecision.current = saved }
    func run(_ onThisThread: Bool) -> [UInt32] { gemmRouted(t, o, onThisThread: onThisThread).map(\.bitPattern) }
    let bf16 = runGemm(t, o, fallback: false).map(\.bitPattern)
    GEMMPrecision.current = .bf16
    XCTAssertEqual(run(false), bf16)
    XCTAssertEqual(run(true), bf16)
    GEMMPrecision.current = .fp32
    let fp32 = run(false)
    XCTAssertNotEqual(fp32, bf16, "fp32 and bf16 GEMMs of random data must differ")
    XCTAssertEqual(run(true), fp32)
  }

  /// The cpuid/xgetbv check agrees with the kernel's own view of the CPU (Linux).
  func testAvailabilityMatchesCPUInfo() throws {
    let flags = try cpuInfoFlags()
    XCTAssertEqual(bf16GEMMAvailable, ["avx512f", "avx512bw", "avx512vl", "avx512_bf16"].allSatisfy(flags.contains))
  }

  /// The one documented difference between the paths: the bf16 instructions
  /// treat denormal inputs as 0 and flush denormal sums, while the fallback
  /// keeps them (roundedToBF16 and OpenBLAS are IEEE).
  func testKernelFlushesDenormalsTheFallbackKeepsThem() throws {
    guard bf16GEMMAvailable else { throw XCTSkip("no AVX512_BF16 on this CPU") }
    let tiny = Float(bitPattern: 0x0008_0000)  // a denormal that is exactly a bf16 value
    let t = Case(m: 1, n: 1, k: 1, alpha: 1, beta: 0, padA: 0, padB: 0, padC: 0)
    let o = Operands(a: [tiny], b: [1], c0: [.nan], lda: 1, ldb: 1, ldc: 1)
    XCTAssertEqual(runGemm(t, o, fallback: true), [tiny])
    XCTAssertEqual(runGemm(t, o, fallback: false), [0])
  }

  // MARK: roundedToBF16

  func testRoundedToBF16TiesToEvenAndExponentCarry() {
    let ulp: Float = 0x1p-7  // bf16 spacing in [1, 2)
    XCTAssertEqual(roundedToBF16(1), 1)
    XCTAssertEqual(roundedToBF16(1 + ulp / 2), 1, "tie between 1 (even) and 1+ulp")
    XCTAssertEqual(roundedToBF16(1 + 3 * ulp / 2), 1 + 2 * ulp, "tie between 1+ulp and 1+2ulp (even)")
    XCTAssertEqual(roundedToBF16(1 + ulp / 2 + 0x1p-20), 1 + ulp, "just above the tie")
    XCTAssertEqual(roundedToBF16(1 + ulp / 2 - 0x1p-20), 1, "just below the tie")
    XCTAssertEqual(roundedToBF16(-(1 + ulp / 2)), -1)
    XCTAssertEqual(roundedToBF16(-(1 + 0.75 * ulp)), -(1 + ulp))
    // 2 − 2⁻⁹ is past the midpoint of the last bf16 below 2 and 2: rounds up into the next binade.
    XCTAssertEqual(roundedToBF16(2 - 0x1p-9), 2)
    XCTAssertEqual(roundedToBF16(Float(bitPattern: 0x3FFF_FFFF)).bitPattern, 0x4000_0000)
    XCTAssertEqual(roundedToBF16(0.1).bitPattern, 0x3DCD_0000)  // 0x3DCCCCCD rounds up
  }

  func testRoundedToBF16SpecialValues() {
    XCTAssertTrue(roundedToBF16(.nan).isNaN)
    XCTAssertTrue(roundedToBF16(Float(bitPattern: 0x7F80_0001)).isNaN, "NaN with only low payload bits")
    XCTAssertTrue(roundedToBF16(-.nan).isNaN)
    XCTAssertEqual(roundedToBF16(.infinity), .infinity)
    XCTAssertEqual(roundedToBF16(-.infinity), -.infinity)
    XCTAssertEqual(roundedToBF16(.greatestFiniteMagnitude), .infinity, "past bf16's largest finite")
    XCTAssertEqual(roundedToBF16(0).bitPattern, 0)
    XCTAssertEqual(roundedToBF16(-0.0).bitPattern, (-0.0 as Float).bitPattern)
  }

  /// The hardware conversion (1×1×1 products with b = 1) rounds exactly like roundedToBF16,
  /// ties included; random bit patterns over the normal range.
  func testKernelRoundingMatchesRoundedToBF16() throws {
    guard bf16GEMMAvailable else { throw XCTSkip("no AVX512_BF16 on this CPU") }
    var rng = TestRNG(seed: 9)
    var xs: [Float] = [1 + 0x1p-8, 1 + 3 * 0x1p-8, 2 - 0x1p-9, -(1 + 0x1p-8), 0.1, 3.0e38]
    for _ in 0..<2000 {
      let bits = UInt32(truncatingIfNeeded: rng.next())
      let exp = UInt32(1 + (rng.next() % 253)) << 23  // normal numbers only (the hardware flushes denormals)
      let x = Float(bitPattern: (bits & 0x807F_FFFF) | exp)
      // Also force exact ties: low 16 bits 0x8000.
      xs.append(x)
      xs.append(Float(bitPattern: (x.bitPattern & 0xFFFF_0000) | 0x8000))
    }
    let one: [Float] = [1]
    for x in xs {
      var c: [Float] = [0]
      gemmBF16(transA: false, transB: false, m: 1, n: 1, k: 1, a: [x], lda: 1, b: one, ldb: 1, beta: 0, c: &c, ldc: 1)
      XCTAssertEqual(c[0].bitPattern, roundedToBF16(x).bitPattern, "x = \(x) (0x\(String(x.bitPattern, radix: 16)))")
    }
  }

  /// `ECENET_BF16_KERNEL=0` (and only "0") turns the AVX512_BF16 kernel off for a run.
  func testEnvironmentSwitchTurnsTheKernelOff() {
    XCTAssertTrue(BF16GEMM.bf16KernelDisabled(environment: ["ECENET_BF16_KERNEL": "0"]))
    XCTAssertFalse(BF16GEMM.bf16KernelDisabled(environment: ["ECENET_BF16_KERNEL": "1"]))
    XCTAssertFalse(BF16GEMM.bf16KernelDisabled(environment: [:]))
  }
}
