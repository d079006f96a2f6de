//! Text normalisation, tokenising and n-gram hashing for hashed-text models. A text becomes up to
//! `max-tokens` (bucket, weight) pairs: word n-grams and character n-grams within words, each hashed
//! (FNV-1a, 64 bit, seeded per n-gram kind) into `buckets`, weighted `1/sqrt(count)` so that long and
//! short texts have inputs of the same norm; the rest is padding (bucket 0, weight 0).

use crate::spec::Text;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over bytes, with a seed mixed into the offset basis.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    /// A hasher for n-grams of kind `seed`.
    pub fn new(seed: u64) -> Fnv {
        Fnv(FNV_OFFSET ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Adds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// Hash of a string with a seed.
pub fn hash_str(s: &str, seed: u64) -> u64 {
    let mut h = Fnv::new(seed);
    h.write(s.as_bytes());
    h.finish()
}

/// The tokens of a text: maximal runs of alphanumeric characters and apostrophes.
pub fn tokens(text: &str, lowercase: bool) -> Vec<String> {
    let normalised = if lowercase { text.to_lowercase() } else { text.to_string() };
    normalised
        .split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|t| t.trim_matches('\''))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Fills `indices` / `values` (equal lengths) with the hashed n-grams of `text`.
pub fn hash_ngrams(text: &str, spec: &Text, indices: &mut [i64], values: &mut [f32]) {
    let cap = indices.len().min(values.len());
    let buckets = u64::from(spec.buckets.max(1));
    let toks = tokens(text, spec.lowercase);
    let mut n_out = 0usize;
    let mut push = |h: u64, n_out: &mut usize| {
        if *n_out < cap {
            indices[*n_out] = (h % buckets) as i64;
            *n_out += 1;
        }
    };
    let [wmin, wmax] = spec.word_ngrams;
    if wmin >= 1 {
        for n in wmin..=wmax {
            let n = n as usize;
            for start in 0..toks.len().saturating_sub(n - 1) {
                let mut h = Fnv::new(n as u64);
                for (k, t) in toks[start..start + n].iter().enumerate() {
                    if k > 0 {
                        h.write(b" ");
                    }
                    h.write(t.as_bytes());
                }
                push(h.finish(), &mut n_out);
            }
        }
    }
    let [cmin, cmax] = spec.char_ngrams;
    if cmin >= 1 {
        for t in &toks {
            let chars: Vec<char> = std::iter::once('<').chain(t.chars()).chain(std::iter::once('>')).collect();
            for n in cmin..=cmax {
                let n = n as usize;
                for w in chars.windows(n) {
                    let mut h = Fnv::new(100 + n as u64);
                    let mut buf = [0u8; 4];
                    for c in w {
                        h.write(c.encode_utf8(&mut buf).as_bytes());
                    }
                    push(h.finish(), &mut n_out);
                }
            }
        }
    }
    let weight = if n_out == 0 { 0.0 } else { 1.0 / (n_out as f32).sqrt() };
    for (i, (idx, val)) in indices.iter_mut().zip(values.iter_mut()).enumerate().take(cap) {
        if i < n_out {
            *val = weight;
        } else {
            *idx = 0;
            *val = 0.0;
        }
    }
}

/// The bucket of a single word (a word unigram), as [`hash_ngrams`] computes it.
pub fn word_bucket(word: &str, buckets: u32) -> usize {
    let mut h = Fnv::new(1);
    h.write(word.as_bytes());
    (h.finish() % u64::from(buckets.max(1))) as usize
}
