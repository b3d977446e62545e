import XCTest

@testable import Tensor

/// The shifted conv's taps-summing GEMM (`PackedGEMMKernel.runTaps`, CShims
/// `gemm_taps_compute`) against one GEMM per tap, in fp32 and bf16, on shapes
/// that cross its blocks: several row blocks (more than 2·MC padded rows), K
/// over one block (Ci > 256), a ragged last panel (Co not a multiple of 32), a
/// last strip shorter than MR, dilation, non-square kernels. The debug build
/// does not route to our kernels on its own (its C is unoptimised), so the
/// test turns the route on and checks that the taps path is the one running.
final class ShiftedTapsTests: XCTestCase {
  var rng = TestRNG(seed: 21)

  struct Case { let b, h, w, ci, co, kh, kw, pad, dil: Int }

  func forward(_ c: Case, x: Tensor, w: Tensor, taps: Bool, threads: Int) -> Tensor {
    Conv2dTuning.shiftedTapsKernel = taps
    Parallel.threads = threads
    return conv2d(Var(x), weight: Var(w), bias: nil, padding: c.pad, dilation: c.dil, algorithm: .shifted).value
  }

  func testTapsKernelMatchesOneGEMMPerTap() throws {
    let saved = (Conv2dTuning.shiftedTapsKernel, Parallel.threads, F32GEMM.routeSgemm, GEMMPrecision.current)
    defer { (Conv2dTuning.shiftedTapsKernel, Parallel.threads, F32GEMM.routeSgemm, GEMMPrecision.current) = saved }
    F32GEMM.routeSgemm = f32GEMMKernelAvailable
    try XCTSkipUnless(f32GEMMKernelAvailable, "no AVX-512F: the taps kernel never runs")
    let cases = [Case(b: 2, h: 15, w: 17, ci: 20, co: 37, kh: 3, kw: 3, pad: 1, dil: 1),   // 2 row blocks, ragged panel
                 Case(b: 1, h: 9, w: 11, ci: 300, co: 32, kh: 3, kw: 3, pad: 2, dil: 2),   // 2 K blocks, dilation
                 Case(b: 3, h: 6, w: 5, ci: 7, co: 70, kh: 3, kw: 2, pad: 1, dil: 1)]      // kh ≠ kw, 3 panels
    for precision in [GEMMPrecision.fp32, .bf16] {
      GEMMPrecision.current = precision
      if precision == .bf16 && !bf16GEMMKernelInUse { continue }
      XCTAssertNotNil(packedKernelForGEMMPrecision(), "\(precision): the taps path would not run")
      for c in cases {
        let x = rng.tensor([c.b, c.h, c.w, c.ci]), w = rng.tensor([c.co, c.ci, c.kh, c.kw])
        let perTap = forward(c, x: x, w: w, taps: false, threads: 2)
        let one = forward(c, x: x, w: w, taps: true, threads: 1)
        // Same inputs (bf16: rounded the same way), so only the fp32 summation order differs.
        assertClose(one, perTap, rtol: 1e-5, atol: 1e-4, "\(precision) \(c)")
        for threads in [2, 3, 16] {
          let many = forward(c, x: x, w: w, taps: true, threads: threads)
          XCTAssertEqual(many.toArray().map(\.bitPattern), one.toArray().map(\.bitPattern), "\(precision) \(c) threads \(threads)")
        }
      }
    }
  }

