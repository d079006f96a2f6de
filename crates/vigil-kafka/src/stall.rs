//! A watch on a self-assigned consumer's reading ([`crate::owned`]): a consumer that has handed over
//! nothing for a whole [`STALL`] while one of its partitions is behind its end has stalled, and the
//! loop reads its partitions again with a new consumer from where it has read. librdkafka resumes
//! fetching by itself after an outage; the watch is for when it does not (in one fault test in CI a
//! learner read every label after a broker restart but not the last 1,941 records of its input, and
//! waited on them for good, its consumer handing over nothing).
//!
//! Offsets alone cannot tell a stall from records that are never handed over under
//! `read_committed`: a partition one offset short of its end (a commit marker) counts as caught up,
//! and past that (aborted transactions' records) the same positions and ends are read again once
//! only: a new consumer that hands over nothing either has shown there is nothing to read.

use std::time::{Duration, Instant};

/// How long a consumer may hand over nothing while a partition is behind its end.
pub const STALL: Duration = Duration::from_secs(30);

/// How often, once the consumer has been idle that long, its positions are compared with the ends
/// (each comparison asks the broker for every partition's end).
pub const EVERY: Duration = Duration::from_secs(5);

/// Per partition (topic, partition, where the loop has read, the end), sorted.
pub type Marks = Vec<(String, i32, i64, i64)>;

/// Since when the consumer has handed over nothing, when its positions were last compared, and the
/// positions and ends it was last read again at.
#[derive(Debug, Default)]
pub struct StallWatch {
    idle_since: Option<Instant>,
    checked: Option<Instant>,
    reread_at: Option<Marks>,
}

impl StallWatch {
    /// Notes a round that read `polled` records, ending at `now`; returns whether to compare the
    /// positions with the ends now: the consumer has handed over nothing for [`STALL`] (and, after
    /// a comparison, [`EVERY`] has passed).
    pub fn due(&mut self, polled: usize, now: Instant) -> bool {
        if polled > 0 {
            (self.idle_since, self.checked) = (None, None);
            return false;
        }
        let idle_since = *self.idle_since.get_or_insert(now);
        let idle = now.saturating_duration_since(idle_since) >= STALL;
        let rested = self.checked.is_none_or(|c| now.saturating_duration_since(c) >= EVERY);
        if idle && rested {
            self.checked = Some(now);
        }
        idle && rested
    }

    /// Whether to read again at `marks`: not if the partitions were read again at these very
    /// positions and ends already.
    pub fn worth_reading_again(&self, marks: &Marks) -> bool {
        self.reread_at.as_ref() != Some(marks)
    }

    /// The partitions are read again at `marks`: the wait starts over.
    pub fn read_again(&mut self, marks: Marks) {
        *self = StallWatch { reread_at: Some(marks), ..StallWatch::default() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_compared_only_after_a_whole_stall_of_nothing_read() {
        let (mut w, t0) = (StallWatch::default(), Instant::now());
        let at = |s: u64| t0 + Duration::from_secs(s);
        // Idle from 0 s: nothing to compare before 30 s.
        assert!(!w.due(0, at(0)));
        assert!(!w.due(0, at(29)));
        assert!(w.due(0, at(30)));
        // Then at most every 5 s while it stays idle.
        assert!(!w.due(0, at(33)));
        assert!(w.due(0, at(35)));
        // A record read starts the wait over.
        assert!(!w.due(1, at(36)));
        assert!(!w.due(0, at(40)));
        assert!(!w.due(0, at(69)));
        assert!(w.due(0, at(70)));
        // So does reading the partitions again; the same positions and ends are read again once.
        let marks = vec![("tx".to_string(), 0, 17, 1958)];
        assert!(w.worth_reading_again(&marks));
        w.read_again(marks.clone());
        assert!(!w.due(0, at(71)));
        assert!(w.due(0, at(101)));
        assert!(!w.worth_reading_again(&marks), "a second new consumer would show nothing new");
        assert!(w.worth_reading_again(&vec![("tx".to_string(), 0, 17, 1990)]), "the end moved");
    }
}
