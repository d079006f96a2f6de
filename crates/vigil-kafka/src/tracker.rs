//! Which input offsets may be committed: an input is done when every output it produced has been
//! acknowledged by the broker, and a partition's commit position only moves over a contiguous run of
//! done inputs, in offset order. Pure bookkeeping, no I/O.
//!
//! Partitions carry a generation: when a partition is revoked its entries are dropped, and
//! acknowledgements that arrive later for the old generation are ignored (their inputs will be
//! consumed again by the partition's next owner, which is what at-least-once allows).

use std::collections::VecDeque;
use std::sync::Arc;

/// Maps looked up once or twice per record: foldhash instead of SipHash (the tracker's SipHash
/// lookups were a tenth of the forwarder's consume-loop samples under `perf`).
type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Identifies one tracked input, handed to the producer as the delivery opaque of its outputs.
/// It holds the topic's number, not its name: a name shared between the loop and the delivery
/// thread cost two reference-count changes per record on a cache line both threads write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    /// The input's partition.
    pub partition: i32,
    /// The input's offset.
    pub offset: i64,
    /// The tracker's number for the input's topic (acknowledgements look the partition up by it).
    topic_id: u32,
    generation: u64,
}

#[derive(Debug, Default)]
struct Partition {
    generation: u64,
    /// (offset, outputs not yet acknowledged), offsets increasing.
    pending: VecDeque<(i64, u32)>,
    /// The next offset to consume (last done offset + 1) once it moved; None when nothing is done yet.
    position: Option<i64>,
    /// Whether `position` moved since the last `take_committable`.
    dirty: bool,
}

/// Outstanding inputs per partition.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Partitions by (topic number, partition).
    parts: FastMap<(u32, i32), Partition>,
    /// Topic numbers by name, and names by number (a topic keeps its number once seen).
    topics: FastMap<String, u32>,
    names: Vec<Arc<str>>,
    /// The number of the topic tracked last (inputs come in runs from one topic: comparing
    /// the name is cheaper than hashing it).
    last: Option<u32>,
    next_generation: u64,
    in_flight: usize,
}

impl Tracker {
    /// An empty tracker.
    pub fn new() -> Tracker {
        Tracker::default()
    }

    /// Starts tracking an input whose handling produced `outputs` records. An input with no output
    /// is done at once. Offsets must arrive in increasing order per partition.
    pub fn track(&mut self, topic: &str, partition: i32, offset: i64, outputs: u32) -> Ticket {
        let topic_id = self.topic_id(topic);
        let next_generation = &mut self.next_generation;
        let part = self.parts.entry((topic_id, partition)).or_insert_with(|| {
            *next_generation += 1;
            Partition { generation: *next_generation, ..Partition::default() }
        });
        let ticket = Ticket { partition, offset, topic_id, generation: part.generation };
        part.pending.push_back((offset, outputs));
        if outputs == 0 {
            advance(part);
        } else {
            self.in_flight += 1;
        }
        ticket
    }

    /// The number of `topic`, given one when it is new (the last topic's is found without hashing).
    fn topic_id(&mut self, topic: &str) -> u32 {
        let id = match self
            .last
            .filter(|l| &*self.names[*l as usize] == topic)
            .or_else(|| self.topics.get(topic).copied())
        {
            Some(id) => id,
            None => {
                let id = self.names.len() as u32;
                self.topics.insert(topic.to_string(), id);
                self.names.push(Arc::from(topic));
                id
            }
        };
        self.last = Some(id);
        id
    }

    /// Records one acknowledged output of `ticket`'s input.
    pub fn ack(&mut self, ticket: &Ticket) {
        let Some(part) = self.parts.get_mut(&(ticket.topic_id, ticket.partition)) else { return };
        if part.generation != ticket.generation {
            return;
        }
        let Ok(i) = part.pending.binary_search_by_key(&ticket.offset, |(o, _)| *o) else { return };
        let remaining = &mut part.pending[i].1;
        if *remaining == 0 {
            return;
        }
        *remaining -= 1;
        if *remaining == 0 {
            self.in_flight = self.in_flight.saturating_sub(1);
            if i == 0 {
                advance(part);
            }
        }
    }

    /// Positions (next offset to consume) that moved since the last call, to commit.
    pub fn take_committable(&mut self) -> Vec<(Arc<str>, i32, i64)> {
        let mut out = Vec::new();
        for ((topic, partition), part) in &mut self.parts {
            if part.dirty {
                if let Some(pos) = part.position {
                    out.push((self.names[*topic as usize].clone(), *partition, pos));
                }
                part.dirty = false;
            }
        }
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }

    /// Current positions of every tracked partition, moved or not (e.g. for a transaction).
    pub fn positions(&self) -> Vec<(Arc<str>, i32, i64)> {
        let mut out: Vec<_> = self
            .parts
            .iter()
            .filter_map(|((t, p), part)| part.position.map(|pos| (self.names[*t as usize].clone(), *p, pos)))
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }

