// Gradient buckets: allreduce overlapped with backward (DDP-style).
//
// Parameters sit in one arena in registration (forward) order, so walking the
// entries backwards and cutting every ~25 MB gives buckets that are contiguous
// slices of the gradient arena, in the order backward completes them. The tape
// reports each parameter whose gradient is final; when a bucket's last
// parameter is reported, its slice is handed to a communication thread that
// runs the allreduce while backward goes on with earlier layers.
//
// Gradients are SUMMED, not averaged: every loss is normalised by counts over
// the global batch (spec §6), so the sum over ranks is exactly the gradient of
// one process on the union batch.
import Foundation
import NN
import Tensor

public final class GradientBuckets {
  public struct Bucket {
    /// Arena range [lo, hi) of this bucket's gradients.
    public let lo: Int
    public let hi: Int
    /// Parameters in the bucket (count of those not yet ready is tracked per step).
    let members: [ObjectIdentifier]
  }

  public let buckets: [Bucket]
  private let comm: Communicator
  private let gradients: Tensor
  private var bucketOf: [ObjectIdentifier: Int] = [:]
  private var pending: [Int] = []
  private var nextToLaunch = 0
  private var ready: [Bool] = []
  private let worker: CommWorker
  /// Seconds the trainer spent waiting for communication after backward (exposed time).
  public private(set) var lastWaitSeconds: Double = 0

  /// `worker` is the one thread that issues collectives during a step; share it
  /// with the model's `QueuedCollective` so SyncBN's reductions and the bucket
  /// allreduces are issued in one order on every rank.
  public init(store: ParameterStore, comm: Communicator, worker: CommWorker = CommWorker(), bucketBytes: Int = 25 << 20) {
    precondition(store.isFinalized, "GradientBuckets needs a finalized ParameterStore")
    self.comm = comm
    self.gradients = store.gradients!
    var result: [Bucket] = []
    var members: [ObjectIdentifier] = []
    var hi = store.parameterCount, lo = hi
    for e in store.entries.reversed() {
      members.append(ObjectIdentifier(e.variable))
      lo = e.offset
      if (hi - lo) * 4 >= bucketBytes {
        result.append(Bucket(lo: lo, hi: hi, members: members))
        members = []; hi = lo
      }
    }
    if !members.isEmpty { result.append(Bucket(lo: lo, hi: hi, members: members)) }
    buckets = result
    for (i, b) in buckets.enumerated() { for m in b.members { bucketOf[m] = i } }
    self.worker = worker
  }

  /// Arms the tape hook for one backward pass.
  public func beginBackward() {
    pending = buckets.map { $0.members.count }
    ready = [Bool](repeating: false, count: buckets.count)
    nextToLaunch = 0
    guard comm.worldSize > 1 else { return }
    Tape.shared.onParameterGradientReady = { [unowned self] p in self.parameterReady(p) }
  }

  private func parameterReady(_ p: Var) {
    guard let b = bucketOf[ObjectIdentifier(p)] else { return }
    pending[b] -= 1
    if pending[b] == 0 { ready[b] = true; launchInOrder() }
  }

  /// Launches ready buckets in bucket order: every rank must issue the
  /// collectives in the same order, whatever order its backward finished them.
  private func launchInOrder() {
    while nextToLaunch < buckets.count && ready[nextToLaunch] {
      launch(nextToLaunch)
      nextToLaunch += 1
    }
  }

  private func launch(_ i: Int) {
    let b = buckets[i]
    let buf = UnsafeMutableBufferPointer(start: gradients.data + b.lo, count: b.hi - b.lo)
    let comm = self.comm
    worker.submit { try comm.allreduceSum(buf) }
  }

  /// Reduces any bucket backward did not report (parameters unused this step
  /// still need the same collectives on every rank) and waits for all.
  public func finishBackward() throws {
    Tape.shared.onParameterGradientReady = nil
    guard comm.worldSize > 1 else { return }
    for i in nextToLaunch..<buckets.count { ready[i] = true }
    launchInOrder()
    let t0 = Date()
    try worker.waitAll()
    lastWaitSeconds = Date().timeIntervalSince(t0)
  }
}

