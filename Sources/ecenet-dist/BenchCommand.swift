// `ecenet-dist bench`: see --help. `ops` times the engine's ops at Swin-B/640²
// sizes beside OpenBLAS sgemm of the same GEMM shapes and a streaming-bandwidth
// probe, all in one process so the figures share the machine's state.
// `step` times whole training steps (forward + backward + AdamW) through the
// real Trainer.step(micro:) on a synthetic batch; `data` is BenchData.swift.
// Scaling over ranks is scripts/bench.sh scaling (`ecenet-dist train` under mpirun).
//
// How an op is timed: inputs are built once; each repetition runs the op
// (forward: tape off; forward+backward: tape on, gradients reset to nil first,
// so the zero-filled gradient buffers are part of the cost, as in a step),
// and the minimum over repetitions is reported (the machine is shared).
import ArgumentParser
import CShims
import Data
import Dist
import Foundation
import Models
import Tensor
import Train

struct Bench: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Throughput figures: ops, training step, loader, scaling (see scripts/bench.sh).",
    discussion: """
      ops: forward and forward+backward time of linear, 1×1 / 3×3 / depth-wise conv,
      window attention, LayerNorm, GELU, softmax and BatchNorm at Swin-B/640² batch-1
      sizes, with OpenBLAS sgemm of the same GEMM shapes (checked against a naive
      GEMM) and a streaming-bandwidth probe measured in the same run.

        ecenet-dist bench ops --threads 2
        ecenet-dist bench ops --quick --json
      step: whole training steps (forward + backward + AdamW) of the real trainer
      on a random normalised batch, with the achieved GFLOP/s, the fraction of a
      2048³ sgemm measured in the same run, peak memory and pool misses per step.

        ecenet-dist bench step --preset swin-t --crop 512 --batch 2 --steps 3
        ecenet-dist bench step --preset swin-b --crop 640 --batch 1 --precision bf16
      data: loader throughput at the ADE20K 640² recipe against the trainer (BenchData.swift).
      gemm: the GEMM kernels on the linear layers' shapes at Swin-B/640²: OpenBLAS
      sgemm, our fp32 kernel, the AVX512_BF16 kernel and, on CPUs with AMX, the AMX
      tile kernel (GFLOP/s), each checked against a Double reference; on AMX also the
      tiles against their C emulation (BenchGemm.swift). Exits 1 when a check fails.

        ecenet-dist bench gemm --threads 16
      """)
  @Argument(help: "What to measure: ops | step | data | gemm.") var what: String = "step"
  @Option(help: "Compute threads (default: ECENET_THREADS, else the cores this process may use).") var threads: Int?
  @Option(help: "Least repetitions per measurement (short ops get more, up to 30); the minimum is reported.") var reps: Int = 3
  @Flag(help: "Reduced sizes (stage-1 map 48×48 instead of 160×160) for a fast smoke run.") var quick = false
  @Option(help: "Only ops whose name contains this string.") var only: String?
  @Flag(help: "Print one JSON object instead of the table.") var json = false
  @Option(help: "step: model preset (swin-t, swin-s, swin-b, tiny, ...).") var preset = "swin-t"
  @Option(help: "step: square crop size.") var crop = 512
  @Option(help: "step: images per step.") var batch = 2
  @Option(help: "step: number of classes.") var classes = 150
  @Option(help: "step: timed steps.") var steps = 3
  @Option(help: "step: untimed warm-up steps (the first fills the buffer pool).") var warmup = 1
  @Option(help: "step: GEMM precision, fp32 or bf16 (train.precision).") var precision = "fp32"
  @Flag(help: "step: also print each op's wall time per step, forward and backward, measured on the tape during the timed steps (OpProfile).")
  var profile = false

  func validate() throws {
    if let t = threads, t < 1 { throw ValidationError("--threads must be at least 1") }
    if reps < 1 { throw ValidationError("--reps must be at least 1") }
    if crop < 32 || batch < 1 || steps < 1 || warmup < 0 || classes < 2 {
      throw ValidationError("bench step: need --crop ≥ 32, --batch ≥ 1, --steps ≥ 1, --warmup ≥ 0, --classes ≥ 2")
    }
  }

  func run() throws {
    switch what {
    case "ops":
      if let t = threads { Parallel.threads = t }
      let ok = OpsBench(reps: reps, quick: quick, only: only).run(json: json)
      if !ok { throw ExitCode(1) }
    case "step":
      if let t = threads { Parallel.threads = t }
      try StepBench(preset: preset, crop: crop, batch: batch, classes: classes, steps: steps, warmup: warmup, reps: reps,
                    precision: precision, profile: profile)
        .run(json: json)
    case "data": try runDataBench(threads: threads, reps: reps, quick: quick, json: json)  // BenchData.swift
    case "gemm":
      if let t = threads { Parallel.threads = t }
      if !GemmBench(reps: reps, quick: quick).run(json: json) { throw ExitCode(1) }  // BenchGemm.swift
    default: throw ValidationError("bench: unknown target '\(what)'; expected ops, step, data or gemm")
    }
  }
}

// MARK: - Timing helpers

