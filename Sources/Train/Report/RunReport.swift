// `ecenet-dist report`: one self-contained HTML page about a run, written to
// WORK_DIR/report.html from what the trainer left there (see ReportInputs.swift):
// a header (run name, iteration, best mIoU), curves (loss terms on a log axis,
// learning rate, mIoU, throughput), the latest per-class IoU sorted worst first,
// the most confused class pairs, and sample predictions beside the ground truth.
// No script, no network: charts are inline SVG, images base64 PNG data URIs.
// It only reads the run; it never changes anything but report.html.
import Data
import Foundation

public enum RunReport {
  /// Most points a curve is drawn with; longer series are averaged in equal buckets.
  public static let maxPlotPoints = 1500
  /// Confused pairs listed.
  public static let confusedPairs = 15

  /// Renders WORK_DIR/report.html and returns its path.
  @discardableResult
  public static func write(workDir: String) throws -> String {
    let html = try render(workDir: workDir)
    let path = (workDir as NSString).appendingPathComponent("report.html")
    do { try Data(html.utf8).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
      throw ReportError.io(path: path, message: "cannot write (\(error.localizedDescription))")
    }
    return path
  }

  /// The report's HTML, without writing it.
  public static func render(workDir: String) throws -> String {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: workDir, isDirectory: &isDir), isDir.boolValue else {
      throw ReportError.missing(path: workDir, hint: "pass the --work-dir of a training run")
    }
    func file(_ name: String) -> String { (workDir as NSString).appendingPathComponent(name) }
    let history = try MetricsHistory.load(path: file("metrics.jsonl"))
    let evalPath = file("eval.json")
    let snapshot = FileManager.default.fileExists(atPath: evalPath) ? try EvalSnapshot.load(path: evalPath) : nil
    let samples = try SampleSet.load(dir: file("samples"), numClasses: snapshot?.classes.count)
    var notes = history.notes + (samples?.notes ?? [])
    if snapshot == nil && !history.evals.isEmpty {
      notes.append("metrics.jsonl has evaluations but eval.json is missing; the per-class table and confusions need it.")
    }
    if let s = samples, s.omitted > 0 { notes.append("\(s.omitted) more sample(s) in samples/ are not shown.") }
    let runName = (((workDir as NSString).standardizingPath) as NSString).lastPathComponent
    let absPath = URL(fileURLWithPath: workDir).standardizedFileURL.path
    return try Page(runName: runName, workDir: absPath, history: history, snapshot: snapshot, samples: samples, notes: notes).html()
  }

  /// Averages consecutive points in `maxPoints` equal-count buckets (mean x, mean y); shorter series are returned as they are.
  public static func decimate(_ pts: [(x: Double, y: Double)], maxPoints: Int) -> [(x: Double, y: Double)] {
    guard pts.count > maxPoints, maxPoints > 0 else { return pts }
    return (0..<maxPoints).map { b in
      let lo = b * pts.count / maxPoints, hi = (b + 1) * pts.count / maxPoints
      let slice = pts[lo..<hi]
      let n = Double(slice.count)
      return (slice.reduce(0) { $0 + $1.x } / n, slice.reduce(0) { $0 + $1.y } / n)
    }
  }
}

/// Builds the page's sections; one method per section.
private struct Page {
  let runName: String
  let workDir: String
  let history: MetricsHistory
  let snapshot: EvalSnapshot?
  let samples: SampleSet?
  let notes: [String]

  func pct(_ v: Double?, _ digits: Int = 2) -> String { v.map { String(format: "%.\(digits)f", $0 * 100) } ?? "—" }

  var bestEval: (iteration: Int, mIoU: Double)? {
    var all = history.evals.map { ($0.iteration, $0.mIoU) }
    if let s = snapshot { all.append((s.iteration, s.mIoU)) }
    return all.max { $0.1 < $1.1 || ($0.1 == $1.1 && $0.0 > $1.0) }
  }

