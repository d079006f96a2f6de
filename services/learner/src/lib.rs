//! Vigil's learner service (learns continually from labelled feedback). Not built yet: see issue #5. The binary says so and exits
//! with status 2 rather than pretending to run.

/// Why the service cannot run yet.
pub const NOT_BUILT: &str = "vigil-learner is not built yet (issue #5); nothing was started";