/// Seconds of the fastest run of `body`, after one untimed warm-up: at least
/// `reps` runs, and more (up to 30) while less than half a second has been
/// spent, so short ops get enough tries to find a moment the shared machine is quiet.
func minTime(reps: Int, _ body: () -> Void) -> Double {
  body()
  var best = Double.infinity, spent = 0.0, n = 0
  while n < reps || (spent < 0.5 && n < 30) {
    let t0 = DispatchTime.now().uptimeNanoseconds
    body()
    let t = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
    best = min(best, t); spent += t; n += 1
  }
  return best
}

/// Deterministic values in [-1, 1) (a hash, so filling 100 MB is cheap and parallel).
func benchFill(_ t: Tensor, seed: UInt64) {
  let p = t.data
  Parallel.forRange(t.count, grain: 1 << 16) { r in
    for i in r {
      var z = (UInt64(i) &+ seed &* 0x9E37_79B9_7F4A_7C15) &* 0xBF58_476D_1CE4_E5B9
      z ^= z >> 31; z = z &* 0x94D0_49BB_1331_11EB; z ^= z >> 29
      p[i] = Float(z >> 40) / Float(1 << 23) - 1
    }
  }
}

func benchTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
  let t = Tensor(uninitialized: shape)
  benchFill(t, seed: seed)
  if scale != 1 { let p = t.data; for i in 0..<t.count { p[i] *= scale } }
  return t
}

// MARK: - sgemm shapes

/// `batch` sgemm calls C[m,n] = op(A)·op(B) (+ C when accumulate) over distinct
/// slices of buffers sized like the op's real operands.
struct GemmShape {
  var transA: Bool, transB: Bool, m: Int, n: Int, k: Int, batch: Int = 1, accumulate: Bool = false
  var flops: Double { 2 * Double(m) * Double(n) * Double(k) * Double(batch) }
  /// Leading dimensions of the compact A (M×K, or K×M when transA) and B (K×N, or N×K).
  var lda: Int { transA ? m : k }
  var ldb: Int { transB ? k : n }
  var label: String { "\(transA ? "T" : "N")\(transB ? "T" : "N") \(m)×\(n)×\(k)\(batch > 1 ? " ×\(batch)" : "")" }
}

/// Buffers for a list of shapes; A and B random, C scratch.
final class GemmBuffers {
  let a: Tensor, b: Tensor, c: Tensor
  init(_ shapes: [GemmShape]) {
    let na = shapes.map { $0.m * $0.k * $0.batch }.max() ?? 1
    let nb = shapes.map { $0.k * $0.n * $0.batch }.max() ?? 1
    let nc = shapes.map { $0.m * $0.n * $0.batch }.max() ?? 1
    a = benchTensor([na], seed: 101); b = benchTensor([nb], seed: 202); c = Tensor.zeros([nc])
  }

  /// The baselines are OpenBLAS's own threaded sgemm unless `threading` says ours.
  func run(_ s: GemmShape, threading: Parallel.GEMMThreading = .openBLAS) {
    let saved = Parallel.gemmThreading
    Parallel.gemmThreading = threading
    defer { Parallel.gemmThreading = saved }
    for i in 0..<s.batch {
      sgemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, a: a.data + i * s.m * s.k, lda: s.lda,
           b: b.data + i * s.k * s.n, ldb: s.ldb, beta: s.accumulate ? 1 : 0, c: c.data + i * s.m * s.n, ldc: s.n)
    }
  }
}

/// Largest relative error of sgemm against a naive Double-accumulated dot
/// product, over `samples` output entries of the first slice (every entry when small).
func sgemmCheck(_ s: GemmShape, samples: Int = 400) -> Double {
  // Both fp32 paths: OpenBLAS's own threading, and ours (which routes large
  // shapes to the AVX-512 kernel, GemmF32.swift): the worse of the two.
  max(sgemmCheck(s, samples: samples, threading: .openBLAS), sgemmCheck(s, samples: samples, threading: .ours))
}

func sgemmCheck(_ s: GemmShape, samples: Int, threading: Parallel.GEMMThreading) -> Double {
  gemmCheck(s, samples: samples) { buf, t in buf.run(t, threading: threading) }
}

/// Largest error of the C that `run` writes into `buf.c` (no batch, no
/// accumulation) against a naive Double-accumulated dot product, relative to
/// Σ|a·b|, over `samples` output entries (every entry when small). With
/// `roundBF16` the reference rounds A and B to bf16 first: the bf16 kernels'
/// numerics, so their error is summation order only.
func gemmCheck(_ s: GemmShape, samples: Int, roundBF16: Bool = false,
               _ run: (GemmBuffers, GemmShape) -> Void) -> Double {
  var t = s; t.batch = 1; t.accumulate = false
  let buf = GemmBuffers([t])
  run(buf, t)
  let (lda, ldb) = (t.lda, t.ldb)
  let r: (Float) -> Double = { roundBF16 ? Double(roundedToBF16($0)) : Double($0) }
  let all = t.m * t.n <= samples
  var worst = 0.0
  for e in 0..<(all ? t.m * t.n : samples) {
    let idx = all ? e : (e &* 2_654_435_761) % (t.m * t.n)
    let i = idx / t.n, j = idx % t.n
    var acc = 0.0, mag = 0.0
    for p in 0..<t.k {
      let av = r(t.transA ? buf.a.data[p * lda + i] : buf.a.data[i * lda + p])
      let bv = r(t.transB ? buf.b.data[j * ldb + p] : buf.b.data[p * ldb + j])
      acc += av * bv; mag += abs(av * bv)
    }
    worst = max(worst, abs(Double(buf.c.data[i * t.n + j]) - acc) / max(mag, 1e-30))
  }
  return worst
}

