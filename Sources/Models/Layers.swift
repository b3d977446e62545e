// Small layers over the parameter arena: Linear, Conv2d (dense, grouped,
// depth-wise), LayerNorm, the head's configurable Norm (BN / SyncBN / GN) and
// ConvModule (conv → norm → optional ReLU, as mmseg's). Each layer registers its
// parameters in the `ParameterStore` under a stable dotted name when built and
// is a thin call into a Tensor kernel when run. Maps are channels-last [B, H, W, C].
// Not here: anything with state beyond parameters and BN running statistics.
import NN
import Tensor

/// What a forward pass needs beyond its inputs: the mode and the stream for
/// dropout and drop-path (consumed in forward order, so a run reproduces).
public final class ForwardContext {
  public let training: Bool
  public var rng: RandomGenerator
  public init(training: Bool, seed: UInt64 = 0) {
    self.training = training
    self.rng = RandomGenerator(seed: seed)
  }
}

/// Everything a layer needs while it is being built.
public struct LayerBuilder {
  public let store: ParameterStore
  public let weights: WeightInit
  public let norm: NormKind
  /// SyncBN's cross-rank sum; nil means per-rank statistics.
  public let statsReducer: StatsReducer?

  public init(store: ParameterStore, weights: WeightInit, norm: NormKind = .bn, collective: Collective? = nil) {
    self.store = store; self.weights = weights; self.norm = norm
    if norm == .syncbn, let c = collective, c.worldSize > 1 {
      statsReducer = { try! c.allreduceSum($0) }
    } else {
      statsReducer = nil  // a world of one: SyncBN is BN
    }
  }

  func parameter(_ name: String, _ t: Tensor, decay: Bool) -> Var { store.parameter(name, t, decay: decay) }
}

/// How a Linear is initialised.
public enum LinearInit {
  /// PyTorch's nn.Linear default: weight and bias U(±1/√in).
  case pytorch
  /// Swin's init: weight trunc-normal(std), bias 0.
  case truncNormal(std: Float)
}

/// nn.Linear: y = x·Wᵀ + b over the last axis. Parameters `{name}.weight` [out, in], `{name}.bias` [out].
public struct Linear {
  public let weight: Var
  public let bias: Var?

  public init(_ b: LayerBuilder, _ name: String, _ inFeatures: Int, _ outFeatures: Int, bias: Bool = true,
              initialization: LinearInit = .pytorch) {
    switch initialization {
    case .pytorch:
      weight = b.parameter("\(name).weight", b.weights.uniformFanIn("\(name).weight", [outFeatures, inFeatures], fanIn: inFeatures), decay: true)
      self.bias = bias ? b.parameter("\(name).bias", b.weights.uniformFanIn("\(name).bias", [outFeatures], fanIn: inFeatures), decay: false) : nil
    case .truncNormal(let std):
      weight = b.parameter("\(name).weight", b.weights.truncNormal("\(name).weight", [outFeatures, inFeatures], std: std), decay: true)
      self.bias = bias ? b.parameter("\(name).bias", Tensor.zeros([outFeatures]), decay: false) : nil
    }
  }

  public func callAsFunction(_ x: Var) -> Var { linear(x, weight: weight, bias: bias) }
}

/// nn.Conv2d (square kernel) on channels-last maps; weight in PyTorch layout
/// [out, in/groups, k, k]. groups == in == out is the depth-wise conv.
public struct Conv2d {
  public let weight: Var
  public let bias: Var?
  public let inChannels, outChannels, kernel, stride, padding, dilation, groups: Int

  public init(_ b: LayerBuilder, _ name: String, _ inChannels: Int, _ outChannels: Int, kernel: Int,
              stride: Int = 1, padding: Int = 0, dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
    precondition(inChannels % groups == 0 && outChannels % groups == 0,
                 "Conv2d \(name): channels \(inChannels)→\(outChannels) not divisible by groups \(groups)")
    self.inChannels = inChannels; self.outChannels = outChannels; self.kernel = kernel
    self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
    let fanIn = inChannels / groups * kernel * kernel
    weight = b.parameter("\(name).weight",
                         b.weights.uniformFanIn("\(name).weight", [outChannels, inChannels / groups, kernel, kernel], fanIn: fanIn),
                         decay: true)
    self.bias = bias ? b.parameter("\(name).bias", b.weights.uniformFanIn("\(name).bias", [outChannels], fanIn: fanIn), decay: false) : nil
  }

  public func callAsFunction(_ x: Var) -> Var {
    precondition(x.shape.count == 4 && x.shape[3] == inChannels, "Conv2d: input \(x.shape), expected [B, H, W, \(inChannels)]")
    // A 1×1 stride-1 conv on channels-last maps is exactly a Linear over the
    // pixels: one GEMM with no im2col.
    if kernel == 1 && stride == 1 && padding == 0 && groups == 1 {
      return linear(x, weight: weight.reshaped([outChannels, inChannels]), bias: bias)
    }
    return conv2d(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
  }
}

/// nn.LayerNorm over the last axis (eps 1e-5); weight 1, bias 0, no weight decay.
public struct LayerNorm {
  public let weight: Var
  public let bias: Var

