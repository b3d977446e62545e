import Foundation
import XCTest

@testable import Tensor

// What GemmBF16Tests and GemmF32Tests share: the shape of a case, random
// operands with padded strides and a sentinel in C's padding, the Double
// reference GEMM and the element-by-element check. The two kernels differ in
// what the reference rounds: bf16 rounds op(A) and op(B) to bf16 first, so
// for both the only allowed difference is the fp32 summation order
// (tolerance 1e-5·Σ|α·a·b| + |β·c| per element).

/// One GEMM: C (m×n) = alpha·op(A)·op(B) + beta·C (+ a random bias row when
/// `bias`), each operand's row stride padded by `pad*` elements beyond its minimum.
struct PackedGEMMCase {
  var transA = false, transB = false
  var m: Int, n: Int, k: Int
  var alpha: Float = 0.75, beta: Float = 0.5
  var padA = 3, padB = 5, padC = 7
  var bias = false
}

struct PackedGEMMOperands {
  var a: [Float], b: [Float], c0: [Float]
  var lda: Int, ldb: Int, ldc: Int
  var bias: [Float]? = nil
}

/// A test class of a packed GEMM kernel; `referenceRoundsToBF16` says whether
/// the kernel rounds its inputs to bf16 (so must the reference).
protocol PackedGEMMTesting {
  static var referenceRoundsToBF16: Bool { get }
  /// C from the kernel under test (its threaded entry point, never a fallback).
  func runKernel(_ t: PackedGEMMCase, _ o: PackedGEMMOperands) -> [Float]
}

extension PackedGEMMTesting {
  typealias Case = PackedGEMMCase
  typealias Operands = PackedGEMMOperands

  /// Sentinel in C's padding columns: the kernel must never write there.
  static var padValue: Float { -12345.5 }

  func makeOperands(_ t: Case, seed: UInt64) -> Operands {
    var rng = TestRNG(seed: seed)
    let lda = max(1, t.transA ? t.m : t.k) + t.padA, ldb = max(1, t.transB ? t.k : t.n) + t.padB
    let ldc = max(1, t.n) + t.padC
    let a = (0..<((t.transA ? t.k : t.m) * lda)).map { _ in rng.uniform() }
    let b = (0..<((t.transB ? t.n : t.k) * ldb)).map { _ in rng.uniform() }
    var c0 = [Float](repeating: 0, count: t.m * ldc)
    for i in 0..<t.m {
      for j in 0..<ldc {
        // beta 0 must not read C: fill it with NaN then.
        c0[i * ldc + j] = j >= t.n ? Self.padValue : t.beta == 0 ? .nan : rng.uniform()
      }
    }
    let bias = t.bias ? (0..<t.n).map { _ in rng.uniform() } : nil
    return Operands(a: a, b: b, c0: c0, lda: lda, ldb: ldb, ldc: ldc, bias: bias)
  }

  /// Double reference on entries rounded to bf16 when the kernel rounds them
  /// (or as `round` says); returns C and the per-element bound scale
  /// Σ|α·a·b| + |β·c|.
  func reference(_ t: Case, _ o: Operands, round: Bool? = nil) -> (c: [Double], scale: [Double]) {
    let rounds = round ?? Self.referenceRoundsToBF16
    let r: (Float) -> Double = { rounds ? Double(roundedToBF16($0)) : Double($0) }
    // Contiguous op(A) rows and op(B) columns so the K loop is a plain dot product.
    var opA = [Double](repeating: 0, count: t.m * t.k), opBt = [Double](repeating: 0, count: t.n * t.k)
    for i in 0..<t.m { for p in 0..<t.k { opA[i * t.k + p] = r(t.transA ? o.a[p * o.lda + i] : o.a[i * o.lda + p]) } }
    for j in 0..<t.n { for p in 0..<t.k { opBt[j * t.k + p] = r(t.transB ? o.b[j * o.ldb + p] : o.b[p * o.ldb + j]) } }
    var c = [Double](repeating: 0, count: t.m * t.n), scale = c
    opA.withUnsafeBufferPointer { pa in
      opBt.withUnsafeBufferPointer { pb in
        for i in 0..<t.m {
          for j in 0..<t.n {
            var s = 0.0, sa = 0.0
            for p in 0..<t.k {
              let x = pa[i * t.k + p] * pb[j * t.k + p]
              s += x; sa += abs(x)
            }
            let old = t.beta == 0 ? 0 : Double(t.beta) * Double(o.c0[i * o.ldc + j])
            let bias = o.bias.map { Double($0[j]) } ?? 0
            c[i * t.n + j] = Double(t.alpha) * s + old + bias
            scale[i * t.n + j] = abs(Double(t.alpha)) * sa + abs(old) + abs(bias)
          }
        }
      }
    }
    return (c, scale)
  }