// MARK: - Op cases

struct OpCase {
  enum Bound { case gemm, memory }
  let name: String, shape: String, bound: Bound
  /// Forward FLOPs (backward of a GEMM-bound op counts 2× this).
  let flopsForward: Double
  /// Bytes an ideal kernel must move: forward, and forward+backward.
  let bytesForward: Double, bytesBoth: Double
  let gemmForward: [GemmShape], gemmBackward: [GemmShape]
  /// Runs the op once; with `backward`, records it and back-propagates a fixed seed.
  let run: (_ backward: Bool) -> Void
}

/// Records `f(inputs)` and back-propagates `seed`, with the inputs' gradients reset first.
func forwardBackward(_ inputs: [Var], seed: Tensor, _ f: () -> Var) {
  for v in inputs { v.grad = nil }
  let y = withGradients { f() }
  Tape.shared.backward(from: y, seed: seed)
}

func makeCase(name: String, shape: String, bound: OpCase.Bound, flops: Double = 0, bytesF: Double = 0,
              bytesB: Double = 0, gemmF: [GemmShape] = [], gemmB: [GemmShape] = [],
              inputs: [Var], seedShape: [Int], _ f: @escaping () -> Var) -> OpCase {
  let seed = benchTensor(seedShape, seed: 7, scale: 0.01)
  return OpCase(name: name, shape: shape, bound: bound, flopsForward: flops, bytesForward: bytesF, bytesBoth: bytesB,
                gemmForward: gemmF, gemmBackward: gemmB) { backward in
    if backward { forwardBackward(inputs, seed: seed, f) } else { _ = withoutGradients { f() } }
  }
}

func param(_ shape: [Int], seed: UInt64, scale: Float = 0.05) -> Var {
  Var(benchTensor(shape, seed: seed, scale: scale), requiresGrad: true, name: "p\(seed)")
}