  public init(_ b: LayerBuilder, _ name: String, _ channels: Int) {
    weight = b.parameter("\(name).weight", Tensor.ones([channels]), decay: false)
    bias = b.parameter("\(name).bias", Tensor.zeros([channels]), decay: false)
  }

  public func callAsFunction(_ x: Var) -> Var { layerNorm(x, weight: weight, bias: bias) }
}

/// The head's 2-D norm, chosen by config: BatchNorm (per rank), SyncBN (batch
/// statistics summed over ranks) or GroupNorm(gcd(32, C)). Parameters
/// `{name}.weight`, `{name}.bias`; BN buffers `{name}.running_mean`, `{name}.running_var`.
public struct Norm {
  public let weight: Var
  public let bias: Var
  public let kind: NormKind
  let runningMean: Tensor?
  let runningVar: Tensor?
  let reducer: StatsReducer?
  let groups: Int

  public init(_ b: LayerBuilder, _ name: String, _ channels: Int) {
    kind = b.norm
    weight = b.parameter("\(name).weight", Tensor.ones([channels]), decay: false)
    bias = b.parameter("\(name).bias", Tensor.zeros([channels]), decay: false)
    switch kind {
    case .bn, .syncbn:
      runningMean = b.store.buffer("\(name).running_mean", Tensor.zeros([channels]))
      runningVar = b.store.buffer("\(name).running_var", Tensor.ones([channels]))
      reducer = kind == .syncbn ? b.statsReducer : nil
      groups = 0
    case .gn:
      runningMean = nil; runningVar = nil; reducer = nil
      // gcd, not min: 48 channels (Swin-T's C_1/2) cannot be split in 32 groups.
      groups = gcd(32, channels)
    }
  }

  /// `relu`: followed by ReLU, which BatchNorm makes in its own passes
  /// (`batchNorm(relu:)`: the same bits, two passes fewer); after GroupNorm
  /// it is a separate `relu`.
  public func callAsFunction(_ x: Var, _ ctx: ForwardContext, relu withReLU: Bool = false) -> Var {
    Self.group([self], [x], ctx, relu: [withReLU])[0]
  }

  /// Several independent norms of one model (one kind) on their inputs, norm i
  /// followed by ReLU where `relu[i]` (default: none): BN and SyncBN as one
  /// `batchNormGroup`, so SyncBN makes one cross-rank reduction for all of
  /// them each way; GroupNorm one by one. Equal to calling each.
  static func group(_ norms: [Norm], _ xs: [Var], _ ctx: ForwardContext, relu flags: [Bool]? = nil) -> [Var] {
    let withReLU = flags ?? [Bool](repeating: false, count: norms.count)
    precondition(norms.count == xs.count && withReLU.count == xs.count,
                 "Norm.group: \(norms.count) norms, \(xs.count) inputs, \(withReLU.count) ReLU flags")
    guard let first = norms.first, first.kind != .gn else {
      return (0..<norms.count).map { i in
        let y = groupNorm(xs[i], groups: norms[i].groups, weight: norms[i].weight, bias: norms[i].bias)
        return withReLU[i] ? relu(y) : y
      }
    }
    return batchNormGroup(xs, weights: norms.map(\.weight), biases: norms.map(\.bias),
                          runningMeans: norms.map { $0.runningMean! }, runningVars: norms.map { $0.runningVar! },
                          training: ctx.training, reduce: first.reducer, relu: withReLU)
  }
}

func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

/// mmseg's ConvModule: conv (bias only when there is no norm; here there always
/// is one) → Norm → optional ReLU. Parameters `{name}.conv.*`, `{name}.norm.*`.
public struct ConvModule {
  public let conv: Conv2d
  public let norm: Norm
  public let activation: Bool

  public init(_ b: LayerBuilder, _ name: String, _ inChannels: Int, _ outChannels: Int, kernel: Int,
              padding: Int = 0, groups: Int = 1, activation: Bool = true) {
    conv = Conv2d(b, "\(name).conv", inChannels, outChannels, kernel: kernel, padding: padding, groups: groups, bias: false)
    norm = Norm(b, "\(name).norm", outChannels)
    self.activation = activation
  }

  public func callAsFunction(_ x: Var, _ ctx: ForwardContext) -> Var {
    Self.group([self], [x], ctx)[0]
  }

  /// Several independent ConvModules (module i on input i): every conv, then
  /// the norms together with their ReLUs (`Norm.group`: one SyncBN reduction
  /// each way for all; BatchNorm makes the ReLU in its own passes). Equal to
  /// calling each module.
  public static func group(_ modules: [ConvModule], _ xs: [Var], _ ctx: ForwardContext) -> [Var] {
    precondition(modules.count == xs.count, "ConvModule.group: \(modules.count) modules, \(xs.count) inputs")
    return Norm.group(modules.map(\.norm), zip(modules, xs).map { $0.0.conv($0.1) }, ctx,
                      relu: modules.map(\.activation))
  }
}
