// bf16 GEMM with fp32 accumulation: the "bf16 compute" path of `gemm`.
// Letters: M, N, K the GEMM sizes (op(A) is M×K, op(B) K×N, C M×N).
//
// Numerics of PyTorch's bf16 autocast for the GEMM itself: every entry of
// op(A) and op(B) is rounded to bf16 (round to nearest even), the products
// (exact in fp32) are summed in fp32. Unlike autocast, C stays fp32 (torch
// returns the product rounded to a bf16 tensor; `roundedToBF16` on C gives
// that). Not a bf16-storage GEMM (inputs and output are Float) and not a
// reduced-precision accumulator.
//
// Fast path: the AVX512_BF16 kernel in CShims/bf16_gemm.c (`vdpbf16ps`), or,
// on CPUs with AMX-BF16, its AMX variant (CShims/amx_gemm.c, `AMXGEMM`), driven by
// PackedGEMM.swift (Swift owns the threads and the memory, shared with the
// fp32 kernel). `gemmBF16OnThisThread` does it all on the calling
// thread, for GEMMs issued from inside a parallel loop (as `gemmOnThisThread`).
// On CPUs without AVX512_BF16 the same numerics come from rounding copies of
// A and B to bf16 values and calling `sgemm` (OpenBLAS); `bf16GEMMAvailable`
// says which path runs so a caller can log it. The two differ only in fp32
// summation order and in denormals (the bf16 instructions flush them to 0).
import CShims
import Foundation

/// True when this CPU has AVX512_BF16, so the bf16 kernel can run (`bf16GEMMKernelInUse`
/// says whether it does; else `gemmBF16` takes the rounded-copy fallback).
public let bf16GEMMAvailable: Bool = ecenet_cpu_has_avx512_bf16() != 0

/// True when the CPU has AMX tiles with bf16 (Intel Sapphire Rapids and later).
/// There our AVX512_BF16 dot products were no faster than fp32 FMA, and the bf16
/// step slower than the fp32 one (BENCHMARKS.md, session 7); the AMX kernel
/// (`amxGEMMInUse`) is the way past that: 1.5× the AVX512_BF16 step there (session 15).
public let cpuHasAMXBF16: Bool = ecenet_cpu_has_amx_bf16() != 0

/// True when bf16 GEMMs run on AMX tiles (CShims/amx_gemm.c): by default on a CPU
/// and kernel that allow it, with the bf16 kernel in use, unless `ECENET_AMX=0`.
public var amxGEMMInUse: Bool { AMXGEMM.inUse }

/// True when AMX tiles were wanted (`ECENET_AMX=1`, or the default on a CPU with
/// AMX-BF16) but cannot run here (no AMX-BF16, Linux refused the tile permission,
/// or the tiles failed their self-check against the emulation): for the log.
public var amxRequestedButUnavailable: Bool { AMXGEMM.wanted && !AMXGEMM.enabled }

/// True when bf16 GEMMs run on the AVX512_BF16 kernel now: available and not
/// turned off (`ECENET_BF16_KERNEL=0`).
public var bf16GEMMKernelInUse: Bool { BF16GEMM.useKernel }

enum BF16GEMM {
  /// Tests set this to run the fallback on a machine that has the instructions.
  /// `ECENET_BF16_KERNEL=0` sets it for a run: bf16-rounded copies through the fp32
  /// GEMMs (same values, other summation order), to compare without rebuilding on
  /// CPUs where one `vdpbf16ps` may do no more than two fp32 FMAs (the Intel Xeon of
  /// session 5 ran our bf16 step slower than our fp32 one).
  nonisolated(unsafe) static var forceFallback = bf16KernelDisabled(environment: ProcessInfo.processInfo.environment)
  static func bf16KernelDisabled(environment: [String: String]) -> Bool { environment["ECENET_BF16_KERNEL"] == "0" }
  static var useKernel: Bool { bf16GEMMAvailable && !forceFallback }
  /// The packed kernel the bf16 GEMMs run on when `useKernel`: AMX tiles where
  /// they are in use, else the AVX512_BF16 kernel. The one place that chooses.
  static var activeKernel: PackedGEMMKernel { AMXGEMM.inUse ? AMXGEMM.kernel : kernel }
  static let kernel = PackedGEMMKernel(
    mr: Int(ecenet_bf16_gemm_mr()), nr: Int(ecenet_bf16_gemm_nr()),
    scratchFloats: (Int(ecenet_bf16_gemm_a_scratch_bytes()) + 63) / 64 * 16,
    packedBBytes: ecenet_bf16_gemm_packed_b_bytes, packB: ecenet_bf16_gemm_pack_b, compute: ecenet_bf16_gemm_compute,
    tapsScratchBytes: ecenet_bf16_gemm_taps_scratch_bytes, tapsCompute: ecenet_bf16_gemm_taps_compute,
    kTapsScratchBytes: ecenet_bf16_gemm_ktaps_scratch_bytes, kTapsCompute: ecenet_bf16_gemm_ktaps_compute)
}