/// The cases, built lazily (each allocates its inputs only when measured).
func opCases(quick: Bool) -> [(String, () -> OpCase)] {
  let h1 = quick ? 48 : 160            // stage-1 map (640/4)
  let c1 = 128                          // Swin-B stage-1 channels
  let rows = h1 * h1                    // tokens at stage 1
  let h3 = quick ? 24 : 40, c3 = 512    // stage-3 map and channels
  let win = 12
  var cases: [(String, () -> OpCase)] = []

  func linearCase(_ name: String, _ inF: Int, _ outF: Int) -> (String, () -> OpCase) {
    (name, {
      let x = Var(benchTensor([rows, inF], seed: 1), requiresGrad: true)
      let w = param([outF, inF], seed: 2), b = param([outF], seed: 3)
      let f = 2.0 * Double(rows * inF * outF)
      return makeCase(name: name, shape: "\(rows)×\(inF)→\(outF)", bound: .gemm, flops: f,
                      gemmF: [GemmShape(transA: false, transB: true, m: rows, n: outF, k: inF)],
                      gemmB: [GemmShape(transA: false, transB: false, m: rows, n: inF, k: outF, accumulate: true),
                              GemmShape(transA: true, transB: false, m: outF, n: inF, k: rows, accumulate: true)],
                      inputs: [x, w, b], seedShape: [rows, outF]) { linear(x, weight: w, bias: b) }
    })
  }
  cases.append(linearCase("linear fc1", c1, 4 * c1))
  cases.append(linearCase("linear qkv", c1, 3 * c1))
  cases.append(linearCase("linear fc2", 4 * c1, c1))

  cases.append(("conv1x1", {
    let (ci, co) = (c1, 256)  // FR unify Conv1x1(C1 → C) at stage 1
    let x = Var(benchTensor([1, h1, h1, ci], seed: 4), requiresGrad: true)
    let w = param([co, ci, 1, 1], seed: 5), b = param([co], seed: 6)
    return makeCase(name: "conv1x1", shape: "\(h1)²×\(ci)→\(co)", bound: .gemm, flops: 2.0 * Double(rows * ci * co),
                    gemmF: [GemmShape(transA: false, transB: true, m: rows, n: co, k: ci)],
                    gemmB: [GemmShape(transA: false, transB: false, m: rows, n: ci, k: co, accumulate: true),
                            GemmShape(transA: true, transB: false, m: co, n: ci, k: rows, accumulate: true)],
                    inputs: [x, w, b], seedShape: [1, h1, h1, co]) { conv2d(x, weight: w, bias: b) }
  }))

  cases.append(("conv3x3 fuse", {
    let (ci, co) = (1024, 256)  // the head's fuse Conv3x3(4C → C, pad 1) at 1/4 scale
    let x = Var(benchTensor([1, h1, h1, ci], seed: 8), requiresGrad: true)
    let w = param([co, ci, 3, 3], seed: 9, scale: 0.01), b = param([co], seed: 10)
    let K = ci * 9
    // The im2col path's GEMMs, chunked exactly as Conv.swift chunks them.
    let lines = max(1, min(h1, Conv2dTuning.im2colBufferFloats / (h1 * K)))
    let full = h1 / lines, rest = h1 % lines
    var gf = [GemmShape(transA: false, transB: true, m: lines * h1, n: co, k: K, batch: full, accumulate: true)]
    var gb = [GemmShape(transA: true, transB: false, m: co, n: K, k: lines * h1, batch: full, accumulate: true),
              GemmShape(transA: false, transB: false, m: lines * h1, n: K, k: co, batch: full)]
    if rest > 0 {
      gf.append(GemmShape(transA: false, transB: true, m: rest * h1, n: co, k: K, accumulate: true))
      gb.append(GemmShape(transA: true, transB: false, m: co, n: K, k: rest * h1, accumulate: true))
      gb.append(GemmShape(transA: false, transB: false, m: rest * h1, n: K, k: co))
    }
    return makeCase(name: "conv3x3 fuse", shape: "\(h1)²×\(ci)→\(co)", bound: .gemm,
                    flops: 2.0 * Double(rows * K * co), gemmF: gf, gemmB: gb,
                    inputs: [x, w, b], seedShape: [1, h1, h1, co]) { conv2d(x, weight: w, bias: b, padding: 1) }
  }))

  cases.append(("dwconv3x3", {
    let c = 4 * 256  // SAU Mix-FFN DWConv3x3 on 4C = 1024 channels (C = 256) at stage 1
    let x = Var(benchTensor([1, h1, h1, c], seed: 11), requiresGrad: true)
    let w = param([c, 1, 3, 3], seed: 12), b = param([c], seed: 13)
    let n = Double(rows * c)
    return makeCase(name: "dwconv3x3", shape: "\(h1)²×\(c)", bound: .memory, flops: 2 * 9 * n,
                    bytesF: 2 * 4 * n, bytesB: 5 * 4 * n, inputs: [x, w, b], seedShape: [1, h1, h1, c]) {
      conv2d(x, weight: w, bias: b, padding: 1, groups: c)
    }
  }))

  func attentionCase(_ name: String, map: Int, channels: Int) -> (String, () -> OpCase) {
    (name, {
      let padded = (map + win - 1) / win * win, nW = (padded / win) * (padded / win)
      let heads = channels / 32, d = 32, L = win * win
      let q = Var(benchTensor([nW, heads, L, d], seed: 14), requiresGrad: true)
      let k = Var(benchTensor([nW, heads, L, d], seed: 15), requiresGrad: true)
      let v = Var(benchTensor([nW, heads, L, d], seed: 16), requiresGrad: true)
      let bias = param([heads, L, L], seed: 17, scale: 1)
      let mask = Tensor.zeros([nW, L, L])  // shifted-window mask: 0 / −100 blocks
      for w in 0..<nW where w % 3 == 0 { for i in 0..<L { for j in 0..<L where (i < L / 2) != (j < L / 2) { mask.data[(w * L + i) * L + j] = -100 } } }
      let s = nW * heads
      let f = 4.0 * Double(s * L * L * d)
      return makeCase(name: name, shape: "\(nW)w×\(heads)h×\(L)²×\(d)", bound: .gemm, flops: f,
                      gemmF: [GemmShape(transA: false, transB: true, m: L, n: L, k: d, batch: s),
                              GemmShape(transA: false, transB: false, m: L, n: d, k: L, batch: s)],
                      gemmB: [GemmShape(transA: true, transB: false, m: L, n: d, k: L, batch: s, accumulate: true),
                              GemmShape(transA: false, transB: true, m: L, n: L, k: d, batch: s),
                              GemmShape(transA: false, transB: false, m: L, n: d, k: L, batch: s, accumulate: true),
                              GemmShape(transA: true, transB: false, m: L, n: d, k: L, batch: s, accumulate: true)],
                      inputs: [q, k, v, bias], seedShape: [nW, heads, L, d]) {
        scaledDotProductAttention(q: q, k: k, v: v, bias: bias, mask: mask, scale: 1 / Float(d).squareRoot())
      }
    })
  }
  cases.append(attentionCase("attention s1", map: h1, channels: c1))
  cases.append(attentionCase("attention s3", map: h3, channels: c3))

  cases.append(("layernorm", {
    let x = Var(benchTensor([rows, c1], seed: 18), requiresGrad: true)
    let w = param([c1], seed: 19), b = param([c1], seed: 20)
    let n = Double(rows * c1)
    return makeCase(name: "layernorm", shape: "\(rows)×\(c1)", bound: .memory, flops: 0,
                    bytesF: 2 * 4 * n, bytesB: 5 * 4 * n, inputs: [x, w, b], seedShape: [rows, c1]) {
      layerNorm(x, weight: w, bias: b)
    }
  }))
  cases.append(("gelu", {
    let x = Var(benchTensor([rows, 4 * c1], seed: 21), requiresGrad: true)
    let n = Double(rows * 4 * c1)
    return makeCase(name: "gelu", shape: "\(rows)×\(4 * c1)", bound: .memory, bytesF: 2 * 4 * n, bytesB: 5 * 4 * n,
                    inputs: [x], seedShape: [rows, 4 * c1]) { gelu(x) }
  }))
  cases.append(("add", {
    // A Swin block's residual add at stage 1. Backward from the bench's seed,
    // which the caller keeps: one copy of it, shared by both inputs' gradients
    // (Var.accumulateGrad).
    let x = Var(benchTensor([rows, c1], seed: 26), requiresGrad: true)
    let y = Var(benchTensor([rows, c1], seed: 27), requiresGrad: true)
    let n = Double(rows * c1)
    return makeCase(name: "add", shape: "\(rows)×\(c1)", bound: .memory, bytesF: 3 * 4 * n, bytesB: 5 * 4 * n,
                    inputs: [x, y], seedShape: [rows, c1]) { x + y }
  }))
  cases.append(("softmax", {
    let nW = ((h1 + win - 1) / win) * ((h1 + win - 1) / win), heads = c1 / 32, L = win * win
    let x = Var(benchTensor([nW * heads * L, L], seed: 22, scale: 4), requiresGrad: true)
    let n = Double(nW * heads * L * L)
    return makeCase(name: "softmax", shape: "\(nW * heads * L)×\(L)", bound: .memory, bytesF: 2 * 4 * n,
                    bytesB: 5 * 4 * n, inputs: [x], seedShape: [nW * heads * L, L]) { softmax(x, axis: -1) }
  }))
  // The BN after the fuse conv, training mode (batch statistics); and the head's
  // ConvModule, BN with its ReLU fused (the same passes; counted as BN alone,
  // since ReLU adds no tensor that must be streamed).
  for relu in [false, true] {
    let name = relu ? "batchnorm+relu" : "batchnorm"
    cases.append((name, {
      let c = 256
      let x = Var(benchTensor([1, h1, h1, c], seed: 23), requiresGrad: true)
      let w = param([c], seed: 24), b = param([c], seed: 25)
      let rm = Tensor.zeros([c]), rv = Tensor.ones([c])
      let n = Double(rows * c)
      return makeCase(name: name, shape: "\(h1)²×\(c)", bound: .memory, bytesF: 2 * 4 * n, bytesB: 5 * 4 * n,
                      inputs: [x, w, b], seedShape: [1, h1, h1, c]) {
        batchNorm(x, weight: w, bias: b, runningMean: rm, runningVar: rv, training: true, relu: relu)
      }
    }))
  }
  return cases
}