  /// Checks every element of `got` against the reference and C's padding
  /// against the sentinel; `label` names the case in failures (default: the case).
  func verify(_ t: Case, _ o: Operands, _ got: [Float], label: String? = nil,
              file: StaticString = #filePath, line: UInt = #line) {
    let (ref, scale) = reference(t, o)
    let what = label ?? "\(t)"
    var failures = 0
    for i in 0..<t.m {
      for j in 0..<o.ldc {
        let g = got[i * o.ldc + j]
        if j >= t.n {
          if g.bitPattern != Self.padValue.bitPattern {
            XCTFail("\(what): padding of C written at row \(i) col \(j): \(g)", file: file, line: line)
            failures += 1
          }
        } else {
          let e = ref[i * t.n + j], tol = 1e-5 * scale[i * t.n + j] + 1e-30
          if !(abs(Double(g) - e) <= tol) {
            XCTFail("\(what): C[\(i), \(j)] = \(g), expected \(e) ± \(tol)", file: file, line: line)
            failures += 1
          }
        }
        if failures > 5 { return }
      }
    }
  }

  /// C from the engine's `gemm` (or `gemmOnThisThread`): whichever kernel
  /// `GEMMPrecision.current` and the routing pick (under the default .fp32,
  /// `sgemm`'s), for the routing tests of all three kernels.
  func gemmRouted(_ t: Case, _ o: Operands, onThisThread: Bool) -> [Float] {
    var c = o.c0
    o.a.withUnsafeBufferPointer { pa in o.b.withUnsafeBufferPointer { pb in c.withUnsafeMutableBufferPointer { pc in
      if onThisThread {
        gemmOnThisThread(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
                         a: pa.baseAddress!, lda: o.lda, b: pb.baseAddress!, ldb: o.ldb, beta: t.beta,
                         c: pc.baseAddress!, ldc: o.ldc)
      } else {
        gemm(transA: t.transA, transB: t.transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha,
             a: pa.baseAddress!, lda: o.lda, b: pb.baseAddress!, ldb: o.ldb, beta: t.beta,
             c: pc.baseAddress!, ldc: o.ldc)
      }
    } } }
    return c
  }

  // MARK: test bodies both kernels run as they are (their test methods call these)

  /// Every transpose and beta at 37×45×67 (plus `perTranspose`'s cases for each
  /// transpose pair), then each (m, n, k) of `edges`, a kernel's tile, panel
  /// and block sizes and one past them, with A transposed and B not, and the reverse.
  func checkTransposesAndEdges(_ edges: [(Int, Int, Int)],
                               perTranspose: (Bool, Bool) -> [Case] = { _, _ in [] }, _ check: (Case) -> Void) {
    for transA in [false, true] {
      for transB in [false, true] {
        for beta: Float in [0, 1, 0.5] {
          check(Case(transA: transA, transB: transB, m: 37, n: 45, k: 67, alpha: 0.75, beta: beta))
        }
        perTranspose(transA, transB).forEach(check)
      }
    }
    for (m, n, k) in edges {
      check(Case(transA: true, transB: false, m: m, n: n, k: k, alpha: -1.5, beta: 1, padA: 0, padB: 0, padC: 0))
      check(Case(transA: false, transB: true, m: m, n: n, k: k, alpha: 2, beta: 0, padA: 1, padB: 0, padC: 1))
    }
  }