/// The AMX variant of the bf16 kernel: the same packed op(B), the same
/// numerics (bf16 inputs, fp32 sums; only the summation order differs), its
/// own `compute` over 32 × 32 tile blocks. The shifted-taps GEMMs of the convs
/// stay on the AVX512_BF16 kernel. Written from the Intel SDM on a machine
/// without AMX: its tests run `emulatedKernel`, the same code with the tile
/// instructions emulated in C. It was opt-in (`ECENET_AMX=1`) until session 15
/// ran `ecenet-dist bench gemm` on an AMX Xeon (tiles within 1.1e-7 of the
/// emulation, 1.4–3.6 TFLOP/s on 16 cores) and its bf16 step at 0.47–0.57×
/// PyTorch's AMX autocast; now it is the default there, `ECENET_AMX=0` opts out.
enum AMXGEMM {
  /// `ECENET_AMX`: "0" keeps the tiles off, "1" asks for them (and says so in the
  /// log where they cannot run), anything else or unset: use them where they run.
  enum Setting: Equatable { case off, on, auto }
  static func setting(environment: [String: String]) -> Setting {
    switch environment["ECENET_AMX"] { case "0": return .off; case "1": return .on; default: return .auto }
  }
  static let chosen = setting(environment: ProcessInfo.processInfo.environment)
  /// Whether the tiles were wanted here: asked for, or left to the default on a CPU with AMX-BF16.
  static func wanted(_ setting: Setting, cpuHasAMX: Bool) -> Bool { setting == .on || (setting == .auto && cpuHasAMX) }
  static let wanted = wanted(chosen, cpuHasAMX: cpuHasAMXBF16)
  /// Asks Linux for the tile permission on first use, and only when wanted;
  /// then the real tiles must agree with their emulation (`selfCheck`).
  static let enabled: Bool = wanted && ecenet_amx_enable() != 0 && selfCheck()

  /// Largest difference `worstDifference` accepts: the tests' bound for a bf16
  /// GEMM against the Double reference (summation order alone stays far below).
  static let tolerance = 1e-5

  /// The GEMMs of the self-check: every transpose at tile, pair and K-block edges.
  static let checkShapes = [(m: 70, n: 45, k: 600), (m: 33, n: 40, k: 67), (m: 100, n: 64, k: 1100), (m: 1, n: 1, k: 1)]
  /// Its shifted-taps GEMMs (the 3×3 conv's nine shifts on a 7-pixel-wide padded
  /// map; two K blocks with a short last strip; odd K).
  static let checkTapShapes: [TapShape] = [(m: 70, n: 45, k: 40, offsets: [0, 1, 2, 7, 8, 9, 14, 15, 16]),
                                           (m: 40, n: 20, k: 530, offsets: [5, 0]), (m: 3, n: 33, k: 7, offsets: [2, 0, 1])]
  /// Its K-shifted taps GEMMs (the conv's weight gradient): odd and even
  /// offsets, two K blocks with odd K, two row strips.
  static let checkKTapShapes: [TapShape] = [(m: 20, n: 37, k: 606, offsets: [0, 1, 2, 19, 20, 21, 38, 39, 40]),
                                            (m: 40, n: 70, k: 33, offsets: [3, 0, 1]), (m: 5, n: 3, k: 1, offsets: [2, 0])]

  /// The worst |C − C_reference| / Σ|a·b| (bf16-rounded a, b) of `kernel`
  /// against `reference` over `checkShapes` (the four transposes) and
  /// `checkTapShapes` (the shifted-taps GEMM), on one thread; a NaN difference
  /// counts as infinite.
  static func worstDifference(_ kernel: PackedGEMMKernel, from reference: PackedGEMMKernel) -> Double {
    max(worstGEMMDifference(kernel, from: reference), worstTapsDifference(kernel, from: reference),
        worstKTapsDifference(kernel, from: reference))
  }

