import CShims
import Foundation
import XCTest

@testable import Tensor

/// smallSgemm (CShims/small_gemm.c, the unpacked AVX-512F kernel of attention's
/// per-slice GEMMs) against a Double loop, so the only allowed difference is the
/// fp32 summation order (tolerance 1e-5·Σ|α·a·b| + |β·c| per element; C's padding
/// columns must keep their sentinel); its size bound; the routing of `sgemm` /
/// `sgemmOnThisThread`; and attention with the route forced on. Skipped on CPUs
/// without AVX-512F.
final class SmallGemmTests: XCTestCase, PackedGEMMTesting {
  static let referenceRoundsToBF16 = false

  override func setUpWithError() throws {
    guard f32GEMMKernelAvailable else { throw XCTSkip("no AVX-512F on this CPU") }
  }

  func runKernel(_ t: Case, _ o: Operands) -> [Float] {
    var c = o.c0
    o.a.withUnsafeBufferPointer { pa in
      o.b.withUnsafeBufferPointer { pb in
        c.withUnsafeMutableBufferPointer { pc in
          smallSgemm(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                     a: pa.baseAddress!, lda: o.lda, b: pb.baseAddress!, ldb: o.ldb, beta: t.beta,
                     c: pc.baseAddress!, ldc: o.ldc)
        }
      }
    }
    return c
  }

  /// The four trans combinations over odd and tile-edge sizes (1, 7, 15, 16, 17, 31,
  /// 33, 49, 64: every row-tile and zmm tail; N also 18, 35, 51: the 1…3 tail columns
  /// that A·Bᵀ takes by dot products), alpha 1 or not, beta 0 (C NaN on entry), 1 or
  /// 0.5, strides padded beyond their minimum.
  func testOddSizesAllTransposes() {
    let sizes = [1, 7, 15, 16, 17, 31, 33, 49, 64]
    let scalars: [(Float, Float)] = [(1, 0), (0.75, 1), (1, 1), (-1.5, 0.5), (0.125, 0)]
    var index = 0
    for transA in [false, true] {
      for transB in [false, true] {
        for m in sizes {
          for n in sizes + [18, 35, 51] {
            for k in [1, 16, 17, 49] {
              let (alpha, beta) = scalars[index % scalars.count]
              let t = Case(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
                           padA: index % 3, padB: (index / 3) % 4, padC: 1 + index % 5)
              index += 1
              let o = makeOperands(t, seed: UInt64(index))
              verify(t, o, runKernel(t, o))
            }
          }
        }
      }
    }
  }

  /// Attention's shapes (Swin window 7: L 49, window 12: L 144; head dim 32), as
  /// attentionForward / attentionBackward call them, with tight and padded strides.
  func testAttentionShapes() {
    var seed: UInt64 = 100
    for l in [49, 144] {
      let d = 32
      let shapes: [(Bool, Bool, Int, Int, Int, Float, Float)] = [
        (false, true, l, l, d, 0.17, 0),   // S = q·kᵀ·scale; dP = dO·vᵀ (alpha 1)
        (false, false, l, d, l, 1, 0),     // O = P·v
        (true, false, l, d, l, 1, 1),      // dv += Pᵀ·dO
        (false, false, l, d, l, 0.17, 1),  // dq += dS·k·scale
        (true, false, l, d, l, 0.17, 1),   // dk += dSᵀ·q·scale
        (false, true, l, l, d, 1, 0),
      ]
      for (transA, transB, m, n, k, alpha, beta) in shapes {
        for pad in [0, 3] {
          let t = Case(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, beta: beta,
                       padA: pad, padB: pad, padC: pad)
          seed += 1
          let o = makeOperands(t, seed: seed)
          verify(t, o, runKernel(t, o))
        }
      }
    }
  }

  /// Empty C, k == 0, alpha == 0 (C = beta·C; beta 0 gives zeros over NaN), single
  /// rows and columns, every transpose.
  func testDegenerateSizes() { checkDegenerateSizes() }

