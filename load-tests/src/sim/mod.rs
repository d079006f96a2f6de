//! Event sources for the load generator, as pure, seeded simulators: card traffic with fraud
//! ([`fraud`]), label delays ([`labels`]), texts for sentiment ([`text`]) and CSV replay ([`replay`]).

pub mod dist;
pub mod fraud;
pub mod labels;
pub mod replay;
pub mod text;
