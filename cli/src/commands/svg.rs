//! Charts drawn as SVG on the server (for `vigil report` and `vigil console`): pages that need no
//! network and no script library.

use std::fmt::Write;

/// `-log10 p`, capped at 20: comparable across the tests features use (KS, chi-squared).
pub(crate) fn significance(p: f64) -> f64 {
    (-p.max(1e-20).log10()).clamp(0.0, 20.0)
}

const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];

/// A line chart as SVG, 440 × 300, with axes, ticks and a legend; `y` fixes the y range.
pub(crate) fn chart(
    id: &str,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    y: Option<(f64, f64)>,
) -> String {
    let (w, h, left, bottom) = (440.0, 300.0, 50.0, 40.0);
    let all = series.iter().flat_map(|(_, s)| s.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for (x, v) in all {
        (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*v), y1.max(*v));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if let Some((a, b)) = y {
        (y0, y1) = (a, b);
    }
    let (x1, y1) = (if x1 > x0 { x1 } else { x0 + 1.0 }, if y1 > y0 { y1 } else { y0 + 1.0 });
    let px = |x: f64| left + (x - x0) / (x1 - x0) * (w - left - 25.0);
    let py = |v: f64| (h - bottom) - (v - y0) / (y1 - y0) * (h - bottom - 30.0);
    let mut s = format!(
        "<svg id=\"{id}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-size=\"11\">\
         <text x=\"{}\" y=\"16\" text-anchor=\"middle\" font-size=\"13\">{}</text>\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#444\"/><line x1=\"{left}\" y1=\"30\" x2=\"{left}\" y2=\"{}\" stroke=\"#444\"/>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text><text x=\"12\" y=\"{}\" transform=\"rotate(-90 12 {})\" text-anchor=\"middle\">{}</text>",
        w / 2.0,
        esc(title),
        h - bottom,
        w - 10.0,
        h - bottom,
        h - bottom,
        (w + left) / 2.0,
        h - 6.0,
        esc(x_label),
        h / 2.0,
        h / 2.0,
        esc(y_label)
    );
    for k in 0..=4 {
        let (tx, ty) = (x0 + (x1 - x0) * f64::from(k) / 4.0, y0 + (y1 - y0) * f64::from(k) / 4.0);
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            px(tx),
            h - bottom + 14.0,
            tick(tx),
            left - 4.0,
            py(ty) + 4.0,
            tick(ty)
        );
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = points.iter().map(|(x, v)| format!("{:.1},{:.1}", px(*x), py(*v))).collect();
        let _ = write!(
            s,
            "<polyline class=\"series\" data-name=\"{}\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
            esc(name),
            path.join(" "),
            left + 8.0,
            34.0 + 13.0 * i as f64,
            esc(name)
        );
        // Markers too, so that a series of one point shows (up to 60 per series).
        for (x, v) in points.iter().step_by(points.len().div_ceil(60).max(1)) {
            let _ = write!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{colour}\"/>", px(*x), py(*v));
        }
    }
    s + "</svg>"
}

fn tick(v: f64) -> String {
    if v.abs() >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

pub(crate) fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
