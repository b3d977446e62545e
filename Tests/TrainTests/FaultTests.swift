import Foundation
import TestSupport
import XCTest

/// Faults a long cluster job meets: a stop signal, a corrupted newest
/// checkpoint, a full disk, a non-finite loss, a rank killed with SIGKILL.
final class FaultTests: XCTestCase {
  var config: String { repoRoot() + "/configs/debug/synthetic.yaml" }
  let base = ["model.dropout=0", "train.log_every=1", "train.global_batch=4", "data.synthetic.train_count=64",
              "data.synthetic.val_count=4", "data.workers=1", "train.eval_every=0", "--threads", "1"]

  func args(_ dir: String, iterations: Int, _ extra: [String] = []) -> [String] {
    ["train", "--config", config, "--work-dir", dir, "--iterations", "\(iterations)"] + base + extra
  }

  func losses(_ dir: String) -> [Double] { trainRecords(dir).compactMap { $0["loss"] as? Double } }

  /// The `finished` marker (cluster/slurm/train.sbatch reads it), nil when absent.
  func finished(_ dir: String) -> String? { try? String(contentsOfFile: dir + "/finished", encoding: .utf8) }

  func testSIGTERMCheckpointsAtTheNextIterationAndResumeContinuesTheCurve() throws {
    for ranks in [1, 2] {
      let straight = makeTempDir("sig-straight"), dir = makeTempDir("sig")
      let iters = 24
      XCTAssertEqual(try runRanks(ranks, args(straight, iterations: iters)).0, 0)
      XCTAssertEqual(finished(straight), "finished 24 of 24 iterations\n")
      // A marker left by an earlier run is removed when a run starts.
      try "finished 24 of 24 iterations\n".write(toFile: dir + "/finished", atomically: true, encoding: .utf8)
      let job = ranks == 1
        ? try Background(executablePath(), args(dir, iterations: iters))
        : try Background("/usr/bin/env", mpirunArgs(ranks: ranks) + [executablePath()] + args(dir, iterations: iters))
      XCTAssertTrue(Background.waitUntil(timeout: 120) { trainRecords(dir).count >= 3 }, job.output)
      kill(job.process.processIdentifier, SIGTERM)  // mpirun forwards SIGTERM to every rank
      let code = job.wait(timeout: 60)
      let out = job.output
      XCTAssertTrue(out.contains("stop requested"), out)
      if ranks == 1 { XCTAssertEqual(code, 3, out) } else { XCTAssertNotEqual(code, 0, out) }
      let stoppedAt = trainRecords(dir).count
      XCTAssertLessThan(stoppedAt, iters, "the signal must stop the run early")
      XCTAssertNil(finished(dir), "a run stopped by a signal is not finished")
      XCTAssertTrue(FileManager.default.fileExists(atPath: dir + String(format: "/checkpoints/iter_%08d.safetensors", stoppedAt)), out)
      let (rc, rout) = try runRanks(ranks, args(dir, iterations: iters) + ["--resume", "auto"])
      XCTAssertEqual(rc, 0, rout)
      XCTAssertEqual(finished(dir), "finished 24 of 24 iterations\n")
      XCTAssertEqual(losses(dir), losses(straight), "\(ranks) rank(s): the resumed curve must equal the uninterrupted one")
    }
  }

  func testCorruptedNewestCheckpointFallsBackToThePreviousOne() throws {
    let dir = makeTempDir("corrupt")
    XCTAssertEqual(try runRanks(1, args(dir, iterations: 6, ["train.checkpoint_every=2"])).0, 0)
    let newest = dir + "/checkpoints/iter_00000006.safetensors"
    // Flip bytes in the tensor data (not the header): only the checksum can notice.
    let h = try XCTUnwrap(FileHandle(forUpdatingAtPath: newest))
    let size = h.seekToEndOfFile()
    h.seek(toFileOffset: size - 1000)
    h.write(Data([0xDE, 0xAD, 0xBE, 0xEF]))
    h.closeFile()
    // Truncate the one before: that one fails to parse at all.
    let prev = dir + "/checkpoints/iter_00000004.safetensors"
    try FileHandle(forUpdatingAtPath: prev)!.truncate(atOffset: 5000)
    let (code, out) = try runRanks(1, args(dir, iterations: 8, ["train.checkpoint_every=2"]) + ["--resume", "auto"])
    XCTAssertEqual(code, 0, out)
    XCTAssertTrue(out.contains("iter_00000006.safetensors: checksum mismatch"), out)
    XCTAssertTrue(out.contains("iter_00000004.safetensors: unreadable"), out)
    XCTAssertTrue(out.contains("resume: \(dir)/checkpoints/iter_00000002.safetensors (iteration 2"), out)
    XCTAssertFalse(out.contains("config differs"), "the same config: nothing to report\n\(out)")
  }