  /// The worst |got − want| / Σ|a·b| between `kernel` and `reference` running
  /// the same `product` into a NaN-filled C of `count` floats; `magnitude(e)`
  /// is element e's Σ|a·b|. A NaN difference counts as infinite.
  private static func worstOf(count: Int, _ kernel: PackedGEMMKernel, _ reference: PackedGEMMKernel,
                              product: (PackedGEMMKernel, UnsafeMutablePointer<Float>) -> Void,
                              magnitude: (Int) -> Double) -> Double {
    func run(_ kern: PackedGEMMKernel) -> [Float] {
      var c = [Float](repeating: .nan, count: count)
      c.withUnsafeMutableBufferPointer { product(kern, $0.baseAddress!) }
      return c
    }
    let got = run(kernel), want = run(reference)
    return (0..<count).reduce(0.0) { worst, e in
      let d = abs(Double(got[e]) - Double(want[e]))
      return max(worst, d.isNaN ? .infinity : d / max(magnitude(e), 1e-30))
    }
  }

  /// |a·b| of the bf16-rounded values: one term of an element's magnitude.
  private static func bf16Term(_ a: Float, _ b: Float) -> Double {
    abs(Double(roundedToBF16(a)) * Double(roundedToBF16(b)))
  }

  private static func randoms(_ count: Int, _ rng: inout RandomGenerator) -> [Float] {
    (0..<count).map { _ in rng.uniform(-1, 1) }
  }

  static func worstGEMMDifference(_ kernel: PackedGEMMKernel, from reference: PackedGEMMKernel) -> Double {
    var rng = RandomGenerator(seed: 0xA3C5)
    var worst = 0.0
    for s in checkShapes {
      for transA in [false, true] {
        for transB in [false, true] {
          let a = randoms(s.m * s.k, &rng), b = randoms(s.k * s.n, &rng)
          let lda = transA ? s.m : s.k, ldb = transB ? s.k : s.n
          worst = max(worst, worstOf(count: s.m * s.n, kernel, reference, product: { kern, c in
            kern.run(transA: transA, transB: transB, m: s.m, n: s.n, k: s.k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb,
                     beta: 0, c: c, ldc: s.n, parallel: false)
          }) { e in
            let (i, j) = (e / s.n, e % s.n)
            var sum = 0.0
            for p in 0..<s.k { sum += bf16Term(a[transA ? p * lda + i : i * lda + p], b[transB ? j * ldb + p : p * ldb + j]) }
            return sum
          })
        }
      }
    }
    return worst
  }

  typealias TapShape = (m: Int, n: Int, k: Int, offsets: [Int])

  /// `worstGEMMDifference` for the shifted-taps GEMM (`runTaps`, B_t transposed
  /// as the conv's tap matrices are); `checkTapShapes` are small enough for one task.
  static func worstTapsDifference(_ kernel: PackedGEMMKernel, from reference: PackedGEMMKernel,
                                  shapes: [TapShape] = checkTapShapes) -> Double {
    var rng = RandomGenerator(seed: 0x7A95)
    var worst = 0.0
    for s in shapes {
      let a = randoms((s.m + s.offsets.max()!) * s.k, &rng), b = randoms(s.offsets.count * s.n * s.k, &rng)
      worst = max(worst, worstOf(count: s.m * s.n, kernel, reference, product: { kern, c in
        kern.runTaps(m: s.m, n: s.n, k: s.k, offsets: s.offsets, a: a, lda: s.k, transB: true, b: b, ldb: s.k,
                     tapStride: s.n * s.k, beta: 0, c: c, ldc: s.n)
      }) { e in
        let (i, j) = (e / s.n, e % s.n)
        var sum = 0.0
        for (t, off) in s.offsets.enumerated() {
          for p in 0..<s.k { sum += bf16Term(a[(i + off) * s.k + p], b[(t * s.n + j) * s.k + p]) }
        }
        return sum
      })
    }
    return worst
  }

  /// `worstGEMMDifference` for the K-shifted taps GEMM (`runKTaps`: C_t =
  /// Σ_q A[q + off_t, i]·B[q, j], A read transposed); `checkKTapShapes` are small.
  static func worstKTapsDifference(_ kernel: PackedGEMMKernel, from reference: PackedGEMMKernel,
                                   shapes: [TapShape] = checkKTapShapes) -> Double {
    var rng = RandomGenerator(seed: 0x51C3)
    var worst = 0.0
    for s in shapes {
      let a = randoms((s.k + s.offsets.max()!) * s.m, &rng), b = randoms(s.k * s.n, &rng)
      worst = max(worst, worstOf(count: s.offsets.count * s.m * s.n, kernel, reference, product: { kern, c in
        kern.runKTaps(m: s.m, n: s.n, k: s.k, offsets: s.offsets, a: a, lda: s.m, b: b, ldb: s.n, beta: 0,
                      c: c, ldc: s.n, tapStride: s.m * s.n)
      }) { e in
        let (t, i, j) = (e / (s.m * s.n), e / s.n % s.m, e % s.n)
        var sum = 0.0
        for q in 0..<s.k { sum += bf16Term(a[(q + s.offsets[t]) * s.m + i], b[q * s.n + j]) }
        return sum
      })
    }
    return worst
  }