  func html() throws -> String {
    let lastIter = max(history.train.last?.iteration ?? 0, history.evals.last?.iteration ?? 0, snapshot?.iteration ?? 0)
    var out = """
      <!DOCTYPE html>
      <html lang="en"><head><meta charset="utf-8">
      <meta http-equiv="Content-Security-Policy" content="\(HTML.contentSecurityPolicy)">
      <meta name="viewport" content="width=device-width, initial-scale=1">
      <title>\(HTML.escape(runName)) · ECENet run report</title>
      <style>\(HTML.css)</style></head><body>

      """
    out += header(lastIter: lastIter)
    out += "<nav><a href=\"#curves\">Curves</a><a href=\"#classes\">Per-class IoU</a>"
      + (snapshot != nil ? "<a href=\"#confusions\">Confusions</a>" : "") + "<a href=\"#samples\">Samples</a></nav>\n<main>\n"
    if !notes.isEmpty {
      out += "<section id=\"notes\"><ul class=\"notes\">" + notes.map { "<li>\(HTML.escape($0))</li>" }.joined() + "</ul></section>\n"
    }
    out += curves()
    out += classTable()
    out += confusions()
    out += try sampleGrid()
    let stamp = ISO8601DateFormatter().string(from: Date())
    out += "</main>\n<footer>Written by <code>ecenet-dist report</code> at \(stamp) · self-contained, no network needed</footer>\n</body></html>\n"
    return out
  }

  func header(lastIter: Int) -> String {
    func stat(_ k: String, _ v: String, _ small: String = "") -> String {
      "<div class=\"stat\"><div class=\"k\">\(k)</div><div class=\"v\">\(v)\(small.isEmpty ? "" : " <small>\(small)</small>")</div></div>"
    }
    var stats = [stat("Iteration", "\(lastIter)")]
    if let b = bestEval {
      stats.append(stat("Best mIoU", pct(b.mIoU), "at \(b.iteration)"))
    } else {
      stats.append(stat("Best mIoU", "—", "no evaluation yet"))
    }
    if let s = snapshot {
      stats.append(stat("Latest mIoU", pct(s.mIoU), "at \(s.iteration)"))
      if let a = s.aAcc { stats.append(stat("aAcc", pct(a))) }
    } else if let e = history.evals.last {
      stats.append(stat("Latest mIoU", pct(e.mIoU), "at \(e.iteration)"))
    }
    if let l = history.train.last { stats.append(stat("Loss", String(format: "%.4f", l.loss), "lr \(LineChart.formatTick(l.lr))")) }
    let rates = history.train.suffix(20).compactMap(\.itPerS)
    if !rates.isEmpty { stats.append(stat("Speed", String(format: "%.2f", rates.reduce(0, +) / Double(rates.count)), "it/s")) }
    let times = history.train.compactMap(\.time) + history.evals.compactMap(\.time)
    if let t0 = times.min(), let t1 = times.max(), t1 > t0 { stats.append(stat("Elapsed", formatDuration(t1 - t0))) }
    return "<header><h1>\(HTML.escape(runName))</h1><div class=\"sub\">ECENet run report · \(HTML.escape(workDir))</div>"
      + "<div class=\"stats\">\(stats.joined())</div></header>\n"
  }

  func chartCard(_ chart: LineChart, caption: String) -> String {
    "<div class=\"card\"><h3>\(HTML.escape(chart.title))</h3>\(chart.svg())<div class=\"caption\">\(HTML.escape(caption))</div></div>"
  }

  func series(_ name: String, _ value: (TrainRecord) -> Double?) -> LineChart.Series {
    let pts = history.train.compactMap { r in value(r).map { (x: Double(r.iteration), y: $0) } }
    return LineChart.Series(name: name, points: RunReport.decimate(pts, maxPoints: RunReport.maxPlotPoints))
  }

