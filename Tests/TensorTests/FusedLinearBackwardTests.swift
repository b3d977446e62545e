import XCTest

@testable import Tensor

/// The fused linear backward (PackedGEMMKernel.linearBackward, taken by
/// `linearBackward` on our fp32 kernel): dx and dW in one pass over row blocks of
/// dy, row groups summed in a fixed order. Checked against a Double reference
/// (with accumulation into dx and dW, and without dx), against the two-GEMM path,
/// and for the same bits on 1 and 3 threads. The debug build routes to the kernel
/// only when told (`F32GEMM.routeSgemm`), as here.
final class FusedLinearBackwardTests: XCTestCase {
  var rng = TestRNG(seed: 47)

  /// rows: 17 row blocks of 168 and a short one, so 4 groups of uneven block
  /// counts; O and I cut the 14-row strips and 32-column panels at their edges
  /// (I a multiple of 16, so that dx rows stay 64-byte aligned for streamed stores).
  let (rows, outF, inF) = (17 * 168 + 37, 40, 48)

  struct Result { var dx: [Float]?; var dW: [Float]; var dBias: [Float] }

  func backward(dy: Tensor, x: Tensor, w: Tensor, dx0: Tensor?, accumulateDx: Bool, dW0: Tensor, b0: Tensor) -> Result {
    let dx = dx0?.copy(), dW = dW0.copy(), db = b0.copy()
    linearBackward(dx: dx, accumulateDx: accumulateDx, dWeight: dW, dBias: db, dy: dy, x: x, weight: w)
    return Result(dx: dx?.toArray(), dW: dW.toArray(), dBias: db.toArray())
  }

  /// max |got − want| / (1e-5·Σ|terms| + 1e-6) over the elements: ≤ 1 passes.
  func worst(_ got: [Float], _ want: [Double], _ scale: [Double]) -> Double {
    zip(zip(got, want), scale).map { abs(Double($0.0) - $0.1) / (1e-5 * $1 + 1e-6) }.max() ?? 0
  }

