//! Mergeable histograms over fixed edges: reference windows are summarised once (deciles of a
//! training window) and live windows are counted into the same bins, for chi-squared tests and PSI.

/// Counts per bin `[edges[i], edges[i+1])`; values below the first edge count in the first bin, above
/// the last in the last.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Ascending edges (at least two).
    pub edges: Vec<f64>,
    /// Counts, one fewer than the edges.
    pub counts: Vec<f64>,
}

impl Histogram {
    /// An empty histogram over `edges` (deduplicated; at least two kept).
    pub fn new(mut edges: Vec<f64>) -> Histogram {
        edges.sort_by(f64::total_cmp);
        edges.dedup();
        if edges.len() < 2 {
            let e = edges.first().copied().unwrap_or(0.0);
            edges = vec![e, e + 1.0];
        }
        let counts = vec![0.0; edges.len() - 1];
        Histogram { edges, counts }
    }

    /// Edges at the deciles of `sample`.
    pub fn deciles(sample: &[f64]) -> Histogram {
        let mut s: Vec<f64> = sample.iter().copied().filter(|x| x.is_finite()).collect();
        s.sort_by(f64::total_cmp);
        if s.is_empty() {
            return Histogram::new(vec![0.0, 1.0]);
        }
        let n = s.len();
        Histogram::new((0..=10).map(|q| s[((q * (n - 1)) / 10).min(n - 1)]).collect())
    }

    /// Counts a value.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        let i = self.edges.partition_point(|e| *e <= x).saturating_sub(1).min(self.counts.len() - 1);
        self.counts[i] += 1.0;
    }

    /// Adds another histogram over the same edges; `false` (and nothing changes) when they differ.
    pub fn merge(&mut self, other: &Histogram) -> bool {
        if self.edges != other.edges {
            return false;
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        true
    }

    /// Values counted.
    pub fn total(&self) -> f64 {
        self.counts.iter().sum()
    }
}
