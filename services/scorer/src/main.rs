//! Placeholder binary of the scorer service.

fn main() -> std::process::ExitCode {
    eprintln!("{}", vigil_scorer::NOT_BUILT);
    std::process::ExitCode::from(2)
}