  func curves() -> String {
    var cards: [String] = []
    let t = history.train
    let thinned = t.count > RunReport.maxPlotPoints
      ? " \(t.count) logged points, averaged to \(RunReport.maxPlotPoints) for drawing." : ""
    if !t.isEmpty {
      let termKeys = Set(t.flatMap(\.terms.keys)).sorted()
      var loss = LineChart(title: "Loss terms", xLabel: "iteration", yLabel: "loss",
                           series: [series("loss", { $0.loss })] + termKeys.map { k in series(k, { $0.terms[k] }) }, logY: true)
      loss.series[0].color = "#1d2330"
      cards.append(chartCard(loss, caption: "Total loss and its terms on a log axis; non-positive values are not drawn." + thinned))
      var lr = LineChart(title: "Learning rate", xLabel: "iteration", yLabel: "lr", series: [series("lr", { $0.lr })])
      lr.includeZero = true
      cards.append(chartCard(lr, caption: "Learning rate at each logged iteration." + thinned))
    }
    if !history.evals.isEmpty {
      let e = history.evals
      var s = [LineChart.Series(name: "mIoU", points: e.map { (Double($0.iteration), $0.mIoU * 100) }, markers: true)]
      let acc = e.compactMap { r in r.aAcc.map { (x: Double(r.iteration), y: $0 * 100) } }
      if !acc.isEmpty { s.append(LineChart.Series(name: "aAcc", points: acc, markers: true)) }
      var chart = LineChart(title: "Validation mIoU", xLabel: "iteration", yLabel: "%", series: s)
      chart.includeZero = true
      let best = bestEval.map { String(format: " Best mIoU %.2f at iteration %d.", $0.mIoU * 100, $0.iteration) } ?? ""
      cards.append(chartCard(chart, caption: "\(e.count) evaluation(s)." + best))
    }
    if t.contains(where: { $0.gradNorm != nil }) {
      let chart = LineChart(title: "Gradient norm", xLabel: "iteration", yLabel: "‖g‖", series: [series("grad_norm", \.gradNorm)], logY: true)
      cards.append(chartCard(chart, caption: "Global gradient norm over all ranks, as the trainer logs it." + thinned))
    }
    if t.contains(where: { $0.itPerS != nil }) {
      var chart = LineChart(title: "Throughput", xLabel: "iteration", yLabel: "it/s", series: [series("it/s", \.itPerS)])
      chart.includeZero = true
      cards.append(chartCard(chart, caption: "Training iterations per second over all ranks." + thinned))
    }
    if t.contains(where: { $0.dataWait != nil || $0.commWait != nil }) {
      // Records since session 15 split comm_wait into waiting for a slower rank and the rest.
      let split = t.contains { $0.stragglerWait != nil }
      var waits = [series("data", { $0.dataWait.map { $0 * 100 } }),
                   series("communication", { ($0.commExposed ?? $0.commWait).map { $0 * 100 } })]
      if split { waits.append(series("slower ranks", { $0.stragglerWait.map { $0 * 100 } })) }
      var chart = LineChart(title: "Time spent waiting", xLabel: "iteration", yLabel: "% of step", series: waits)
      chart.includeZero = true
      cards.append(chartCard(chart, caption: "Share of each step spent waiting for the data loader and in collectives (loss normalisers, SyncBN, gradient allreduce, loss sums)"
        + (split ? ", split into communication that overlap did not hide and waiting for a slower rank to arrive." : ".")))
    }
    var out = "<section id=\"curves\"><h2>Curves<span class=\"meta\">\(t.count) training record(s), \(history.evals.count) evaluation(s)</span></h2>"
    if history.evals.isEmpty {
      out += "<p class=\"callout\">No evaluation exists yet: the mIoU curve, per-class table and confusions appear after the first evaluation.</p>"
    }
    if cards.isEmpty { out += "<p class=\"callout\">metrics.jsonl holds no training records yet.</p>" }
    return out + "<div class=\"grid\">\(cards.joined())</div></section>\n"
  }

  func swatch(_ c: Int) -> String {
    guard let p = samples?.palette, c < p.count else { return "" }
    return "<span class=\"sw\" style=\"background:rgb(\(p[c][0]),\(p[c][1]),\(p[c][2]))\"></span>"
  }

  func className(_ c: Int) -> String {
    guard let s = snapshot, c < s.classes.count else { return "class \(c)" }
    return s.classes[c].name
  }

