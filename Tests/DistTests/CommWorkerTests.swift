import Dist
import Foundation
import XCTest

/// The communication thread's ordering rules, without MPI: `run` takes the
/// caller's thread only when nothing is in flight, and otherwise waits its
/// turn, so collectives keep one order on every rank.
final class CommWorkerTests: XCTestCase {
  /// Appends under a lock: jobs run on two different threads.
  final class Log: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [(String, Thread)] = []
    func add(_ s: String) { lock.lock(); items.append((s, Thread.current)); lock.unlock() }
    var entries: [(String, Thread)] { lock.lock(); defer { lock.unlock() }; return items }
  }

  func testRunOnAnIdleWorkerUsesTheCallingThread() throws {
    let worker = CommWorker()
    let log = Log()
    try worker.run { log.add("inline") }
    XCTAssertEqual(log.entries.map(\.0), ["inline"])
    XCTAssertTrue(log.entries[0].1 === Thread.current, "an idle worker should leave the job on the caller")
  }

  func testRunBehindAJobInFlightWaitsForItOnTheWorker() throws {
    let worker = CommWorker()
    let log = Log()
    let release = DispatchSemaphore(value: 0)
    worker.submit { release.wait(); log.add("first") }
    // `run` must neither overtake the blocked job nor run beside it.
    DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) { release.signal() }
    try worker.run { log.add("second") }
    let entries = log.entries
    XCTAssertEqual(entries.map(\.0), ["first", "second"])
    XCTAssertFalse(entries.last?.1 === Thread.current, "with a job in flight the worker must run it, in order")
    try worker.waitAll()
  }

  func testRunRethrowsAndLeavesTheWorkerUsable() throws {
    struct Boom: Error {}
    let worker = CommWorker()
    XCTAssertThrowsError(try worker.run { throw Boom() }) { XCTAssertTrue($0 is Boom) }
    let log = Log()
    let ticket = worker.submit { log.add("after") }
    try worker.wait(for: ticket)
    try worker.waitAll()
    XCTAssertEqual(log.entries.map(\.0), ["after"])
  }

  /// SyncBN's waits count as exposed communication: the trainer adds them to comm_wait.
  func testQueuedCollectiveCountsTheSecondsItBlocks() throws {
    final class SlowWorld: Communicator {
      var rank: Int { 0 }
      var worldSize: Int { 2 }
      func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
        Thread.sleep(forTimeInterval: 0.03)
        for i in buffer.indices { buffer[i] *= 2 }
      }
      func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
      func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) throws {}
      func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
      func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
      func allgather(_ bytes: [UInt8]) throws -> [[UInt8]] { [bytes, bytes] }
      func barrier() throws {}
      func abort(code: Int32) -> Never { fatalError("abort \(code)") }
    }
    let q = QueuedCollective(comm: SlowWorld(), worker: CommWorker())
    var v: [Double] = [1.5, -2]
    try v.withUnsafeMutableBufferPointer { try q.allreduceSum($0) }
    try v.withUnsafeMutableBufferPointer { try q.allreduceSum($0) }
    XCTAssertEqual(v, [6, -8])
    let waited = q.takeWaitSeconds()
    XCTAssertGreaterThanOrEqual(waited, 0.06)
    XCTAssertLessThan(waited, 5)
    XCTAssertEqual(q.takeWaitSeconds(), 0, "taking the count resets it")
  }
}