  /// The real tiles against their emulation, once, before the first AMX GEMM:
  /// the kernel was written on a machine without AMX, so a CPU where it
  /// disagrees keeps the AVX512_BF16 kernel, with a message saying so.
  static func selfCheck() -> Bool {
    let worst = worstDifference(kernel, from: emulatedKernel)
    if worst <= tolerance { return true }
    FileHandle.standardError.write(Data(("ecenet-dist: the AMX kernel differs from its C emulation by "
      + "\(worst) of Σ|a·b| (bound \(tolerance)), so bf16 GEMMs stay on the AVX512_BF16 kernel; please report "
      + "this with the output of `ecenet-dist bench gemm` (ECENET_AMX=0 skips this check)\n").utf8))
    return false
  }
  static var inUse: Bool { enabled && BF16GEMM.useKernel }
  static let kernel = make(compute: ecenet_amx_gemm_compute, taps: ecenet_amx_gemm_taps_compute,
                           kTaps: ecenet_amx_gemm_ktaps_compute)
  static let emulatedKernel = make(compute: ecenet_amx_gemm_compute_emulated, taps: ecenet_amx_gemm_taps_compute_emulated,
                                   kTaps: ecenet_amx_gemm_ktaps_compute_emulated)
  /// The tiles also run the convs' shifted-taps GEMMs: forward and dx
  /// (`taps`) and the weight gradient (`kTaps`).
  static func make(compute: PackedGEMMKernel.Compute, taps: PackedGEMMKernel.TapsCompute,
                   kTaps: PackedGEMMKernel.KTapsCompute) -> PackedGEMMKernel {
    PackedGEMMKernel(
      mr: Int(ecenet_amx_gemm_mr()), nr: Int(ecenet_bf16_gemm_nr()),
      scratchFloats: (Int(ecenet_amx_gemm_a_scratch_bytes()) + 63) / 64 * 16,
      packedBBytes: ecenet_bf16_gemm_packed_b_bytes, packB: ecenet_bf16_gemm_pack_b, compute: compute,
      tapsScratchBytes: ecenet_amx_gemm_taps_scratch_bytes, tapsCompute: taps,
      kTapsScratchBytes: ecenet_amx_gemm_ktaps_scratch_bytes, kTapsCompute: kTaps)
  }
}

/// Rounds to the nearest bf16 value (ties to even), returned as a Float; NaN stays
/// (a quiet) NaN, ±inf stays ±inf, and values past bf16's largest finite round to ±inf.
/// Matches torch's `x.to(torch.bfloat16).float()` and `vcvtne2ps2bf16` (except that
/// the instruction flushes denormals to zero).
@inlinable
public func roundedToBF16(_ x: Float) -> Float {
  let u = x.bitPattern
  if x.isNaN { return Float(bitPattern: (u | 0x0040_0000) & 0xFFFF_0000) }
  // Adding 0x7FFF plus the lowest kept bit carries into bit 16 exactly when the
  // dropped half is above the midpoint, or at it with an odd kept part.
  return Float(bitPattern: (u &+ 0x7FFF &+ ((u >> 16) & 1)) & 0xFFFF_0000)
}

/// C = alpha·op(A)·op(B) + beta·C with op(A), op(B) rounded to bf16 and fp32
/// accumulation: torch.matmul under `torch.autocast("cpu", dtype=torch.bfloat16)`
/// before torch rounds its result to bf16 (C stays fp32). Row-major, cblas
/// semantics and the signature of `gemm`; beta == 0 never reads C. Splits the
/// work over `Parallel.threads`; like `gemm`, must not be called from inside
/// `Parallel.forRange` (use `gemmBF16OnThisThread` there).
public func gemmBF16(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                     a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                     beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  gemmBF16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
           beta: beta, c: c, ldc: ldc, parallel: true)
}

/// `gemmBF16` on the calling thread only (the counterpart of `gemmOnThisThread`), for
/// many small GEMMs inside `Parallel.forRange`/`forRangeCallingBLAS`. Bit-identical to
/// `gemmBF16` on the kernel path (the thread split never changes a sum's order).
public func gemmBF16OnThisThread(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                                 a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                                 beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
  gemmBF16(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
           beta: beta, c: c, ldc: ldc, parallel: false)
}

