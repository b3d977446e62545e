// Communicator: rank, size and the collectives that data-parallel training
// needs, on Float buffers in place. `MPICommunicator` runs over OpenMPI through
// CShims; `LocalCommunicator` is a world of one, so a run without mpirun takes
// the same code path (DESIGN.md).
import CShims
import Foundation
import NN

public enum DistError: Error, CustomStringConvertible {
  case mpi(call: String, rank: Int, code: Int32, message: String)
  case threadLevel(required: Int, provided: Int)

  public var description: String {
    switch self {
    case let .mpi(call, rank, code, message):
      return "rank \(rank): \(call) failed with MPI error \(code): \(message)"
    case let .threadLevel(required, provided):
      return "MPI provides thread level \(provided), need \(required); rebuild OpenMPI with thread support"
    }
  }
}

public protocol Communicator: Collective {
  func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
  func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) throws
  func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws
  func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws
  func allgather(_ bytes: [UInt8]) throws -> [[UInt8]]
  func barrier() throws
  /// Ends every rank of the job at once (MPI_Abort): a failing rank must never leave the others hanging.
  func abort(code: Int32) -> Never
}

extension Communicator {
  /// Sum over ranks, divided by the world size.
  public func allreduceAverage(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    try allreduceSum(buffer)
    if worldSize > 1 {
      let inv = 1 / Float(worldSize)
      for i in buffer.indices { buffer[i] *= inv }
    }
  }
  public func broadcast(_ array: inout [Float], root: Int) throws {
    try array.withUnsafeMutableBytes { try broadcast($0, root: root) }
  }
}

public final class LocalCommunicator: Communicator {
  public init() {}
  public var rank: Int { 0 }
  public var worldSize: Int { 1 }
  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) throws {}
  public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {}
  public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {}
  public func allgather(_ bytes: [UInt8]) throws -> [[UInt8]] { [bytes] }
  public func barrier() throws {}
  public func abort(code: Int32) -> Never { exit(code) }
}

/// OpenMPI's world communicator. Initialised once per process.
///
/// Thread level: MPI_THREAD_SERIALIZED. Collectives are issued by one thread
/// at a time (the trainer's thread, or its communication thread while the
/// trainer's waits; see CommWorker), never by the kernels' worker threads, so
/// SERIALIZED is enough; OpenMPI 4 supports it without the overhead of
/// MULTIPLE's locking.
public final class MPICommunicator: Communicator {
  public let rank: Int
  public let worldSize: Int
  public let threadLevel: Int

  public static let shared: MPICommunicator? = try? MPICommunicator()

  private init() throws {
    var provided: Int32 = 0
    if ecenet_mpi_initialized() == 0 {
      let rc = ecenet_mpi_init(2, &provided)
      if rc != 0 { throw DistError.mpi(call: "MPI_Init_thread", rank: -1, code: rc, message: MPICommunicator.errorString(rc)) }
    } else {
      provided = 2
    }
    _ = ecenet_mpi_errors_return()
    var r: Int32 = 0, s: Int32 = 0
    _ = ecenet_mpi_rank(&r); _ = ecenet_mpi_size(&s)
    rank = Int(r); worldSize = Int(s); threadLevel = Int(provided)
  }

  /// Whether OpenMPI yields the core while a collective waits
  /// (`mpi_yield_when_idle`; on unless the user sets it, see ecenet_mpi_init);
  /// nil when MPI cannot say.
  public var yieldsWhenIdle: Bool? {
    switch ecenet_mpi_cvar_bool("mpi_yield_when_idle") {
    case 0: return false
    case 1: return true
    default: return nil
    }
  }

  /// True when this process was started by mpirun/srun (so MPI must be initialised).
  public static var launchedByMPI: Bool {
    let env = ProcessInfo.processInfo.environment
    return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil || env["PMI_RANK"] != nil
  }

  static func errorString(_ code: Int32) -> String {
    var buf = [CChar](repeating: 0, count: 512)
    ecenet_mpi_error_string(code, &buf, Int32(buf.count))
    return String(cString: buf)
  }

  private func check(_ rc: Int32, _ call: String) throws {
    if rc != 0 { throw DistError.mpi(call: call, rank: rank, code: rc, message: Self.errorString(rc)) }
  }

  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
    guard worldSize > 1, let p = buffer.baseAddress else { return }
    try check(ecenet_mpi_allreduce_sum_float(p, buffer.count), "MPI_Allreduce(float)")
  }
  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
    guard worldSize > 1, let p = buffer.baseAddress else { return }
    try check(ecenet_mpi_allreduce_sum_double(p, buffer.count), "MPI_Allreduce(double)")
  }
  public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Int64>) throws {
    guard worldSize > 1, let p = buffer.baseAddress else { return }
    try check(ecenet_mpi_allreduce_sum_int64(p, buffer.count), "MPI_Allreduce(int64)")
  }
  public func allreduceMax(_ buffer: UnsafeMutableBufferPointer<Double>) throws {
    guard worldSize > 1, let p = buffer.baseAddress else { return }
    try check(ecenet_mpi_allreduce_max_double(p, buffer.count), "MPI_Allreduce(max)")
  }
  public func broadcast(_ buffer: UnsafeMutableRawBufferPointer, root: Int) throws {
    guard worldSize > 1, let p = buffer.baseAddress else { return }
    try check(ecenet_mpi_bcast_bytes(p, buffer.count, Int32(root)), "MPI_Bcast")
  }
  public func allgather(_ bytes: [UInt8]) throws -> [[UInt8]] {
    // Every rank must send the same count; lengths are gathered first.
    var len = [Int64](repeating: 0, count: worldSize)
    len[rank] = Int64(bytes.count)
    try len.withUnsafeMutableBufferPointer { try allreduceSum($0) }
    let maxLen = Int(len.max() ?? 0)
    var send = bytes + [UInt8](repeating: 0, count: maxLen - bytes.count)
    var recv = [UInt8](repeating: 0, count: maxLen * worldSize)
    try send.withUnsafeMutableBytes { s in
      try recv.withUnsafeMutableBytes { r in
        try check(ecenet_mpi_allgather_bytes(s.baseAddress, maxLen, r.baseAddress), "MPI_Allgather")
      }
    }
    return (0..<worldSize).map { Array(recv[($0 * maxLen)..<($0 * maxLen + Int(len[$0]))]) }
  }
  public func barrier() throws { try check(ecenet_mpi_barrier(), "MPI_Barrier") }
  public func abort(code: Int32) -> Never {
    ecenet_mpi_abort(code)
    exit(code)
  }
  public func finalize() {
    if ecenet_mpi_finalized() == 0 { _ = ecenet_mpi_finalize() }
  }
}

/// The world this process runs in: MPI when launched by mpirun/srun, else a world of one.
public func makeWorld() throws -> Communicator {
  if MPICommunicator.launchedByMPI {
    guard let c = MPICommunicator.shared else {
      throw DistError.mpi(call: "MPI_Init_thread", rank: -1, code: -1, message: "initialisation failed")
    }
    return c
  }
  return LocalCommunicator()
}
