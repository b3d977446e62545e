// A small inline-SVG line chart for the run report: axes with "nice" ticks,
// axis labels, a legend, optional log-scale y (for losses), one <polyline> per
// series. It is not a plotting library: no interaction, no stacked or bar
// charts, no automatic smoothing. Every series polyline carries
// `data-series="NAME"` and `data-points="COUNT"` so tests (and readers of the
// HTML) can find it; the points attribute holds exactly COUNT "x,y" pairs.
import Foundation

public struct LineChart {
  public struct Series {
    public var name: String
    public var points: [(x: Double, y: Double)]
    /// CSS colour; nil picks the next colour of `LineChart.palette`.
    public var color: String?
    /// Draw a dot on every point (for sparse series such as evaluations).
    public var markers: Bool
    public init(name: String, points: [(x: Double, y: Double)], color: String? = nil, markers: Bool = false) {
      self.name = name; self.points = points; self.color = color; self.markers = markers
    }
  }

  /// Colour-blind-friendly categorical colours (Okabe–Ito, with a dark blue first).
  public static let palette = ["#1f4e9c", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#7f7f7f", "#b8a600"]

  public var title: String
  public var xLabel: String
  public var yLabel: String
  public var series: [Series]
  public var logY = false
  public var width = 560
  public var height = 300
  /// Formats y tick labels; nil uses `LineChart.formatTick`.
  public var yFormat: ((Double) -> String)? = nil
  /// Fixed y range (e.g. 0…1 for mIoU); nil fits the data.
  public var yRange: ClosedRange<Double>? = nil
  /// Extend a fitted linear y range down to 0, so small wobbles of a rate or
  /// share do not fill the chart (ignored on a log axis and with `yRange`).
  public var includeZero = false

  public init(title: String, xLabel: String, yLabel: String, series: [Series], logY: Bool = false) {
    self.title = title; self.xLabel = xLabel; self.yLabel = yLabel; self.series = series; self.logY = logY
  }

  // Plot area margins: left leaves room for tick labels and the rotated y label,
  // top for the legend row (drawn above the plot so it never hides a curve).
  private let marginLeft = 64.0, marginRight = 16.0, marginBottom = 44.0
  private var showLegend: Bool { series.count > 1 }
  private var marginTop: Double { showLegend ? 34 : 14 }

  /// The points a series contributes: on a log axis only the positive, finite ones.
  func plotted(_ s: Series) -> [(x: Double, y: Double)] {
    s.points.filter { $0.x.isFinite && $0.y.isFinite && (!logY || $0.y > 0) }
  }

  public func svg() -> String {
    let all = series.flatMap(plotted)
    let w = Double(width), h = Double(height)
    let plotW = w - marginLeft - marginRight, plotH = h - marginTop - marginBottom
    var out = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(width) \(height)\" "
      + "width=\"\(width)\" height=\"\(height)\" role=\"img\" aria-label=\"\(HTML.escape(title))\">"
    guard !all.isEmpty else {
      out += "<text x=\"\(w / 2)\" y=\"\(h / 2)\" text-anchor=\"middle\" class=\"empty\">no data</text></svg>"
      return out
    }
    // x range over all series; a single x gets a unit-wide window around it.
    var x0 = all.map(\.x).min()!, x1 = all.map(\.x).max()!
    if x0 == x1 { x0 -= 1; x1 += 1 }
    var y0: Double, y1: Double
    if let r = yRange { (y0, y1) = (r.lowerBound, r.upperBound) } else {
      (y0, y1) = (all.map(\.y).min()!, all.map(\.y).max()!)
      if includeZero && !logY { (y0, y1) = (min(y0, 0), max(y1, 0)) }
    }
    let xTicks = LineChart.niceTicks(x0, x1, count: 6)
    let yTicks: [Double]
    if logY {
      (y0, y1) = (log10(y0), log10(y1))
      if y1 - y0 < 1e-9 { y0 -= 0.5; y1 += 0.5 }
      yTicks = LineChart.logTicks(y0, y1).map(log10)
      // Widen to whole ticks so the curve sits inside labelled gridlines.
      y0 = min(y0, yTicks.first ?? y0); y1 = max(y1, yTicks.last ?? y1)
    } else {
      if y1 - y0 < 1e-12 * max(1, abs(y0)) { let d = max(abs(y0) * 0.1, 1e-12); y0 -= d; y1 += d }
      let t = LineChart.niceTicks(y0, y1, count: 5)
      yTicks = t
      if yRange == nil { y0 = min(y0, t.first!); y1 = max(y1, t.last!) }
    }
    x0 = min(x0, xTicks.first!); x1 = max(x1, xTicks.last!)
    func px(_ x: Double) -> Double { marginLeft + (x - x0) / (x1 - x0) * plotW }
    func py(_ y: Double) -> Double { marginTop + plotH - ((logY ? log10(y) : y) - y0) / (y1 - y0) * plotH }
    func pyTick(_ t: Double) -> Double { marginTop + plotH - (t - y0) / (y1 - y0) * plotH }
    func f(_ v: Double) -> String { String(format: "%.1f", v) }

    // Gridlines and tick labels.
    out += "<g class=\"grid\">"
    for t in yTicks where t >= y0 - 1e-9 && t <= y1 + 1e-9 {
      let y = pyTick(t)
      let label = logY ? LineChart.formatTick(pow(10, t)) : (yFormat ?? LineChart.formatTick)(t)
      out += "<line x1=\"\(f(marginLeft))\" y1=\"\(f(y))\" x2=\"\(f(w - marginRight))\" y2=\"\(f(y))\"/>"
      out += "<text class=\"tick\" x=\"\(f(marginLeft - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(HTML.escape(label))</text>"
    }
    for t in xTicks where t >= x0 - 1e-9 && t <= x1 + 1e-9 {
      let x = px(t)
      out += "<line x1=\"\(f(x))\" y1=\"\(f(marginTop))\" x2=\"\(f(x))\" y2=\"\(f(marginTop + plotH))\"/>"
      out += "<text class=\"tick\" x=\"\(f(x))\" y=\"\(f(marginTop + plotH + 16))\" text-anchor=\"middle\">\(LineChart.formatTick(t))</text>"
    }
    out += "</g>"
    // Axes and labels.
    out += "<path class=\"axis\" d=\"M\(f(marginLeft)),\(f(marginTop))V\(f(marginTop + plotH))H\(f(w - marginRight))\"/>"
    out += "<text class=\"axis-label\" x=\"\(f(marginLeft + plotW / 2))\" y=\"\(f(h - 6))\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>"
    out += "<text class=\"axis-label\" transform=\"translate(14,\(f(marginTop + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">"
      + HTML.escape(yLabel + (logY ? " (log)" : "")) + "</text>"

    // Series, clipped to the plot area.
    out += "<g class=\"series\">"
    for (i, s) in series.enumerated() {
      let pts = plotted(s)
      let color = s.color ?? LineChart.palette[i % LineChart.palette.count]
      let coords = pts.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
      out += "<polyline data-series=\"\(HTML.escape(s.name))\" data-points=\"\(pts.count)\" fill=\"none\" stroke=\"\(color)\" "
        + "stroke-width=\"1.6\" stroke-linejoin=\"round\" points=\"\(coords)\"/>"
      if s.markers || pts.count == 1 {
        for p in pts { out += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"2.8\" fill=\"\(color)\"/>" }
      }
    }
    out += "</g>"

    // Legend: one row above the plot, from its left edge.
    if showLegend {
      var x = marginLeft
      out += "<g class=\"legend\">"
      for (i, s) in series.enumerated() {
        let color = s.color ?? LineChart.palette[i % LineChart.palette.count]
        out += "<line x1=\"\(f(x))\" y1=\"12\" x2=\"\(f(x + 16))\" y2=\"12\" stroke=\"\(color)\" stroke-width=\"3\"/>"
        out += "<text x=\"\(f(x + 21))\" y=\"16\">\(HTML.escape(s.name))</text>"
        x += 34 + 6.4 * Double(s.name.count)
      }
      out += "</g>"
    }
    return out + "</svg>"
  }

  /// Ticks at 1, 2 or 5 × 10^k covering [lo, hi], about `count` of them (Heckbert's "nice numbers").
  public static func niceTicks(_ lo: Double, _ hi: Double, count: Int) -> [Double] {
    guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
    let raw = (hi - lo) / Double(max(1, count - 1))
    let mag = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw * 0.999 } ?? 10 * mag
    let first = floor(lo / step + 1e-9) * step, last = ceil(hi / step - 1e-9) * step
    var ticks: [Double] = []
    var t = first
    while t <= last + step * 1e-6 {
      ticks.append(abs(t) < step * 1e-9 ? 0 : t)  // no "-0" or 1e-17 at zero
      t += step
    }
    return ticks
  }

