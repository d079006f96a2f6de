//! Texts to score for sentiment, with labels: the VADER human-rated snippets when a data folder is
//! given (label 1 when the mean rating is positive, 0 when negative; neutral ones are skipped), or a
//! small built-in generator otherwise, whose records say `source = "synthetic-<channel>"` (app,
//! support or social, by subject).
//!
//! Drift for text: the source mix moves (e.g. from tweets to movie reviews) at an event index. A
//! surge: for a span of events, half the texts are negative ones from one source (bad news about one
//! ticker), so that source's share of negative texts rises while the others' stays.

use std::path::Path;

use super::dist::Dist;

/// One text with its sentiment label.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledText {
    /// Where it comes from (`tweets`, `movie-reviews`, … or `synthetic`).
    pub source: String,
    /// The text.
    pub text: String,
    /// 1.0 positive, 0.0 negative.
    pub label: f64,
}

/// The VADER files and the source name each becomes.
pub const VADER_FILES: &[(&str, &str)] = &[
    ("tweets_GroundTruth.txt", "tweets"),
    ("movieReviewSnippets_GroundTruth.txt", "movie-reviews"),
    ("amazonReviewSnippets_GroundTruth.txt", "product-reviews"),
    ("nytEditorialSnippets_GroundTruth.txt", "editorials"),
];

/// Reads the VADER ground-truth files in `dir` (ID, mean rating, text; tab-separated).
pub fn load_vader(dir: &Path) -> Result<Vec<LabelledText>, String> {
    let mut out = Vec::new();
    for (file, source) in VADER_FILES {
        let path = dir.join(file);
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&bytes);
        for (n, line) in text.split('\n').enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let mut cols = line.splitn(3, '\t');
            let (_id, rating, body) = (cols.next(), cols.next(), cols.next());
            let (Some(rating), Some(body)) = (rating, body) else {
                return Err(format!("{}:{}: expected ID<TAB>RATING<TAB>TEXT", path.display(), n + 1));
            };
            let rating: f64 = rating.trim().parse().map_err(|_| format!("{}:{}: bad rating", path.display(), n + 1))?;
            if rating == 0.0 {
                continue;
            }
            out.push(LabelledText {
                source: (*source).into(),
                text: body.to_string(),
                label: if rating > 0.0 { 1.0 } else { 0.0 },
            });
        }
    }
    Ok(out)
}

const POSITIVE: &[&str] =
    &["great", "excellent", "love", "wonderful", "fast", "friendly", "perfect", "happy", "recommend", "brilliant"];
const NEGATIVE: &[&str] =
    &["terrible", "awful", "hate", "broken", "slow", "rude", "useless", "disappointed", "refund", "worst"];
const SUBJECTS: &[&str] =
    &["the delivery", "this phone", "the support team", "my order", "the app", "the hotel", "the food", "the service"];
const FILLER: &[&str] = &["honestly", "really", "today", "again", "overall", "so far", "as usual", "this time"];

/// Synthetic texts' sources, by subject.
const CHANNELS: &[&str] = &["synthetic-app", "synthetic-support", "synthetic-social"];

/// A stream of labelled texts: a shuffled pool (VADER) or the synthetic generator.
pub struct TextSim {
    d: Dist,
    pool: Vec<LabelledText>,
    /// Pool indices per source, for source-mix drift.
    by_source: Vec<(String, Vec<usize>)>,
    drift: Option<TextDrift>,
    surge: Option<TextSurge>,
    i: u64,
}

/// A surge of negative texts from one source: for events `from..to`, every other text is a
/// negative one from `source`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSurge {
    /// First event index of the surge.
    pub from: u64,
    /// Event index where it ends.
    pub to: u64,
    /// The source whose negative texts surge (`tweets`, … or `synthetic-support`).
    pub source: String,
}

/// Source-mix drift: from index `at`, texts come only from `to_source`.
#[derive(Debug, Clone, PartialEq)]
pub struct TextDrift {
    /// Event index.
    pub at: u64,
    /// The source every text comes from afterwards (`synthetic` drift uses another vocabulary).
    pub to_source: String,
}

