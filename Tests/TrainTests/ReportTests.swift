// The run report (Sources/Train/Report): fixture work dirs that follow the
// trainer's contract (metrics.jsonl, eval.json, samples/), rendered and read
// back; errors that name file and line; and a headless-Chromium render that
// checks the page loads with nothing refused or failing in the console.
import Data
import Foundation
import Train
import XCTest

final class ReportTests: XCTestCase {
  // MARK: fixtures

  var dirs: [String] = []
  override func tearDown() {
    for d in dirs { try? FileManager.default.removeItem(atPath: d) }
    dirs = []
  }

  func tempDir(_ name: String = "run") -> String {
    let root = (NSTemporaryDirectory() as NSString).appendingPathComponent("ecenet-report-\(UUID().uuidString)")
    let d = (root as NSString).appendingPathComponent(name)
    try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    dirs.append(root)
    return d
  }

  func write(_ text: String, _ dir: String, _ name: String) {
    try! Data(text.utf8).write(to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent(name)))
  }

  func json(_ obj: Any) -> String {
    String(data: try! JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), encoding: .utf8)!
  }

  /// A training line as the trainer writes it: a poly-decayed lr, a decaying loss and its terms.
  func trainLine(_ it: Int, total: Int = 1000) -> String {
    let lr = 6e-5 * pow(1 - Double(it) / Double(total + 1), 1.0)
    let seg = 2.5 * exp(-Double(it) / 300) + 0.3, cls = 0.4 * exp(-Double(it) / 200) + 0.05
    return json(["type": "train", "iteration": it, "lr": lr, "loss": seg + cls + 0.2, "loss_seg": seg, "loss_cls": cls,
                 "loss_focal": 0.05, "loss_dice": 0.1, "loss_div": 0.05, "grad_norm": 3 * exp(-Double(it) / 500) + 0.5, "it_per_s": 1.5 + Double(it % 7) * 0.01,
                 "data_wait": 0.04, "comm_wait": 0.12, "straggler_wait": 0.05, "comm_exposed": 0.07,
                 "time": 1_700_000_000 + Double(it) * 0.7])
  }

  func evalLine(_ it: Int, _ miou: Double) -> String {
    json(["type": "eval", "iteration": it, "mIoU": miou, "aAcc": miou + 0.3, "time": 1_700_000_000 + Double(it) * 0.7 + 5])
  }

  /// eval.json with the given IoUs (nil = class absent from the ground truth) and a confusion matrix.
  func evalJSON(names: [String], ious: [Double?], confusion: [Int]? = nil, iteration: Int = 10, mIoU: Double = 0.5) -> String {
    let n = names.count
    // Default: a strong diagonal and uneven off-diagonal counts.
    let counts = confusion ?? (0..<(n * n)).map { $0 % (n + 1) == 0 ? 5000 : ($0 * $0 * 37) % 101 * ($0 % 3 + 1) }
    let classes: [[String: Any]] = zip(names, ious).map { name, iou in
      ["name": name, "iou": iou.map { $0 as Any } ?? NSNull(), "acc": iou.map { min(1, $0 + 0.1) as Any } ?? NSNull()]
    }
    return json(["iteration": iteration, "mIoU": mIoU, "aAcc": 0.78, "classes": classes,
                 "confusion": ["num_classes": n, "counts": counts]])
  }

  static let names = ["wall", "building", "sky", "floor", "tree", "road", "person", "car"]
  static let palette: [[UInt8]] = [[120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50],
                                   [4, 200, 3], [140, 140, 140], [150, 5, 61], [0, 102, 200]]

  /// Writes samples/: a gradient photo, a label of horizontal class bands with an ignored (255) strip, a prediction off by one band.
  func writeSamples(_ dir: String, count: Int, width: Int = 96, height: Int = 64) throws -> [Image8] {
    let s = (dir as NSString).appendingPathComponent("samples")
    try FileManager.default.createDirectory(atPath: s, withIntermediateDirectories: true)
    write(json(ReportTests.palette.map { $0.map(Int.init) }), s, "palette.json")
    // Padded to 256 entries so the ignore index 255 is a valid palette index.
    let pal = ReportTests.palette.flatMap { $0 } + [UInt8](repeating: 0, count: (256 - ReportTests.palette.count) * 3)
    var labels: [Image8] = []
    for k in 0..<count {
      var rgb = [UInt8](), label = [UInt8](), pred = [UInt8]()
      for y in 0..<height {
        for x in 0..<width {
          rgb += [UInt8(x * 255 / width), UInt8(y * 255 / height), UInt8((k * 60) % 256)]
          let c = UInt8((y * 8 / height + k) % 8)
          label.append(x < 4 ? 255 : c)
          pred.append(y % 16 < 12 ? c : (c + 1) % 8)
        }
      }
      let l = Image8(width: width, height: height, channels: 1, pixels: label)
      labels.append(l)
      func put(_ img: Image8, _ part: String, palette: [UInt8]? = nil) throws {
        try Data(PNGCodec.encode(img, palette: palette)).write(to: URL(fileURLWithPath: (s as NSString).appendingPathComponent("sample_\(k)_\(part).png")))
      }
      try put(Image8(width: width, height: height, channels: 3, pixels: rgb), "image")
      try put(l, "label", palette: pal)
      try put(Image8(width: width, height: height, channels: 1, pixels: pred), "pred", palette: pal)
    }
    return labels
  }

  /// A complete run: `trains` training lines every 10 iterations, `evals` evaluations, eval.json, samples.
  func fullRun(trains: Int = 37, evals: [Double] = [0.21, 0.33, 0.41], samples: Int = 3) throws -> String {
    let d = tempDir("ecenet_swin-t_synthetic")
    var lines = (1...trains).map { trainLine($0 * 10, total: trains * 10) }
    for (i, m) in evals.enumerated() { lines.insert(evalLine((i + 1) * 100, m), at: min(lines.count, (i + 1) * 10)) }
    write(lines.joined(separator: "\n") + "\n", d, "metrics.jsonl")
    if !evals.isEmpty {
      // eval.json is the latest evaluation, the last eval line.
      write(evalJSON(names: ReportTests.names, ious: [0.62, 0.35, 0.91, nil, 0.48, 0.12, 0.27, 0.33],
                     iteration: evals.count * 100, mIoU: evals.last!), d, "eval.json")
    }
    if samples > 0 { _ = try writeSamples(d, count: samples) }
    return d
  }

  // MARK: reading the HTML back

  /// The polyline of a series: its data-points attribute and the number of "x,y" pairs in points="…".
  func polyline(_ html: String, series: String, file: StaticString = #filePath, line: UInt = #line) -> (declared: Int, pairs: Int)? {
    guard let r = html.range(of: "<polyline data-series=\"\(series)\"") else { return nil }
    let tag = html[r.lowerBound...].prefix { $0 != ">" }
    func attr(_ name: String) -> String? {
      guard let a = tag.range(of: " \(name)=\"") else { return nil }
      return String(tag[a.upperBound...].prefix { $0 != "\"" })
    }
    let pts = attr("points")!.split(separator: " ")
    for p in pts { XCTAssertEqual(p.split(separator: ",").count, 2, "point \(p) of \(series)", file: file, line: line) }
    return (Int(attr("data-points")!)!, pts.count)
  }

  /// data-class of each row of the per-class table, top to bottom.
  func tableOrder(_ html: String) -> [Int] {
    guard let t = html.range(of: "<table class=\"iou\">"), let end = html.range(of: "</table>", range: t.upperBound..<html.endIndex) else { return [] }
    let body = html[t.upperBound..<end.lowerBound]
    return body.components(separatedBy: "data-class=\"").dropFirst().map { Int($0.prefix { $0 != "\"" })! }
  }

  // MARK: tests

  func testCurvesHaveOnePointPerRecord() throws {
    let d = try fullRun(trains: 37, evals: [0.21, 0.33, 0.41], samples: 0)
    let path = try RunReport.write(workDir: d)
    XCTAssertEqual(path, (d as NSString).appendingPathComponent("report.html"))
    let html = try String(contentsOfFile: path, encoding: .utf8)
    for s in ["loss", "loss_seg", "loss_cls", "loss_focal", "loss_dice", "loss_div", "lr", "grad_norm", "it/s", "data", "communication",
              "slower ranks"] {
      let p = try XCTUnwrap(polyline(html, series: s), "series \(s)")
      XCTAssertEqual(p.declared, 37, s)
      XCTAssertEqual(p.pairs, 37, s)
    }
    for s in ["mIoU", "aAcc"] {
      let p = try XCTUnwrap(polyline(html, series: s), "series \(s)")
      XCTAssertEqual(p.pairs, 3, s)
    }
    XCTAssertTrue(html.contains("<h1>ecenet_swin-t_synthetic</h1>"), "run name in the header")
    XCTAssertTrue(html.contains("Best mIoU</div><div class=\"v\">41.00 <small>at 300</small>"), "best mIoU in the header")
    XCTAssertTrue(html.contains("loss (log)"), "loss axis says it is logarithmic")
  }

  func testLogAxisLeavesOutNonPositiveValuesAndLongSeriesAreAveraged() throws {
    let d = tempDir()
    var lines = (1...5).map { trainLine($0) }
    // A loss term that is exactly 0 at one iteration cannot sit on a log axis.
    lines[2] = lines[2].replacingOccurrences(of: "\"loss_div\":0.05", with: "\"loss_div\":0")
    write(lines.joined(separator: "\n") + "\n", d, "metrics.jsonl")
    let html = try RunReport.render(workDir: d)
    XCTAssertEqual(polyline(html, series: "loss_div")?.pairs, 4)
    XCTAssertEqual(polyline(html, series: "loss")?.pairs, 5)

    let long = (0..<4000).map { (x: Double($0), y: Double($0 % 2)) }
    let thin = RunReport.decimate(long, maxPoints: RunReport.maxPlotPoints)
    XCTAssertEqual(thin.count, RunReport.maxPlotPoints)
    XCTAssertEqual(thin.map(\.y).reduce(0, +) / Double(thin.count), 0.5, accuracy: 0.01, "bucket means keep the mean")
    XCTAssertEqual(thin.first!.x, 0.5, accuracy: 1e-9)
    XCTAssertTrue(zip(thin, thin.dropFirst()).allSatisfy { $0.x < $1.x }, "x stays increasing")
  }

  func testTicks() {
    XCTAssertEqual(LineChart.niceTicks(0, 97, count: 6), [0, 20, 40, 60, 80, 100])
    XCTAssertEqual(LineChart.niceTicks(0.3, 2.9, count: 5), [0, 1, 2, 3])
    let log = LineChart.logTicks(log10(0.03), log10(4))
    XCTAssertEqual(log.first!, 0.02, accuracy: 1e-12, "starts at the tick at or below the data")
    XCTAssertEqual(log.last!, 5, accuracy: 1e-12, "ends at the tick at or above the data")
    XCTAssertEqual(LineChart.logTicks(log10(1e-4), log10(20)).count, 7, "decades only over more than two decades")
    XCTAssertEqual(LineChart.formatTick(6e-5), "6e-5")
    XCTAssertEqual(LineChart.formatTick(20000), "20k")
    XCTAssertEqual(LineChart.formatTick(0.25), "0.25")
  }

  func testClassTableIsSortedWorstFirstWithAbsentClassesLast() throws {
    let d = try fullRun(samples: 0)
    let html = try RunReport.render(workDir: d)
    // ious: wall .62, building .35, sky .91, floor nil, tree .48, road .12, person .27, car .33
    XCTAssertEqual(tableOrder(html), [5, 6, 7, 1, 4, 0, 2, 3])
    XCTAssertTrue(html.contains("<td class=\"num\">12.00</td>"))
    XCTAssertTrue(html.contains("style=\"width:12.0%\""), "the worst class's bar is 12% wide")
  }

  func testConfusedPairsAreLargestFirst() throws {
    let d = tempDir()
    write(trainLine(10) + "\n" + evalLine(10, 0.5) + "\n", d, "metrics.jsonl")
    // gt row, pred column: a→b 30, b→c 70, c→a 5
    let counts = [100, 30, 0,
                  0, 100, 70,
                  5, 0, 100]
    write(evalJSON(names: ["a", "b", "c"], ious: [0.7, 0.5, 0.6], confusion: counts), d, "eval.json")
    let html = try RunReport.render(workDir: d)
    let section = try XCTUnwrap(html.components(separatedBy: "<section id=\"confusions\">").last)
    let rows = section.components(separatedBy: "<tr><td class=\"rank\">").dropFirst().map { row in
      row.components(separatedBy: "<td>").dropFirst().prefix(2).map { $0.components(separatedBy: "</td>")[0] }
    }
    XCTAssertEqual(rows, [["b", "c"], ["a", "b"], ["c", "a"]])
    XCTAssertTrue(section.contains("<td class=\"num\">70</td><td class=\"num\">41.2</td>"), "70 of b's 170 pixels")
  }

  func testHTMLInClassNamesAndRunNameIsEscaped() throws {
    let d = tempDir("a<b>&\"run\"")
    write(trainLine(10) + "\n" + evalLine(10, 0.5) + "\n", d, "metrics.jsonl")
    write(evalJSON(names: ["<script>alert('x')</script>", "tom & \"jerry\""], ious: [0.1, 0.2]), d, "eval.json")
    let html = try RunReport.render(workDir: d)
    XCTAssertFalse(html.contains("<script"), "no raw markup from a class name")
    XCTAssertTrue(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"))
    XCTAssertTrue(html.contains("tom &amp; &quot;jerry&quot;"))
    XCTAssertTrue(html.contains("<h1>a&lt;b&gt;&amp;&quot;run&quot;</h1>"))
  }

  func testTrainingOnlyRunRendersAndSaysThereIsNoEvaluation() throws {
    let d = tempDir()
    write((1...12).map { trainLine($0 * 10) }.joined(separator: "\n") + "\n", d, "metrics.jsonl")
    let html = try RunReport.render(workDir: d)
    XCTAssertTrue(html.contains("No evaluation exists yet"))
    XCTAssertTrue(html.contains("no evaluation yet"), "header says so too")
    XCTAssertEqual(polyline(html, series: "loss")?.pairs, 12)
    XCTAssertNil(polyline(html, series: "mIoU"))
    XCTAssertEqual(tableOrder(html), [])
  }

  func testPageIsSelfContained() throws {
    let d = try fullRun(samples: 2)
    let html = try RunReport.render(workDir: d)
    XCTAssertFalse(html.lowercased().contains("<script"))
    XCTAssertFalse(html.contains("<link"))
    XCTAssertFalse(html.contains("url("))
    XCTAssertFalse(html.contains("@import"))
    let srcs = html.components(separatedBy: " src=\"").dropFirst().map { $0.prefix(22) }
    XCTAssertEqual(srcs.count, 6, "image, label and prediction per sample")
    XCTAssertTrue(srcs.allSatisfy { $0 == "data:image/png;base64," }, "\(srcs)")
    XCTAssertFalse(html.contains("href=\"http"))
    XCTAssertTrue(html.contains("Content-Security-Policy"))
  }

  func testSampleLabelsKeepTheirClassIndices() throws {
    let d = try fullRun(samples: 2)
    let labels = try writeSamples(d, count: 2)
    let html = try RunReport.render(workDir: d)
    let uris = html.components(separatedBy: "src=\"data:image/png;base64,").dropFirst().map { String($0.prefix { $0 != "\"" }) }
    // Order per sample: image, ground truth, prediction. 96×64 fits in 320, so no resize.
    let gt = try PNGCodec.decodeLabel([UInt8](XCTUnwrap(Data(base64Encoded: uris[4]))))
    XCTAssertEqual(gt, labels[1], "sample 1's ground truth round-trips exactly, 255 included")
    let photo = try PNGCodec.decodeRGB([UInt8](XCTUnwrap(Data(base64Encoded: uris[0]))))
    XCTAssertEqual(photo.width, 96)
    XCTAssertTrue(html.contains("ignored (255)"))
    // Prediction matches the label on rows y % 16 < 12, on labelled pixels (x ≥ 4): 3/4.
    XCTAssertTrue(html.contains("pixel accuracy 75.0%"))
  }

  func testLargeSamplesAreShrunkWithNearestForLabels() throws {
    let d = try fullRun(samples: 0)
    _ = try writeSamples(d, count: 1, width: 640, height: 480)
    let html = try RunReport.render(workDir: d)
    let uris = html.components(separatedBy: "src=\"data:image/png;base64,").dropFirst().map { String($0.prefix { $0 != "\"" }) }
    let gt = try PNGCodec.decodeLabel([UInt8](XCTUnwrap(Data(base64Encoded: uris[1]))))
    XCTAssertEqual([gt.width, gt.height], [320, 240])
    XCTAssertEqual(Set(gt.pixels), Set([0, 1, 2, 3, 4, 5, 6, 7, 255]), "no blended class indices")
  }

  func testMalformedMetricsLinesNameFileAndLine() throws {
    let d = tempDir()
    let good = trainLine(10)
    let cases: [(String, String)] = [
      ("{not json", "metrics.jsonl:2: not valid JSON"),
      (#"{"type":"train","iteration":"20","lr":0.1,"loss":1}"#, "metrics.jsonl:2: \"iteration\" is \"20\"; expected an integer"),
      (#"{"type":"train","iteration":20,"lr":0.1}"#, "metrics.jsonl:2: \"loss\" is missing; expected a number"),
      (#"{"type":"train","iteration":20,"lr":0.1,"loss":1,"loss_seg":true}"#, "metrics.jsonl:2: \"loss_seg\" is true; expected a number"),
      (#"{"type":"eval","iteration":20,"mIoU":41.5}"#, "metrics.jsonl:2: \"mIoU\" is 41.5; expected a fraction in 0…1"),
      (#"[1,2]"#, "metrics.jsonl:2: expected a JSON object"),
      (#"{"iteration":20}"#, "metrics.jsonl:2: \"type\" is missing"),
    ]
    for (bad, expected) in cases {
      write([good, bad, good].joined(separator: "\n") + "\n", d, "metrics.jsonl")
      XCTAssertThrowsError(try RunReport.render(workDir: d), bad) { e in
        XCTAssertTrue("\(e)".hasPrefix((d as NSString).appendingPathComponent(expected)), "\(e)\nexpected \(expected)")
      }
    }
    // An incomplete last line (no newline yet) is a record being written: left out, with a note.
    write(good + "\n" + #"{"type":"train","itera"#, d, "metrics.jsonl")
    let html = try RunReport.render(workDir: d)
    XCTAssertTrue(html.contains("metrics.jsonl line 2 is incomplete"))
    XCTAssertEqual(polyline(html, series: "loss")?.pairs, 1)
    // The same line with its newline is an error.
    write(good + "\n" + #"{"type":"train","itera"# + "\n", d, "metrics.jsonl")
    XCTAssertThrowsError(try RunReport.render(workDir: d))
  }

  func testMissingAndMalformedFilesAreNamed() throws {
    let d = tempDir()
    XCTAssertThrowsError(try RunReport.render(workDir: d)) { e in
      XCTAssertEqual(e as? ReportError, .missing(path: (d as NSString).appendingPathComponent("metrics.jsonl"),
        hint: "is this a work dir of `ecenet-dist train`? (it writes metrics.jsonl at the first logged iteration)"))
    }
    XCTAssertThrowsError(try RunReport.render(workDir: d + "/nope")) { e in XCTAssertTrue("\(e)".contains("/nope: not found")) }
    write(trainLine(10) + "\n", d, "metrics.jsonl")
    write("{\n  \"iteration\": 10,\n  \"mIoU\": 0.5,\n  \"classes\": [\n  ,]\n}", d, "eval.json")
    XCTAssertThrowsError(try RunReport.render(workDir: d)) { e in
      XCTAssertTrue("\(e)".hasPrefix((d as NSString).appendingPathComponent("eval.json:5: not valid JSON")), "\(e)")
    }
    write(evalJSON(names: ["a", "b"], ious: [0.1, 0.2]).replacingOccurrences(of: "\"iou\":0.2", with: "\"iou\":\"high\""), d, "eval.json")
    XCTAssertThrowsError(try RunReport.render(workDir: d)) { e in
      XCTAssertTrue("\(e)".hasSuffix("eval.json: \"classes[1].iou\" is \"high\"; expected a number or null"), "\(e)")
    }
    write(evalJSON(names: ["a", "b"], ious: [0.1, 0.2], confusion: [1, 2, 3]), d, "eval.json")
    XCTAssertThrowsError(try RunReport.render(workDir: d)) { e in
      XCTAssertTrue("\(e)".contains("eval.json: confusion.counts must be an array of num_classes² = 4 integers"), "\(e)")
    }
    write(evalJSON(names: ["a", "b"], ious: [0.1, 0.2]), d, "eval.json")
    _ = try writeSamples(d, count: 1)
    try FileManager.default.removeItem(atPath: d + "/samples/sample_0_pred.png")
    XCTAssertThrowsError(try RunReport.render(workDir: d)) { e in
      XCTAssertTrue("\(e)".contains("samples/sample_0_pred.png: not found"), "\(e)")
    }
  }

  // MARK: browser

  func chromiumPath() -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin").split(separator: ":") {
      for name in ["chromium", "chromium-browser"] {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
      }
    }
    return nil
  }

  /// Runs a process with a time limit; returns (exit status, stdout + stderr). Output goes
  /// through a file, so a chatty process never blocks on a full pipe.
  func run(_ exe: String, _ args: [String], timeout: TimeInterval, logFile: String) throws -> (Int32, String) {
    _ = FileManager.default.createFile(atPath: logFile, contents: nil)
    let log = try XCTUnwrap(FileHandle(forWritingAtPath: logFile))
    defer { try? log.close() }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    p.standardOutput = log
    p.standardError = log
    try p.run()
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.1) }
    if p.isRunning { p.terminate(); XCTFail("\(exe) ran past \(timeout) s") }
    p.waitUntilExit()
    return (p.terminationStatus, (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "")
  }

  /// Screenshots `page` with headless Chromium; returns its exit status, full log, and the
  /// page's console lines (script errors, resources the CSP refused, console.log calls).
  func screenshot(_ chromium: String, page: String, png: String, size: String) throws -> (status: Int32, log: String, console: [String]) {
    let dir = (png as NSString).deletingLastPathComponent
    let profile = (dir as NSString).appendingPathComponent("chromium-profile-\(UUID().uuidString)")
    let (status, log) = try run(chromium, [
      "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=\(profile)",
      "--enable-logging=stderr", "--v=0", "--screenshot=\(png)", "--window-size=\(size)",
      URL(fileURLWithPath: page).absoluteString,
    ], timeout: 120, logFile: png + ".log")
    let console = log.split(separator: "\n").map(String.init).filter {
      $0.contains(":CONSOLE") || $0.contains("Uncaught") || $0.contains("Refused to") || $0.contains("ERR_FILE_NOT_FOUND")
    }
    return (status, log, console)
  }

  /// The console check itself: a page with a script error and a blocked network image must be caught.
  func testChromiumConsoleCheckCatchesScriptErrorsAndBlockedLoads() throws {
    guard let chromium = chromiumPath() else {
      throw XCTSkip("chromium is not installed (run scripts/setup-report-test.sh); the headless console check is not checked")
    }
    let d = tempDir()
    let page = (d as NSString).appendingPathComponent("bad.html")
    write("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; script-src 'unsafe-inline'\">"
          + "</head><body><img src=\"https://example.com/x.png\"><script>undefinedFunction()</script></body></html>", d, "bad.html")
    let r = try screenshot(chromium, page: page, png: (d as NSString).appendingPathComponent("bad.png"), size: "400,300")
    XCTAssertEqual(r.status, 0, r.log)
    XCTAssertTrue(r.console.contains { $0.contains("undefinedFunction is not defined") }, r.log)
    XCTAssertTrue(r.console.contains { $0.contains("https://example.com/x.png") }, r.log)
  }

  func testReportRendersInHeadlessChromium() throws {
    guard let chromium = chromiumPath() else {
      throw XCTSkip("chromium is not installed (run scripts/setup-report-test.sh); the headless render of report.html is not checked")
    }
    let d = try fullRun(trains: 120, evals: [0.12, 0.25, 0.33, 0.38, 0.41], samples: 4)
    let page = try RunReport.write(workDir: d)
    let png = (d as NSString).appendingPathComponent("report.png")
    let (status, log, console) = try screenshot(chromium, page: page, png: png, size: "1200,2400")
    XCTAssertEqual(status, 0, log)
    // The page's console must be silent: no script, nothing refused by the CSP, no missing file.
    XCTAssertEqual(console, [], "browser console:\n\(console.joined(separator: "\n"))")
    let bytes = try XCTUnwrap(FileManager.default.contents(atPath: png), "no screenshot; chromium said:\n\(log)")
    XCTAssertGreaterThan(bytes.count, 50_000, "a screenshot of charts, tables and images is not a few kB")
    let shot = try PNGCodec.decodeRGB([UInt8](bytes))
    XCTAssertEqual([shot.width, shot.height], [1200, 2400])
    // Non-trivial: many distinct colours (charts, bars, sample images), and the dark header at the top.
    var colours = Set<Int>()
    for i in stride(from: 0, to: shot.pixels.count, by: 3 * 7) {
      colours.insert(Int(shot.pixels[i]) << 16 | Int(shot.pixels[i + 1]) << 8 | Int(shot.pixels[i + 2]))
    }
    XCTAssertGreaterThan(colours.count, 500)
    let top = (shot.width * 10 + 600) * 3
    XCTAssertLessThan(Int(shot.pixels[top]) + Int(shot.pixels[top + 1]) + Int(shot.pixels[top + 2]), 3 * 80, "header background is dark")
    if let keep = ProcessInfo.processInfo.environment["ECENET_REPORT_SCREENSHOT"] {
      try? FileManager.default.removeItem(atPath: keep)
      try FileManager.default.copyItem(atPath: png, toPath: keep)
      try? FileManager.default.removeItem(atPath: keep + ".html")
      try FileManager.default.copyItem(atPath: page, toPath: keep + ".html")
    }
  }
}