  /// Log-axis ticks (values, not exponents) for log10 range [lo, hi]: decades,
  /// plus 2 and 5 within a decade when the range spans less than about two decades.
  public static func logTicks(_ lo: Double, _ hi: Double) -> [Double] {
    let d0 = Int(floor(lo + 1e-9)), d1 = Int(ceil(hi - 1e-9))
    let mantissas: [Double] = hi - lo < 2.2 ? [1, 2, 5] : [1]
    var ticks: [Double] = []
    for d in d0...max(d0, d1) {
      for m in mantissas {
        let v = m * pow(10, Double(d))
        let l = log10(v)
        // Keep the decade at or below the data and at or above it, so the axis is bracketed.
        if l >= Double(d0) - 1e-9 && l <= Double(d1) + 1e-9 { ticks.append(v) }
      }
    }
    // Drop sub-decade ticks beyond the first tick at or above the data's top.
    if let cut = ticks.firstIndex(where: { log10($0) >= hi - 1e-9 }) { ticks = Array(ticks[...cut]) }
    if let start = ticks.lastIndex(where: { log10($0) <= lo + 1e-9 }) { ticks = Array(ticks[start...]) }
    return ticks
  }

  /// Compact tick label: 0, 12, 1.5, 0.25, 20k, 1.2M, 6e-05 → "6e-5".
  public static func formatTick(_ v: Double) -> String {
    if v == 0 { return "0" }
    let a = abs(v)
    if a >= 1e6 { return trim(String(format: "%.2f", v / 1e6)) + "M" }
    if a >= 1e4 { return trim(String(format: "%.1f", v / 1e3)) + "k" }
    if a >= 0.01 { return trim(String(format: "%.3f", v)) }
    // Scientific with a short exponent: 6e-5, 2.5e-4.
    let e = Int(floor(log10(a)))
    return trim(String(format: "%.2f", v / pow(10, Double(e)))) + "e\(e)"
  }

  private static func trim(_ s: String) -> String {
    guard s.contains(".") else { return s }
    var t = s
    while t.hasSuffix("0") { t.removeLast() }
    if t.hasSuffix(".") { t.removeLast() }
    return t
  }
}
