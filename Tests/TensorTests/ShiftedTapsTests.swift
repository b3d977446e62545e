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
      if precision == .bf16 && !bf16GEMMAvailable { continue }
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
}
