//! Vigil's scorer service (scores input events with ONNX Runtime). Not built yet: see issue #4. The binary says so and exits
//! with status 2 rather than pretending to run.

/// Why the service cannot run yet.
pub const NOT_BUILT: &str = "vigil-scorer is not built yet (issue #4); nothing was started";
