import CShims
import Foundation
import XCTest

@testable import Tensor

/// The AMX bf16 kernel (CShims/amx_gemm.c) with its tile instructions emulated
/// in C: this machine has no AMX, so these tests check everything around the
/// tiles (the [row][KC] packings of both transposes, the zero pads of rows to
/// 32 and pairs to 16, the zero-padded copy of the last B group, the K blocks,
/// the stores with alpha, beta and bias, the thread splits) against the Double
/// reference over bf16-rounded inputs, as GemmBF16Tests does for the
/// AVX512_BF16 kernel. The real tiles are checked against this emulation by
/// `ecenet-dist bench gemm` on AMX hardware.
final class GemmAMXTests: XCTestCase, PackedGEMMTesting {
  static let referenceRoundsToBF16 = true

  override func setUpWithError() throws {
    // The packings convert with AVX512_BF16 instructions (vcvtne2ps2bf16).
    guard bf16GEMMAvailable else { throw XCTSkip("no AVX512_BF16 on this CPU") }
  }

  func runKernel(_ t: Case, _ o: Operands) -> [Float] { run(t, o, parallel: true) }

  func run(_ t: Case, _ o: Operands, parallel: Bool) -> [Float] {
    var c = o.c0
    o.a.withUnsafeBufferPointer { pa in
      o.b.withUnsafeBufferPointer { pb in
        c.withUnsafeMutableBufferPointer { pc in
          let bias = o.bias
          bias.withUnsafeBufferPointerIfAny { pBias in
            if gemmFinishedWithoutKernel("amx", transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k,
                                         alpha: t.alpha, lda: o.lda, ldb: o.ldb, beta: t.beta, c: pc.baseAddress!,
                                         ldc: o.ldc, bias: pBias) { return }
            AMXGEMM.emulatedKernel.run(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                                       a: pa.baseAddress!, lda: o.lda, b: pb.baseAddress!, ldb: o.ldb,
                                       beta: t.beta, c: pc.baseAddress!, ldc: o.ldc, bias: pBias, parallel: parallel)
          }
        }
      }
    }
    return c
  }

  func check(_ t: Case, seed: UInt64 = 1, file: StaticString = #filePath, line: UInt = #line) {
    let o = makeOperands(t, seed: seed)
    verify(t, o, runKernel(t, o), file: file, line: line)
  }

  func testAllTransposesOddSizesAlphaBeta() {
    // One tile block exactly and one past it; K2 a multiple of 16 and one past
    // it; several K blocks (KC = 256 pairs) with a ragged last group.
    checkTransposesAndEdges([(32, 32, 32), (33, 33, 34), (16, 64, 64), (70, 40, 1100)]) { check($0) }
  }

  func testDegenerateSizes() { checkDegenerateSizes() }

  func testBiasAddedInTheStore() { checkBias() }

  func testNaNAndInfStayInTheirRowAndColumn() { checkNaNAndInfStayInTheirRowAndColumn() }

  /// The last group of 16 pairs in a K block reads B from a zero-padded copy:
  /// past the block, packed B holds the next panel's first pairs, and an inf
  /// there times A's zero pad would be NaN in the first panel's columns.
  func testRaggedKGroupNeverReadsTheNextPanel() {
    let t = Case(transA: false, transB: false, m: 20, n: 40, k: 9, alpha: 1, beta: 0)
    var o = makeOperands(t, seed: 11)
    o.b[0 * o.ldb + 33] = .infinity  // pair 0 of panel 1: right after panel 0's 5 pairs
    let got = runKernel(t, o)
    for i in 0..<t.m {
      for j in 0..<32 { XCTAssertTrue(got[i * o.ldc + j].isFinite, "C[\(i), \(j)] = \(got[i * o.ldc + j])") }
      XCTAssertTrue(got[i * o.ldc + 33].isInfinite, "C[\(i), 33]")
    }
  }

