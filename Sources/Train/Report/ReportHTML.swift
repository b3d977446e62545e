// HTML pieces of the run report: escaping and the one inline stylesheet.
// The page must open with no network, so there is no external CSS, font or
// script; the Content-Security-Policy in the head makes the browser refuse any
// that slipped in (and say so in its console, which the browser test checks).
import Foundation

public enum HTML {
  /// Escapes text for element content and double- or single-quoted attributes.
  public static func escape(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.count)
    for ch in s {
      switch ch {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&#39;"
      default: out.append(ch)
      }
    }
    return out
  }

  static let contentSecurityPolicy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

  static let css = """
    :root { --fg:#1d2330; --muted:#5f6b7d; --line:#e3e7ee; --bg:#f5f7fa; --card:#fff; --accent:#1f4e9c; --bad:#c2410c; }
    * { box-sizing: border-box; }
    body { margin:0; background:var(--bg); color:var(--fg);
      font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans", "DejaVu Sans", Arial, sans-serif;
      font-variant-numeric: tabular-nums; }
    header { background:#16233b; color:#fff; padding:22px 32px 20px; }
    header h1 { margin:0; font-size:22px; font-weight:600; letter-spacing:.2px; }
    header .sub { color:#aab6cc; font-size:12.5px; margin-top:3px; word-break:break-all; }
    .stats { display:flex; flex-wrap:wrap; gap:10px; margin-top:16px; }
    .stat { background:rgba(255,255,255,.08); border:1px solid rgba(255,255,255,.14); border-radius:6px; padding:7px 14px; min-width:120px; }
    .stat .k { color:#aab6cc; font-size:11px; text-transform:uppercase; letter-spacing:.6px; }
    .stat .v { font-size:19px; font-weight:600; }
    .stat .v small { font-size:12px; font-weight:400; color:#aab6cc; }
    nav { background:#fff; border-bottom:1px solid var(--line); padding:8px 32px; font-size:13px; }
    nav a { color:var(--accent); text-decoration:none; margin-right:18px; }
    main { max-width:1160px; margin:0 auto; padding:8px 24px 32px; }
    section { margin-top:22px; }
    h2 { font-size:16px; font-weight:600; margin:0 0 10px; padding-bottom:6px; border-bottom:1px solid var(--line); }
    h2 .meta { font-weight:400; color:var(--muted); font-size:13px; margin-left:8px; }
    .grid { display:grid; grid-template-columns:repeat(2, minmax(0, 1fr)); gap:14px; }
    .card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px 14px; }
    .card h3 { font-size:13.5px; margin:0 0 4px; font-weight:600; }
    .card .caption { color:var(--muted); font-size:12px; margin-top:2px; }
    svg.chart { width:100%; height:auto; display:block; }
    svg.chart text { font-family:inherit; font-size:11px; fill:var(--muted); }
    svg.chart .axis-label { font-size:11.5px; fill:var(--fg); }
    svg.chart .grid line { stroke:#edf0f4; stroke-width:1; }
    svg.chart .axis { stroke:#9aa5b5; fill:none; }
    svg.chart .legend text { fill:var(--fg); }
    .callout { background:#fff8e6; border:1px solid #f1d48a; border-radius:8px; padding:10px 14px; color:#6b4e00; }
    .notes { color:var(--muted); font-size:12.5px; margin:0; padding-left:18px; }
    table { border-collapse:collapse; width:100%; background:var(--card); border:1px solid var(--line); border-radius:8px; overflow:hidden; }
    th, td { padding:5px 10px; border-bottom:1px solid #eef1f5; text-align:left; font-size:13px; }
    th { background:#f0f3f8; font-weight:600; font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.4px; }
    td.num, th.num { text-align:right; white-space:nowrap; }
    td.rank { color:var(--muted); width:40px; }
    td.barcell { width:38%; }
    .bar { height:10px; border-radius:2px; background:var(--accent); min-width:1px; }
    .bar.low { background:var(--bad); }
    .bar.mid { background:#d99a00; }
    .sw { display:inline-block; width:11px; height:11px; border-radius:2px; border:1px solid rgba(0,0,0,.2); vertical-align:-1px; margin-right:7px; }
    .absent td { color:var(--muted); }
    .cols { display:grid; grid-template-columns: 1fr 1fr; gap:14px; align-items:start; }
    .samples { display:grid; grid-template-columns:repeat(3, minmax(0, 1fr)); gap:8px 10px; background:var(--card);
      border:1px solid var(--line); border-radius:8px; padding:12px; }
    .samples .head { font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.4px; font-weight:600; }
    .samples figure { margin:0; }
    .samples img { width:100%; height:auto; display:block; border-radius:3px; background:#000; }
    .samples img.lbl { image-rendering:pixelated; }
    .samples figcaption { font-size:12px; color:var(--muted); margin-top:3px; }
    .legend-list { display:flex; flex-wrap:wrap; gap:4px 14px; margin-top:10px; font-size:12.5px; }
    footer { color:var(--muted); font-size:12px; text-align:center; padding:18px; }
    """
}