  func classTable() -> String {
    guard let s = snapshot else {
      return "<section id=\"classes\"><h2>Per-class IoU</h2><p class=\"callout\">No evaluation yet (no eval.json in the work dir).</p></section>\n"
    }
    // Worst first; classes absent from the validation ground truth (no IoU) last, in index order.
    let rows = s.classes.sorted { a, b in
      switch (a.iou, b.iou) {
      case let (x?, y?): return x != y ? x < y : a.index < b.index
      case (nil, nil): return a.index < b.index
      case (_?, nil): return true
      case (nil, _?): return false
      }
    }
    var out = "<section id=\"classes\"><h2>Per-class IoU<span class=\"meta\">iteration \(s.iteration) · mIoU \(pct(s.mIoU))"
      + (s.aAcc.map { " · aAcc \(pct($0))" } ?? "") + " · worst first</span></h2>"
    out += "<table class=\"iou\"><thead><tr><th>#</th><th>Class</th><th class=\"barcell\">IoU</th><th class=\"num\">IoU %</th><th class=\"num\">Acc %</th></tr></thead><tbody>\n"
    for (rank, c) in rows.enumerated() {
      let bar = c.iou.map { v -> String in
        let cls = v < 0.3 ? " low" : v < 0.6 ? " mid" : ""
        return "<div class=\"bar\(cls)\" style=\"width:\(String(format: "%.1f", max(0, min(1, v)) * 100))%\"></div>"
      } ?? ""
      out += "<tr\(c.iou == nil ? " class=\"absent\"" : "") data-class=\"\(c.index)\"><td class=\"rank\">\(rank + 1)</td>"
        + "<td>\(swatch(c.index))\(HTML.escape(c.name))</td><td class=\"barcell\">\(bar)</td>"
        + "<td class=\"num\">\(pct(c.iou))</td><td class=\"num\">\(pct(c.acc))</td></tr>\n"
    }
    let absent = rows.filter { $0.iou == nil }.count
    out += "</tbody></table>"
    if absent > 0 { out += "<p class=\"notes\">\(absent) class(es) do not occur in the validation ground truth: no IoU, left out of the mean (as mmseg).</p>" }
    return out + "</section>\n"
  }

  func confusions() -> String {
    guard let s = snapshot else { return "" }
    guard let m = s.confusion else {
      return "<section id=\"confusions\"><h2>Most confused classes</h2><p class=\"callout\">eval.json has no confusion matrix.</p></section>\n"
    }
    let pairs = m.topConfusions(RunReport.confusedPairs)
    var out = "<section id=\"confusions\"><h2>Most confused classes<span class=\"meta\">ground-truth pixels predicted as another class, iteration \(s.iteration)</span></h2>"
    guard !pairs.isEmpty else { return out + "<p class=\"callout\">No confusions: every labelled pixel is predicted correctly.</p></section>\n" }
    let top = Double(pairs[0].count)
    out += "<table class=\"confusions\"><thead><tr><th>#</th><th>Ground truth</th><th>Predicted as</th><th class=\"barcell\">Pixels</th>"
      + "<th class=\"num\">Pixels</th><th class=\"num\">% of class</th></tr></thead><tbody>\n"
    for (i, p) in pairs.enumerated() {
      let share = Double(p.count) / Double(max(1, m.gtCount(p.gt)))
      out += "<tr><td class=\"rank\">\(i + 1)</td><td>\(swatch(p.gt))\(HTML.escape(className(p.gt)))</td>"
        + "<td>\(swatch(p.pred))\(HTML.escape(className(p.pred)))</td>"
        + "<td class=\"barcell\"><div class=\"bar mid\" style=\"width:\(String(format: "%.1f", Double(p.count) / top * 100))%\"></div></td>"
        + "<td class=\"num\">\(p.count)</td><td class=\"num\">\(pct(share, 1))</td></tr>\n"
    }
    return out + "</tbody></table></section>\n"
  }

  func sampleGrid() throws -> String {
    guard let set = samples, !set.samples.isEmpty else {
      return "<section id=\"samples\"><h2>Sample predictions</h2><p class=\"callout\">No samples/ in the work dir.</p></section>\n"
    }
    var out = "<section id=\"samples\"><h2>Sample predictions<span class=\"meta\">\(set.samples.count) validation image(s)"
      + (snapshot.map { ", iteration \($0.iteration)" } ?? "") + "</span></h2>"
      // Three columns of images at most 3× their width, plus gaps and padding; wider pages keep the columns together.
      + "<div class=\"samples\" style=\"max-width:\(9 * (set.samples.map(\.label.width).max() ?? 320) + 2 * 10 + 2 * 12 + 2)px\">"
      + "<div class=\"head\">Image</div><div class=\"head\">Ground truth</div><div class=\"head\">Prediction</div>\n"
    var present = Set<Int>()
    for s in set.samples {
      for v in s.label.pixels { present.insert(Int(v)) }
      for v in s.pred.pixels { present.insert(Int(v)) }
      let acc = s.pixelAccuracy.map { String(format: "pixel accuracy %.1f%%", $0 * 100) } ?? "no labelled pixels"
      // Small images (a 64-px synthetic set) are shown at most 3× their size rather than blown up to the column.
      let size = "style=\"max-width:\(3 * s.label.width)px\""
      out += "<figure><img \(size) src=\"\(try SampleSet.dataURI(rgb: s.image))\" alt=\"sample \(s.index) image\"><figcaption>sample \(s.index)</figcaption></figure>"
      out += "<figure><img \(size) class=\"lbl\" src=\"\(try set.dataURI(label: s.label))\" alt=\"sample \(s.index) ground truth\"><figcaption>&nbsp;</figcaption></figure>"
      out += "<figure><img \(size) class=\"lbl\" src=\"\(try set.dataURI(label: s.pred))\" alt=\"sample \(s.index) prediction\"><figcaption>\(acc)</figcaption></figure>\n"
    }
    out += "</div><div class=\"legend-list\">"
    for c in present.sorted() {
      if c < set.palette.count {
        out += "<span>\(swatch(c))\(HTML.escape(className(c)))</span>"
      } else {
        out += "<span><span class=\"sw\" style=\"background:#000\"></span>ignored (\(c))</span>"
      }
    }
    return out + "</div></section>\n"
  }
}
