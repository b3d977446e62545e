// Hidden subcommand the test suite runs under real mpirun: exercises the MPI
// communicator and prints one line per check, so that tests can compare the
// numbers each rank saw against the expected sums.
import ArgumentParser
import Dist
import Foundation

struct SelfTest: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "selftest", abstract: "Internal checks run by the test suite under mpirun.",
    shouldDisplay: false)

  @Argument(help: "Which check: mpi") var which: String

  func run() throws {
    guard which == "mpi" else { throw ValidationError("unknown selftest '\(which)'") }
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
    (world as? MPICommunicator)?.finalize()
  }
}
