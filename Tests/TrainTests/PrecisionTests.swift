// train.precision=bf16 end to end: the real binary learns the synthetic set
// as well as fp32 does. (Agreement with the PyTorch reference in bf16 is
// ModelsTests/GoldenTests; the GEMM itself, TensorTests/GemmBF16Tests.)
import Foundation
import Tensor
import TestSupport
import XCTest

@testable import Train

final class PrecisionTests: XCTestCase {
  /// mIoU of eval.json after `train --iterations 100` on configs/debug/synthetic.yaml.
  func trainedMIoU(precision: String) throws -> Double {
    let dir = makeTempDir("precision-\(precision)")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let (rc, out) = try runProcess(executablePath(), [
      "train", "--config", repoRoot() + "/configs/debug/synthetic.yaml", "--work-dir", dir, "--iterations", "100",
      "train.precision=\(precision)", "train.checkpoint_every=0", "evaluation.samples=0",
    ], timeout: 600)
    XCTAssertEqual(rc, 0, "train (\(precision)) failed:\n\(out.suffix(2000))")
    if precision == "bf16" {
      XCTAssertTrue(out.contains("precision: "), "the log says the GEMMs run in bf16:\n\(out.suffix(2000))")
    }
    let data = try Data(contentsOf: URL(fileURLWithPath: dir + "/eval.json"))
    let json = try JSONSerialization.jsonObject(with: data) as? [String: Any]
    return try XCTUnwrap(json?["mIoU"] as? Double, "eval.json has no mIoU")
  }

  /// 100 updates of the tiny model: fp32 reaches ≈ 0.86 mIoU (6 classes; chance
  /// ≈ 0.17) and bf16 must land within 2 points of it (measured: 0.8557 vs 0.8553).
  func testBF16LearnsTheSyntheticSetAsWellAsFP32() throws {
    let fp32 = try trainedMIoU(precision: "fp32")
    let bf16 = try trainedMIoU(precision: "bf16")
    print("PrecisionTests: mIoU after 100 updates: fp32 \(fp32), bf16 \(bf16)")
    XCTAssertGreaterThan(fp32, 0.7, "fp32 did not learn the synthetic set")
    XCTAssertGreaterThanOrEqual(bf16, fp32 - 0.02, "bf16 mIoU \(bf16) vs fp32 \(fp32)")
  }

  /// The log's precision line: none for fp32; the kernel for bf16; the AMX
  /// kernel when in use (and how to turn it off); on a CPU with AMX whose tiles
  /// are off (ECENET_AMX=0) or refused, the advice to train in fp32.
  func testPrecisionNoteNamesTheKernelAndAdvisesFP32WhereAMXIsOff() throws {
    let config = repoRoot() + "/configs/debug/synthetic.yaml"
    XCTAssertNil(try TrainConfig.load(file: config, overrides: []).precisionNote(cpuHasAMX: true))
    try XCTSkipUnless(bf16GEMMKernelInUse, "no AVX512_BF16 kernel on this CPU")
    let bf16 = try TrainConfig.load(file: config, overrides: ["train.precision=bf16"])
    let plain = try XCTUnwrap(bf16.precisionNote(cpuHasAMX: false))
    XCTAssertTrue(plain.contains("AVX512_BF16 kernel") && !plain.contains("AMX"), plain)
    let optedOut = try XCTUnwrap(bf16.precisionNote(cpuHasAMX: true))
    XCTAssertTrue(optedOut.hasPrefix(plain) && optedOut.contains("ECENET_AMX=0")
                  && optedOut.contains("train.precision=fp32"), optedOut)
    let tiles = try XCTUnwrap(bf16.precisionNote(cpuHasAMX: true, amx: true))
    XCTAssertTrue(tiles.contains("on AMX tiles") && tiles.contains("ECENET_AMX=0"), tiles)
    let refused = try XCTUnwrap(bf16.precisionNote(cpuHasAMX: false, amxUnavailable: true))
    XCTAssertTrue(refused.hasPrefix(plain) && refused.contains("cannot run them")
                  && !refused.contains("train.precision=fp32"), refused)
    let refusedOnAMX = try XCTUnwrap(bf16.precisionNote(cpuHasAMX: true, amxUnavailable: true))
    XCTAssertTrue(refusedOnAMX.hasPrefix(refused) && refusedOnAMX.contains("train.precision=fp32"), refusedOnAMX)
  }

  /// `bench gemm` (the AMX kernel's first check on AMX hardware) runs every
  /// kernel this CPU has on every shape, each within the tests' error bound,
  /// and compares AMX's tiles with their emulation only where they can run.
  func testBenchGemmChecksEveryKernelThisCPUHas() throws {
    let (rc, out) = try runProcess(executablePath(), ["bench", "gemm", "--quick", "--reps", "1", "--json", "--threads", "2"],
                                   timeout: 300)
    XCTAssertEqual(rc, 0, out)
    let json = try XCTUnwrap(out.split(separator: "\n").last(where: { $0.hasPrefix("{") }), out)
    let report = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    XCTAssertEqual(report["ok"] as? Bool, true, out)
    XCTAssertEqual(report["amx_cpu"] as? Bool, cpuHasAMXBF16)
    let amxRuns = cpuHasAMXBF16 && BF16Kernel.amx.available
    XCTAssertEqual(report["amx_vs_emulation"] is NSNull, !amxRuns, out)
    let rows = try XCTUnwrap(report["rows"] as? [[String: Any]])
    XCTAssertEqual(rows.count, 7)
    for row in rows {
      var expected = ["sgemm (OpenBLAS)"]
      if f32GEMMKernelAvailable { expected.append("ours fp32") }
      if bf16GEMMAvailable { expected.append("AVX512_BF16") }
      if amxRuns { expected.append("AMX") }
      XCTAssertEqual(Set(row.keys).subtracting(["shape", "gemm"]), Set(expected), "\(row)")
      for kernel in expected {
        let cell = try XCTUnwrap(row[kernel] as? [String: Double], "\(row)")
        XCTAssertLessThanOrEqual(try XCTUnwrap(cell["error"]), 1e-5, "\(kernel) \(row["shape"] ?? "")")
        XCTAssertGreaterThan(try XCTUnwrap(cell["gflops"]), 0)
      }
    }
  }

  func testUnknownPrecisionIsAConfigError() throws {
    let (rc, out) = try runProcess(executablePath(), [
      "train", "--config", repoRoot() + "/configs/debug/synthetic.yaml", "--work-dir", makeTempDir("precision-bad"),
      "train.precision=fp16",
    ])
    XCTAssertNotEqual(rc, 0)
    XCTAssertTrue(out.contains("train.precision") && out.contains("fp32 or bf16"), out)
  }
}