  func testResumingWithAnotherConfigSaysWhichKeysChanged() throws {
    let dir = makeTempDir("resume-config")
    defer { try? FileManager.default.removeItem(atPath: dir) }
    XCTAssertEqual(try runRanks(1, args(dir, iterations: 2, ["train.checkpoint_every=2"])).0, 0)
    let (code, out) = try runRanks(1, args(dir, iterations: 3, ["train.checkpoint_every=2", "optimizer.lr=0.001"])
                                     + ["--resume", "auto"])
    XCTAssertEqual(code, 0, out)
    XCTAssertTrue(out.contains("resume: the config differs from the checkpoint's in 1 key(s): optimizer.lr: 0.002 → 0.001"), out)
  }

  func testDiskFullWhileCheckpointingKeepsThePreviousCheckpoint() throws {
    guard getuid() == 0 else { throw XCTSkip("needs root to mount a size-limited tmpfs") }
    let dir = makeTempDir("full")
    // One checkpoint of the tiny model is ~18.5 MB; 30 MB holds one but not two.
    let (mrc, mout) = try runProcess("/bin/mount", ["-t", "tmpfs", "-o", "size=30m", "tmpfs", dir])
    guard mrc == 0 else { throw XCTSkip("cannot mount tmpfs here: \(mout)") }
    defer { _ = try? runProcess("/bin/umount", ["-l", dir]) }
    let (code, out) = try runRanks(1, args(dir, iterations: 8, ["train.checkpoint_every=2", "train.keep_checkpoints=3"]))
    XCTAssertEqual(code, 1, out)
    XCTAssertTrue(out.contains("iter_00000004.safetensors") && out.contains("the previous checkpoint is intact"), out)
    let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/checkpoints")
    XCTAssertEqual(files.filter { $0.hasSuffix(".safetensors") }, ["iter_00000002.safetensors"], "no half-written file is left")
    XCTAssertEqual(try String(contentsOfFile: dir + "/checkpoints/latest", encoding: .utf8), "iter_00000002.safetensors\n")
  }

  func testNonFiniteLossStopsWithTheTermsOrIsSkippedWhenAsked() throws {
    let dir = makeTempDir("nan")
    let (code, out) = try runRanks(1, args(dir, iterations: 20, ["optimizer.lr=1e30", "schedule.warmup_iterations=0"]))
    XCTAssertEqual(code, 1, out)
    XCTAssertTrue(out.contains("the loss is not finite (loss_seg="), out)
    XCTAssertTrue(out.contains("or set train.non_finite=skip"), "the hint names the real key: \(out)")
    let skip = makeTempDir("nan-skip")
    let (c2, o2) = try runRanks(1, args(skip, iterations: 8, ["optimizer.lr=1e30", "schedule.warmup_iterations=0", "train.non_finite=skip"]))
    XCTAssertEqual(c2, 0, o2)
    XCTAssertTrue(o2.contains("update skipped"), o2)
    XCTAssertNil(o2.range(of: "skipped steps   0\n"), o2)
  }

  func testKilledRankEndsTheWholeJobQuickly() throws {
    let dir = makeTempDir("kill9")
    let job = try Background("/usr/bin/env", mpirunArgs(ranks: 2) + [executablePath()] + args(dir, iterations: 400))
    XCTAssertTrue(Background.waitUntil(timeout: 120) { trainRecords(dir).count >= 2 }, job.output)
    // Find rank 1 (a child of mpirun running ecenet-dist) and SIGKILL it.
    let (_, ps) = try runProcess("/bin/ps", ["-eo", "pid,args"])
    let pids = ps.split(separator: "\n").filter { $0.contains(dir) && !$0.contains("mpirun") }
      .compactMap { Int32($0.split(separator: " ").first ?? "") }
    XCTAssertEqual(pids.count, 2, ps)
    let start = Date()
    kill(pids.max()!, SIGKILL)
    let code = job.wait(timeout: 30)
    XCTAssertLessThan(Date().timeIntervalSince(start), 30, "all ranks must be gone within 30 s")
    XCTAssertNotEqual(code, 0)
    // Gone means no such process, or a zombie waiting to be reaped by init.
    func alive(_ p: Int32) -> Bool {
      guard let stat = try? String(contentsOfFile: "/proc/\(p)/stat", encoding: .utf8) else { return false }
      return !stat.contains(") Z ")
    }
    XCTAssertTrue(Background.waitUntil(timeout: 10) { !pids.contains(where: alive) }, "ranks still alive: \(pids.filter(alive))")
    // mpirun reports it, usually as "rank 1 … exited on signal 9 (Killed)"; when the
    // kill races with a collective it says instead that the job was aborted because
    // a process returned a non-zero code (a SIGKILLed rank cannot speak for itself).
    let out = job.output
    XCTAssertTrue(out.contains("exited on signal 9") || out.contains("Killed") || out.contains("job has been aborted"), out)
  }
}
