//! Placeholder binary of the learner service.

fn main() -> std::process::ExitCode {
    eprintln!("{}", vigil_learner::NOT_BUILT);
    std::process::ExitCode::from(2)
}