  /// A scratch that starts as NaN (the pool's buffers hold earlier data): the
  /// packings' row and pair pads must be written as zeros, for both transposes.
  func testPaddingIsZeroOverNaNScratch() {
    for transA in [false, true] {
      let t = Case(transA: transA, transB: true, m: 21, n: 33, k: 45, alpha: 1, beta: 0.5)
      let o = makeOperands(t, seed: 4)
      let scratch = UnsafeMutableRawPointer.allocate(byteCount: Int(ecenet_amx_gemm_a_scratch_bytes()), alignment: 64)
      defer { scratch.deallocate() }
      let packed = UnsafeMutableRawPointer.allocate(byteCount: Int(ecenet_bf16_gemm_packed_b_bytes(t.k, t.n)),
                                                    alignment: 64)
      defer { packed.deallocate() }
      scratch.initializeMemory(as: Float.self, repeating: .nan, count: Int(ecenet_amx_gemm_a_scratch_bytes()) / 4)
      var c = o.c0
      o.a.withUnsafeBufferPointer { pa in
        o.b.withUnsafeBufferPointer { pb in
          c.withUnsafeMutableBufferPointer { pc in
            ecenet_bf16_gemm_pack_b(1, t.k, t.n, pb.baseAddress, o.ldb, 0, t.n, packed)
            ecenet_amx_gemm_compute_emulated(transA ? 1 : 0, t.m, t.n, t.k, t.alpha, pa.baseAddress, o.lda, packed,
                                             t.beta, pc.baseAddress, o.ldc, nil, 0, t.m, 0, t.n, scratch)
          }
        }
      }
      verify(t, o, c, label: "transA \(transA), NaN scratch")
    }
  }

  /// Any split of C (the thread split, or blocks that do not start on a tile
  /// block) gives the same bits as one call.
  func testSplitsAreBitIdentical() {
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    for transA in [false, true] {
      let t = Case(transA: transA, transB: false, m: 150, n: 100, k: 600, alpha: 1, beta: 0)
      let o = makeOperands(t, seed: 8)
      let one = run(t, o, parallel: false).map(\.bitPattern)
      Parallel.threads = 3
      XCTAssertEqual(run(t, o, parallel: true).map(\.bitPattern), one, "3 threads, transA \(transA)")
      // Blocks of 45 rows and two column ranges, each its own compute call.
      var c = o.c0
      let scratch = UnsafeMutableRawPointer.allocate(byteCount: Int(ecenet_amx_gemm_a_scratch_bytes()), alignment: 64)
      defer { scratch.deallocate() }
      let packed = UnsafeMutableRawPointer.allocate(byteCount: Int(ecenet_bf16_gemm_packed_b_bytes(t.k, t.n)),
                                                    alignment: 64)
      defer { packed.deallocate() }
      o.a.withUnsafeBufferPointer { pa in
        o.b.withUnsafeBufferPointer { pb in
          c.withUnsafeMutableBufferPointer { pc in
            ecenet_bf16_gemm_pack_b(0, t.k, t.n, pb.baseAddress, o.ldb, 0, t.n, packed)
            for m0 in stride(from: 0, to: t.m, by: 45) {
              for (n0, n1) in [(0, 64), (64, t.n)] {
                ecenet_amx_gemm_compute_emulated(transA ? 1 : 0, t.m, t.n, t.k, t.alpha, pa.baseAddress, o.lda,
                                                 packed, t.beta, pc.baseAddress, o.ldc, nil, m0, m0 + 45, n0, n1,
                                                 scratch)
              }
            }
          }
        }
      }
      XCTAssertEqual(c.map(\.bitPattern), one, "45-row blocks, transA \(transA)")
    }
  }

  /// The self-check that guards the AMX kernel on AMX hardware (and `bench gemm`'s
  /// check): a kernel with bf16 numerics agrees with the emulation within the
  /// bound, and one without (the fp32 kernel, which does not round its inputs)
  /// is caught.
  func testSelfCheckAcceptsBF16NumericsAndCatchesOthers() throws {
    try XCTSkipUnless(f32GEMMKernelAvailable, "no AVX-512F on this CPU")
    XCTAssertLessThanOrEqual(AMXGEMM.worstDifference(BF16GEMM.kernel, from: AMXGEMM.emulatedKernel), AMXGEMM.tolerance)
    XCTAssertGreaterThan(AMXGEMM.worstDifference(F32GEMM.kernel, from: AMXGEMM.emulatedKernel), 100 * AMXGEMM.tolerance)
    if !cpuHasAMXBF16 { XCTAssertNil(BF16Kernel.amxWorstDifferenceFromEmulation()) }
  }