    /// Stops tracking a revoked partition; returns its last position if it moved and was not taken.
    pub fn revoke(&mut self, topic: &str, partition: i32) -> Option<i64> {
        let part = self.parts.remove(&(*self.topics.get(topic)?, partition))?;
        let unacked = part.pending.iter().filter(|(_, r)| *r > 0).count();
        self.in_flight = self.in_flight.saturating_sub(unacked);
        if part.dirty { part.position } else { None }
    }

    /// Inputs with outputs not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Forgets everything (after a transaction abort the consumer rewinds and starts again).
    pub fn reset(&mut self) {
        self.parts.clear();
        self.in_flight = 0;
    }
}

fn advance(part: &mut Partition) {
    while let Some(&(offset, 0)) = part.pending.front() {
        part.pending.pop_front();
        part.position = Some(offset + 1);
        part.dirty = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commits_only_a_contiguous_acknowledged_prefix() {
        let mut t = Tracker::new();
        let a = t.track("in", 0, 10, 1);
        let b = t.track("in", 0, 11, 2);
        let c = t.track("in", 0, 12, 1);
        assert_eq!(t.in_flight(), 3);
        t.ack(&c);
        assert!(t.take_committable().is_empty(), "12 is done but 10 and 11 are not");
        t.ack(&a);
        assert_eq!(t.take_committable(), vec![(Arc::from("in"), 0, 11)]);
        t.ack(&b);
        assert!(t.take_committable().is_empty(), "11 still has one output in flight");
        t.ack(&b);
        assert_eq!(t.take_committable(), vec![(Arc::from("in"), 0, 13)]);
        assert_eq!(t.in_flight(), 0);
        assert!(t.take_committable().is_empty(), "nothing moved since");
    }

    #[test]
    fn inputs_without_outputs_are_done_at_once_and_partitions_are_independent() {
        let mut t = Tracker::new();
        t.track("in", 0, 5, 0);
        let x = t.track("in", 1, 7, 1);
        assert_eq!(t.take_committable(), vec![(Arc::from("in"), 0, 6)]);
        t.ack(&x);
        assert_eq!(t.take_committable(), vec![(Arc::from("in"), 1, 8)]);
    }

    #[test]
    fn acknowledgements_for_a_revoked_generation_are_ignored() {
        let mut t = Tracker::new();
        let old = t.track("in", 0, 1, 1);
        assert_eq!(t.revoke("in", 0), None);
        assert_eq!(t.in_flight(), 0);
        let new = t.track("in", 0, 1, 1);
        t.ack(&old);
        assert!(t.take_committable().is_empty(), "a stale ack must not complete the new generation");
        t.ack(&new);
        assert_eq!(t.take_committable(), vec![(Arc::from("in"), 0, 2)]);
    }

    #[test]
    fn topics_are_kept_apart_and_an_unknown_one_revokes_nothing() {
        let mut t = Tracker::new();
        let a = t.track("a", 0, 3, 1);
        let b = t.track("b", 0, 9, 1);
        assert_eq!(t.revoke("c", 0), None);
        t.ack(&b);
        assert_eq!(t.take_committable(), vec![(Arc::from("b"), 0, 10)], "a's input 3 is not acknowledged yet");
        t.ack(&a);
        assert_eq!(t.positions(), vec![(Arc::from("a"), 0, 4), (Arc::from("b"), 0, 10)]);
        assert_eq!(t.revoke("a", 0), Some(4), "a's position moved and was not taken");
    }

    proptest! {
        /// Whatever the order of acknowledgements, the committed position never passes an input
        /// whose outputs are not all acknowledged, and ends after the last input.
        #[test]
        fn position_never_passes_an_unacknowledged_input(
            outputs in proptest::collection::vec(0u32..3, 1..40),
            order_seed in any::<u64>(),
        ) {
            let mut t = Tracker::new();
            let mut acks = Vec::new();
            for (i, n) in outputs.iter().enumerate() {
                let ticket = t.track("p", 0, i as i64, *n);
                for _ in 0..*n { acks.push(ticket); }
            }
            // Shuffle deterministically.
            let mut s = order_seed | 1;
            for i in (1..acks.len()).rev() {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                acks.swap(i, (s % (i as u64 + 1)) as usize);
            }
            let mut remaining: Vec<u32> = outputs.clone();
            for ack in &acks {
                t.ack(ack);
                remaining[ack.offset as usize] -= 1;
                for (_, _, pos) in t.take_committable() {
                    prop_assert!(remaining[..pos as usize].iter().all(|r| *r == 0));
                }
            }
            prop_assert_eq!(t.positions(), vec![(Arc::from("p"), 0, outputs.len() as i64)]);
            prop_assert_eq!(t.in_flight(), 0);
        }
    }
}