/// One thread that runs submitted collectives in FIFO order. While a step
/// runs, MPI is called by this thread, or by the submitting thread through
/// `run` while this one is idle: never by two at once, so
/// MPI_THREAD_SERIALIZED suffices. Since every rank submits in the order its
/// forward and backward dictate (the same on all ranks), the collectives
/// match up across ranks.
public final class CommWorker: @unchecked Sendable {
  private var queue: [() throws -> Void] = []
  private var inFlight = 0
  private var submitted = 0
  private var completed = 0
  private var error: Error?
  private let cond = NSCondition()
  private var thread: Thread?

  public init() {
    // The thread holds the worker strongly: it serves for the life of the
    // process (an unowned capture could outlive a short-lived worker).
    let t = Thread { self.loop() }
    t.name = "ecenet-comm"
    t.start()
    thread = t
  }

  /// Queues a job; returns its ticket for `wait(for:)`.
  @discardableResult
  public func submit(_ job: @escaping () throws -> Void) -> Int {
    cond.lock(); queue.append(job); inFlight += 1; submitted += 1
    let ticket = submitted
    cond.signal(); cond.unlock()
    return ticket
  }

  /// Waits until the job with `ticket` (and all before it) has run.
  public func wait(for ticket: Int) throws {
    cond.lock()
    while completed < ticket { cond.wait() }
    let e = error; error = nil
    cond.unlock()
    if let e = e { throw e }
  }

  /// Runs `job` and returns when it is done: on the calling thread when the
  /// worker is idle (no hand-off to a thread that must first be scheduled),
  /// else queued behind what is in flight. The caller must be the only thread
  /// that submits, so that an idle worker stays idle until this returns.
  public func run(_ job: @escaping () throws -> Void) throws {
    cond.lock()
    guard inFlight == 0 else {
      cond.unlock()
      try wait(for: submit(job))
      return
    }
    inFlight = 1; submitted += 1
    cond.unlock()
    var failure: Error?
    do { try job() } catch { failure = error }
    cond.lock()
    inFlight = 0; completed += 1
    cond.broadcast()
    cond.unlock()
    if let f = failure { throw f }
  }

  public func waitAll() throws {
    cond.lock()
    while inFlight > 0 { cond.wait() }
    let e = error; error = nil
    cond.unlock()
    if let e = e { throw e }
  }

  private func loop() {
    while true {
      cond.lock()
      while queue.isEmpty { cond.wait() }
      let job = queue.removeFirst()
      cond.unlock()
      var failure: Error?
      do { try job() } catch { failure = error }
      cond.lock()
      if let f = failure, error == nil { error = f }
      inFlight -= 1
      completed += 1
      cond.broadcast()
      cond.unlock()
    }
  }
}

/// The model's `Collective` (SyncBN) routed through the step's `CommWorker`
/// (`run`): each reduction is queued behind the collectives already in flight
/// and waited for, or runs on the caller's thread when none is, so no two
/// threads ever call MPI at once and all ranks issue the same sequence of
/// collectives.
public final class QueuedCollective: Collective {
  let comm: Communicator
  let worker: CommWorker
  /// Seconds the calling (compute) thread has spent blocked in these
  /// reductions since the last `takeWaitSeconds`: SyncBN's share of a step's
  /// exposed communication.
  private var waited = 0.0
  public init(comm: Communicator, worker: CommWorker) { self.comm = comm; self.worker = worker }
  public var rank: Int { comm.rank }
  public var worldSize: Int { comm.worldSize }
  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
    guard comm.worldSize > 1 else { return }
    let c = comm
    let t0 = Date()
    defer { waited += Date().timeIntervalSince(t0) }
    try worker.run { try c.allreduceSum(buffer) }
  }
  /// The blocked seconds accumulated so far, resetting the count.
  public func takeWaitSeconds() -> Double {
    defer { waited = 0 }
    return waited
  }
}