  /// `runKTaps` (CShims `gemm_ktaps_compute`, the conv's weight gradient) against a
  /// Double reference of each tap's GEMM, C_t = Σ_q A[q + off_t, i]·B[q, j] + β·C_t
  /// (bf16: on entries rounded to bf16), then bit-identical over thread counts. The
  /// cases cross two row blocks (M > MC = 168) with a short last strip, three K
  /// blocks (K > 2·KC = 512), a ragged last panel, odd offsets (bf16 reads them from
  /// a second block packed one row later) with odd K, and a single K step. C's
  /// padding columns and the gap between taps keep a sentinel.
  func testKTapsKernelMatchesReferencePerTap() throws {
    try XCTSkipUnless(f32GEMMKernelAvailable, "no AVX-512F: the K-taps kernel never runs")
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    let sentinel: Float = -12345.5
    let cases: [(m: Int, n: Int, k: Int, offsets: [Int])] = [
      (m: 20, n: 37, k: 606, offsets: [0, 1, 2, 19, 20, 21, 38, 39, 40]),
      (m: 300, n: 70, k: 33, offsets: [3, 0, 1]),
      (m: 5, n: 3, k: 1, offsets: [2, 0]),
    ]
    for bf16 in [false, true] {
      if bf16 && !bf16GEMMAvailable { continue }
      let kernel = bf16 ? BF16GEMM.kernel : F32GEMM.kernel
      for c in cases {
        let span = c.offsets.max()!, lda = c.m + 3, ldb = c.n + 5, ldc = c.n + 2
        let tapStride = c.m * ldc + 11, taps = c.offsets.count
        let a = rng.tensor([(c.k + span) * lda]).toArray(), b = rng.tensor([c.k * ldb]).toArray()
        var c0 = rng.tensor([taps * tapStride]).toArray()
        for t in 0..<taps {
          for i in 0..<tapStride where i >= c.m * ldc || i % ldc >= c.n { c0[t * tapStride + i] = sentinel }
        }
        func run(threads: Int) -> [Float] {
          Parallel.threads = threads
          var out = c0
          a.withUnsafeBufferPointer { pa in b.withUnsafeBufferPointer { pb in out.withUnsafeMutableBufferPointer { pc in
            kernel.runKTaps(m: c.m, n: c.n, k: c.k, offsets: c.offsets, a: pa.baseAddress!, lda: lda,
                            b: pb.baseAddress!, ldb: ldb, beta: 0.5, c: pc.baseAddress!, ldc: ldc, tapStride: tapStride)
          } } }
          return out
        }
        let one = run(threads: 1)
        let round: (Float) -> Double = { bf16 ? Double(roundedToBF16($0)) : Double($0) }
        var failures = 0
        for t in 0..<taps {
          for i in 0..<c.m {
            for j in 0..<ldc {
              let at = t * tapStride + i * ldc + j
              if j >= c.n {
                XCTAssertEqual(one[at].bitPattern, sentinel.bitPattern, "bf16 \(bf16) \(c) tap \(t): padding written")
                continue
              }
              var sum = 0.0, scale = 0.0
              for q in 0..<c.k {
                let x = round(a[(q + c.offsets[t]) * lda + i]) * round(b[q * ldb + j])
                sum += x; scale += abs(x)
              }
              let old = 0.5 * Double(c0[at]), want = sum + old, tol = 1e-5 * (scale + abs(old)) + 1e-30
              if !(abs(Double(one[at]) - want) <= tol) && failures < 5 {
                XCTFail("bf16 \(bf16) \(c) tap \(t): C[\(i), \(j)] = \(one[at]), expected \(want) ± \(tol)")
                failures += 1
              }
            }
          }
          let gap = ((t * tapStride + c.m * ldc)..<((t + 1) * tapStride)).map { one[$0].bitPattern }
          XCTAssertEqual(gap, Array(repeating: sentinel.bitPattern, count: gap.count), "bf16 \(bf16) \(c) tap \(t): gap written")
        }
        for threads in [2, 3, 16] {
          XCTAssertEqual(run(threads: threads).map(\.bitPattern), one.map(\.bitPattern), "bf16 \(bf16) \(c) threads \(threads)")
        }
      }
    }
  }

  /// The shifted conv's backward on the taps kernels (dW on the K-taps GEMM, dx
  /// on the taps GEMM over dy with the shifts reversed) against one GEMM per tap
  /// (the finite-difference checks in ConvTests cover the per-tap path and this
  /// one alike), and both bit-identical over thread counts.
  func testBackwardOnTapsKernelsMatchesOneGEMMPerTap() throws {
    let saved = (Conv2dTuning.shiftedTapsKernel, Parallel.threads, F32GEMM.routeSgemm, GEMMPrecision.current)
    defer { (Conv2dTuning.shiftedTapsKernel, Parallel.threads, F32GEMM.routeSgemm, GEMMPrecision.current) = saved }
    F32GEMM.routeSgemm = f32GEMMKernelAvailable
    try XCTSkipUnless(f32GEMMKernelAvailable, "no AVX-512F: the K-taps kernel never runs")
    let cases = [Case(b: 2, h: 15, w: 17, ci: 20, co: 37, kh: 3, kw: 3, pad: 1, dil: 1),
                 Case(b: 1, h: 9, w: 11, ci: 300, co: 32, kh: 3, kw: 3, pad: 2, dil: 2),
                 Case(b: 3, h: 6, w: 5, ci: 7, co: 70, kh: 3, kw: 2, pad: 1, dil: 1)]
    for precision in [GEMMPrecision.fp32, .bf16] {
      GEMMPrecision.current = precision
      if precision == .bf16 && !bf16GEMMKernelInUse { continue }
      for c in cases {
        let x = rng.tensor([c.b, c.h, c.w, c.ci]), w = rng.tensor([c.co, c.ci, c.kh, c.kw])
        let dy = rng.tensor([c.b, c.h + 2 * c.pad - c.dil * (c.kh - 1), c.w + 2 * c.pad - c.dil * (c.kw - 1), c.co])
        func grads(taps: Bool, threads: Int) -> (dx: Tensor, dw: Tensor) {
          Conv2dTuning.shiftedTapsKernel = taps
          Parallel.threads = threads
          let xv = Var(x, requiresGrad: true), wv = Var(w, requiresGrad: true)
          withGradients {
            let y = conv2d(xv, weight: wv, bias: nil, padding: c.pad, dilation: c.dil, algorithm: .shifted)
            Tape.shared.backward(from: y, seed: dy)
          }
          return (xv.grad!, wv.grad!)
        }
        let perTap = grads(taps: false, threads: 2), one = grads(taps: true, threads: 1)
        assertClose(one.dw, perTap.dw, rtol: 1e-5, atol: 1e-4, "\(precision) \(c) dW")
        assertClose(one.dx, perTap.dx, rtol: 1e-5, atol: 1e-4, "\(precision) \(c) dx")
        for threads in [2, 3, 16] {
          let many = grads(taps: true, threads: threads)
          XCTAssertEqual(many.dw.toArray().map(\.bitPattern), one.dw.toArray().map(\.bitPattern), "\(precision) \(c) threads \(threads)")
          XCTAssertEqual(many.dx.toArray().map(\.bitPattern), one.dx.toArray().map(\.bitPattern), "\(precision) \(c) dx threads \(threads)")
        }
      }
    }
  }
}
