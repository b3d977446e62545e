// Hidden subcommand the test suite runs under real mpirun: exercises the MPI
// communicator and prints one line per check, so that tests can compare the
// numbers each rank saw against the expected sums.
import ArgumentParser
import Dist
import Foundation
import NN
import Tensor

struct SelfTest: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "selftest", abstract: "Internal checks run by the test suite under mpirun.",
    shouldDisplay: false)

  @Argument(help: "Which check: mpi | buckets") var which: String

  func run() throws {
    switch which {
    case "mpi": try collectives()
    case "buckets": try buckets()
    default: throw ValidationError("unknown selftest '\(which)'")
    }
  }

  /// Overlapped bucket allreduce: gradients after backward must equal the sum
  /// over ranks of each rank's local gradient, with several buckets in flight.
  func buckets() throws {
    let world = try makeWorld()
    let r = Float(world.rank)
    let store = ParameterStore()
    let sizes = [5, 17, 3, 40, 9]
    let ws = sizes.enumerated().map { i, n in
      store.parameter("p\(i)", Tensor(shape: [n], values: (0..<n).map { Float($0 + i) }))
    }
    store.finalize()
    let reducer = GradientBuckets(store: store, comm: world, bucketBytes: 64)  // cut at >= 16 floats: buckets {9,40} {3,17} {5}
    // Local loss: Σ_i Σ_j w_ij · (r+1)·(j+1); w0 used twice (first and last).
    let loss = withGradients { () -> Var in
      var total = Var(Tensor(scalar: 0))
      for (i, w) in ws.enumerated() {
        let x = Var(Tensor(shape: [sizes[i]], values: (0..<sizes[i]).map { (r + 1) * Float($0 + 1) }))
        total = total + (w * x).sum()
      }
      return total + ws[0].sum()
    }
    reducer.beginBackward()
    loss.backward()
    try reducer.finishBackward()
    let n = Float(world.worldSize), tri = n * (n + 1) / 2
    var ok = true
    for (i, w) in ws.enumerated() {
      for j in 0..<sizes[i] {
        let expect = tri * Float(j + 1) + (i == 0 ? n : 0)
        if w.grad!.data[j] != expect { ok = false }
      }
    }
    print("rank=\(world.rank) buckets=\(reducer.buckets.count) grads_ok=\(ok)")
    (world as? MPICommunicator)?.finalize()
  }

  func collectives() throws {
    let world = try makeWorld()
    let r = world.rank, n = world.worldSize
    // allreduce: rank r contributes (r+1)*(i+1) at index i; the sum is (i+1)*n(n+1)/2.
    var buf = (0..<1000).map { Float((r + 1) * ($0 + 1)) }
    try buf.withUnsafeMutableBufferPointer { try world.allreduceSum($0) }
    let tri = Float(n * (n + 1) / 2)
    let sumOK = buf.enumerated().allSatisfy { $0.element == Float($0.offset + 1) * tri }
    var avg = [Float](repeating: Float(r), count: 7)
    try avg.withUnsafeMutableBufferPointer { try world.allreduceAverage($0) }
    var b = r == 0 ? [Float](arrayLiteral: 3.5, -1, 42) : [Float](repeating: 0, count: 3)
    try world.broadcast(&b, root: 0)
    let g = try world.allgather(Array("rank\(r)".utf8))
    try world.barrier()
    print("rank=\(r) size=\(n) allreduce_ok=\(sumOK) sum0=\(buf[0]) avg=\(avg[0]) bcast=\(b.map { String($0) }.joined(separator: ",")) gather=\(g.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ","))")
    if let mpi = world as? MPICommunicator {
      print("yield_when_idle rank=\(r) value=\(mpi.yieldsWhenIdle.map { $0 ? "1" : "0" } ?? "unknown")")
      mpi.finalize()
    }
  }
}