// MARK: - The benchmark

struct OpsBench {
  let reps: Int, quick: Bool, only: String?

  /// Streaming bandwidth: c[i] = a[i] + b[i] over 3 × 64 MB, in Parallel.forRange (GB/s).
  /// The tensors come from the buffer pool like the ops' own, so both sit on the
  /// same kind of pages (huge pages unless ECENET_HUGEPAGES=0) and ×stream
  /// compares like with like.
  func streamBandwidth() -> Double {
    let n = (quick ? 4 : 16) << 20
    let a = benchTensor([n], seed: 1), b = benchTensor([n], seed: 2), c = Tensor.zeros([n])
    let (pa, pb, pc) = (a.data, b.data, c.data)
    let t = minTime(reps: max(3, reps)) {
      Parallel.forRange(n, grain: 1 << 16) { r in for i in r { pc[i] = pa[i] + pb[i] } }
    }
    return 12 * Double(n) / t / 1e9
  }

  func run(json: Bool) -> Bool {
    let corename = String(cString: ecenet_blas_corename())
    let env = ProcessInfo.processInfo.environment
    let coretypeEnv = env["OPENBLAS_CORETYPE"] ?? "(unset)"
    var results: [[String: Any]] = []
    var checks: [[String: Any]] = []
    var allOK = true

    // sgemm correctness: every transpose at odd sizes in full, then sampled entries of each bench shape.
    for (ta, tb) in [(false, false), (false, true), (true, false), (true, true)] {
      let e = sgemmCheck(GemmShape(transA: ta, transB: tb, m: 37, n: 29, k: 131), samples: 37 * 29)
      checks.append(["shape": GemmShape(transA: ta, transB: tb, m: 37, n: 29, k: 131).label, "max_rel_err": e])
      if !(e < 1e-5) { allOK = false }
    }
    let peakShape = GemmShape(transA: false, transB: false, m: quick ? 1024 : 2048, n: quick ? 1024 : 2048, k: quick ? 1024 : 2048)
    let peakBuf = GemmBuffers([peakShape])
    let peakT = minTime(reps: reps) { peakBuf.run(peakShape) }
    // The ceiling is the better of OpenBLAS's threading and ours (MatMul.gemm).
    let peakOursT = minTime(reps: reps) { peakBuf.run(peakShape, threading: .ours) }
    var bestSgemm = peakShape.flops / min(peakT, peakOursT) / 1e9
    let stream = streamBandwidth()

    for (name, make) in opCases(quick: quick) {
      if let o = only, !name.contains(o) { continue }
      let c = make()
      for s in c.gemmForward + c.gemmBackward {
        let e = sgemmCheck(s)
        checks.append(["shape": s.label, "max_rel_err": e])
        if !(e < 1e-5) { allOK = false }
      }
      for backward in [false, true] {
        let t = minTime(reps: reps) { c.run(backward) }
        var r: [String: Any] = ["op": c.name, "shape": c.shape, "pass": backward ? "fwd+bwd" : "fwd", "ms": t * 1e3,
                                "bound": c.bound == .gemm ? "gemm" : "memory"]
        let flops = c.flopsForward * (backward ? 3 : 1)  // backward: one pass for dx, one for the weights
        if flops > 0 { r["gflop"] = flops / 1e9; r["gflops"] = flops / t / 1e9 }
        if c.bound == .gemm {
          let shapes = c.gemmForward + (backward ? c.gemmBackward : [])
          let buf = GemmBuffers(shapes)
          let st = minTime(reps: reps) { for s in shapes { buf.run(s) } }
          let sf = shapes.reduce(0) { $0 + $1.flops }
          bestSgemm = max(bestSgemm, sf / st / 1e9)
          r["sgemm_ms"] = st * 1e3; r["sgemm_gflops"] = sf / st / 1e9; r["fraction_of_sgemm"] = st / t
        } else {
          let bytes = backward ? c.bytesBoth : c.bytesForward
          r["bytes"] = bytes; r["gbs"] = bytes / t / 1e9
          r["stream_ms"] = bytes / (stream * 1e9) * 1e3; r["times_stream"] = t / (bytes / (stream * 1e9))
        }
        results.append(r)
      }
    }
    for i in results.indices where results[i]["gflops"] != nil && results[i]["bound"] as? String == "gemm" {
      results[i]["fraction_of_peak"] = (results[i]["gflops"] as! Double) / bestSgemm
    }

    let summary: [String: Any] = [
      "threads": Parallel.threads, "quick": quick, "reps": reps,
      "openblas_corename": corename, "openblas_coretype_env": coretypeEnv,
      "openblas_l2_size_env": env["OPENBLAS_L2_SIZE"] ?? "(unset)",
      "sgemm_peak_shape": peakShape.label, "sgemm_peak_gflops": peakShape.flops / peakT / 1e9,
      "sgemm_peak_ours_gflops": peakShape.flops / peakOursT / 1e9,
      "sgemm_best_gflops": bestSgemm, "stream_gbs": stream,
      "sgemm_check_ok": allOK, "sgemm_checks": checks, "ops": results,
    ]
    if json {
      let data = try! JSONSerialization.data(withJSONObject: summary, options: [.sortedKeys])
      print(String(decoding: data, as: UTF8.self))
    } else {
      printTable(summary, results)
    }
    if !allOK { FileHandle.standardError.write(Data("bench ops: sgemm disagrees with the naive GEMM (see sgemm_checks)\n".utf8)) }
    return allOK
  }

