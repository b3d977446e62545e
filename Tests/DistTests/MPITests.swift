import Foundation
import TestSupport
import XCTest

/// Runs the built `ecenet-dist selftest mpi` under real mpirun and checks the
/// sums every rank saw. No fake world: these need OpenMPI's mpirun.
final class MPITests: XCTestCase {
  func runMPI(ranks: Int, mpirunExtra: [String] = []) throws -> (Int32, String) {
    let out = try runProcess("/usr/bin/env", mpirunArgs(ranks: ranks) + mpirunExtra + [executablePath(), "selftest", "mpi"])
    return out
  }

  func checkWorld(_ n: Int) throws {
    let (code, output) = try runMPI(ranks: n)
    XCTAssertEqual(code, 0, output)
    let lines = output.split(separator: "\n").filter { $0.hasPrefix("rank=") }
    XCTAssertEqual(lines.count, n, output)
    let tri = n * (n + 1) / 2
    let avg = Float((0..<n).reduce(0, +)) / Float(n)
    let gather = (0..<n).map { "rank\($0)" }.joined(separator: ",")
    for r in 0..<n {
      XCTAssertTrue(lines.contains { $0 == "rank=\(r) size=\(n) allreduce_ok=true sum0=\(Float(tri)) avg=\(avg) bcast=3.5,-1.0,42.0 gather=\(gather)" },
                    "rank \(r) line missing or wrong:\n\(output)")
      XCTAssertTrue(output.contains("yield_when_idle rank=\(r) value=1"), "rank \(r) does not yield while idle:\n\(output)")
    }
  }

  /// One rank on two cores is not oversubscribed, so OpenMPI itself would spin
  /// while a collective waits; our MPI init turns yielding on (mpi_shim.c).
  func testOneRankUnderMpirunYieldsWhenIdle() throws {
    let (code, output) = try runMPI(ranks: 1)
    XCTAssertEqual(code, 0, output)
    XCTAssertTrue(output.contains("yield_when_idle rank=0 value=1"), output)
  }

  /// The user's own choice (mpirun -x or --mca) wins over our default.
  func testUserSettingOfYieldWhenIdleIsKept() throws {
    for extra in [["-x", "OMPI_MCA_mpi_yield_when_idle=0"], ["--mca", "mpi_yield_when_idle", "0"]] {
      let (code, output) = try runMPI(ranks: 1, mpirunExtra: extra)
      XCTAssertEqual(code, 0, output)
      XCTAssertTrue(output.contains("yield_when_idle rank=0 value=0"), "\(extra): \(output)")
    }
  }

  func testAllreduceBroadcastAllgatherTwoRanks() throws { try checkWorld(2) }
  func testAllreduceBroadcastAllgatherThreeRanks() throws { try checkWorld(3) }

  func testSingleProcessIsAWorldOfOne() throws {
    let (code, output) = try runProcess(executablePath(), ["selftest", "mpi"])
    XCTAssertEqual(code, 0, output)
    XCTAssertTrue(output.contains("rank=0 size=1 allreduce_ok=true sum0=1.0 avg=0.0 bcast=3.5,-1.0,42.0 gather=rank0"), output)
  }

  func testOverlappedBucketAllreduceSumsGradients() throws {
    for n in [1, 2, 3] {
      let (code, output) = n == 1
        ? try runProcess(executablePath(), ["selftest", "buckets"])
        : try runProcess("/usr/bin/env", mpirunArgs(ranks: n) + [executablePath(), "selftest", "buckets"])
      XCTAssertEqual(code, 0, output)
      let lines = output.split(separator: "\n").filter { $0.hasPrefix("rank=") }
      XCTAssertEqual(lines.count, n, output)
      for l in lines { XCTAssertTrue(l.hasSuffix("grads_ok=true") && l.contains("buckets=3"), "\(n) ranks: \(l)") }
    }
  }
}
