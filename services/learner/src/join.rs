//! The label join: events wait (bounded, oldest evicted first) for the label that carries their event
//! id; labels are applied strictly in label-topic order, so training is the same whatever the
//! interleaving of the two topics. A label whose event has not been read yet waits at the head of
//! the queue until the input catches up; if the input is caught up and the event is still unknown,
//! the label is reported unknown (or late, when its event was evicted from the window).

use std::collections::{HashMap, HashSet, VecDeque};

/// Where an event was read from (to resume the input from the oldest waiting event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Origin {
    /// Input partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// What happened to a label.
#[derive(Debug, Clone, PartialEq)]
pub enum Joined<E> {
    /// Its event, ready to learn from.
    Ready(E, f64),
    /// Its event was evicted from the window before the label came.
    Late(String),
    /// No event with its id was seen.
    Unknown(String),
}

/// The join buffer of one model.
#[derive(Debug)]
pub struct Join<E> {
    capacity: usize,
    events: HashMap<String, (E, Origin)>,
    order: VecDeque<String>,
    evicted: HashSet<String>,
    evicted_order: VecDeque<String>,
    pending: VecDeque<(String, f64, Origin)>,
    /// Events evicted without a label.
    pub evictions: u64,
}

impl<E: Clone> Join<E> {
    /// A buffer of at most `capacity` waiting events.
    pub fn new(capacity: usize) -> Join<E> {
        Join {
            capacity: capacity.max(1),
            events: HashMap::new(),
            order: VecDeque::new(),
            evicted: HashSet::new(),
            evicted_order: VecDeque::new(),
            pending: VecDeque::new(),
            evictions: 0,
        }
    }

    /// An event arrived.
    pub fn event(&mut self, id: String, event: E, origin: Origin) {
        if self.events.insert(id.clone(), (event, origin)).is_none() {
            self.order.push_back(id);
        }
        while self.events.len() > self.capacity {
            let Some(old) = self.order.pop_front() else { break };
            if self.events.remove(&old).is_some() {
                self.evictions += 1;
                self.remember_evicted(old);
            }
        }
    }

    fn remember_evicted(&mut self, id: String) {
        if self.evicted.insert(id.clone()) {
            self.evicted_order.push_back(id);
            while self.evicted_order.len() > self.capacity {
                if let Some(x) = self.evicted_order.pop_front() {
                    self.evicted.remove(&x);
                }
            }
        }
    }

    /// A label arrived (from `origin` on the label topic); it is queued behind any label still
    /// waiting.
    pub fn label(&mut self, id: String, y: f64, origin: Origin) {
        self.pending.push_back((id, y, origin));
    }

    /// Labels that can be settled now, in order, each with where it was read. With
    /// `input_caught_up`, a label whose event is missing is settled as late or unknown; otherwise it
    /// waits (and so do the labels behind it).
    pub fn drain(&mut self, input_caught_up: bool) -> Vec<(Joined<E>, Origin)> {
        let mut out = Vec::new();
        while let Some((id, y, origin)) = self.pending.front().cloned() {
            if let Some((e, _)) = self.events.remove(&id) {
                self.pending.pop_front();
                out.push((Joined::Ready(e, y), origin));
            } else if input_caught_up {
                self.pending.pop_front();
                let j = if self.evicted.contains(&id) { Joined::Late(id) } else { Joined::Unknown(id) };
                out.push((j, origin));
            } else {
                break;
            }
        }
        // Labelled events leave the order queue lazily (their ids no longer map to events).
        while let Some(front) = self.order.front() {
            if self.events.contains_key(front) {
                break;
            }
            self.order.pop_front();
        }
        out
    }

    /// Labels waiting for their event.
    pub fn waiting(&self) -> usize {
        self.pending.len()
    }

    /// Events waiting for their label.
    pub fn buffered(&self) -> usize {
        self.events.len()
    }

    /// Per input partition, the offset of the oldest event still waiting (where a restart must
    /// re-read the input from).
    pub fn oldest_waiting(&self) -> HashMap<i32, i64> {
        let mut out: HashMap<i32, i64> = HashMap::new();
        for (_, o) in self.events.values() {
            let e = out.entry(o.partition).or_insert(o.offset);
            *e = (*e).min(o.offset);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(offset: i64) -> Origin {
        Origin { partition: 0, offset }
    }

    #[test]
    fn labels_apply_in_order_and_wait_for_late_events() {
        let mut j: Join<u32> = Join::new(10);
        j.event("a".into(), 1, o(0));
        j.label("b".into(), 1.0, o(10));
        j.label("a".into(), 0.0, o(11));
        assert!(j.drain(false).is_empty(), "b waits for its event, and a waits behind it");
        j.event("b".into(), 2, o(1));
        assert_eq!(j.drain(false), vec![(Joined::Ready(2, 1.0), o(10)), (Joined::Ready(1, 0.0), o(11))]);
        j.label("zz".into(), 1.0, o(12));
        assert!(j.drain(false).is_empty());
        assert_eq!(j.drain(true), vec![(Joined::Unknown("zz".into()), o(12))]);
        assert_eq!(j.buffered(), 0);
    }

    #[test]
    fn the_window_is_bounded_and_evicted_events_make_late_labels() {
        let mut j: Join<u32> = Join::new(2);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            j.event(id.to_string(), i as u32, o(i as i64));
        }
        assert_eq!(j.buffered(), 2);
        assert_eq!(j.evictions, 1);
        j.label("a".into(), 1.0, o(5));
        assert_eq!(j.drain(true), vec![(Joined::Late("a".into()), o(5))]);
        assert_eq!(j.oldest_waiting().get(&0), Some(&1));
    }
}
