//! The label join: events wait (bounded, oldest evicted first) for the label that carries their event
//! id; labels are applied strictly in label-topic order, so training is the same whatever the
//! interleaving of the two topics. A label whose event has not been read yet waits at the head of
//! the queue until the input catches up; if the input stays caught up for [`GRACE`] and the event is
//! still unknown, the label is reported unknown (or late, when its event was evicted from the
//! window). A second label for an event already labelled is a duplicate, and a second copy of such
//! an event is ignored (it must not wait for a second copy of the label and be learnt twice). Labels
//! waiting are bounded too: past the window's size a new label overflows (the caller dead-letters
//! it). The window is bounded in time as well as in count: an event waiting longer than
//! `max_age_ms` (record time, so a replayed backlog ages as live traffic did) is evicted, and so are
//! the ids remembered to name late and duplicate labels, so the join's memory settles once that
//! much traffic has passed.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How long a label waits, with the input caught up, for an event that is not there (the input's
/// end may have been read just before the event arrived).
pub const GRACE: Duration = Duration::from_secs(3);

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
    /// Its event was already labelled.
    Duplicate(String),
}

/// A remembered set of ids, bounded in count and age (the oldest forgotten first).
#[derive(Debug, Default)]
struct Recent {
    ids: HashSet<String>,
    order: VecDeque<(String, i64)>,
}

impl Recent {
    fn insert(&mut self, id: String, at_ms: i64, capacity: usize, cutoff_ms: i64) {
        if self.ids.insert(id.clone()) {
            self.order.push_back((id, at_ms));
        }
        while let Some((x, at)) = self.order.front() {
            if self.order.len() <= capacity && *at >= cutoff_ms {
                break;
            }
            self.ids.remove(x);
            self.order.pop_front();
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }
}

/// The join buffer of one model.
#[derive(Debug)]
pub struct Join<E> {
    capacity: usize,
    max_age_ms: i64,
    /// The newest event time seen (epoch ms).
    newest_ms: i64,
    events: HashMap<String, (E, Origin, i64)>,
    order: VecDeque<String>,
    evicted: Recent,
    labelled: Recent,
    pending: VecDeque<(String, f64, Origin)>,
    /// Since when the head label's event has been missing with the input caught up.
    missing_since: Option<Instant>,
    /// Events evicted without a label.
    pub evictions: u64,
}

impl<E: Clone> Join<E> {
    /// A buffer of at most `capacity` waiting events, none older than `max_age_ms` behind the
    /// newest event.
    pub fn new(capacity: usize, max_age_ms: i64) -> Join<E> {
        Join {
            capacity: capacity.max(1),
            max_age_ms,
            newest_ms: 0,
            events: HashMap::new(),
            order: VecDeque::new(),
            evicted: Recent::default(),
            labelled: Recent::default(),
            pending: VecDeque::new(),
            missing_since: None,
            evictions: 0,
        }
    }

    /// An event stamped `at_ms` (its record time) arrived.
    pub fn event(&mut self, id: String, event: E, origin: Origin, at_ms: i64) {
        self.newest_ms = self.newest_ms.max(at_ms);
        // A second copy of an event already labelled (a producer's retry across a broker crash)
        // must not wait for a second copy of its label and be learnt twice.
        if self.labelled.contains(&id) {
            return;
        }
        if self.events.insert(id.clone(), (event, origin, at_ms)).is_none() {
            self.order.push_back(id);
        }
        let cutoff = self.cutoff();
        while let Some(old) = self.order.front() {
            let expired = match self.events.get(old) {
                Some((_, _, at)) => *at < cutoff || self.events.len() > self.capacity,
                None => self.events.len() > self.capacity,
            };
            if !expired {
                break;
            }
            let old = self.order.pop_front().expect("a front id");
            if self.events.remove(&old).is_some() {
                self.evictions += 1;
                self.evicted.insert(old, self.newest_ms, self.capacity, cutoff);
            }
        }
        // Labelled events leave the order queue lazily; drop their ids once they outnumber the
        // waiting events, so that the queue stays within twice the window.
        if self.order.len() > 2 * self.events.len() + 1024 {
            let events = &self.events;
            self.order.retain(|id| events.contains_key(id));
        }
    }

    fn cutoff(&self) -> i64 {
        self.newest_ms.saturating_sub(self.max_age_ms)
    }

    /// A label arrived (from `origin` on the label topic); it is queued behind any label still
    /// waiting — or, when as many labels as the window holds are waiting already, given back
    /// (overflow: the caller dead-letters it).
    pub fn label(&mut self, id: String, y: f64, origin: Origin) -> Result<(), String> {
        if self.pending.len() >= self.capacity {
            return Err(id);
        }
        self.pending.push_back((id, y, origin));
        Ok(())
    }

    /// Labels that can be settled now, in order, each with where it was read. A label whose event
    /// is missing is settled as a duplicate at once when its event was labelled before, as late or
    /// unknown once the input has been caught up for [`GRACE`]; until then it waits (and so do the
    /// labels behind it).
    pub fn drain(&mut self, input_caught_up: bool) -> Vec<(Joined<E>, Origin)> {
        self.drain_at(input_caught_up, Instant::now())
    }