  /// The self-check's taps parts catch a kernel whose plain GEMMs are right but
  /// whose shifted-taps GEMM, or K-shifted taps GEMM, is not (alpha off by 1%).
  func testSelfCheckCatchesAWrongTapsKernel() throws {
    try XCTSkipUnless(bf16GEMMAvailable, "no AVX512_BF16: the AMX packing cannot run")
    let wrongTaps = AMXGEMM.make(compute: ecenet_amx_gemm_compute_emulated, taps: {
      m, n, k, taps, off, alpha, a, lda, pb, beta, c, ldc, m0, m1, n0, n1, scratch in
      ecenet_amx_gemm_taps_compute_emulated(m, n, k, taps, off, alpha * 1.01, a, lda, pb, beta, c, ldc, m0, m1, n0, n1,
                                            scratch)
    }, kTaps: ecenet_amx_gemm_ktaps_compute_emulated)
    let wrongKTaps = AMXGEMM.make(compute: ecenet_amx_gemm_compute_emulated, taps: ecenet_amx_gemm_taps_compute_emulated) {
      m, n, k, taps, off, alpha, a, lda, pb, beta, c, ldc, ctap, m0, m1, n0, n1, scratch in
      ecenet_amx_gemm_ktaps_compute_emulated(m, n, k, taps, off, alpha * 1.01, a, lda, pb, beta, c, ldc, ctap, m0, m1,
                                             n0, n1, scratch)
    }
    for (name, wrong) in [("taps", wrongTaps), ("K-taps", wrongKTaps)] {
      XCTAssertLessThanOrEqual(AMXGEMM.worstGEMMDifference(wrong, from: AMXGEMM.emulatedKernel), AMXGEMM.tolerance, name)
      XCTAssertGreaterThan(AMXGEMM.worstDifference(wrong, from: AMXGEMM.emulatedKernel), 10 * AMXGEMM.tolerance, name)
    }
  }

  /// The K-shifted taps GEMM (the conv's weight gradient) on (emulated) tiles
  /// against the AVX512_BF16 kernel's, on shapes that cross its blocks: two row
  /// blocks (M > MC = 192) with a short last strip, three K blocks (K > 2·KC
  /// pairs) with odd K, odd offsets (read from the block packed one row later)
  /// and offsets past a 16-pair group, a ragged panel, a single k; then
  /// bit-identical over thread counts.
  func testKTapsOnTilesMatchTheBF16Kernel() throws {
    try XCTSkipUnless(bf16GEMMAvailable, "no AVX512_BF16: the AMX packing cannot run")
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    let shapes: [AMXGEMM.TapShape] = [(m: 230, n: 37, k: 1101, offsets: [0, 1, 35, 70]),
                                      (m: 20, n: 37, k: 606, offsets: [0, 1, 2, 19, 20, 21, 38, 39, 40]),
                                      (m: 5, n: 3, k: 1, offsets: [2, 0])]
    Parallel.threads = 1
    XCTAssertLessThanOrEqual(AMXGEMM.worstKTapsDifference(AMXGEMM.emulatedKernel, from: BF16GEMM.kernel, shapes: shapes),
                             AMXGEMM.tolerance)
    var rng = RandomGenerator(seed: 6)
    let s = shapes[0], taps = s.offsets.count
    let a = (0..<(s.k + s.offsets.max()!) * s.m).map { _ in rng.uniform(-1, 1) }
    let b = (0..<s.k * s.n).map { _ in rng.uniform(-1, 1) }
    func run(threads: Int) -> [UInt32] {
      Parallel.threads = threads
      var c = [Float](repeating: .nan, count: taps * s.m * s.n)
      c.withUnsafeMutableBufferPointer { pc in
        AMXGEMM.emulatedKernel.runKTaps(m: s.m, n: s.n, k: s.k, offsets: s.offsets, a: a, lda: s.m, b: b, ldb: s.n,
                                        beta: 0, c: pc.baseAddress!, ldc: s.n, tapStride: s.m * s.n)
      }
      return c.map(\.bitPattern)
    }
    assertThreadCountsAgree(run)
  }

