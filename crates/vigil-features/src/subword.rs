//! Subword tokens for sentence encoders: a Hugging Face `tokenizer.json` (WordPiece for BERT
//! models) read with the `tokenizers` crate, truncated to a configured length, and texts grouped by
//! their token count into batches padded to their longest, so that padding stays small. One text at
//! a time on the caller's thread (no thread pool in the scorer).

use tokenizers::{Tokenizer, TruncationParams};

/// Why texts could not be tokenised.
#[derive(Debug, thiserror::Error)]
#[error("tokenizer: {0}")]
pub struct SubwordError(String);

/// A padded batch of token ids and its attention mask, row-major `[rows, cols]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// The texts' positions in the caller's list, one per row.
    pub texts: Vec<usize>,
    /// Width: the longest row's token count.
    pub cols: usize,
    /// Token ids, padded with the tokenizer's padding id (0 for BERT).
    pub ids: Vec<i64>,
    /// 1 for a token, 0 for padding.
    pub mask: Vec<i64>,
}

impl TokenBatch {
    /// Tokens that are padding, as a share of the batch.
    pub fn padding_share(&self) -> f64 {
        let pad = self.mask.iter().filter(|m| **m == 0).count();
        pad as f64 / self.mask.len().max(1) as f64
    }
}

/// A tokenizer with its truncation length.
pub struct Subword {
    tokenizer: Tokenizer,
    pad_id: i64,
    max_tokens: usize,
}

impl std::fmt::Debug for Subword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Subword(max_tokens {}, pad {})", self.max_tokens, self.pad_id)
    }
}