  /// NaN in A stays in its row of C, inf in B in its column: masked tails and the
  /// zero columns of the transposed-B buffer never mix with real data.
  func testNaNAndInfStayInTheirRowAndColumn() { checkNaNAndInfStayInTheirRowAndColumn() }

  /// The size bound: K·roundup(N, 16) ≤ 8192 is taken (at the bound exactly, every
  /// transpose), the rule holds over a grid of N and K, and M is not bounded.
  func testSizeBound() {
    XCTAssertEqual(smallSgemmMaxBFloats, 8192)
    for (m, n, k) in [(5, 64, 128), (3, 49, 128), (2, 16, 512), (300, 17, 256), (2, 8192, 1), (9, 1, 512)] {
      XCTAssertTrue(smallSgemmSupports(m: m, n: n, k: k), "\(m)×\(n)×\(k)")
      for transA in [false, true] {
        for transB in [false, true] {
          let t = Case(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5, beta: 0.25)
          let o = makeOperands(t, seed: UInt64(m * n + k))
          verify(t, o, runKernel(t, o))
        }
      }
    }
    for (m, n, k) in [(5, 65, 128), (3, 49, 129), (2, 16, 513), (1, 8193, 1)] {
      XCTAssertFalse(smallSgemmSupports(m: m, n: n, k: k), "\(m)×\(n)×\(k)")
    }
    for n in [0, 1, 15, 16, 17, 48, 49, 64, 65, 144, 145, 300] {
      for k in [0, 1, 31, 32, 33, 56, 57, 128, 129, 170, 171, 512, 513] {
        XCTAssertEqual(smallSgemmSupports(m: 7, n: n, k: k), k * ((n + 15) / 16 * 16) <= 8192, "n \(n) k \(k)")
      }
    }
  }

  // MARK: routing

  /// `sgemmUsesSmallKernel`: attention's shapes when routing is on under `.ours`;
  /// never with routing off, under `.openBLAS`, for M > 256 or op(B) over the bound,
  /// and never a shape of `sgemmUsesF32Kernel`.
  func testRoutingRule() {
    let savedRoute = SmallGEMM.route, savedF32 = F32GEMM.routeSgemm, savedThreading = Parallel.gemmThreading
    defer { SmallGEMM.route = savedRoute; F32GEMM.routeSgemm = savedF32; Parallel.gemmThreading = savedThreading }
    let attention = [(49, 49, 32), (49, 32, 49), (144, 144, 32), (144, 32, 144)]
    SmallGEMM.route = true
    F32GEMM.routeSgemm = true
    Parallel.gemmThreading = .ours
    for (m, n, k) in attention { XCTAssertTrue(sgemmUsesSmallKernel(m: m, n: n, k: k), "\(m)×\(n)×\(k)") }
    for (m, n, k) in [(257, 32, 49), (49, 144, 64), (49, 32, 300), (256, 512, 128), (25600, 256, 128)] {
      XCTAssertFalse(sgemmUsesSmallKernel(m: m, n: n, k: k), "\(m)×\(n)×\(k)")
    }
    for m in [1, 100, 256, 257, 1024] {
      for n in [1, 16, 49, 100, 512, 8192] {
        for k in [1, 32, 49, 144, 512, 5000] {
          XCTAssertFalse(sgemmUsesSmallKernel(m: m, n: n, k: k) && sgemmUsesF32Kernel(m: m, n: n, k: k),
                         "\(m)×\(n)×\(k) in both routes")
        }
      }
    }
    Parallel.gemmThreading = .openBLAS
    for (m, n, k) in attention { XCTAssertFalse(sgemmUsesSmallKernel(m: m, n: n, k: k), ".openBLAS \(m)×\(n)×\(k)") }
    Parallel.gemmThreading = .ours
    SmallGEMM.route = false
    for (m, n, k) in attention { XCTAssertFalse(sgemmUsesSmallKernel(m: m, n: n, k: k), "route off \(m)×\(n)×\(k)") }
  }

