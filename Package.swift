// swift-tools-version:6.0
// ecenet-dist: data-parallel ECENet training in Swift. Layers (see DESIGN.md):
//   CShims -> Tensor -> NN -> {Models, Data, Dist} -> Train -> ecenet-dist
import PackageDescription

// Release builds of the numeric targets need fast-math-free but vectorised code;
// -Ounchecked removes bounds checks in the inner loops (the kernels are tested
// against reference loops in debug builds, which keep the checks).
//
// They are compiled for the CPU that builds them (`-target-cpu native`: with
// AVX-512 the vectorised elementwise loops run ≥ 2× faster than the x86-64
// baseline; BENCHMARKS.md). A binary meant for other machines sets
// `ECENET_TARGET_CPU` at build time: `x86-64` runs on any x86 CPU, `haswell`
// needs AVX2+FMA, `skylake-avx512` / `znver4` AVX-512 (docs/cluster.md). A
// native build records the widest vector extension it assumed, and the
// executable refuses to start on a CPU without it, with a message, rather than
// dying of SIGILL in its first kernel. OpenBLAS picks its own kernels at run time.
import Foundation
let targetCPU = ProcessInfo.processInfo.environment["ECENET_TARGET_CPU"] ?? "native"
let kernelFlags: [SwiftSetting] = [
  .unsafeFlags(["-Ounchecked", "-wmo", "-target-cpu", targetCPU], .when(configuration: .release)),
]
/// The build machine's CPU flags (Linux /proc/cpuinfo; empty elsewhere).
func buildHostCPUFlags() -> Set<String> {
  guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
        let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return [] }
  return Set(line.split(separator: " ").map(String.init))
}
let hostFlags = targetCPU == "native" ? buildHostCPUFlags() : []
let requiredCPU: [SwiftSetting] =
  hostFlags.contains("avx512f") ? [.define("ECENET_REQUIRES_AVX512F", .when(configuration: .release))]
  : hostFlags.contains("avx2") ? [.define("ECENET_REQUIRES_AVX2", .when(configuration: .release))] : []

let package = Package(
  name: "ecenet-dist",
  platforms: [.macOS(.v13)],
  products: [
    .executable(name: "ecenet-dist", targets: ["ecenet-dist"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
  ],
  targets: [
    // Thin C wrappers over OpenMPI, OpenBLAS, libpng, libjpeg-turbo and zstd:
    // only what Swift cannot express (macros, setjmp error handling).
    .target(
      name: "CShims",
      cSettings: [
        .unsafeFlags(["-I/usr/lib/x86_64-linux-gnu/openmpi/include",
                      "-I/usr/include/x86_64-linux-gnu/openblas-pthread"]),
      ],
      linkerSettings: [
        .linkedLibrary("mpi"), .linkedLibrary("openblas"), .linkedLibrary("png16"),
        .linkedLibrary("turbojpeg"), .linkedLibrary("zstd"), .linkedLibrary("m"),
      ]),
    .target(name: "Tensor", dependencies: ["CShims"], swiftSettings: kernelFlags),
    .target(name: "NN", dependencies: ["Tensor"], swiftSettings: kernelFlags),
    .target(name: "Models", dependencies: ["NN", "Tensor"], swiftSettings: kernelFlags),
    .target(name: "Data", dependencies: ["CShims", "Tensor"], swiftSettings: kernelFlags),
    .target(name: "Dist", dependencies: ["CShims", "NN"]),
    .target(
      name: "Train",
      dependencies: ["Models", "Data", "Dist", "NN", "Tensor",
                     .product(name: "Yams", package: "Yams")]),
    .executableTarget(
      name: "ecenet-dist",
      dependencies: ["Train", "Models", "Data", "Dist", "NN", "Tensor", "CShims",
                     .product(name: "ArgumentParser", package: "swift-argument-parser")],
      swiftSettings: requiredCPU),
    .testTarget(name: "TensorTests", dependencies: ["Tensor", "CShims"], resources: [.copy("Golden")]),
    // Golden files are read through #filePath, not bundled.
    .testTarget(name: "NNTests", dependencies: ["NN", "Tensor"], exclude: ["Golden"]),
    .testTarget(name: "ModelsTests", dependencies: ["Models", "NN", "Tensor"], exclude: ["Golden"]),
    .testTarget(name: "DataTests", dependencies: ["Data", "Tensor", "CShims"]),
    .testTarget(name: "DistTests", dependencies: ["Dist", "NN", "CShims", "TestSupport"]),
    // Process helpers shared by the test targets that run the real binary (mpirun, srun).
    .target(name: "TestSupport", path: "Tests/TestSupport"),
    .testTarget(name: "TrainTests", dependencies: ["Train", "Models", "Data", "Dist", "NN", "Tensor", "TestSupport"],
                exclude: ["Golden"]),
  ],
  swiftLanguageModes: [.v5]
)
