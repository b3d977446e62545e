// `ecenet-dist bench gemm`: the GEMM kernels side by side on the shapes of
// Swin-B/640²'s linear layers (batch 1), in one process: OpenBLAS sgemm, our
// fp32 kernel, the AVX512_BF16 kernel and, where the CPU has AMX, the AMX tile
// kernel. Each is checked on sampled entries against a Double reference (the
// bf16 kernels against bf16-rounded inputs), and on AMX hardware the tiles
// are also checked against their C emulation, the reference of the tests
// (GemmAMXTests) on machines without AMX. This is how the AMX kernel, written
// on such a machine, was first run for real (session 15, an AMX Xeon: every
// check passed), after which it became the default bf16 kernel on AMX CPUs.
import CShims
import Foundation
import Tensor

struct GemmBench {
  let reps: Int, quick: Bool

  /// Largest relative error a kernel may show on the check (the tests' bound).
  static let tolerance = BF16Kernel.amxTolerance

  /// (name, shape): a linear layer's forward (x·Wᵀ), its input gradient (dy·W)
  /// and weight gradient (dyᵀ·x), at stage 1 (160² tokens, 128 channels) and
  /// stage 3 (40², 512); --quick: 48² and 12² tokens.
  var shapes: [(String, GemmShape)] {
    let r1 = quick ? 48 * 48 : 160 * 160, r3 = quick ? 12 * 12 : 40 * 40
    return [
      ("stage-1 qkv", GemmShape(transA: false, transB: true, m: r1, n: 384, k: 128)),
      ("stage-1 fc1", GemmShape(transA: false, transB: true, m: r1, n: 512, k: 128)),
      ("stage-1 fc2", GemmShape(transA: false, transB: true, m: r1, n: 128, k: 512)),
      ("stage-1 fc2 dx", GemmShape(transA: false, transB: false, m: r1, n: 512, k: 128)),
      ("stage-1 fc1 dW", GemmShape(transA: true, transB: false, m: 512, n: 128, k: r1)),
      ("stage-3 fc1", GemmShape(transA: false, transB: true, m: r3, n: 2048, k: 512)),
      ("stage-3 fc2", GemmShape(transA: false, transB: true, m: r3, n: 512, k: 2048)),
    ]
  }

  /// One kernel of the table: how it runs a shape on `buf` (nil: not on this
  /// CPU), and whether it rounds its inputs to bf16 (so must the reference).
  struct Kernel {
    let name: String, roundsToBF16: Bool, run: ((GemmBuffers, GemmShape) -> Void)?
  }

  /// The kernels timed here.
  func kernels() -> [Kernel] {
    func bf16(_ name: String, _ kind: BF16Kernel) -> Kernel {
      Kernel(name: name, roundsToBF16: true, run: kind.available ? { buf, s in
        kind.gemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, a: buf.a.data, lda: s.lda,
                  b: buf.b.data, ldb: s.ldb, beta: 0, c: buf.c.data, ldc: s.n)
      } : nil)
    }
    let f32 = Kernel(name: "ours fp32", roundsToBF16: false, run: f32GEMMKernelAvailable ? { buf, s in
      gemmF32Kernel(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, a: buf.a.data, lda: s.lda,
                    b: buf.b.data, ldb: s.ldb, beta: 0, c: buf.c.data, ldc: s.n)
    } : nil)
    return [Kernel(name: "sgemm (OpenBLAS)", roundsToBF16: false, run: { buf, s in buf.run(s) }), f32,
            bf16("AVX512_BF16", .avx512), bf16("AMX", .amx)]
  }

  /// OpenBLAS's kernel core and the variable that may pin it (the sgemm column depends on both).
  var openBLASCore: String {
    "\(String(cString: ecenet_blas_corename())) (OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"))"
  }

  /// Runs the checks and the timings, prints them; false when a check failed.
  func run(json: Bool) -> Bool {
    let ks = kernels()
    var rows: [[String: Any]] = [], ok = true
    if !json {
      print("bench gemm: \(Parallel.threads) threads, OpenBLAS core \(openBLASCore), GFLOP/s (best of ≥ \(reps)); error: worst |C − reference| / Σ|a·b| on sampled entries")
      print("  " + "shape".padding(toLength: 38, withPad: " ", startingAt: 0)
            + ks.map { $0.name.padding(toLength: 18, withPad: " ", startingAt: 0) }.joined())
    }
    for (name, s) in shapes {
      let buf = GemmBuffers([s])
      var row: [String: Any] = ["shape": name, "gemm": s.label], cells: [String] = []
      for kernel in ks {
        guard let run = kernel.run else { cells.append("—"); continue }
        let err = gemmCheck(s, samples: 200, roundBF16: kernel.roundsToBF16, run)
        let t = minTime(reps: reps) { run(buf, s) }
        row[kernel.name] = ["gflops": s.flops / t / 1e9, "seconds": t, "error": err]
        if !(err <= Self.tolerance) { ok = false }
        cells.append(String(format: "%7.1f (%.0e)%@", s.flops / t / 1e9, err, err <= Self.tolerance ? "" : " ✗"))
      }
      rows.append(row)
      if !json {
        print("  " + "\(name) \(s.label)".padding(toLength: 38, withPad: " ", startingAt: 0)
              + cells.map { $0.padding(toLength: 18, withPad: " ", startingAt: 0) }.joined())
      }
    }
    let tiles = BF16Kernel.amxWorstDifferenceFromEmulation()
    if let worst = tiles, !(worst <= Self.tolerance) { ok = false }
    let amxLine: String
    if let worst = tiles {
      amxLine = String(format: "AMX tiles against their C emulation: worst %.1e of Σ|a·b| (bound %.0e): %@", worst,
                       Self.tolerance, worst <= Self.tolerance ? "ok" : "FAILED")
    } else {
      amxLine = "AMX: \(cpuHasAMXBF16 ? "this CPU has AMX-BF16 but the tiles cannot run (OS or permission)" : "not on this CPU"); its tests run the C emulation"
    }
    if json {
      let out: [String: Any] = ["threads": Parallel.threads, "openblas": openBLASCore, "rows": rows, "amx_cpu": cpuHasAMXBF16,
                                "amx_vs_emulation": tiles as Any, "ok": ok]
      if let data = try? JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]) {
        print(String(decoding: data, as: UTF8.self))
      }
    } else {
      print(amxLine)
      print("bench gemm: \(ok ? "every check passed" : "a check FAILED (✗)")")
    }
    return ok
  }
}
