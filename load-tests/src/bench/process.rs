//! Figures of a running process: peak and current resident memory and CPU time from `/proc`, and
//! its Prometheus metrics over a plain HTTP GET on loopback.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::BenchError;

/// Peak and current resident set of a process, MiB.
pub fn rss_mb(pid: u32) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status.lines().find(|l| l.starts_with(name)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
    };
    Some((field("VmHWM:")? / 1024.0, field("VmRSS:")? / 1024.0))
}

/// Stops a child with SIGTERM (then SIGKILL after 20 s) and returns its peak RSS (MiB).
pub fn stop(child: &mut Child) -> f64 {
    let peak = rss_mb(child.id()).map(|r| r.0).unwrap_or(0.0);
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return peak;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    peak
}

/// CPU time (user + system) a process has used so far, seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ, 100 on Linux
}

/// CPU time the whole machine has spent busy so far (every core's user, nice, system, irq, softirq
/// and steal time in `/proc/stat`), seconds: over a drain, the system's own CPU plus the broker's
/// and everything else that ran beside it.
pub fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<f64> = stat.lines().next()?.split_whitespace().skip(1).map_while(|t| t.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| ticks.get(*i)).sum::<f64>();
    Some(busy / 100.0) // USER_HZ
}

/// GETs a local service's Prometheus metrics.
pub fn scrape_metrics(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    Some(body.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or(body))
}

/// The value of `series` (name and labels exactly as exported) in Prometheus text, or 0.
pub fn metric_value(metrics: &str, series: &str) -> f64 {
    metrics.lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

/// A free local port.
pub fn free_port() -> Result<u16, BenchError> {
    Ok(vigil_runtime::metrics::free_local_port()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A thread that spins for 300 ms of wall time shows in the machine's busy time (at least
    /// most of it: the counters tick every 10 ms, and the spin may be preempted), and so does it in
    /// this process's own CPU time, which the machine's includes.
    #[test]
    fn a_spinning_thread_shows_in_the_machines_busy_time() {
        let me = std::process::id();
        let (machine, own) = (machine_busy_seconds().unwrap(), cpu_seconds(me).unwrap());
        let until = std::time::Instant::now() + Duration::from_millis(300);
        let mut x = 0u64;
        while std::time::Instant::now() < until {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let (machine_after, own_after) = (machine_busy_seconds().unwrap(), cpu_seconds(me).unwrap());
        let spun = own_after - own;
        assert!(spun >= 0.1, "the spin used {spun} s of CPU");
        assert!(
            machine_after - machine >= spun - 0.05,
            "machine {} s busy, this process {spun} s",
            machine_after - machine
        );
    }
}
