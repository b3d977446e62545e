// swift-tools-version:6.0
// ecenet-dist: data-parallel ECENet training in Swift. Layers (see DESIGN.md):
//   CShims -> Tensor -> NN -> {Models, Data, Dist} -> Train -> ecenet-dist
import PackageDescription

// Release builds of the numeric targets need fast-math-free but vectorised code;
// -Ounchecked removes bounds checks in the inner loops (the kernels are tested
// against reference loops in debug builds, which keep the checks).
//
// The default build targets baseline x86-64 so one binary runs on any cluster
// node. `ECENET_TARGET_CPU=znver4` (or skylake-avx512, haswell, native…) at
// build time lets the compiler vectorise our elementwise kernels for that CPU
// (≥ 2× on GELU/LayerNorm loops measured here; BENCHMARKS.md). OpenBLAS picks
// its own kernels at run time either way.
import Foundation
let targetCPU = ProcessInfo.processInfo.environment["ECENET_TARGET_CPU"].map { ["-target-cpu", $0] } ?? []
let kernelFlags: [SwiftSetting] = [
  .unsafeFlags(["-Ounchecked", "-wmo"] + targetCPU, .when(configuration: .release)),
]

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
                     .product(name: "ArgumentParser", package: "swift-argument-parser")]),
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
