//! What every Vigil process needs besides its own work: layered configuration
//! ([`config`], [`layered`]), logs ([`telemetry`]), the metrics and health endpoint ([`metrics`]) and
//! the shutdown tree ([`shutdown`]).

pub mod config;
pub mod layered;
pub mod metrics;
pub mod shutdown;
pub mod telemetry;

pub use config::Config;
pub use layered::ConfigError;
pub use metrics::Health;

/// An error and its causes on one line, for logs and messages.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Malloc arenas a service runs with unless `MALLOC_ARENA_MAX` is set already.
pub const MALLOC_ARENAS: &str = "2";

/// glibc's mmap threshold a service runs with unless `MALLOC_MMAP_THRESHOLD_` is set already: fixed
/// (glibc otherwise raises it up to 32 MiB after freeing a large block), so that multi-megabyte
/// transient buffers — a learner state encoded, compressed and read back — go back to the system
/// when freed instead of fragmenting the heap (one-hour soak, same run: scorer 152 → 81 MiB, drift
/// 123 → 54 MiB, learner 229 → 169 MiB at 32 minutes).
pub const MALLOC_MMAP_THRESHOLD: &str = "131072";

/// glibc's malloc gives threads arenas of their own, up to eight per core; with ONNX Runtime's and
/// librdkafka's threads, a scorer that loads a model per version spread its freed memory over them
/// and its resident memory climbed (one-hour soak: 430 MiB after 15 minutes and rising, against
/// 115–160 MiB with two arenas, in the same run). Safe Rust cannot call `mallopt`, so a service
/// whose environment does not set `MALLOC_ARENA_MAX` executes itself again once with it set to
/// [`MALLOC_ARENAS`] and, unless set, `MALLOC_MMAP_THRESHOLD_` to [`MALLOC_MMAP_THRESHOLD`] (same
/// process id and arguments; set `MALLOC_ARENA_MAX` to keep glibc's defaults).
fn cap_malloc_arenas(name: &str) {
    use std::os::unix::process::CommandExt;
    if !cfg!(all(target_os = "linux", target_env = "gnu")) || std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else { return };
    let mut again = std::process::Command::new(exe);
    again.args(std::env::args_os().skip(1)).env("MALLOC_ARENA_MAX", MALLOC_ARENAS);
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
        again.env("MALLOC_MMAP_THRESHOLD_", MALLOC_MMAP_THRESHOLD);
    }
    let error = again.exec();
    eprintln!("{name}: running with glibc's default malloc arenas (cannot execute itself again: {error})");
}

/// The whole `main` of a Vigil service: loads the configuration from `config_file` (exit status 2,
/// with every problem listed, when it is invalid), starts logging, runs `run` on a two-thread async
/// runtime with a shutdown token cancelled by SIGTERM / SIGINT, and turns its result into the exit
/// status (failures logged and printed, prefixed by `name`).
pub fn service_main<Sc, Le, Dr, F, Fut>(
    name: &str,
    config_file: Option<&std::path::Path>,
    run: F,
) -> std::process::ExitCode
where
    Sc: config::Section,
    Le: config::Section,
    Dr: config::Section,
    F: FnOnce(Config<Sc, Le, Dr>, tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    use std::process::ExitCode;
    cap_malloc_arenas(name);
    let config = match Config::<Sc, Le, Dr>::load(config_file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{name}: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        match run(config, shutdown::on_signals()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = %e, "{name} failed");
                eprintln!("{name}: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Every Vigil program (services, CLI, load tools, the forwarder baseline) allocates with mimalloc:
/// with glibc's malloc, `malloc`/`free` (and `malloc_consolidate` after each batch's large frees)
/// were a fifth of the scorer's consume-loop thread; with mimalloc the scorer drained 20–25% more
/// events per second in the same runs (`vigil-bench scorer`), for ~30 MiB more resident memory
/// (fraud scorer 122 → 160 MiB). The C libraries (librdkafka, ONNX Runtime) keep glibc's malloc,
/// capped to [`MALLOC_ARENAS`] arenas as above.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