  func printTable(_ s: [String: Any], _ rows: [[String: Any]]) {
    func f(_ v: Any?, _ fmt: String) -> String { (v as? Double).map { String(format: fmt, $0) } ?? "" }
    print("bench ops: threads \(s["threads"]!), OpenBLAS core \(s["openblas_corename"]!) (OPENBLAS_CORETYPE=\(s["openblas_coretype_env"]!)), min of \(reps)")
    print(String(format: "sgemm %@: OpenBLAS threads %.1f GFLOP/s, split over our threads %.1f (best of all shapes %.1f); stream a+b: %.1f GB/s; sgemm vs naive: %@",
                 s["sgemm_peak_shape"] as! String, s["sgemm_peak_gflops"] as! Double,
                 s["sgemm_peak_ours_gflops"] as! Double, s["sgemm_best_gflops"] as! Double,
                 s["stream_gbs"] as! Double, (s["sgemm_check_ok"] as! Bool) ? "ok" : "MISMATCH"))
    let header = ["op", "shape", "pass", "ms", "GFLOP/s", "sgemm ms", "of sgemm", "of peak", "GB/s", "×stream"]
    let widths = [14, 22, 8, 9, 8, 9, 8, 8, 7, 8]
    func line(_ cols: [String]) -> String {
      zip(cols, widths).enumerated().map { i, cw in
        i < 3 ? cw.0.padding(toLength: cw.1, withPad: " ", startingAt: 0)
              : String(repeating: " ", count: max(0, cw.1 - cw.0.count)) + cw.0
      }.joined(separator: " ")
    }
    print(line(header))
    for r in rows {
      print(line([r["op"] as! String, r["shape"] as! String, r["pass"] as! String, f(r["ms"], "%.2f"),
                  f(r["gflops"], "%.1f"), f(r["sgemm_ms"], "%.2f"), f(r["fraction_of_sgemm"], "%.2f"),
                  f(r["fraction_of_peak"], "%.2f"), f(r["gbs"], "%.1f"), f(r["times_stream"], "%.2f")]))
    }
    if Conv2dTuning.winograd && rows.contains(where: { ($0["op"] as? String)?.hasPrefix("conv3x3") == true }) {
      print("conv3x3 runs Winograd F(2×2, 3×3): 16/36 of the direct multiply-adds, which its GFLOP/s and sgemm columns "
            + "count (an effective rate); ECENET_WINOGRAD=0 measures the direct sums")
    }
  }
}

// MARK: - Training step

