// Pooling on channels-last maps: adaptive average pooling (PSP/PPM-style
// pyramids, global pooling) and max pooling (ResNet stem).
// Letters: B batch; H, W input size; Ho, Wo output size; C channels.
// x [B, H, W, C] → y [B, Ho, Wo, C]. Every inner loop runs over the C
// contiguous channels of one pixel, so it vectorises.
// Not here: ceil_mode, count_include_pad variants, avg_pool2d with a kernel.

// MARK: Adaptive average pooling

/// PyTorch's adaptive bins along one axis: bin i covers [floor(i·n/s), ceil((i+1)·n/s)).
func adaptiveBins(input n: Int, output s: Int) -> [(start: Int, end: Int)] {
  (0..<s).map { i in ((i * n) / s, ((i + 1) * n + s - 1) / s) }
}

/// For each input index, the bins that contain it, weighted 1 / bin length (bins
/// may overlap, and when the output is larger than the input one input index feeds several bins).
func binAdjoint(_ bins: [(start: Int, end: Int)], input n: Int) -> AxisAdjoint {
  var reads: [(input: Int, output: Int, weight: Float)] = []
  for (o, bin) in bins.enumerated() {
    for i in bin.start..<bin.end { reads.append((i, o, 1 / Float(bin.end - bin.start))) }
  }
  return AxisAdjoint(inputs: n, reads: reads)
}

/// F.adaptive_avg_pool2d: bins start = floor(i·H/s), end = ceil((i+1)·H/s).
public func adaptiveAvgPool2d(_ x: Var, outputHeight: Int, outputWidth: Int) -> Var {
  precondition(x.shape.count == 4, "adaptiveAvgPool2d: input \(x.shape) must be [B, H, W, C]")
  precondition(outputHeight >= 1 && outputWidth >= 1, "adaptiveAvgPool2d: output \(outputHeight)×\(outputWidth)")
  let (B, H, W, C) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  precondition(H >= 1 && W >= 1, "adaptiveAvgPool2d: empty input \(x.shape)")
  let (Ho, Wo) = (outputHeight, outputWidth)
  let binsY = adaptiveBins(input: H, output: Ho), binsX = adaptiveBins(input: W, output: Wo)
  let y = Tensor(uninitialized: [B, Ho, Wo, C])
  adaptiveAvgPoolForward(out: y, x: x.value, binsY: binsY, binsX: binsX)
  let shape = x.shape
  return makeResult(y, inputs: [x]) { dy in
    adaptiveAvgPoolBackward(dx: x.gradBuffer(), dy: dy, inputShape: shape, binsY: binsY, binsX: binsX)
  }
}

/// y[b, oy, ox, :] = mean of x over bin (oy) × bin (ox).
public func adaptiveAvgPoolForward(out y: Tensor, x: Tensor, binsY: [(start: Int, end: Int)], binsX: [(start: Int, end: Int)]) {
  let (B, H, W, C) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let (Ho, Wo) = (binsY.count, binsX.count)
  let xp = x.data, yp = y.data
  Parallel.forRange(B * Ho, grain: max(1, 4096 / max(1, Wo * C))) { r in
    for line in r {
      let b = line / Ho, by = binsY[line % Ho]
      for ox in 0..<Wo {
        let bx = binsX[ox], o = yp + (line * Wo + ox) * C
        o.update(repeating: 0, count: C)
        for iy in by.start..<by.end {
          for ix in bx.start..<bx.end {
            let src = xp + ((b * H + iy) * W + ix) * C
            for c in 0..<C { o[c] += src[c] }
          }
        }
        let scale = 1 / Float((by.end - by.start) * (bx.end - bx.start))
        for c in 0..<C { o[c] *= scale }
      }
    }
  }
}

/// dx[b, iy, ix, :] += Σ over the bins containing (iy, ix) of dy / bin area,
/// gathered per input line (no write conflicts between threads).
public func adaptiveAvgPoolBackward(dx: Tensor, dy: Tensor, inputShape: [Int],
                                    binsY: [(start: Int, end: Int)], binsX: [(start: Int, end: Int)]) {
  separableAdjointBackward(dx: dx, dy: dy, inputShape: inputShape,
                           ay: binAdjoint(binsY, input: inputShape[1]), ax: binAdjoint(binsX, input: inputShape[2]),
                           outputHeight: binsY.count, outputWidth: binsX.count)
}

