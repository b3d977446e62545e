// `ecenet-dist info`: parameters per module and forward GFLOPs of a config's
// model (fvcore convention: one multiply-add is one FLOP), computed
// analytically from the config (Models/Complexity.swift; the tests check the
// counts against a built model).
import ArgumentParser
import Foundation
import Models
import Train

struct Info: ParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Parameters per module and forward GFLOPs of a config's model.",
    discussion: """
        The model comes from the config's `model:` section (or --preset), read as
        `train` reads it; the input size from --crop, else the config's
        `data.crop_size` (default 640), else 512 for a preset.

        ecenet-dist info --config configs/ade20k/ecenet_swin-b_640x640_160k.yaml --json
        ecenet-dist info --preset swin-b --crop 640 --classes 150
      """)
  @OptionGroup var common: CommonOptions
  @Option(help: "Model preset instead of a config: swin-t, swin-s, swin-b, swin-l, tiny.") var preset: String?
  @Option(help: "Number of classes (overrides the config or preset).") var classes: Int?
  @Option(help: "Input size: N (square) or HxW (overrides the config).") var crop: String?
  @Flag(help: "Print one JSON object with params and gflops.") var json = false

  func validate() throws {
    if (common.config == nil) == (preset == nil) { throw ValidationError("give exactly one of --config FILE or --preset NAME") }
    if let c = crop, Info.parseSize(c) == nil { throw ValidationError("--crop \(c): expected N or HxW, e.g. 640 or 512x1024") }
  }

  static func parseSize(_ s: String) -> (Int, Int)? {
    let parts = s.lowercased().split(separator: "x").compactMap { Int($0) }
    if parts.count == 1, parts[0] > 0 { return (parts[0], parts[0]) }
    if parts.count == 2, parts[0] > 0, parts[1] > 0 { return (parts[0], parts[1]) }
    return nil
  }

  func run() throws {
    var config: ModelConfig
    var size = (512, 512)
    if let p = preset {
      config = try ModelConfig.preset(p)
    } else {
      // The trainer's loader: `base:` files, the same defaults and the same
      // errors (file, key, expected type), so info describes what train builds.
      // Only the model and the crop are checked: a model-only file needs no data.root.
      let full: TrainConfig
      do { full = try ConfigLoader.load(TrainConfig(), file: common.config!, overrides: []) } catch {
        throw RunSetup.configFailure(error)
      }
      guard full.data.cropSize.count == 2 else {
        throw ValidationError("config \(common.config!): data.crop_size takes two numbers, got \(full.data.cropSize)")
      }
      config = full.model
      size = (full.data.cropSize[0], full.data.cropSize[1])
    }
    if let n = classes { config.numClasses = n }
    if let c = crop, let s = Info.parseSize(c) { size = s }
    try config.validate()

    let costs = Complexity.analyze(config, height: size.0, width: size.1)
    let params = Complexity.totalParams(costs), gflops = Complexity.totalFlops(costs) / 1e9
    let backbone = costs.filter { $0.module.hasPrefix("backbone") }
    if json {
      let modules = costs.map { ["module": $0.module, "params": $0.params, "gflops": $0.flops / 1e9] as [String: Any] }
      let object: [String: Any] = [
        "params": params, "gflops": gflops, "input": [size.0, size.1], "num_classes": config.numClasses,
        "backbone_params": Complexity.totalParams(backbone), "backbone_gflops": Complexity.totalFlops(backbone) / 1e9,
        "modules": modules,
      ]
      let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
      print(String(decoding: data, as: UTF8.self))
      return
    }
    print("ECENet, \(config.numClasses) classes, input \(size.0)×\(size.1), FLOPs in fvcore's convention (1 multiply-add = 1 FLOP)")
    print("module".padding(toLength: 24, withPad: " ", startingAt: 0) + "params (M)".leftPad(12) + "GFLOPs".leftPad(10))
    for m in costs {
      print(m.module.padding(toLength: 24, withPad: " ", startingAt: 0)
            + String(format: "%.3f", Double(m.params) / 1e6).leftPad(12) + String(format: "%.2f", m.flops / 1e9).leftPad(10))
    }
    let bp = Complexity.totalParams(backbone), bf = Complexity.totalFlops(backbone)
    print("backbone".padding(toLength: 24, withPad: " ", startingAt: 0)
          + String(format: "%.3f", Double(bp) / 1e6).leftPad(12) + String(format: "%.2f", bf / 1e9).leftPad(10))
    print("head".padding(toLength: 24, withPad: " ", startingAt: 0)
          + String(format: "%.3f", Double(params - bp) / 1e6).leftPad(12)
          + String(format: "%.2f", gflops - bf / 1e9).leftPad(10))
    print("total".padding(toLength: 24, withPad: " ", startingAt: 0)
          + String(format: "%.3f", Double(params) / 1e6).leftPad(12) + String(format: "%.2f", gflops).leftPad(10)
          + "   (\(params) parameters)")
  }
}

private extension String {
  func leftPad(_ n: Int) -> String { count >= n ? self : String(repeating: " ", count: n - count) + self }
}
