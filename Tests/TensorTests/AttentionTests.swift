// Window partition/reverse and scaled dot-product attention (Attention.swift):
// index formulas, a naive Double reference, finite differences, and Swin's
// shifted-window attention end to end against per-token masked attention.
import Tensor
import XCTest

/// softmax(q·kᵀ·scale + bias[h] + mask[b % nW])·v with explicit loops, softmax in Double.
func naiveAttention(q: Tensor, k: Tensor, v: Tensor, bias: Tensor?, mask: Tensor?, scale: Float) -> Tensor {
  let (bp, heads, lq, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
  let lk = k.shape[2], nW = mask?.shape[0] ?? 1
  let out = Tensor.zeros(q.shape)
  for b in 0..<bp {
    for h in 0..<heads {
      for i in 0..<lq {
        var logits = [Double](repeating: 0, count: lk)
        for j in 0..<lk {
          var s: Double = 0
          for c in 0..<d { s += Double(q.data[((b * heads + h) * lq + i) * d + c]) * Double(k.data[((b * heads + h) * lk + j) * d + c]) }
          s *= Double(scale)
          if let bb = bias { s += Double(bb.data[(h * lq + i) * lk + j]) }
          if let mm = mask { s += Double(mm.data[((b % nW) * lq + i) * lk + j]) }
          logits[j] = s
        }
        let mx = logits.max()!
        let e = logits.map { Foundation.exp($0 - mx) }
        let z = e.reduce(0, +)
        for c in 0..<d {
          var o: Double = 0
          for j in 0..<lk { o += e[j] / z * Double(v.data[((b * heads + h) * lk + j) * d + c]) }
          out.data[((b * heads + h) * lq + i) * d + c] = Float(o)
        }
      }
    }
  }
  return out
}

/// Official Swin's relative_position_index for a w×w window, flattened [w⁴].
func swinRelativePositionIndex(window w: Int) -> [Int32] {
  var idx = [Int32]()
  for i in 0..<(w * w) {
    for j in 0..<(w * w) {
      let dh = i / w - j / w + w - 1, dw = i % w - j % w + w - 1
      idx.append(Int32(dh * (2 * w - 1) + dw))
    }
  }
  return idx
}

/// Official Swin's attn_mask for a shifted block: img_mask regions over
/// h_slices × w_slices, window-partitioned, −100 where region ids differ. [nW, w², w²]
func swinShiftMask(height: Int, width: Int, window w: Int, shift s: Int) -> Tensor {
  let img = Tensor.zeros([1, height, width, 1])
  let hSlices = [0..<(height - w), (height - w)..<(height - s), (height - s)..<height]
  let wSlices = [0..<(width - w), (width - w)..<(width - s), (width - s)..<width]
  var cnt: Float = 0
  for hs in hSlices {
    for ws in wSlices {
      for h in hs { for x in ws { img.data[h * width + x] = cnt } }
      cnt += 1
    }
  }
  let mw = windowPartition(Var(img), window: w).value  // [nW, w², 1]
  let nW = mw.shape[0], l = w * w
  let mask = Tensor.zeros([nW, l, l])
  for n in 0..<nW {
    for i in 0..<l {
      for j in 0..<l where mw.data[n * l + i] != mw.data[n * l + j] { mask.data[(n * l + i) * l + j] = -100 }
    }
  }
  return mask
}

final class AttentionTests: XCTestCase {
  var rng = TestRNG(seed: 11)

  func testWindowPartitionHandCase() {
    // 4×4 image of 0…15, window 2: windows TL, TR, BL, BR; tokens row-major.
    let x = Tensor(shape: [1, 4, 4, 1], values: (0..<16).map(Float.init))
    let y = windowPartition(Var(x), window: 2).value
    XCTAssertEqual(y.shape, [4, 4, 1])
    XCTAssertEqual(y.toArray(), [0, 1, 4, 5, 2, 3, 6, 7, 8, 9, 12, 13, 10, 11, 14, 15])
    XCTAssertEqual(windowReverse(Var(y), window: 2, height: 4, width: 4).value.toArray(), x.toArray())
  }

  func testWindowPartitionIndexFormulaAndRoundTrip() {
    let (b, h, w, c, win) = (2, 6, 9, 2, 3)
    let x = rng.tensor([b, h, w, c])
    let y = windowPartition(Var(x), window: win).value
    let nWc = w / win, nW = (h / win) * nWc
    XCTAssertEqual(y.shape, [b * nW, win * win, c])
    for idx in allIndices(y.shape) {
      let (n, t, ch) = (idx[0], idx[1], idx[2])
      let (bi, r) = (n / nW, n % nW)
      let hh = (r / nWc) * win + t / win, ww = (r % nWc) * win + t % win
      XCTAssertEqual(y.data[flatIndex(idx, y.shape)], x.data[flatIndex([bi, hh, ww, ch], x.shape)], "window at \(idx)")
    }
    XCTAssertEqual(windowReverse(Var(y), window: win, height: h, width: w).value.toArray(), x.toArray())
    let t = rng.tensor([b * nW, win * win, c])
    let back = windowPartition(windowReverse(Var(t), window: win, height: h, width: w), window: win).value
    XCTAssertEqual(back.toArray(), t.toArray())
  }

  func testWindowPartitionAndReverseBackward() {
    checkGradients([rng.tensor([2, 4, 6, 3])], expectShape: [12, 4, 3]) { windowPartition($0[0], window: 2) }
    checkGradients([rng.tensor([6, 9, 2])], expectShape: [3, 3, 6, 2]) {
      windowReverse($0[0], window: 3, height: 3, width: 6)
    }
  }

  func testAttentionForwardMatchesNaive() {
    // B' = 6 with nW = 3: batch b must use mask b % 3.
    let (bp, heads, l, d) = (6, 2, 5, 3)
    let q = rng.tensor([bp, heads, l, d]), k = rng.tensor([bp, heads, l, d]), v = rng.tensor([bp, heads, l, d])
    let bias = rng.tensor([heads, l, l]), mask = rng.tensor([3, l, l], -3, 0)
    let y = scaledDotProductAttention(q: Var(q), k: Var(k), v: Var(v), bias: Var(bias), mask: mask, scale: 0.7).value
    assertClose(y, naiveAttention(q: q, k: k, v: v, bias: bias, mask: mask, scale: 0.7), rtol: 1e-5, atol: 1e-6, "bias+mask")
    // Lq ≠ Lk, no bias or mask.
    let q2 = rng.tensor([2, 3, 4, 5]), k2 = rng.tensor([2, 3, 7, 5]), v2 = rng.tensor([2, 3, 7, 5])
    let y2 = scaledDotProductAttention(q: Var(q2), k: Var(k2), v: Var(v2), bias: nil, mask: nil, scale: 0.45).value
    XCTAssertEqual(y2.shape, [2, 3, 4, 5])
    assertClose(y2, naiveAttention(q: q2, k: k2, v: v2, bias: nil, mask: nil, scale: 0.45), rtol: 1e-5, atol: 1e-6, "Lq≠Lk")
    // Swin's −100 mask must drive masked keys to (numerically) zero weight.
    let hard = Tensor.filled([1, l, l], -100)
    for i in 0..<l { hard.data[i * l + i] = 0 }
    let y3 = scaledDotProductAttention(q: Var(q), k: Var(k), v: Var(v), bias: nil, mask: hard, scale: 1).value
    assertClose(y3, v, rtol: 1e-5, atol: 1e-6, "diagonal mask picks v")
  }

  func testAttentionBackward() {
    let (bp, heads, l, d) = (3, 2, 5, 3)
    let mask = rng.tensor([3, l, l], -2, 0)
    checkGradients([rng.tensor([bp, heads, l, d]), rng.tensor([bp, heads, l, d]), rng.tensor([bp, heads, l, d]),
                    rng.tensor([heads, l, l])], expectShape: [bp, heads, l, d]) { x in
      scaledDotProductAttention(q: x[0], k: x[1], v: x[2], bias: x[3], mask: mask, scale: 0.6)
    }
    // nW = 1 dividing B' = 3, bias summed over all three batches.
    let mask1 = rng.tensor([1, l, l])
    checkGradients([rng.tensor([bp, heads, l, d]), rng.tensor([bp, heads, l, d]), rng.tensor([bp, heads, l, d]),
                    rng.tensor([heads, l, l])]) { x in
      scaledDotProductAttention(q: x[0], k: x[1], v: x[2], bias: x[3], mask: mask1, scale: 1.3)
    }
    checkGradients([rng.tensor([2, 3, 4, 3]), rng.tensor([2, 3, 7, 3]), rng.tensor([2, 3, 7, 3])],
                   expectShape: [2, 3, 4, 3]) { x in
      scaledDotProductAttention(q: x[0], k: x[1], v: x[2], bias: nil, mask: nil, scale: 0.5)
    }
    // The same Var as q, k and v (self-attention without projections): gradients add up.
    checkGradients([rng.tensor([2, 1, 4, 3])]) { x in
      scaledDotProductAttention(q: x[0], k: x[0], v: x[0], bias: nil, mask: nil, scale: 0.8)
    }
  }

  /// windowAttention reads q, k, v from qkv [B', n, 3·C] and writes [B', n, C]
  /// in place: it must give the bits of the copy-based composition (official
  /// Swin's reshape/permute, scaledDotProductAttention, permute back) for the
  /// output and for the qkv and bias gradients, and pass finite differences.
  func testWindowAttentionFromPackedQKVMatchesTheComposition() {
    let (bp, n, heads, d) = (4, 5, 2, 3), c = heads * d
    let qkv = rng.tensor([bp, n, 3 * c]), bias = rng.tensor([heads, n, n]), mask = rng.tensor([2, n, n], -2, 0)
    let seed = rng.tensor([bp, n, c])
    func run(_ packed: Bool) -> [[UInt32]] {
      let x = Var(qkv.copy(), requiresGrad: true), b = Var(bias.copy(), requiresGrad: true)
      let y = withGradients { () -> Var in
        if packed { return windowAttention(qkv: x, heads: heads, bias: b, mask: mask, scale: 0.7) }
        let parts = split(permute(x.reshaped([bp, n, 3, heads, d]), [2, 0, 3, 1, 4]), sizes: [1, 1, 1], axis: 0)
        let (q, k, v) = (parts[0].reshaped([bp, heads, n, d]), parts[1].reshaped([bp, heads, n, d]),
                         parts[2].reshaped([bp, heads, n, d]))
        let o = scaledDotProductAttention(q: q, k: k, v: v, bias: b, mask: mask, scale: 0.7)
        return permute(o, [0, 2, 1, 3]).reshaped([bp, n, c])
      }
      withGradients { (y * Var(seed)).sum() }.backward()
      return [y.value, x.grad!, b.grad!].map { $0.toArray().map(\.bitPattern) }
    }
    XCTAssertEqual(run(true), run(false))
    checkGradients([rng.tensor([bp, n, 3 * c]), rng.tensor([heads, n, n])], expectShape: [bp, n, c]) { x in
      windowAttention(qkv: x[0], heads: heads, bias: x[1], mask: mask, scale: 0.7)
    }
    checkGradients([rng.tensor([2, 4, 3 * 4])], expectShape: [2, 4, 4]) { x in
      windowAttention(qkv: x[0], heads: 1, bias: nil, mask: nil, scale: 1.1)
    }
  }

  func testAttentionAcrossSliceChunks() {
    // 290×310 scores per slice: the kernel works in chunks of 2 slices here, so
    // B'·heads = 3 gives a full and a partial chunk.
    let (bp, heads, lq, lk, d) = (3, 1, 290, 310, 4)
    let q = rng.tensor([bp, heads, lq, d]), k = rng.tensor([bp, heads, lk, d]), v = rng.tensor([bp, heads, lk, d])
    let bias = rng.tensor([heads, lq, lk]), mask = rng.tensor([3, lq, lk], -2, 0)
    let y = scaledDotProductAttention(q: Var(q), k: Var(k), v: Var(v), bias: Var(bias), mask: mask, scale: 0.9).value
    assertClose(y, naiveAttention(q: q, k: k, v: v, bias: bias, mask: mask, scale: 0.9), rtol: 1e-4, atol: 1e-6, "chunked")
    checkGradients([q, k, v, bias], elements: 16) { x in
      scaledDotProductAttention(q: x[0], k: x[1], v: x[2], bias: x[3], mask: mask, scale: 0.9)
    }
  }

  /// Swin's shifted-window attention path, as SwinTransformerBlock composes it:
  /// roll by −s, partition, [B', w², heads·d] → [B', heads, w², d], attention with
  /// the gathered relative-position bias and the shift mask, back, reverse, roll by +s.
  func swinShiftedWindowAttention(q: Var, k: Var, v: Var, table: Var, mask: Tensor,
                                  heads: Int, window w: Int, shift s: Int, scale: Float) -> Var {
    let (h, wd) = (q.shape[1], q.shape[2])
    let d = q.shape[3] / heads
    func toHeads(_ x: Var) -> Var {
      let win = windowPartition(rollSpatial(x, shiftH: -s, shiftW: -s), window: w)  // [B', w², heads·d]
      return permute(win.reshaped([win.shape[0], w * w, heads, d]), [0, 2, 1, 3])   // [B', heads, w², d]
    }
    let rel = gatherRows(table, indices: swinRelativePositionIndex(window: w))       // [w⁴, heads]
    let bias = permute(rel.reshaped([w * w, w * w, heads]), [2, 0, 1])               // [heads, w², w²]
    let o = scaledDotProductAttention(q: toHeads(q), k: toHeads(k), v: toHeads(v), bias: bias, mask: mask, scale: scale)
    let back = permute(o, [0, 2, 1, 3]).reshaped([o.shape[0], w * w, heads * d])     // [B', w², heads·d]
    return rollSpatial(windowReverse(back, window: w, height: h, width: wd), shiftH: s, shiftW: s)
  }

  func testSwinShiftedWindowAttentionMatchesPerTokenMaskedAttention() {
    let (b, h, wd, heads, d, w, s) = (2, 6, 9, 2, 3, 3, 1)
    let c = heads * d
    let q = rng.tensor([b, h, wd, c]), k = rng.tensor([b, h, wd, c]), v = rng.tensor([b, h, wd, c])
    let table = rng.tensor([(2 * w - 1) * (2 * w - 1), heads])
    let mask = swinShiftMask(height: h, width: wd, window: w, shift: s)
    XCTAssertEqual(mask.shape, [(h / w) * (wd / w), w * w, w * w])
    let scale: Float = 1 / Float(d).squareRoot()
    let y = swinShiftedWindowAttention(q: Var(q), k: Var(k), v: Var(v), table: Var(table), mask: mask,
                                       heads: heads, window: w, shift: s, scale: scale).value

    // Naive: each token attends to the tokens sharing its window in the rolled
    // frame, adding the table bias of their in-window offset and −100 when their
    // img_mask regions (defined on the rolled frame) differ.
    func region(_ p: Int, _ n: Int) -> Int { p < n - w ? 0 : (p < n - s ? 1 : 2) }
    let expected = Tensor.zeros([b, h, wd, c])
    for bi in 0..<b {
      for y0 in 0..<h {
        for x0 in 0..<wd {
          let (ry, rx) = (((y0 - s) % h + h) % h, ((x0 - s) % wd + wd) % wd)  // rolled-frame position
          let keys = allIndices([h, wd]).filter { p in
            let (ky, kx) = ((p[0] - s + h) % h, (p[1] - s + wd) % wd)
            return ky / w == ry / w && kx / w == rx / w
          }
          for hd in 0..<heads {
            var logits = [Double]()
            for p in keys {
              let (ky, kx) = ((p[0] - s + h) % h, (p[1] - s + wd) % wd)
              var dot: Double = 0
              for j in 0..<d {
                dot += Double(q.data[flatIndex([bi, y0, x0, hd * d + j], q.shape)])
                  * Double(k.data[flatIndex([bi, p[0], p[1], hd * d + j], k.shape)])
              }
              let relIdx = (ry % w - ky % w + w - 1) * (2 * w - 1) + (rx % w - kx % w + w - 1)
              var logit = dot * Double(scale) + Double(table.data[relIdx * heads + hd])
              if region(ry, h) * 3 + region(rx, wd) != region(ky, h) * 3 + region(kx, wd) { logit -= 100 }
              logits.append(logit)
            }
            let mx = logits.max()!
            let e = logits.map { Foundation.exp($0 - mx) }, z = e.reduce(0, +)
            for j in 0..<d {
              var o: Double = 0
              for (n, p) in keys.enumerated() { o += e[n] / z * Double(v.data[flatIndex([bi, p[0], p[1], hd * d + j], v.shape)]) }
              expected.data[flatIndex([bi, y0, x0, hd * d + j], expected.shape)] = Float(o)
            }
          }
        }
      }
    }
    assertClose(y, expected, rtol: 1e-4, atol: 1e-5, "shifted-window attention")
  }

  func testSwinShiftedWindowAttentionBackward() {
    let (h, wd, heads, d, w, s) = (6, 6, 2, 2, 3, 1)
    let mask = swinShiftMask(height: h, width: wd, window: w, shift: s)
    checkGradients([rng.tensor([1, h, wd, heads * d]), rng.tensor([1, h, wd, heads * d]),
                    rng.tensor([1, h, wd, heads * d]), rng.tensor([(2 * w - 1) * (2 * w - 1), heads])],
                   expectShape: [1, h, wd, heads * d]) { x in
      swinShiftedWindowAttention(q: x[0], k: x[1], v: x[2], table: x[3], mask: mask,
                                 heads: heads, window: w, shift: s, scale: 0.7)
    }
  }
}
