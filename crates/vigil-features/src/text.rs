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
    let mut lower = String::new();
    token_spans(normalise_into(text, lowercase, &mut lower)).map(str::to_string).collect()
}

fn token_spans(text: &str) -> Spans<'_> {
    Spans { text, at: 0 }
}

/// The maximal runs of alphanumeric characters and apostrophes of a text, apostrophes trimmed from
/// their ends, empty ones skipped; an ASCII byte is classified without decoding a character.
struct Spans<'a> {
    text: &'a str,
    at: usize,
}

impl Spans<'_> {
    /// Whether the character at byte `at` belongs to a token, and its length in bytes.
    fn class_at(&self, at: usize) -> (bool, usize) {
        let b = self.text.as_bytes()[at];
        if b.is_ascii() {
            return (b.is_ascii_alphanumeric() || b == b'\'', 1);
        }
        let c = self.text[at..].chars().next().unwrap_or(' ');
        (c.is_alphanumeric(), c.len_utf8())
    }

    /// Moves past characters while their class is `token`.
    fn skip_while(&mut self, token: bool) {
        while self.at < self.text.len() {
            let (is_token, len) = self.class_at(self.at);
            if is_token != token {
                return;
            }
            self.at += len;
        }
    }
}

impl<'a> Iterator for Spans<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            self.skip_while(false);
            if self.at >= self.text.len() {
                return None;
            }
            let start = self.at;
            self.skip_while(true);
            let t = self.text[start..self.at].trim_matches('\'');
            if !t.is_empty() {
                return Some(t);
            }
        }
    }
}

/// Fills `indices` / `values` (equal lengths) with the hashed n-grams of `text`: word n-grams, then
/// the character n-grams of each word in `<word>`; those past the slots are not computed. Returns
/// how many slots it used (the rest is padding).
pub fn hash_ngrams(text: &str, spec: &Text, indices: &mut [i64], values: &mut [f32]) -> usize {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => hash_into(&mut scratch, text, spec, indices, values),
        Err(_) => hash_into(&mut Scratch::default(), text, spec, indices, values),
    })
}

/// What hashing one text needs besides the text, kept per thread from text to text (each was an
/// allocation per text).
#[derive(Default)]
struct Scratch {
    /// The lower-cased text.
    lower: String,
    /// Its tokens' byte ranges.
    spans: Vec<(usize, usize)>,
    /// One `<word>`.
    word: Vec<u8>,
    /// Where the characters of a non-ASCII `<word>` start.
    bounds: Vec<usize>,
}

thread_local! {
    static SCRATCH: std::cell::RefCell<Scratch> = std::cell::RefCell::new(Scratch::default());
}

fn hash_into(s: &mut Scratch, text: &str, spec: &Text, indices: &mut [i64], values: &mut [f32]) -> usize {
    let cap = indices.len().min(values.len());
    let buckets = spec.buckets.max(1);
    let text = normalise_into(text, spec.lowercase, &mut s.lower);
    s.spans.clear();
    if text.is_ascii() {
        ascii_spans(text.as_bytes(), &mut s.spans);
    } else {
        let base = text.as_ptr() as usize;
        s.spans.extend(token_spans(text).map(|t| (t.as_ptr() as usize - base, t.as_ptr() as usize - base + t.len())));
    }
    let mut n_out = 0usize;
    let mut push = |h: u64| {
        indices[n_out] = bucket(h, buckets) as i64;
        n_out += 1;
        n_out < cap
    };
    let more = cap > 0 && word_ngrams(text.as_bytes(), &s.spans, spec.word_ngrams, &mut push);
    if more {
        char_ngrams(text, &s.spans, spec.char_ngrams, (&mut s.word, &mut s.bounds), &mut push);
    }
    let weight = if n_out == 0 { 0.0 } else { 1.0 / (n_out as f32).sqrt() };
    values[..n_out].fill(weight);
    indices[n_out..cap].fill(0);
    values[n_out..cap].fill(0.0);
    n_out
}

/// The text, lower-cased into `lower` when asked (ASCII texts the cheap way, with the same result).
fn normalise_into<'a>(text: &'a str, lowercase: bool, lower: &'a mut String) -> &'a str {
    if !lowercase {
        return text;
    }
    lower.clear();
    if text.is_ascii() {
        lower.push_str(text);
        lower.make_ascii_lowercase();
    } else {
        lower.push_str(&text.to_lowercase());
    }
    lower
}