  /// `sgemm` / `sgemmOnThisThread` on routed shapes run the kernel (seen through the
  /// debug hook `SmallGEMM.onCall`) with routing on, and not with it off, under
  /// `.openBLAS` threading, or over the bound; the results match the reference.
  /// (The hook, because on most of attention's shapes the kernel and OpenBLAS give the
  /// same bits: both sum each element in k order with one FMA per k.)
  func testSgemmRoutes() throws {
    #if DEBUG
    let savedRoute = SmallGEMM.route, savedThreading = Parallel.gemmThreading
    defer { SmallGEMM.route = savedRoute; Parallel.gemmThreading = savedThreading; SmallGEMM.onCall = nil }
    // sgemm may split a GEMM over threads (each block one on-this-thread call).
    let lock = NSLock()
    nonisolated(unsafe) var calls: [[Int]] = []
    SmallGEMM.onCall = { m, n, k in lock.lock(); calls.append([m, n, k]); lock.unlock() }
    let routed = [Case(transA: false, transB: true, m: 49, n: 49, k: 32, alpha: 0.17, beta: 0),
                  Case(transA: true, transB: false, m: 49, n: 32, k: 49, alpha: 0.17, beta: 1),
                  Case(transA: false, transB: false, m: 144, n: 32, k: 144, alpha: 1, beta: 0.3)]
    for t in routed {
      let o = makeOperands(t, seed: 31)
      calls = []
      for onThisThread in [false, true] {
        Parallel.gemmThreading = .ours
        SmallGEMM.route = true
        verify(t, o, gemmRouted(t, o, onThisThread: onThisThread))
        if onThisThread || t.m * t.n * t.k < gemmSplitMinimum || Parallel.threads == 1 {
          XCTAssertEqual(calls, [[t.m, t.n, t.k]], "\(t) routed, onThisThread \(onThisThread)")
        } else {  // split by rows (M ≥ N here): every block, all M rows in all
          XCTAssertTrue(calls.allSatisfy { $0[1] == t.n && $0[2] == t.k }, "\(t) split: \(calls)")
          XCTAssertEqual(calls.map { $0[0] }.reduce(0, +), t.m, "\(t) split: \(calls)")
        }
        calls = []
        SmallGEMM.route = false
        verify(t, o, gemmRouted(t, o, onThisThread: onThisThread))
        SmallGEMM.route = true
        Parallel.gemmThreading = .openBLAS
        verify(t, o, gemmRouted(t, o, onThisThread: onThisThread))
        XCTAssertEqual(calls, [], "\(t) route off or .openBLAS, onThisThread \(onThisThread)")
      }
    }
    // Over the bound (op(B) 49×176 > 8192 floats; M 257): OpenBLAS even with routing on.
    Parallel.gemmThreading = .ours
    SmallGEMM.route = true
    calls = []
    for t in [Case(transA: false, transB: false, m: 49, n: 170, k: 49, alpha: 1, beta: 0),
              Case(transA: true, transB: false, m: 257, n: 32, k: 49, alpha: 1, beta: 0)] {
      let o = makeOperands(t, seed: 32)
      verify(t, o, gemmRouted(t, o, onThisThread: true))
      XCTAssertEqual(calls, [], "\(t)")
      // sgemm may split it into blocks that are within the bound: only those reach the kernel.
      verify(t, o, gemmRouted(t, o, onThisThread: false))
      XCTAssertTrue(calls.allSatisfy { $0[0] <= 256 && smallSgemmSupports(m: $0[0], n: $0[1], k: $0[2]) }, "\(calls)")
      calls = []
    }
    #else
    throw XCTSkip("the routing hook exists in debug builds only")
    #endif
  }

