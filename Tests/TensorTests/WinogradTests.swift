import XCTest

@testable import Tensor

/// Winograd F(2×2, 3×3) (Winograd.swift) against the shifted algorithm (itself
/// checked against a Double reference in ConvTests): forward, dx, dW and dBias,
/// with odd map sizes (tiles cut by the edge), several chunks of tiles, on the
/// gemm route and on our packed kernel (the debug build routes to it only when
/// told, as here; then U is packed once for all chunks), and on 1 and 3 threads.
final class WinogradTests: XCTestCase {
  var rng = TestRNG(seed: 31)

  func run(_ x: Tensor, _ w: Tensor, _ b: Tensor, _ seed: Tensor, _ algorithm: Conv2dAlgorithm) -> [Tensor] {
    let xv = Var(x.copy(), requiresGrad: true), wv = Var(w.copy(), requiresGrad: true), bv = Var(b.copy(), requiresGrad: true)
    let y = withGradients { () -> Var in
      let y = conv2d(xv, weight: wv, bias: bv, padding: 1, algorithm: algorithm)
      Tape.shared.backward(from: y, seed: seed)
      return y
    }
    return [y.value, xv.grad!, wv.grad!, bv.grad!]
  }

  func testMatchesShiftedOverChunksRoutesAndThreads() throws {
    let saved = (F32GEMM.routeSgemm, Parallel.threads, Conv2dTuning.winogradChunkFloats)
    defer { (F32GEMM.routeSgemm, Parallel.threads, Conv2dTuning.winogradChunkFloats) = saved }
    Conv2dTuning.winogradChunkFloats = 0  // 64 tiles per chunk: 144 tiles below are 3 chunks, the last short
    let (B, H, W, ci, co) = (2, 17, 15, 16, 32)
    let x = rng.tensor([B, H, W, ci]), w = rng.tensor([co, ci, 3, 3], -0.3, 0.3), b = rng.tensor([co])
    let seed = rng.tensor([B, H, W, co])
    for route in f32GEMMKernelAvailable ? [false, true] : [false] {
      F32GEMM.routeSgemm = route
      XCTAssertEqual(packedKernelForGEMMPrecision() != nil, route, "route \(route): the packed-U path runs exactly when routed")
      for threads in [1, 3] {
        Parallel.threads = threads
        let ref = run(x, w, b, seed, .shifted), win = run(x, w, b, seed, .winograd)
        for (i, part) in ["y", "dx", "dW", "dBias"].enumerated() {
          let scale = ref[i].toArray().map { abs($0) }.max() ?? 1
          let err = zip(ref[i].toArray(), win[i].toArray()).map { abs($0 - $1) }.max() ?? 0
          XCTAssertLessThanOrEqual(err, 2e-5 * scale, "route \(route), \(threads) threads, \(part): max error \(err), scale \(scale)")
        }
      }
    }
  }

  func testChosenOnlyWhereItApplies() {
    func g(_ ci: Int, _ co: Int, k: Int = 3, stride: Int = 1, padding: Int = 1, dilation: Int = 1) -> Conv2dGeometry {
      Conv2dGeometry(input: [1, 8, 8, ci], weight: [co, ci, k, k], stride: stride, padding: padding, dilation: dilation, groups: 1)
    }
    XCTAssertEqual(Conv2dAlgorithm.choose(for: g(128, 32)), .winograd, "the tiny model's fuse conv (4·32 → 32)")
    XCTAssertEqual(Conv2dAlgorithm.choose(for: g(16, 32)), .shifted, "Cin·Cout below the minimum")
    XCTAssertEqual(Conv2dAlgorithm.choose(for: g(128, 40)), .shifted, "Cout not a multiple of 16")
    XCTAssertEqual(Conv2dAlgorithm.choose(for: g(128, 64, padding: 2, dilation: 2)), .winograd, "dilated: on its phases")
    XCTAssertEqual(Conv2dAlgorithm.choose(for: g(128, 64, padding: 1, dilation: 2)), .shifted, "dilated, not same-size")
    XCTAssertEqual(Conv2dAlgorithm.choose(for: g(128, 64, stride: 2)), .im2col, "strided")
    let saved = GEMMPrecision.current
    defer { GEMMPrecision.current = saved }
    GEMMPrecision.current = .bf16
    XCTAssertEqual(Conv2dAlgorithm.choose(for: g(128, 32)), .shifted, "bf16 keeps the direct sums")
  }
}
