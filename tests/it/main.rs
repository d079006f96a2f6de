//! End-to-end tests against a real Apache Kafka broker (`make test` starts one and sets
//! `VIGIL_TEST_BOOTSTRAP`). Each test makes its own topics and consumer groups.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod ab;
mod bench;
mod byo;
mod compose;
mod config;
mod console;
mod dead_letters;
mod drift;
mod encoder;
mod failover;
mod faults;
mod graphs;
mod learner;
mod load;
mod report;
mod safety;
mod scorer;
mod secure;
mod status;
mod topics;
mod trees;
mod wire;