/// Whole training steps through `Trainer.step(micro:)`: the same code path as
/// `ecenet-dist train` minus the loader (a fixed random batch instead), with a
/// world of one (the allreduce calls are local no-ops).
///
/// FLOP convention: `Complexity` counts fvcore "FLOPs" (one multiply-add = 1).
/// We report both that count × batch × 3 (forward + backward ≈ 3 forwards; the
/// convention behind issue 9's "PyTorch ≈ 146 GFLOP/s") and true FLOPs
/// (2 per multiply-add), which is what sgemm's 2·m·n·k counts; the fraction of
/// sgemm uses the true FLOPs, so it is a like-for-like utilisation. With
/// Winograd 3×3 convs (the default) the count is still the direct conv's, so
/// the rate is an effective one; `ECENET_WINOGRAD=0` gives the direct sums'
/// (`scripts/bench.sh step` prints both).
struct StepBench {
  let preset: String, crop: Int, batch: Int, classes: Int, steps: Int, warmup: Int, reps: Int
  let precision: String
  var profile = false

  static func procStatus(_ key: String) -> Double? {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in s.split(separator: "\n") where line.hasPrefix(key + ":") {
      // "VmHWM:\t 8838000 kB", or with no space once the number has 8 digits.
      let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
      if parts.count >= 2, let kb = Double(parts[1]) { return kb / 1024 }  // MiB
    }
    return nil
  }

  /// A random batch: images ≈ N(0, 1) per channel (normalised), labels uniform
  /// over the classes with the top 8 rows ignored (255), as the PyTorch bench does.
  func makeBatch() -> TrainBatch {
    let n = batch * crop * crop
    var rng = RandomGenerator(seed: 1234, keys: 9)
    var images = [Float](repeating: 0, count: n * 3)
    for i in 0..<images.count { images[i] = rng.normal() }
    var labels = [UInt8](repeating: 0, count: n)
    for i in 0..<n {
      let row = (i / crop) % crop
      labels[i] = row < 8 ? 255 : UInt8(truncatingIfNeeded: Int(rng.nextUniform() * Float(classes)) % classes)
    }
    return TrainBatch(images: images, labels: labels, count: batch, height: crop, width: crop)
  }