  func testMatchesDoubleReferenceTwoGEMMPathAndThreadCounts() throws {
    try XCTSkipUnless(f32GEMMKernelAvailable, "the fused path runs on the AVX-512F kernel only")
    let saved = (F32GEMM.routeSgemm, F32GEMM.fuseLinearBackward, Parallel.threads)
    defer { (F32GEMM.routeSgemm, F32GEMM.fuseLinearBackward, Parallel.threads) = saved }
    F32GEMM.routeSgemm = true
    let groups = F32GEMM.kernel.linearBackwardGroups(rows: rows, outFeatures: outF, inFeatures: inF)
    XCTAssertEqual(groups, 4, "18 row blocks: 4 groups, so the partials are summed")

    let dy = rng.tensor([rows, outF]), x = rng.tensor([rows, inF]), w = rng.tensor([outF, inF])
    let dx0 = rng.tensor([rows, inF]), dW0 = rng.tensor([outF, inF]), b0 = rng.tensor([outF])
    let (pdy, px, pw, pdx0, pdW0) = (dy.toArray(), x.toArray(), w.toArray(), dx0.toArray(), dW0.toArray())

    // Double reference, with Σ|terms| per element for the tolerance.
    var dxRef = [Double](repeating: 0, count: rows * inF), dxScale = dxRef
    var dWRef = pdW0.map(Double.init), dWScale = pdW0.map { abs(Double($0)) }
    for r in 0..<rows {
      for o in 0..<outF {
        let g = Double(pdy[r * outF + o])
        for i in 0..<inF {
          dxRef[r * inF + i] += g * Double(pw[o * inF + i]); dxScale[r * inF + i] += abs(g * Double(pw[o * inF + i]))
          dWRef[o * inF + i] += g * Double(px[r * inF + i]); dWScale[o * inF + i] += abs(g * Double(px[r * inF + i]))
        }
      }
    }

    for accumulateDx in [false, true] {
      let wantDx = accumulateDx ? zip(dxRef, pdx0).map { $0 + Double($1) } : dxRef
      let scaleDx = accumulateDx ? zip(dxScale, pdx0).map { $0 + abs(Double($1)) } : dxScale
      F32GEMM.fuseLinearBackward = true
      var byThreads: [Result] = []
      for threads in [1, 3] {
        Parallel.threads = threads
        let got = backward(dy: dy, x: x, w: w, dx0: dx0, accumulateDx: accumulateDx, dW0: dW0, b0: b0)
        XCTAssertLessThanOrEqual(worst(got.dx!, wantDx, scaleDx), 1, "dx, accumulate \(accumulateDx), \(threads) threads")
        XCTAssertLessThanOrEqual(worst(got.dW, dWRef, dWScale), 1, "dW, accumulate \(accumulateDx), \(threads) threads")
        byThreads.append(got)
      }
      XCTAssertTrue(byThreads[0].dx == byThreads[1].dx, "dx: 1 and 3 threads give the same bits")
      XCTAssertTrue(byThreads[0].dW == byThreads[1].dW, "dW: 1 and 3 threads give the same bits")
      // dx stored past the caches (as for large passes) gives the same bits.
      let savedMinimum = StreamingStores.minimumPassBytes
      StreamingStores.minimumPassBytes = 0
      let streamed = backward(dy: dy, x: x, w: w, dx0: dx0, accumulateDx: accumulateDx, dW0: dW0, b0: b0)
      StreamingStores.minimumPassBytes = savedMinimum
      XCTAssertTrue(streamed.dx == byThreads[1].dx, "dx streamed, accumulate \(accumulateDx)")

      // The two-GEMM path: dx is the same sums (each row block is `run`'s), dW a different order.
      F32GEMM.fuseLinearBackward = false
      let two = backward(dy: dy, x: x, w: w, dx0: dx0, accumulateDx: accumulateDx, dW0: dW0, b0: b0)
      XCTAssertTrue(byThreads[1].dx == two.dx, "dx equals the two-GEMM path's, accumulate \(accumulateDx)")
      XCTAssertLessThanOrEqual(worst(two.dW, dWRef, dWScale), 1)
      XCTAssertTrue(byThreads[1].dBias == two.dBias, "dBias as the two-GEMM path's")
    }

    // Weight gradient only (an input that needs no gradient).
    F32GEMM.fuseLinearBackward = true
    Parallel.threads = 3
    let dWOnly = dW0.copy()
    linearBackward(dx: nil, dWeight: dWOnly, dBias: nil, dy: dy, x: x, weight: w)
    XCTAssertLessThanOrEqual(worst(dWOnly.toArray(), dWRef, dWScale), 1, "dW without dx")
  }

  /// Where it runs: enough rows for 16 row blocks, and a weight whose partials stay
  /// in L2; the group count follows the shape, not the threads.
  func testGroupsFollowTheShape() throws {
    let k = F32GEMM.kernel
    try XCTSkipUnless(k.rowBlock > 0, "no fused path on this build")
    XCTAssertEqual(k.linearBackwardGroups(rows: 15 * k.rowBlock, outFeatures: 256, inFeatures: 128), 1, "15 blocks: no split")
    XCTAssertEqual(k.linearBackwardGroups(rows: 16 * k.rowBlock, outFeatures: 256, inFeatures: 128), 4)
    XCTAssertEqual(k.linearBackwardGroups(rows: 25600, outFeatures: 256, inFeatures: 128), 16, "the 1×1 conv at 160²")
    XCTAssertEqual(k.linearBackwardGroups(rows: 25600, outFeatures: 1024, inFeatures: 256), 1, "a 1 MiB weight: no partials")
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    Parallel.threads = 7
    XCTAssertEqual(k.linearBackwardGroups(rows: 25600, outFeatures: 256, inFeatures: 128), 16)
  }
}
