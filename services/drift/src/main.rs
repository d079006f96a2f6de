//! Placeholder binary of the drift service.

fn main() -> std::process::ExitCode {
    eprintln!("{}", vigil_drift::NOT_BUILT);
    std::process::ExitCode::from(2)
}
