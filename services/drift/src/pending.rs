//! One side of the score–label join: entries waiting for their other half, bounded by count and by
//! age (record time, so a replayed backlog ages the same as live traffic). Entries leave when taken,
//! when more than `capacity` wait (oldest first) or when they are older than `max_age_ms` behind the
//! newest record time seen; ids taken out leave the order queue lazily.

use std::collections::{HashMap, VecDeque};

/// Entries waiting by event id.
#[derive(Debug)]
pub struct Pending<V> {
    by_id: HashMap<String, V>,
    order: VecDeque<(String, i64)>,
    capacity: usize,
    max_age_ms: i64,
}

impl<V> Pending<V> {
    /// At most `capacity` entries, none older than `max_age_ms`.
    pub fn new(capacity: usize, max_age_ms: i64) -> Pending<V> {
        Pending { by_id: HashMap::new(), order: VecDeque::new(), capacity: capacity.max(1), max_age_ms }
    }

    /// Takes the entry of `id` out, if it waits.
    pub fn take(&mut self, id: &str) -> Option<V> {
        self.by_id.remove(id)
    }

    /// Adds `id` stamped `now_ms` (the newest record time seen), expiring what is too old or too many.
    pub fn insert(&mut self, id: &str, v: V, now_ms: i64) {
        self.expire(now_ms);
        while self.by_id.len() >= self.capacity {
            let Some((old, _)) = self.order.pop_front() else { break };
            self.by_id.remove(&old);
        }
        if self.by_id.insert(id.to_string(), v).is_none() {
            self.order.push_back((id.to_string(), now_ms));
        }
        // Taken ids leave the queue lazily; past twice the entries waiting, drop them at once.
        if self.order.len() > 2 * self.by_id.len() + 1024 {
            let by_id = &self.by_id;
            self.order.retain(|(id, _)| by_id.contains_key(id));
        }
    }

    fn expire(&mut self, now_ms: i64) {
        let cutoff = now_ms.saturating_sub(self.max_age_ms);
        while let Some((id, at)) = self.order.front() {
            if self.by_id.contains_key(id) && *at >= cutoff {
                break;
            }
            let (id, _) = self.order.pop_front().expect("a front entry");
            self.by_id.remove(&id);
        }
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.by_id.clear();
        self.order.clear();
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Ids in the order queue (waiting or taken and not yet dropped).
    #[cfg(test)]
    fn queued(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_by_count_and_by_age() {
        let mut p: Pending<u32> = Pending::new(3, 1_000);
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            p.insert(id, i as u32, 0);
        }
        assert_eq!(p.len(), 3);
        assert_eq!(p.take("a"), None, "the oldest went when a fourth came");
        assert_eq!(p.take("b"), Some(1));
        p.insert("e", 4, 1_500);
        assert_eq!(p.len(), 1, "c and d are 1.5 s behind the newest record time (limit 1 s)");
        assert_eq!(p.take("e"), Some(4));
        assert!(p.is_empty());
    }

    #[test]
    fn the_order_queue_stays_bounded_when_every_entry_is_taken() {
        let mut p: Pending<u32> = Pending::new(1_000_000, i64::MAX);
        p.insert("never", 0, 0);
        for i in 1..100_000 {
            let id = format!("e{i}");
            p.insert(&id, i, 0);
            assert_eq!(p.take(&id), Some(i));
        }
        assert_eq!(p.len(), 1);
        assert!(p.queued() < 2_000, "{}", p.queued());
    }
}