func gemmBF16(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
              a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
              beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, parallel: Bool) {
  if gemmFinishedWithoutKernel("gemmBF16", transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                               lda: lda, ldb: ldb, beta: beta, c: c, ldc: ldc) { return }
  if BF16GEMM.useKernel {
    gemmBF16Kernel(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                   b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, parallel: parallel)
  } else {
    gemmBF16Fallback(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                     b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, parallel: parallel)
  }
}

/// The AVX512_BF16 path (PackedGEMM.swift's driver over CShims/bf16_gemm.c), or
/// its AMX variant when in use; `bias` as in `gemmF32Kernel`.
func gemmBF16Kernel(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                    a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                    beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>? = nil,
                    parallel: Bool) {
  BF16GEMM.activeKernel.run(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                            b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, bias: bias, parallel: parallel)
}

/// The portable path: bf16-rounded compact copies of op(A)'s and op(B)'s storage through OpenBLAS.
func gemmBF16Fallback(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, parallel: Bool) {
  func roundedCopy(_ src: UnsafePointer<Float>, rows: Int, cols: Int, ld: Int) -> Tensor {
    let t = Tensor(uninitialized: [rows, cols])
    let dst = t.data
    let body = { (r: Range<Int>) in
      for i in r { for j in 0..<cols { dst[i * cols + j] = roundedToBF16(src[i * ld + j]) } }
    }
    if parallel { Parallel.forRange(rows, grain: max(1, 16384 / cols), body) } else { body(0..<rows) }
    return t
  }
  // A is stored M×K (K×M when transposed), B K×N (N×K); the copies keep that orientation.
  let ra = transA ? roundedCopy(a, rows: k, cols: m, ld: lda) : roundedCopy(a, rows: m, cols: k, ld: lda)
  let rb = transB ? roundedCopy(b, rows: n, cols: k, ld: ldb) : roundedCopy(b, rows: k, cols: n, ld: ldb)
  if parallel {
    sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ra.data, lda: ra.shape[1],
         b: rb.data, ldb: rb.shape[1], beta: beta, c: c, ldc: ldc)
  } else {
    sgemmOnThisThread(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: ra.data,
                     lda: ra.shape[1], b: rb.data, ldb: rb.shape[1], beta: beta, c: c, ldc: ldc)
  }
}

/// The bf16 kernels by name, for `ecenet-dist bench gemm`, which times and
/// checks them side by side whatever `ECENET_AMX` says.
public enum BF16Kernel: Sendable {
  /// `vdpbf16ps` (CShims/bf16_gemm.c).
  case avx512
  /// AMX tiles (CShims/amx_gemm.c).
  case amx
  /// The AMX kernel with its tile instructions emulated in C (slow; the tests' reference).
  case amxEmulated

  /// On a CPU where the AMX tiles can run, the worst difference between them and
  /// their C emulation (`AMXGEMM.worstDifference`, bound `amxTolerance`); nil elsewhere.
  public static func amxWorstDifferenceFromEmulation() -> Double? {
    BF16Kernel.amx.available ? AMXGEMM.worstDifference(AMXGEMM.kernel, from: AMXGEMM.emulatedKernel) : nil
  }
  /// The bound of `amxWorstDifferenceFromEmulation` (and of the self-check).
  public static var amxTolerance: Double { AMXGEMM.tolerance }

  /// Whether it can run on this CPU (AMX: also asks Linux for the tile permission).
  public var available: Bool {
    switch self {
    case .avx512, .amxEmulated: return bf16GEMMAvailable
    case .amx: return bf16GEMMAvailable && ecenet_amx_enable() != 0
    }
  }

  var kernel: PackedGEMMKernel {
    switch self {
    case .avx512: return BF16GEMM.kernel
    case .amx: return AMXGEMM.kernel
    case .amxEmulated: return AMXGEMM.emulatedKernel
    }
  }

  /// C = alpha·op(A)·op(B) + beta·C on this kernel, threaded (`gemmBF16`'s
  /// contract); only where `available`.
  public func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                   a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                   beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
    precondition(available, "BF16Kernel.\(self): not available on this CPU")
    if gemmFinishedWithoutKernel("BF16Kernel.\(self)", transA: transA, transB: transB, m: m, n: n, k: k,
                                 alpha: alpha, lda: lda, ldb: ldb, beta: beta, c: c, ldc: ldc) { return }
    kernel.run(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
               beta: beta, c: c, ldc: ldc, parallel: true)
  }
}