impl Subword {
    /// The tokenizer described by a `tokenizer.json`'s bytes, truncating to `max_tokens` (special
    /// tokens included). The file's own padding is replaced by padding to the batch's longest.
    pub fn from_json(json: &[u8], max_tokens: usize) -> Result<Subword, SubwordError> {
        let mut tokenizer = Tokenizer::from_bytes(json).map_err(|e| SubwordError(e.to_string()))?;
        let pad_id = tokenizer.get_padding().map_or(0, |p| i64::from(p.pad_id));
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| SubwordError(e.to_string()))?;
        tokenizer.with_padding(None);
        Ok(Subword { tokenizer, pad_id, max_tokens })
    }

    /// The id that pads a text's tokens.
    pub fn pad_id(&self) -> i64 {
        self.pad_id
    }

    /// Tokens per text at most.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Writes the token ids of one text into `ids` (its length: at least the truncation length),
    /// padded with the padding id, and 1 / 0 into `mask`; returns the token count.
    pub fn fill(&self, text: &str, ids: &mut [i64], mask: &mut [f32]) -> Result<usize, SubwordError> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| SubwordError(e.to_string()))?;
        let got = encoding.get_ids();
        let n = got.len().min(ids.len());
        for (k, (slot, m)) in ids.iter_mut().zip(mask.iter_mut()).enumerate() {
            (*slot, *m) = if k < n { (i64::from(got[k]), 1.0) } else { (self.pad_id, 0.0) };
        }
        Ok(n)
    }

    /// The token ids of one text, special tokens included, truncated.
    pub fn ids(&self, text: &str) -> Result<Vec<u32>, SubwordError> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| SubwordError(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// `texts` in batches of at most `max_rows`, grouped by token count (shortest first), each padded
    /// to its longest row.
    pub fn batches(&self, texts: &[&str], max_rows: usize) -> Result<Vec<TokenBatch>, SubwordError> {
        let mut encoded: Vec<(usize, Vec<u32>)> =
            texts.iter().enumerate().map(|(i, t)| Ok((i, self.ids(t)?))).collect::<Result<_, SubwordError>>()?;
        encoded.sort_by_key(|(i, ids)| (ids.len(), *i));
        Ok(encoded.chunks(max_rows.max(1)).map(|group| self.pad(group)).collect())
    }

    fn pad(&self, group: &[(usize, Vec<u32>)]) -> TokenBatch {
        let cols = group.iter().map(|(_, ids)| ids.len()).max().unwrap_or(0);
        let mut batch = TokenBatch { texts: Vec::new(), cols, ids: Vec::new(), mask: Vec::new() };
        for (i, ids) in group {
            batch.texts.push(*i);
            batch.ids.extend(ids.iter().map(|id| i64::from(*id)));
            batch.ids.extend(std::iter::repeat_n(self.pad_id, cols - ids.len()));
            batch.mask.extend(std::iter::repeat_n(1, ids.len()));
            batch.mask.extend(std::iter::repeat_n(0, cols - ids.len()));
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny WordPiece tokenizer in the shape of BERT's `tokenizer.json`.
    const TINY: &str = r###"{
      "version": "1.0", "truncation": null,
      "padding": {"strategy": {"Fixed": 16}, "direction": "Right", "pad_to_multiple_of": null,
                  "pad_id": 0, "pad_type_id": 0, "pad_token": "[PAD]"},
      "added_tokens": [],
      "normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true,
                     "strip_accents": null, "lowercase": true},
      "pre_tokenizer": {"type": "BertPreTokenizer"},
      "post_processor": {"type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                   {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}],
        "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                           "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}}},
      "decoder": null,
      "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 100,
                "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "good": 4, "bad": 5, "news": 6,
                          "stock": 7, "##s": 8, "fell": 9, "!": 10}}
    }"###;

    #[test]
    fn texts_become_wordpieces_with_special_tokens_truncated_to_the_length_given() {
        let t = Subword::from_json(TINY.as_bytes(), 5).unwrap();
        assert_eq!(t.ids("Good news!").unwrap(), [2, 4, 6, 10, 3]);
        assert_eq!(t.ids("Stocks fell").unwrap(), [2, 7, 8, 9, 3], "a continuing subword");
        assert_eq!(t.ids("good bad good bad good").unwrap(), [2, 4, 5, 4, 3], "truncated, [SEP] kept");
        assert_eq!(t.ids("zebra").unwrap(), [2, 1, 3], "unknown word");
    }

    #[test]
    fn batches_group_texts_by_length_and_pad_to_their_longest() {
        let t = Subword::from_json(TINY.as_bytes(), 16).unwrap();
        let texts = ["good good good good good", "bad", "good news", "stocks fell !", "news"];
        let batches = t.batches(&texts, 2).unwrap();
        let order: Vec<usize> = batches.iter().flat_map(|b| b.texts.clone()).collect();
        assert_eq!(order, [1, 4, 2, 3, 0], "shortest first, every text once");
        assert_eq!((batches[0].cols, batches[1].cols, batches[2].cols), (3, 6, 7));
        assert_eq!(batches[1].ids, [2, 4, 6, 3, 0, 0, 2, 7, 8, 9, 10, 3]);
        assert_eq!(batches[1].mask, [1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1]);
        assert_eq!(batches[0].padding_share(), 0.0);
    }

    #[test]
    fn an_encoder_spec_featurises_token_ids_and_a_mask_and_refuses_what_it_cannot() {
        use crate::featurize::{FeatureError, Featurizer, Field, Row};
        use crate::spec::FeatureSpec;
        let digest = "ab".repeat(32);
        let toml = format!(
            "model = \"s\"\nschema = \"dev.vigil.demo.TextEvent\"\n[encoder]\nfield = \"text\"\n\
             artifact = \"{digest}\"\ntokenizer = \"{digest}\"\ndim = 4\nmax-tokens = 5\nmax-chars = 20\n"
        );
        let spec = FeatureSpec::parse(&toml).unwrap();
        assert_eq!(spec.width(), 4, "the head takes the embedding");
        let schema = vigil_events::schemas::current(vigil_events::schemas::names::TEXT_EVENT).unwrap();
        let f = Featurizer::new(&spec, &schema.schema).unwrap();
        let text = |s| [Field::Str(s)];
        assert!(matches!(f.row(&text("good news")), Err(FeatureError::Tokens { .. })), "no tokenizer yet");
        let f = f.with_tokenizer(std::sync::Arc::new(Subword::from_json(TINY.as_bytes(), 5).unwrap()));
        assert_eq!(f.row(&text("Good news!")).unwrap(), Row::Tokens(vec![2, 4, 6, 10, 3]));
        assert_eq!(f.row(&text("")).unwrap(), Row::Tokens(vec![2, 3]), "an empty text is [CLS] [SEP]");
        let mut batch = f.batch(2);
        f.push(&mut batch, "a", &text("bad")).unwrap();
        let batch = batch.finish().unwrap();
        let (ids, mask, rows, len) = crate::batch::text_view(&batch).unwrap();
        assert_eq!((rows, len), (1, 3), "cut to the longest row's tokens");
        assert_eq!(ids, [2, 5, 3]);
        assert_eq!(mask, [1.0, 1.0, 1.0]);
        let long = "good ".repeat(5);
        assert!(matches!(f.row(&text(&long)), Err(FeatureError::Oversized { .. })));
        assert!(matches!(f.row(&[Field::Int(3)]), Err(FeatureError::Type { .. })));

        let bad = toml.replace(&format!("artifact = \"{digest}\""), "artifact = \"ABC\"").replace("dim = 4", "dim = 0");
        let problems = FeatureSpec::parse(&bad).unwrap_err().problems;
        assert!(problems.iter().any(|p| p.contains("encoder.artifact")), "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("encoder.dim")), "{problems:?}");
        let mixed = format!("{toml}[text]\nfield = \"text\"\nbuckets = 16\n");
        assert!(FeatureSpec::parse(&mixed).unwrap_err().problems.iter().any(|p| p.contains("only [encoder]")));
    }
}
