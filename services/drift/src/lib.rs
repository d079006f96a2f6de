//! Vigil's drift service (detects data, prediction and concept drift). Not built yet: see issue #6. The binary says so and exits
//! with status 2 rather than pretending to run.

/// Why the service cannot run yet.
pub const NOT_BUILT: &str = "vigil-drift is not built yet (issue #6); nothing was started";