  /// The bias row of `gemmAddingBias`, added in the kernel's store: once only
  /// with several K blocks (rows outside K blocks, and K blocks outside rows
  /// when C fits in L2), on ragged panels, with alpha and beta, over NaN C
  /// (beta 0), transposed A, and when the product is empty (k 0, alpha 0).
  func checkBias(file: StaticString = #filePath, line: UInt = #line) {
    func check(_ t: Case) {
      let o = makeOperands(t, seed: 9)
      verify(t, o, runKernel(t, o), file: file, line: line)
    }
    for transA in [false, true] {
      check(Case(transA: transA, transB: true, m: 37, n: 45, k: 67, alpha: 1, beta: 0, bias: true))
      check(Case(transA: transA, transB: false, m: 300, n: 70, k: 530, alpha: 0.5, beta: 0.5, bias: true))
      check(Case(transA: transA, transB: true, m: 20, n: 40, k: 1031, alpha: 1, beta: 0, bias: true))  // C in L2
    }
    check(Case(m: 9, n: 33, k: 0, alpha: 1, beta: 0, bias: true))
    check(Case(m: 9, n: 33, k: 5, alpha: 0, beta: 2, bias: true))
  }

  /// Empty C, k == 0, single rows and columns, every transpose; alpha 0 is
  /// C = beta·C, and with beta 0 zeros even over NaN.
  /// Hands the pool buffers of exactly these float counts filled with NaN, so
  /// a kernel scratch of those sizes starts as garbage (pads must be zeroed).
  func poisonPool(floatCounts: [Int]) {
    let poison = floatCounts.map { Tensor.filled([$0], .nan) }
    withExtendedLifetime(poison) {}
  }

  /// The signature of an on-thread GEMM entry point (`gemmBF16OnThisThread`, …).
  typealias OnThisThreadGEMM = (Bool, Bool, Int, Int, Int, Float, UnsafePointer<Float>, Int, UnsafePointer<Float>,
                                Int, Float, UnsafeMutablePointer<Float>, Int) -> Void

  /// One GEMM of case `t` per operand set, each called through `onThisThread`
  /// from inside `Parallel.forRange` (attention's per-slice GEMMs), into its own
  /// block of one output; returns each slice's C.
  func slicesOnThisThread(_ t: Case, _ ops: [Operands], _ onThisThread: OnThisThreadGEMM) -> [[Float]] {
    slicesOnThisThread(Array(repeating: t, count: ops.count), ops, onThisThread)
  }

  /// `slicesOnThisThread` with a case of its own for every slice. Takes nothing
  /// from the buffer pool itself, so callers may count the GEMMs' takes around it.
  func slicesOnThisThread(_ cases: [Case], _ ops: [Operands], _ onThisThread: OnThisThreadGEMM) -> [[Float]] {
    let offsets = ops.reduce(into: [0]) { $0.append($0.last! + $1.c0.count) }
    let out = UnsafeMutablePointer<Float>.allocate(capacity: offsets.last!)
    defer { out.deallocate() }
    for i in ops.indices { (out + offsets[i]).update(from: ops[i].c0, count: ops[i].c0.count) }
    Parallel.forRange(ops.count) { r in
      for i in r {
        let (t, o) = (cases[i], ops[i])
        o.a.withUnsafeBufferPointer { pa in
          o.b.withUnsafeBufferPointer { pb in
            onThisThread(t.transA, t.transB, t.m, t.n, t.k, t.alpha, pa.baseAddress!, o.lda, pb.baseAddress!, o.ldb,
                         t.beta, out + offsets[i], o.ldc)
          }
        }
      }
    }
    return ops.indices.map { Array(UnsafeBufferPointer(start: out + offsets[$0], count: ops[$0].c0.count)) }
  }

  /// `onThisThread` from inside Parallel.forRange on 3 threads, on GEMMs of mixed
  /// sizes (so a thread's scratch must grow between calls, and threads hold buffers
  /// of different sizes at once): every C equals the threaded kernel's, bit for
  /// bit, and no call takes a buffer from the shared pool (its lock serialised the
  /// threads; each thread has its own scratch).
  func checkOnThisThreadMixedSizesUseNoPool(_ onThisThread: OnThisThreadGEMM,
                                            file: StaticString = #filePath, line: UInt = #line) {
    let saved = Parallel.threads
    defer { Parallel.threads = saved }
    Parallel.threads = 3
    let shapes = [(5, 7, 3), (49, 49, 33), (130, 70, 300), (17, 200, 64), (300, 40, 9), (2, 3, 1)]
    let cases = (0..<24).map { i -> Case in
      let (m, n, k) = shapes[i % shapes.count]
      return Case(transA: i % 2 == 1, transB: i % 3 == 1, m: m, n: n, k: k, alpha: 0.5, beta: i % 4 == 0 ? 0 : 1)
    }
    let ops = cases.enumerated().map { makeOperands($1, seed: UInt64(300 + $0)) }
    let takesBefore = BufferPool.shared.takeCount
    let got = slicesOnThisThread(cases, ops, onThisThread)
    XCTAssertEqual(BufferPool.shared.takeCount, takesBefore, "on-thread GEMMs took pool buffers", file: file, line: line)
    for i in cases.indices {
      XCTAssertEqual(got[i].map(\.bitPattern), runKernel(cases[i], ops[i]).map(\.bitPattern), "\(cases[i])",
                     file: file, line: line)
    }
  }