    fn drain_at(&mut self, input_caught_up: bool, now: Instant) -> Vec<(Joined<E>, Origin)> {
        let mut out = Vec::new();
        while let Some((id, y, origin)) = self.pending.front().cloned() {
            let joined = if let Some((e, _, _)) = self.events.remove(&id) {
                self.labelled.insert(id, self.newest_ms, self.capacity, self.cutoff());
                Joined::Ready(e, y)
            } else if self.labelled.contains(&id) {
                Joined::Duplicate(id)
            } else if input_caught_up && now.duration_since(*self.missing_since.get_or_insert(now)) >= GRACE {
                if self.evicted.contains(&id) { Joined::Late(id) } else { Joined::Unknown(id) }
            } else {
                if !input_caught_up {
                    self.missing_since = None;
                }
                break;
            };
            self.missing_since = None;
            self.pending.pop_front();
            out.push((joined, origin));
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
        for (_, o, _) in self.events.values() {
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
        let mut j: Join<u32> = Join::new(10, i64::MAX);
        j.event("a".into(), 1, o(0), 0);
        j.label("b".into(), 1.0, o(10)).unwrap();
        j.label("a".into(), 0.0, o(11)).unwrap();
        assert!(j.drain(false).is_empty(), "b waits for its event, and a waits behind it");
        j.event("b".into(), 2, o(1), 0);
        assert_eq!(j.drain(false), vec![(Joined::Ready(2, 1.0), o(10)), (Joined::Ready(1, 0.0), o(11))]);
        j.label("zz".into(), 1.0, o(12)).unwrap();
        assert!(j.drain(false).is_empty());
        let t = Instant::now();
        assert!(j.drain_at(true, t).is_empty(), "the event may be just behind the input's end");
        assert_eq!(j.drain_at(true, t + GRACE), vec![(Joined::Unknown("zz".into()), o(12))]);
        assert_eq!(j.buffered(), 0);
    }

    #[test]
    fn duplicates_are_named_and_waiting_labels_are_bounded() {
        let mut j: Join<u32> = Join::new(2, i64::MAX);
        j.event("a".into(), 1, o(0), 0);
        j.label("a".into(), 1.0, o(10)).unwrap();
        j.label("a".into(), 1.0, o(11)).unwrap();
        assert_eq!(j.drain(false), vec![(Joined::Ready(1, 1.0), o(10)), (Joined::Duplicate("a".into()), o(11))]);
        j.label("x".into(), 1.0, o(12)).unwrap();
        j.label("y".into(), 1.0, o(13)).unwrap();
        assert_eq!(j.label("z".into(), 1.0, o(14)), Err("z".into()), "two labels wait already");
    }

    #[test]
    fn an_event_written_twice_is_learnt_once_even_when_its_label_is_written_twice_too() {
        let mut j: Join<u32> = Join::new(4, i64::MAX);
        j.event("a".into(), 1, o(0), 0);
        j.label("a".into(), 1.0, o(10)).unwrap();
        assert_eq!(j.drain(false), vec![(Joined::Ready(1, 1.0), o(10))]);
        j.event("a".into(), 1, o(1), 0);
        j.label("a".into(), 1.0, o(11)).unwrap();
        assert_eq!(j.drain(false), vec![(Joined::Duplicate("a".into()), o(11))]);
    }

    #[test]
    fn the_order_queue_stays_bounded_when_most_events_are_labelled() {
        let mut j: Join<u32> = Join::new(100, i64::MAX);
        j.event("never".into(), 0, o(0), 0);
        for i in 1..100_000 {
            let id = format!("e{i}");
            j.event(id.clone(), i, o(i as i64), 0);
            j.label(id, 1.0, o(i as i64)).unwrap();
            j.drain(false);
        }
        assert_eq!(j.buffered(), 1);
        assert!(j.order.len() < 2000, "{}", j.order.len());
    }

    #[test]
    fn events_older_than_the_age_limit_are_evicted_and_their_labels_are_late() {
        let mut j: Join<u32> = Join::new(1_000_000, 1_000);
        j.event("old".into(), 1, o(0), 10_000);
        j.event("mid".into(), 2, o(1), 10_600);
        j.event("new".into(), 3, o(2), 11_500);
        assert_eq!(j.buffered(), 2, "old is 1.5 s behind the newest event (limit 1 s)");
        assert_eq!(j.evictions, 1);
        j.label("old".into(), 1.0, o(5)).unwrap();
        j.label("mid".into(), 0.0, o(6)).unwrap();
        let t = Instant::now();
        assert!(j.drain_at(true, t).is_empty());
        assert_eq!(
            j.drain_at(true, t + GRACE),
            vec![(Joined::Late("old".into()), o(5)), (Joined::Ready(2, 0.0), o(6))]
        );
        for i in 0..10_000 {
            j.event(format!("e{i}"), i, o(3 + i64::from(i)), 20_000 + i64::from(i));
            j.label(format!("e{i}"), 1.0, o(100 + i64::from(i))).unwrap();
            j.drain(false);
        }
        assert!(j.labelled.order.len() <= 1_001, "ids of labelled events age out: {}", j.labelled.order.len());
    }

    #[test]
    fn the_window_is_bounded_and_evicted_events_make_late_labels() {
        let mut j: Join<u32> = Join::new(2, i64::MAX);
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            j.event(id.to_string(), i as u32, o(i as i64), 0);
        }
        assert_eq!(j.buffered(), 2);
        assert_eq!(j.evictions, 1);
        j.label("a".into(), 1.0, o(5)).unwrap();
        let t = Instant::now();
        assert!(j.drain_at(true, t).is_empty());
        assert_eq!(j.drain_at(true, t + GRACE), vec![(Joined::Late("a".into()), o(5))]);
        assert_eq!(j.oldest_waiting().get(&0), Some(&1));
    }
}
