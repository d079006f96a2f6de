//! When a transaction's true label becomes known: most soon (a review, a customer confirming), some
//! much later (a chargeback), a share never. Delays are wall-clock milliseconds after the event was
//! produced, drawn per event.

use super::dist::Dist;

/// The delay distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabelDelays {
    /// Share of labels that arrive soon, with an exponential delay.
    pub fast_share: f64,
    /// Mean of the fast delays (ms).
    pub fast_mean_ms: f64,
    /// Share that arrive late, uniformly between `slow_min_ms` and `slow_max_ms`.
    pub slow_share: f64,
    /// Shortest late delay (ms).
    pub slow_min_ms: f64,
    /// Longest late delay (ms).
    pub slow_max_ms: f64,
}

impl Default for LabelDelays {
    fn default() -> Self {
        LabelDelays {
            fast_share: 0.85,
            fast_mean_ms: 1_000.0,
            slow_share: 0.10,
            slow_min_ms: 10_000.0,
            slow_max_ms: 60_000.0,
        }
    }
}

impl LabelDelays {
    /// Share of events that never get a label.
    pub fn never_share(&self) -> f64 {
        (1.0 - self.fast_share - self.slow_share).max(0.0)
    }

    /// Checks the shares and ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.fast_share) || !(0.0..=1.0).contains(&self.slow_share) {
            return Err("label shares must lie in [0, 1]".into());
        }
        if self.fast_share + self.slow_share > 1.0 + 1e-9 {
            return Err("the fast and slow label shares add up to more than 1".into());
        }
        if self.fast_mean_ms < 0.0 || self.slow_min_ms < 0.0 || self.slow_max_ms < self.slow_min_ms {
            return Err("label delays must be non-negative, with the slow minimum below the maximum".into());
        }
        Ok(())
    }

    /// The delay for one event, or `None` when its label never comes.
    pub fn draw(&self, d: &mut Dist) -> Option<u64> {
        let u = d.uniform();
        if u < self.fast_share {
            Some(d.exponential(self.fast_mean_ms) as u64)
        } else if u < self.fast_share + self.slow_share {
            Some(d.range(self.slow_min_ms, self.slow_max_ms) as u64)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_follow_the_configuration() {
        let cfg = LabelDelays {
            fast_share: 0.7,
            fast_mean_ms: 500.0,
            slow_share: 0.2,
            slow_min_ms: 5_000.0,
            slow_max_ms: 9_000.0,
        };
        cfg.validate().unwrap();
        let mut d = Dist::new(3);
        let n = 100_000;
        let draws: Vec<Option<u64>> = (0..n).map(|_| cfg.draw(&mut d)).collect();
        let never = draws.iter().filter(|x| x.is_none()).count() as f64 / n as f64;
        let fast: Vec<f64> = draws.iter().flatten().filter(|x| **x < 5_000).map(|x| *x as f64).collect();
        let slow: Vec<u64> = draws.iter().flatten().filter(|x| **x >= 5_000).copied().collect();
        assert!((never - 0.1).abs() < 0.01, "never {never}");
        // A few fast delays exceed 5 s (exp(-10)), negligible here.
        assert!((fast.len() as f64 / n as f64 - 0.7).abs() < 0.01);
        assert!((slow.len() as f64 / n as f64 - 0.2).abs() < 0.01);
        let fast_mean = fast.iter().sum::<f64>() / fast.len() as f64;
        assert!((fast_mean - 500.0).abs() < 15.0, "fast mean {fast_mean}");
        assert!(slow.iter().all(|x| (5_000..=9_000).contains(x)));
        assert!(LabelDelays { fast_share: 0.8, slow_share: 0.3, ..cfg }.validate().is_err());
    }
}
