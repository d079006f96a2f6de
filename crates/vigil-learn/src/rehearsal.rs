//! The rehearsal buffer: a uniform reservoir sample of past labelled examples, replayed into training
//! beside new ones so that a concept that returns is not relearnt from scratch.

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// A stored example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Stored {
    /// A dense row, already standardised.
    Dense(Vec<f64>),
    /// Hashed text.
    Text(Vec<i64>, Vec<f32>),
}

/// A reservoir of (example, label).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservoir {
    capacity: usize,
    seen: u64,
    items: Vec<(Stored, f64)>,
}

impl Reservoir {
    /// Holds at most `capacity` examples.
    pub fn new(capacity: usize) -> Reservoir {
        Reservoir { capacity, seen: 0, items: Vec::with_capacity(capacity.min(1 << 16)) }
    }

    /// Offers an example (kept with probability capacity / seen).
    pub fn offer(&mut self, example: Stored, y: f64, rng: &mut Rng) {
        if self.capacity == 0 {
            return;
        }
        self.seen += 1;
        if self.items.len() < self.capacity {
            self.items.push((example, y));
        } else {
            let j = rng.below(self.seen) as usize;
            if j < self.capacity {
                self.items[j] = (example, y);
            }
        }
    }

    /// A uniformly drawn stored example.
    pub fn draw(&self, rng: &mut Rng) -> Option<&(Stored, f64)> {
        if self.items.is_empty() { None } else { self.items.get(rng.below(self.items.len() as u64) as usize) }
    }

    /// Examples held.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The examples (for persisting as Arrow IPC).
    pub fn items(&self) -> &[(Stored, f64)] {
        &self.items
    }
}
