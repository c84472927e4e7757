//! Text → the 77 token ids CLIP's text tower reads, as transformers' `CLIPTokenizerFast`
//! gives them with `padding="max_length", max_length=77, truncation=True`.
//!
//! The `tokenizers` crate reads the checkpoint's `tokenizer.json` and does the cleaning
//! (NFC, whitespace, lowercase) and byte-level BPE; this module only frames the result:
//! `<|startoftext|>`, at most `max_len - 2` text tokens (truncation keeps the start and the
//! end token), `<|endoftext|>`, then padding. The text embedding is pooled at the end token,
//! whose first occurrence is returned with the ids (a text may spell `<|endoftext|>`). No I/O: callers pass the JSON bytes.

use tokenizers::Tokenizer;

const START: &str = "<|startoftext|>";
const END: &str = "<|endoftext|>";

/// Why text could not be tokenized.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("tokenizer.json could not be read: {message}")]
    Load { message: String },
    #[error("tokenizer.json has no {token} token; it is not a CLIP tokenizer")]
    MissingSpecial { token: &'static str },
    #[error("the text could not be tokenized: {message}")]
    Encode { message: String },
    #[error("a context of {max_len} tokens cannot hold the start and end tokens")]
    ContextTooShort { max_len: usize },
}

/// The ids of one text, padded to the context length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIds {
    pub ids: Vec<u32>,
    /// Where `<|endoftext|>` stands: the pooling position.
    pub eos_position: usize,
}

/// CLIP's tokenizer with its framing.
pub struct ClipTokenizer {
    inner: Tokenizer,
    start_id: u32,
    end_id: u32,
    max_len: usize,
}

impl ClipTokenizer {
    /// Reads `tokenizer.json`; `max_len` is `text_config.max_position_embeddings`.
    pub fn from_json(bytes: &[u8], max_len: usize) -> Result<Self, TokenizerError> {
        if max_len < 2 {
            return Err(TokenizerError::ContextTooShort { max_len });
        }
        let mut inner = Tokenizer::from_bytes(bytes).map_err(|e| TokenizerError::Load {
            message: e.to_string(),
        })?;
        // The framing below does truncation and padding; the file's own settings must not
        // interfere.
        inner
            .with_truncation(None)
            .map_err(|e| TokenizerError::Load {
                message: e.to_string(),
            })?;
        inner.with_padding(None);
        let start_id = inner
            .token_to_id(START)
            .ok_or(TokenizerError::MissingSpecial { token: START })?;
        let end_id = inner
            .token_to_id(END)
            .ok_or(TokenizerError::MissingSpecial { token: END })?;
        Ok(Self {
            inner,
            start_id,
            end_id,
            max_len,
        })
    }

    pub fn start_id(&self) -> u32 {
        self.start_id
    }

    pub fn end_id(&self) -> u32 {
        self.end_id
    }

    /// The context length (77 for every released CLIP).
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// Tokenizes one text.
    pub fn encode(&self, text: &str) -> Result<TokenIds, TokenizerError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizerError::Encode {
                message: e.to_string(),
            })?;
        let body = encoding.get_ids();
        let keep = body.len().min(self.max_len - 2);
        let mut ids = Vec::with_capacity(self.max_len);
        ids.push(self.start_id);
        ids.extend_from_slice(&body[..keep]);
        ids.push(self.end_id);
        // transformers pools at the first end token, which is earlier than ours when the
        // text itself spells `<|endoftext|>`.
        let eos_position = ids
            .iter()
            .position(|id| *id == self.end_id)
            .unwrap_or(keep + 1);
        ids.resize(self.max_len, self.end_id);
        Ok(TokenIds { ids, eos_position })
    }

    /// Tokenizes several texts.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Vec<TokenIds>, TokenizerError> {
        texts.iter().map(|t| self.encode(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIP: &[u8] = include_bytes!("../../tests/fixtures/clip-tokenizer/tokenizer.json");

    #[test]
    fn frames_like_clip_tokenizer_fast() -> Result<(), TokenizerError> {
        let tok = ClipTokenizer::from_json(CLIP, 77)?;
        let t = tok.encode("a photo of a cat")?;
        assert_eq!(&t.ids[..7], &[49406, 320, 1125, 539, 320, 2368, 49407]);
        assert!(t.ids[7..].iter().all(|id| *id == 49407));
        assert_eq!(t.ids.len(), 77);
        assert_eq!(t.eos_position, 6);
        let empty = tok.encode("")?;
        assert_eq!(&empty.ids[..2], &[49406, 49407]);
        assert_eq!(empty.eos_position, 1);
        Ok(())
    }

    #[test]
    fn long_text_keeps_start_and_end() -> Result<(), TokenizerError> {
        let tok = ClipTokenizer::from_json(CLIP, 77)?;
        let long = "word ".repeat(200);
        let t = tok.encode(&long)?;
        assert_eq!(t.ids.len(), 77);
        assert_eq!(t.ids[0], 49406);
        assert_eq!(t.ids[76], 49407);
        assert_eq!(t.eos_position, 76);
        Ok(())
    }

    #[test]
    fn not_a_tokenizer_is_an_error() {
        assert!(matches!(
            ClipTokenizer::from_json(b"{}", 77),
            Err(TokenizerError::Load { .. })
        ));
        assert!(matches!(
            ClipTokenizer::from_json(CLIP, 1),
            Err(TokenizerError::ContextTooShort { .. })
        ));
    }
}