// MARK: Max pooling

/// F.max_pool2d with -inf padding (ceil_mode=False, dilation 1). Ties and NaN
/// follow PyTorch's CPU kernel: the first maximum in (ky, kx) order wins, a NaN wins.
public func maxPool2d(_ x: Var, kernel: Int, stride: Int, padding: Int) -> Var {
  precondition(x.shape.count == 4, "maxPool2d: input \(x.shape) must be [B, H, W, C]")
  precondition(kernel >= 1 && stride >= 1 && padding >= 0 && padding * 2 <= kernel,
               "maxPool2d: kernel \(kernel), stride \(stride), padding \(padding) (padding must be ≤ kernel/2)")
  let (B, H, W, C) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  precondition(H + 2 * padding >= kernel && W + 2 * padding >= kernel,
               "maxPool2d: kernel \(kernel) larger than padded input \(x.shape) (padding \(padding))")
  let Ho = (H + 2 * padding - kernel) / stride + 1, Wo = (W + 2 * padding - kernel) / stride + 1
  let y = Tensor(uninitialized: [B, Ho, Wo, C])
  // Argmax as the input pixel index iy·W + ix within the image, one per output element.
  var argmax = [Int32](repeating: 0, count: y.count)
  argmax.withUnsafeMutableBufferPointer {
    maxPoolForward(out: y, argmax: $0.baseAddress!, x: x.value, kernel: kernel, stride: stride, padding: padding)
  }
  let shape = x.shape
  return makeResult(y, inputs: [x]) { dy in
    argmax.withUnsafeBufferPointer { maxPoolBackward(dx: x.gradBuffer(), dy: dy, argmax: $0.baseAddress!, inputShape: shape) }
  }
}

public func maxPoolForward(out y: Tensor, argmax: UnsafeMutablePointer<Int32>, x: Tensor, kernel k: Int, stride s: Int, padding p: Int) {
  let (H, W, C) = (x.shape[1], x.shape[2], x.shape[3])
  let (Ho, Wo) = (y.shape[1], y.shape[2])
  let xp = x.data, yp = y.data
  Parallel.forRange(y.shape[0] * Ho, grain: max(1, 4096 / max(1, Wo * C * k * k))) { r in
    for line in r {
      let b = line / Ho, oy = line % Ho
      let y0 = max(0, oy * s - p), y1 = min(H, oy * s - p + k)
      for ox in 0..<Wo {
        let x0 = max(0, ox * s - p), x1 = min(W, ox * s - p + k)
        let o = yp + (line * Wo + ox) * C, a = argmax + (line * Wo + ox) * C
        // The first in-image element seeds the max (padding is -inf and never wins).
        let first = xp + ((b * H + y0) * W + x0) * C
        o.update(from: first, count: C)
        for c in 0..<C { a[c] = Int32(y0 * W + x0) }
        for iy in y0..<y1 {
          for ix in x0..<x1 {
            let src = xp + ((b * H + iy) * W + ix) * C, idx = Int32(iy * W + ix)
            for c in 0..<C {
              let v = src[c]
              if v > o[c] || (v.isNaN && !o[c].isNaN) { o[c] = v; a[c] = idx }
            }
          }
        }
      }
    }
  }
}

/// dx[b, argmax] += dy. Windows overlap, so this is a scatter; it runs in
/// parallel over (image, channel block) pairs, which own disjoint elements of dx.
public func maxPoolBackward(dx: Tensor, dy: Tensor, argmax: UnsafePointer<Int32>, inputShape: [Int]) {
  let (B, H, W, C) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
  let outPixels = dy.shape[1] * dy.shape[2]
  let block = 64, blocks = (C + block - 1) / block
  let dp = dx.data, gp = dy.data
  Parallel.forRange(B * blocks, grain: max(1, 4096 / max(1, outPixels * block))) { r in
    for task in r {
      let b = task / blocks, c0 = (task % blocks) * block, c1 = min(C, c0 + block)
      let dimg = dp + b * H * W * C
      for px in 0..<outPixels {
        let off = (b * outPixels + px) * C
        for c in c0..<c1 { dimg[Int(argmax[off + c]) * C + c] += gp[off + c] }
      }
    }
  }
}
