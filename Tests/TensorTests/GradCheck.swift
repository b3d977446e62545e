// One helper checks an op: forward shape, then the gradient of every input
// against central finite differences. Failures name the input and element and
// point at the calling test (#filePath/#line).
import Tensor
import XCTest

/// Deterministic test data (SplitMix64), so a failure reproduces.
struct TestRNG {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
  mutating func uniform(_ lo: Float = -1, _ hi: Float = 1) -> Float {
    lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24)
  }
  mutating func tensor(_ shape: [Int], _ lo: Float = -1, _ hi: Float = 1) -> Tensor {
    Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map { _ in uniform(lo, hi) })
  }
}

/// d(Σ f(x)·R)/dx by backward vs. central differences, for every input.
/// `elements` bounds how many entries of each input are probed (chosen at random).
func checkGradients(
  _ inputs: [Tensor], eps: Float = 1e-2, rtol: Float = 2e-2, atol: Float = 2e-3,
  elements: Int = 48, seed: UInt64 = 7, expectShape: [Int]? = nil,
  file: StaticString = #filePath, line: UInt = #line, _ f: ([Var]) -> Var
) {
  var rng = TestRNG(seed: seed)
  let vars = inputs.map { Var($0.copy(), requiresGrad: true) }
  let out = withGradients { f(vars) }
  if let s = expectShape { XCTAssertEqual(out.shape, s, "forward shape", file: file, line: line) }
  let r = rng.tensor(out.shape)
  let loss = withGradients { (out * Var(r)).sum() }
  loss.backward()

  // The scalar Σ f(x)·R evaluated in Double without the tape.
  func probe() -> Double {
    withoutGradients {
      let y = f(vars).value
      var s: Double = 0
      for i in 0..<y.count { s += Double(y.data[i]) * Double(r.data[i]) }
      return s
    }
  }
  for (i, v) in vars.enumerated() {
    let analytic = v.grad ?? Tensor.zeros(v.shape)
    let n = v.count
    let picks = n <= elements ? Array(0..<n) : (0..<elements).map { _ in Int(rng.next() % UInt64(n)) }
    for j in picks {
      let p = v.value.data
      let orig = p[j]
      p[j] = orig + eps; let lp = probe()
      p[j] = orig - eps; let lm = probe()
      p[j] = orig
      let numeric = Float((lp - lm) / Double(2 * eps))
      let a = analytic.data[j]
      let ok = abs(a - numeric) <= atol + rtol * max(abs(a), abs(numeric))
      if !ok {
        XCTFail("backward, input \(i), element \(j) of \(v.shape): analytic \(a) vs numeric \(numeric)",
                file: file, line: line)
        return
      }
    }
  }
}

/// Elementwise comparison with a message naming the first mismatch.
func assertClose(_ a: Tensor, _ b: Tensor, rtol: Float = 1e-4, atol: Float = 1e-5, _ what: String = "",
                 file: StaticString = #filePath, line: UInt = #line) {
  XCTAssertEqual(a.count, b.count, "\(what): sizes \(a.shape) vs \(b.shape)", file: file, line: line)
  for i in 0..<min(a.count, b.count) {
    let x = a.data[i], y = b.data[i]
    if !(abs(x - y) <= atol + rtol * max(abs(x), abs(y))) {
      XCTFail("\(what): element \(i) differs: \(x) vs \(y)", file: file, line: line)
      return
    }
  }
}