/// Whether an ASCII byte belongs to a token (alphanumeric, or an apostrophe).
const TOKEN_BYTE: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 128 {
        t[b] = (b as u8).is_ascii_alphanumeric() || b as u8 == b'\'';
        b += 1;
    }
    t
};

/// The byte ranges of an ASCII text's tokens, as [`token_spans`] finds them, added to `out`.
fn ascii_spans(text: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut at = 0;
    while at < text.len() {
        while at < text.len() && !TOKEN_BYTE[usize::from(text[at])] {
            at += 1;
        }
        let mut start = at;
        while at < text.len() && TOKEN_BYTE[usize::from(text[at])] {
            at += 1;
        }
        let mut end = at;
        while start < end && text[start] == b'\'' {
            start += 1;
        }
        while end > start && text[end - 1] == b'\'' {
            end -= 1;
        }
        if start < end {
            out.push((start, end));
        }
    }
}

/// Hashes the word n-grams (words joined by a space) into `push` while it asks for more.
fn word_ngrams(text: &[u8], toks: &[(usize, usize)], [min, max]: [u32; 2], push: &mut impl FnMut(u64) -> bool) -> bool {
    if min < 1 {
        return true;
    }
    for n in min..=max {
        for w in toks.windows(n as usize) {
            let mut h = Fnv::new(u64::from(n));
            for (k, &(a, b)) in w.iter().enumerate() {
                if k > 0 {
                    h.write(b" ");
                }
                h.write(&text[a..b]);
            }
            if !push(h.finish()) {
                return false;
            }
        }
    }
    true
}

/// Hashes the character n-grams of each `<word>` into `push` while it asks for more (the bytes of
/// n whole characters, hashed at once: the same as character by character).
fn char_ngrams(
    text: &str,
    toks: &[(usize, usize)],
    [min, max]: [u32; 2],
    (word, bounds): (&mut Vec<u8>, &mut Vec<usize>),
    push: &mut impl FnMut(u64) -> bool,
) {
    if min < 1 {
        return;
    }
    for &(a, b) in toks {
        let t = &text[a..b];
        word.clear();
        word.push(b'<');
        word.extend_from_slice(t.as_bytes());
        word.push(b'>');
        let ascii = t.is_ascii();
        if !ascii {
            bounds.clear();
            bounds.push(0);
            bounds.extend(t.char_indices().map(|(i, _)| i + 1));
            bounds.extend([t.len() + 1, t.len() + 2]);
        }
        for n in min as usize..=max as usize {
            let seed = Fnv::new(100 + n as u64);
            let more = if ascii {
                ascii_char_ngrams(word, n, seed, push)
            } else {
                let chars = bounds.len() - 1;
                (0..(chars + 1).saturating_sub(n)).all(|start| {
                    let mut h = seed;
                    h.write(&word[bounds[start]..bounds[start + n]]);
                    push(h.finish())
                })
            };
            if !more {
                return;
            }
        }
    }
}

/// The n-byte n-grams of an ASCII `<word>` into `push` while it asks for more: four at a time, as
/// four independent multiply chains (one FNV chain waits on each multiply).
fn ascii_char_ngrams(word: &[u8], n: usize, seed: Fnv, push: &mut impl FnMut(u64) -> bool) -> bool {
    let count = (word.len() + 1).saturating_sub(n);
    let mut start = 0;
    while start + 4 <= count {
        let w = &word[start..start + 3 + n];
        let mut h = [seed.0; 4];
        for k in 0..n {
            for (j, h) in h.iter_mut().enumerate() {
                *h = (*h ^ u64::from(w[j + k])).wrapping_mul(FNV_PRIME);
            }
        }
        if !h.into_iter().all(&mut *push) {
            return false;
        }
        start += 4;
    }
    (start..count).all(|s| {
        let mut h = seed;
        h.write(&word[s..s + n]);
        push(h.finish())
    })
}

/// The bucket of a single word (a word unigram), as [`hash_ngrams`] computes it.
pub fn word_bucket(word: &str, buckets: u32) -> usize {
    let mut h = Fnv::new(1);
    h.write(word.as_bytes());
    bucket(h.finish(), buckets.max(1))
}

/// Hash `h`'s bucket of `buckets`: `h % buckets`, without a division when they are a power of two
/// (the usual case; an n-gram's division, computed even then by a `map_or`, was a third of the
/// hashing's time).
pub(crate) fn bucket(h: u64, buckets: u32) -> usize {
    let b = u64::from(buckets);
    (if b.is_power_of_two() { h & (b - 1) } else { h % b }) as usize
}