  func run(json: Bool) throws {
    let env = ProcessInfo.processInfo.environment
    // The GEMM ceiling of this run: best of `reps` 2048³ sgemm (NN).
    let peakShape = GemmShape(transA: false, transB: false, m: 2048, n: 2048, k: 2048)
    var sgemmGflops = 0.0
    do {
      let buf = GemmBuffers([peakShape])
      // The better of OpenBLAS's own threading and ours (MatMul.gemm).
      let t = min(minTime(reps: reps) { buf.run(peakShape) }, minTime(reps: reps) { buf.run(peakShape, threading: .ours) })
      sgemmGflops = peakShape.flops / t / 1e9
    }
    let sgemmErr = sgemmCheck(GemmShape(transA: false, transB: true, m: 37, n: 29, k: 131), samples: 37 * 29)

    var cfg = TrainConfig()
    cfg.model = try ModelConfig.preset(preset, numClasses: classes)
    cfg.model.channels = 256
    cfg.data.dataset = "synthetic"
    cfg.data.synthetic.trainCount = batch
    cfg.data.synthetic.valCount = 1
    cfg.data.synthetic.size = 32
    cfg.data.cropSize = [crop, crop]
    cfg.data.workers = 1
    cfg.train.globalBatch = batch
    cfg.train.threads = Parallel.threads
    cfg.schedule.iterations = 1000
    cfg.schedule.warmupIterations = 0
    cfg.train.precision = precision
    try cfg.validate()
    let dir = NSTemporaryDirectory() + "ecenet-bench-step-\(getpid())"
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let trainer = try Trainer(config: cfg, workDir: dir, world: LocalCommunicator(), resume: nil, iterations: nil)
    let micro = [makeBatch()]
    let fvcore = Complexity.totalFlops(Complexity.analyze(cfg.model, height: crop, width: crop))
    let stepFlopsFvcore = fvcore * Double(batch) * 3
    let stepFlops = 2 * stepFlopsFvcore

    let pool = BufferPool.shared
    for _ in 0..<warmup { _ = try trainer.step(micro: micro) }
    var times: [Double] = [], mallocs: [Int] = [], faults: [Int] = []
    var loss = 0.0
    func minorFaults() -> Int { var u = rusage(); getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &u); return u.ru_minflt }
    OpProfile.enabled = profile
    OpProfile.reset()
    defer { OpProfile.enabled = false }
    for _ in 0..<steps {
      let m0 = pool.mallocCount, f0 = minorFaults()
      OpProfile.mark()
      let t0 = DispatchTime.now().uptimeNanoseconds
      let r = try trainer.step(micro: micro)
      times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
      mallocs.append(pool.mallocCount - m0)
      faults.append(minorFaults() - f0)  // fresh (kernel-zeroed) pages touched: glibc/Swift arrays outside the pool
      loss = r.terms["loss"] ?? .nan
    }
    let sorted = times.sorted()
    let tMin = sorted[0], tMed = sorted[sorted.count / 2]
    let gflops = stepFlops / tMin / 1e9
    var out: [String: Any] = [
      "impl": "ecenet-dist", "preset": preset, "crop": crop, "batch": batch, "classes": classes, "precision": precision,
      "bf16_kernel": bf16GEMMKernelInUse, "amx": amxGEMMInUse, "conv3x3_winograd": Conv2dTuning.winograd,
      "threads": Parallel.threads, "steps": steps, "warmup": warmup,
      "openblas_corename": String(cString: ecenet_blas_corename()),
      "openblas_coretype_env": env["OPENBLAS_CORETYPE"] ?? "(unset)",
      "openblas_l2_size_env": env["OPENBLAS_L2_SIZE"] ?? "(unset)",
      "step_s_min": tMin, "step_s_median": tMed, "step_s_all": times,
      "forward_gflop_fvcore_per_image": fvcore / 1e9,
      "step_gflop": stepFlops / 1e9, "step_gflop_fvcore": stepFlopsFvcore / 1e9,
      "gflops": gflops, "gflops_fvcore": stepFlopsFvcore / tMin / 1e9,
      "sgemm_2048_gflops": sgemmGflops, "sgemm_check_max_rel_err": sgemmErr,
      "fraction_of_sgemm": gflops / sgemmGflops,
      "peak_rss_mb": Self.procStatus("VmHWM") ?? -1,
      "pool_peak_mb": Double(pool.peakBytesLive) / 1048576,
      "pool_cached_mb": Double(pool.bytesCached) / 1048576,
      "mallocs_per_step": mallocs, "mallocs_per_step_last": mallocs.last ?? 0, "minor_faults_per_step": faults,
      "params": trainer.model.store.parameterCount, "loss_last": loss,
    ]
    // Per-op wall time per step (mean over the timed steps); "other" is the rest of
    // the step: optimizer, clipping, loss bookkeeping, waiting for the buckets.
    let meanStep = times.reduce(0, +) / Double(steps)
    let opRows = OpProfile.rows()
    let recorded = opRows.reduce(0) { $0 + $1.forward + $1.backward } / Double(steps)
    if profile {
      out["profile"] = opRows.map { r -> [String: Any] in
        ["op": r.op, "calls_per_step": Double(r.calls) / Double(steps),
         "forward_ms": r.forward / Double(steps) * 1e3, "backward_ms": r.backward / Double(steps) * 1e3]
      }
      out["profile_other_ms"] = (meanStep - recorded) * 1e3
    }
    if json {
      let data = try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys])
      print(String(decoding: data, as: UTF8.self))
    } else {
      print(String(format: "bench step: %@ %d² batch %d, %d classes, %d thread(s), GEMMs in %@%@, OpenBLAS %@ (OPENBLAS_CORETYPE=%@)",
                   preset, crop, batch, classes, Parallel.threads, precision, amxGEMMInUse ? " on AMX tiles" : "",
                   out["openblas_corename"] as! String,
                   out["openblas_coretype_env"] as! String))
      print(String(format: "step: min %.3f s, median %.3f s over %d (after %d warm-up); all: %@", tMin, tMed, steps, warmup,
                   times.map { String(format: "%.3f", $0) }.joined(separator: " ")))
      print(String(format: "FLOPs/step: %.1f G (2 × fvcore %.1f G fwd/image × batch × 3); %.1f GFLOP/s = %.2f of sgemm 2048³ (%.1f GFLOP/s); fvcore convention %.1f GFLOP/s",
                   stepFlops / 1e9, fvcore / 1e9, gflops, gflops / sgemmGflops, sgemmGflops, stepFlopsFvcore / tMin / 1e9))
      print(String(format: "memory: peak RSS %.0f MiB, pool peak live %.0f MiB; pool mallocs per timed step: %@; minor page faults per step: %@",
                   out["peak_rss_mb"] as! Double, out["pool_peak_mb"] as! Double, mallocs.map(String.init).joined(separator: " "),
                   faults.map(String.init).joined(separator: " ")))
      if profile { printProfile(opRows, steps: steps, meanStep: meanStep, recorded: recorded) }
    }
  }

  /// The --profile table: ops by total time per step, then what the tape did not see.
  func printProfile(_ rows: [(op: String, calls: Int, forward: Double, backward: Double)], steps: Int,
                    meanStep: Double, recorded: Double) {
    print(String(format: "profile (wall ms per step, mean of %d timed steps of %.1f ms; forward = time since the previous op recorded):", steps, meanStep * 1e3))
    print("  " + "op".padding(toLength: 34, withPad: " ", startingAt: 0) + "  calls   fwd ms   bwd ms  share")
    for r in rows {
      let f = r.forward / Double(steps) * 1e3, b = r.backward / Double(steps) * 1e3
      print("  " + String(r.op.prefix(34)).padding(toLength: 34, withPad: " ", startingAt: 0)
            + String(format: " %6.0f %8.1f %8.1f %5.1f%%", Double(r.calls) / Double(steps), f, b, (f + b) / (meanStep * 1e3) * 100))
    }
    print("  " + "other (optimizer, clipping, ...)".padding(toLength: 34, withPad: " ", startingAt: 0)
          + String(format: "        %8.1f          %5.1f%%", (meanStep - recorded) * 1e3, (meanStep - recorded) / meanStep * 100))
  }
}