  func checkDegenerateSizes(file: StaticString = #filePath, line: UInt = #line) {
    func check(_ t: Case) {
      let o = makeOperands(t, seed: 1)
      verify(t, o, runKernel(t, o), file: file, line: line)
    }
    for (m, n, k) in [(0, 5, 5), (5, 0, 5), (5, 5, 0), (1, 1, 1), (1, 1, 0), (1, 40, 1), (17, 1, 1),
                      (1, 1, 67), (1, 33, 5), (3, 1, 2)] {
      for transA in [false, true] {
        for transB in [false, true] {
          for beta: Float in [0, 0.5] {
            check(Case(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1.25, beta: beta))
          }
        }
      }
    }
    check(Case(m: 9, n: 10, k: 11, alpha: 0, beta: 0))
    check(Case(m: 9, n: 10, k: 11, alpha: 0, beta: -2))
  }

  /// NaN in A reaches only its row of C, inf in B only its column: the zero
  /// padding of edge tiles never mixes with real data.
  func checkNaNAndInfStayInTheirRowAndColumn(file: StaticString = #filePath, line: UInt = #line) {
    for (transA, transB) in [(false, false), (true, true)] {
      let t = Case(transA: transA, transB: transB, m: 30, n: 40, k: 9, alpha: 1, beta: 0)
      var o = makeOperands(t, seed: 5)
      let (badRow, badCol, p) = (16, 33, 8)  // the last k (odd: bf16's last pair), in the second tile and panel
      o.a[transA ? p * o.lda + badRow : badRow * o.lda + p] = .nan
      let (ref, scale) = reference(t, o)  // before B's inf, so the other elements' bounds stay finite
      o.b[transB ? badCol * o.ldb + p : p * o.ldb + badCol] = .infinity
      let got = runKernel(t, o)
      for i in 0..<t.m {
        for j in 0..<t.n {
          let g = got[i * o.ldc + j]
          if i == badRow {
            XCTAssertTrue(g.isNaN, "C[\(i), \(j)] = \(g), expected NaN", file: file, line: line)
          } else if j == badCol {
            XCTAssertTrue(g.isInfinite, "C[\(i), \(j)] = \(g), expected ±inf", file: file, line: line)
          } else {
            XCTAssertLessThanOrEqual(abs(Double(g) - ref[i * t.n + j]), 1e-5 * scale[i * t.n + j],
                                     "C[\(i), \(j)]", file: file, line: line)
          }
        }
      }
    }
  }

  /// Scratch comes from the pooled allocator: a repeated call allocates nothing new.
  func checkSteadyStateMakesNoNewAllocations(file: StaticString = #filePath, line: UInt = #line) {
    for t in [Case(transA: false, transB: true, m: 100, n: 90, k: 80, alpha: 1, beta: 0),    // one task
              Case(transA: true, transB: false, m: 300, n: 200, k: 100, alpha: 1, beta: 0)] {  // split
      let o = makeOperands(t, seed: 2)
      _ = runKernel(t, o)
      let before = BufferPool.shared.mallocCount
      _ = runKernel(t, o)
      XCTAssertEqual(BufferPool.shared.mallocCount, before, "\(t)", file: file, line: line)
    }
  }

  /// The words of /proc/cpuinfo's first "flags" line (Linux), or a skip.
  func cpuInfoFlags() throws -> Set<String> {
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else {
      throw XCTSkip("no /proc/cpuinfo")
    }
    let flags = info.split(separator: "\n").first { $0.hasPrefix("flags") } ?? ""
    return Set(flags.split(separator: " ").map(String.init))
  }
}
