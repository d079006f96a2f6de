//! Reports: medians and spreads of samples, the facts about the run every report carries, the JSON
//! files under `target/bench/` and the printed table.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value as Json, json};
use vigil_kafka::now_ms;

use super::{BenchError, Env};

/// Median of a sample.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// (min, max) of a sample.
pub fn spread(xs: &[f64]) -> (f64, f64) {
    xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| (lo.min(*x), hi.max(*x)))
}

/// The current commit, for reports.
pub fn commit() -> String {
    Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Facts about the machine and run, for every report.
pub fn machine(env: &Env) -> Json {
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "commit": commit(),
        "date_ms": now_ms(),
        "rounds": env.rounds,
        "events": env.events,
        "latency_secs": env.latency_secs,
        "partitions": env.partitions,
        "linger_ms": env.kafka.linger_ms,
        "compression": env.kafka.compression,
        // The broker's log directory when set (`VIGIL_BENCH_BROKER_TMPFS=1` sets it); null: kafka.sh's default, on disk.
        "broker_data": std::env::var("VIGIL_KAFKA_DATA").ok(),
    })
}

/// Writes a report.
pub fn write_report(env: &Env, name: &str, report: &Json) -> Result<PathBuf, BenchError> {
    std::fs::create_dir_all(&env.out_dir)?;
    let path = env.out_dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(report)? + "\n")?;
    Ok(path)
}

/// Prints `name  median  [min, max]` rows.
pub fn table(rows: &[(&str, &Vec<f64>)]) {
    for (name, xs) in rows {
        let (lo, hi) = spread(xs);
        eprintln!("  {name:<28} {:>12.2}   [{lo:.2}, {hi:.2}]", median(xs));
    }
}

/// The repository root when running from `target/<profile>/`.
pub fn repo_root(bin_dir: &Path) -> PathBuf {
    bin_dir.ancestors().nth(2).map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
}

/// The Python the baselines run on: `VIGIL_PYTHON`, else the project's virtual environment's.
pub fn python_bin(root: &Path) -> PathBuf {
    std::env::var("VIGIL_PYTHON").map(PathBuf::from).unwrap_or_else(|_| root.join(".venv/bin/python"))
}