impl TextSim {
    /// Texts from `pool` (e.g. [`load_vader`]); with an empty pool, synthetic texts.
    pub fn new(seed: u64, pool: Vec<LabelledText>, drift: Option<TextDrift>) -> TextSim {
        let mut by_source: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, t) in pool.iter().enumerate() {
            match by_source.iter_mut().find(|(s, _)| *s == t.source) {
                Some((_, v)) => v.push(i),
                None => by_source.push((t.source.clone(), vec![i])),
            }
        }
        TextSim { d: Dist::new(seed), pool, by_source, drift, surge: None, i: 0 }
    }

    /// The same stream with a surge of negative texts from one source.
    pub fn with_surge(self, surge: TextSurge) -> TextSim {
        TextSim { surge: Some(surge), ..self }
    }

    /// A negative text from the surging source, when the surge is on and the draw says so.
    fn surging(&mut self) -> Option<LabelledText> {
        let s = self.surge.clone().filter(|s| (s.from..s.to).contains(&self.i))?;
        if !self.d.chance(0.5) {
            return None;
        }
        if self.pool.is_empty() {
            let mut t = self.synthetic_text(false, Some(false));
            t.source = s.source;
            return Some(t);
        }
        let (_, idx) = self.by_source.iter().find(|(n, _)| *n == s.source)?;
        let negative: Vec<usize> = idx.iter().copied().filter(|i| self.pool[*i].label == 0.0).collect();
        (!negative.is_empty()).then(|| self.pool[negative[self.d.index(negative.len())]].clone())
    }

    /// Whether texts are synthetic.
    pub fn synthetic(&self) -> bool {
        self.pool.is_empty()
    }

    /// The next text.
    pub fn text(&mut self) -> LabelledText {
        if let Some(t) = self.surging() {
            self.i += 1;
            return t;
        }
        let drifted = self.drift.as_ref().filter(|d| self.i >= d.at).map(|d| d.to_source.clone());
        self.i += 1;
        if self.pool.is_empty() {
            return self.synthetic_text(drifted.is_some(), None);
        }
        let idx = match drifted.and_then(|s| self.by_source.iter().find(|(n, _)| *n == s).map(|(_, v)| v.clone())) {
            Some(v) => v[self.d.index(v.len())],
            None => self.d.index(self.pool.len()),
        };
        self.pool[idx].clone()
    }

    /// A synthetic text (its sentiment drawn, or `positive` when given).
    fn synthetic_text(&mut self, drifted: bool, positive: Option<bool>) -> LabelledText {
        let drawn = self.d.chance(0.55);
        let positive = positive.unwrap_or(drawn);
        // After drift the same opinions come in other words (slang the model has not seen).
        let (pos, neg): (&[&str], &[&str]) = if drifted {
            (&["fire", "goated", "slaps", "bussin", "lit"], &["mid", "trash", "cringe", "sus", "busted"])
        } else {
            (POSITIVE, NEGATIVE)
        };
        let words = if positive { pos } else { neg };
        let w1 = words[self.d.index(words.len())];
        let w2 = words[self.d.index(words.len())];
        let which = self.d.index(SUBJECTS.len());
        let subject = SUBJECTS[which];
        let filler = FILLER[self.d.index(FILLER.len())];
        let text = match self.d.index(3) {
            0 => format!("{subject} was {w1}, {filler} {w2}"),
            1 => format!("{filler}: {w1}! {subject} is {w2}"),
            _ => format!("{w1} experience with {subject}, {w2} {filler}"),
        };
        let source = CHANNELS[which % CHANNELS.len()].to_string();
        LabelledText { source, text, label: if positive { 1.0 } else { 0.0 } }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_texts_are_labelled_by_their_words_and_drift_changes_the_vocabulary() {
        let mut s = TextSim::new(1, Vec::new(), Some(TextDrift { at: 100, to_source: "synthetic".into() }));
        assert!(s.synthetic());
        let before: Vec<_> = (0..100).map(|_| s.text()).collect();
        let after: Vec<_> = (0..100).map(|_| s.text()).collect();
        assert!(before.iter().all(|t| CHANNELS.contains(&t.source.as_str())), "{:?}", before[0]);
        for t in &before {
            let pos = POSITIVE.iter().any(|w| t.text.contains(w));
            let neg = NEGATIVE.iter().any(|w| t.text.contains(w));
            assert_eq!(pos, t.label == 1.0, "{t:?}");
            assert_eq!(neg, t.label == 0.0, "{t:?}");
        }
        assert!(after.iter().all(|t| !POSITIVE.iter().chain(NEGATIVE).any(|w| t.text.contains(w))));
    }

    #[test]
    fn a_surge_raises_one_sources_negative_share_only() {
        let surge = TextSurge { from: 1000, to: 2000, source: "synthetic-support".into() };
        let mut s = TextSim::new(3, Vec::new(), None).with_surge(surge);
        let share = |texts: &[LabelledText], source: &str| {
            let of: Vec<_> = texts.iter().filter(|t| t.source == source).collect();
            of.iter().filter(|t| t.label == 0.0).count() as f64 / of.len() as f64
        };
        let before: Vec<_> = (0..1000).map(|_| s.text()).collect();
        let during: Vec<_> = (0..1000).map(|_| s.text()).collect();
        let after: Vec<_> = (0..1000).map(|_| s.text()).collect();
        for source in CHANNELS {
            let (b, d, a) = (share(&before, source), share(&during, source), share(&after, source));
            if *source == "synthetic-support" {
                assert!(d > b + 0.3 && a < d - 0.3, "{source}: {b:.2} → {d:.2} → {a:.2}");
            } else {
                assert!((d - b).abs() < 0.1, "{source}: {b:.2} → {d:.2}");
            }
        }
    }

    #[test]
    fn vader_files_load_when_present() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/sentiment");
        if !dir.exists() {
            eprintln!("skipping: {} is absent (a fresh clone has no ../shared)", dir.display());
            return;
        }
        let texts = load_vader(&dir).unwrap();
        // 23,703 rows less the neutral ones (4 + 37 + 98 + 244).
        assert_eq!(texts.len(), 23_703 - 383);
        let tweets_pos = texts.iter().filter(|t| t.source == "tweets" && t.label == 1.0).count();
        assert_eq!(tweets_pos, 2_897);
        let mut s = TextSim::new(5, texts, Some(TextDrift { at: 10, to_source: "movie-reviews".into() }));
        let after: Vec<_> = (0..50).map(|_| s.text()).skip(10).collect();
        assert!(after.iter().all(|t| t.source == "movie-reviews"));
    }
}