  /// The shifted-taps GEMM on (emulated) tiles against the AVX512_BF16 kernel's
  /// (the same bf16 numerics, another fp32 summation order), on shapes that
  /// cross its blocks: two row blocks (more than 2·MC = 384 rows) with a short
  /// last strip and a ragged panel, two K blocks with odd K, a single k; then
  /// bit-identical over thread counts.
  func testTapsOnTilesMatchTheBF16Kernel() throws {
    try XCTSkipUnless(bf16GEMMAvailable, "no AVX512_BF16: the AMX packing cannot run")
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    let shapes: [AMXGEMM.TapShape] = [(m: 420, n: 37, k: 20, offsets: [0, 1, 2, 19, 20, 21, 38, 39, 40]),
                                      (m: 50, n: 64, k: 531, offsets: [0, 7]), (m: 5, n: 3, k: 1, offsets: [2, 0])]
    Parallel.threads = 1
    XCTAssertLessThanOrEqual(AMXGEMM.worstTapsDifference(AMXGEMM.emulatedKernel, from: BF16GEMM.kernel, shapes: shapes),
                             AMXGEMM.tolerance)
    var rng = RandomGenerator(seed: 5)
    let s = shapes[0], rows = s.m + s.offsets.max()!
    let a = (0..<rows * s.k).map { _ in rng.uniform(-1, 1) }
    let b = (0..<s.offsets.count * s.n * s.k).map { _ in rng.uniform(-1, 1) }
    func run(threads: Int) -> [UInt32] {
      Parallel.threads = threads
      var c = [Float](repeating: .nan, count: s.m * s.n)
      c.withUnsafeMutableBufferPointer { pc in
        AMXGEMM.emulatedKernel.runTaps(m: s.m, n: s.n, k: s.k, offsets: s.offsets, a: a, lda: s.k, transB: true, b: b,
                                       ldb: s.k, tapStride: s.n * s.k, beta: 0, c: pc.baseAddress!, ldc: s.n)
      }
      return c.map(\.bitPattern)
    }
    assertThreadCountsAgree(run)
  }

  /// The default and the CPU check: ECENET_AMX=0 opts out, =1 asks (and the log
  /// says when the tiles cannot run), unset or anything else uses them where the
  /// CPU has AMX-BF16; on a CPU whose /proc/cpuinfo lacks amx_tile or amx_bf16 the
  /// kernel reports itself unavailable, and only an explicit request is reported.
  func testDefaultOnWhereTheCPUHasAMXAndAvailability() throws {
    XCTAssertEqual(AMXGEMM.setting(environment: ["ECENET_AMX": "1"]), .on)
    XCTAssertEqual(AMXGEMM.setting(environment: ["ECENET_AMX": "0"]), .off)
    XCTAssertEqual(AMXGEMM.setting(environment: [:]), .auto)
    XCTAssertEqual(AMXGEMM.setting(environment: ["ECENET_AMX": "yes"]), .auto)
    XCTAssertTrue(AMXGEMM.wanted(.auto, cpuHasAMX: true))
    XCTAssertFalse(AMXGEMM.wanted(.auto, cpuHasAMX: false), "no AMX: nothing to report by default")
    XCTAssertTrue(AMXGEMM.wanted(.on, cpuHasAMX: false), "an explicit request is reported where it cannot run")
    XCTAssertFalse(AMXGEMM.wanted(.off, cpuHasAMX: true))
    let flags = try cpuInfoFlags()
    XCTAssertEqual(cpuHasAMXBF16, flags.contains("amx_tile") && flags.contains("amx_bf16"))
    if !cpuHasAMXBF16 {
      XCTAssertEqual(ecenet_amx_enable(), 0)
      XCTAssertFalse(amxGEMMInUse)
      XCTAssertEqual(amxRequestedButUnavailable, AMXGEMM.chosen == .on)
    }
  }
}

extension GemmAMXTests {
  /// `run(threads)` gives the same bits on 2 and 3 threads as on 1; a failure
  /// names the first element that differs.
  func assertThreadCountsAgree(_ run: (Int) -> [UInt32], file: StaticString = #filePath, line: UInt = #line) {
    let one = run(1)
    for threads in [2, 3] {
      let many = run(threads)
      let first = many.indices.first { many[$0] != one[$0] }
      XCTAssertNil(first, "threads \(threads): first difference at C[\(first ?? -1)]", file: file, line: line)
    }
  }
}

extension Optional where Wrapped == [Float] {
  /// body(pointer to the array's storage), or body(nil) when there is none.
  fileprivate func withUnsafeBufferPointerIfAny<R>(_ body: (UnsafePointer<Float>?) -> R) -> R {
    switch self {
    case .some(let a): return a.withUnsafeBufferPointer { body($0.baseAddress) }
    case .none: return body(nil)
    }
  }
}