  /// Routing is on by default exactly when the kernel runs and was compiled optimized
  /// (unless ECENET_SMALL_GEMM overrides it); a debug build compiles C unoptimized.
  func testRoutingDefaultFollowsTheBuild() throws {
    guard ProcessInfo.processInfo.environment["ECENET_SMALL_GEMM"] == nil else {
      throw XCTSkip("ECENET_SMALL_GEMM set")
    }
    XCTAssertEqual(SmallGEMM.route, f32GEMMKernelAvailable && ecenet_small_sgemm_optimized() != 0)
    #if DEBUG
    XCTAssertEqual(ecenet_small_sgemm_optimized(), 0, "debug build with optimized C")
    #endif
  }

  // MARK: attention on the kernel

  /// Window attention with the route forced on (debug builds have it off): forward
  /// against the naive Double reference at Swin's L 49, d 32; backward by finite
  /// differences and against the OpenBLAS route's gradients.
  func testAttentionOnTheKernel() {
    let savedRoute = SmallGEMM.route, savedThreading = Parallel.gemmThreading
    defer { SmallGEMM.route = savedRoute; Parallel.gemmThreading = savedThreading }
    Parallel.gemmThreading = .ours
    var rng = TestRNG(seed: 77)
    let (bp, heads, l, d) = (4, 2, 49, 32)
    let q = rng.tensor([bp, heads, l, d]), k = rng.tensor([bp, heads, l, d]), v = rng.tensor([bp, heads, l, d])
    let bias = rng.tensor([heads, l, l]), mask = rng.tensor([2, l, l], -3, 0)
    let scale = 1 / Float(d).squareRoot()
    func run(route: Bool) -> [Tensor] {
      SmallGEMM.route = route
      let vars = [Var(q, requiresGrad: true), Var(k, requiresGrad: true), Var(v, requiresGrad: true),
                  Var(bias, requiresGrad: true)]
      var seedRNG = TestRNG(seed: 5)
      let seed = seedRNG.tensor([bp, heads, l, d])
      let out = withGradients {
        scaledDotProductAttention(q: vars[0], k: vars[1], v: vars[2], bias: vars[3], mask: mask, scale: scale)
      }
      Tape.shared.backward(from: out, seed: seed)
      return [out.value] + vars.map { $0.grad! }
    }
    #if DEBUG
    let lock = NSLock()
    nonisolated(unsafe) var calls = 0
    SmallGEMM.onCall = { _, _, _ in lock.lock(); calls += 1; lock.unlock() }
    defer { SmallGEMM.onCall = nil }
    #endif
    let on = run(route: true)
    #if DEBUG
    // Forward 2 GEMMs per slice, backward 4 (dv, dP, dq, dk).
    XCTAssertEqual(calls, 6 * bp * heads, "kernel calls with the route on")
    calls = 0
    #endif
    let off = run(route: false)
    #if DEBUG
    XCTAssertEqual(calls, 0, "kernel calls with the route off")
    #endif
    assertClose(on[0], naiveAttention(q: q, k: k, v: v, bias: bias, mask: mask, scale: scale), rtol: 1e-5, atol: 1e-6,
                "forward")
    for (i, name) in ["out", "dq", "dk", "dv", "dbias"].enumerated() {
      assertClose(on[i], off[i], rtol: 1e-4, atol: 1e-5, "\(name): small kernel vs OpenBLAS route")
    }
    SmallGEMM.route = true
    let (bp2, l2, d2) = (2, 17, 5)
    checkGradients([rng.tensor([bp2, heads, l2, d2]), rng.tensor([bp2, heads, l2, d2]), rng.tensor([bp2, heads, l2, d2]),
                    rng.tensor([heads, l2, l2])], expectShape: [bp2, heads, l2, d2]) { x in
      scaledDotProductAttention(q: x[0], k: x[1], v: x[2], bias: x[3], mask: nil, scale: 0.6)
    }
  }
}
