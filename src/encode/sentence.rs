//! The multilingual query encoder on the CPU (candle): a DistilBERT, mean pooling over the
//! attention mask, the Dense layers, then L2 normalisation, as sentence-transformers'
//! `SentenceTransformer.encode` computes it for clip-ViT-B-32-multilingual-v1 (its vectors
//! live in OpenAI ViT-B/32's text space, so they rank that model's image embeddings).
//!
//! Mirrors transformers' `DistilBertModel` (post-LN blocks: `sa_layer_norm(x + attention)`,
//! `output_layer_norm(x + lin2(gelu(lin1(x))))`; embeddings = word + position, then
//! LayerNorm; eps 1e-12; padded keys masked out of every softmax) and sentence-transformers'
//! `Pooling` (sum of the token vectors where the mask is 1, divided by the token count) and
//! `Dense` (`linear`, identity activation). Texts of a batch are padded to the longest.
//! Holds no I/O; its tensors arrive checked from `model::sentence`.

use candle_core::{Device, Tensor, D};

use super::cpu::{activate, attention, ce, CResult, LayerNorm, Linear, Source};
use super::{l2_normalize_rows, Embeddings, EncodeError};
use crate::model::sentence::{SentenceError, SentenceSpec, SentenceTokenizer, LAYER_NORM_EPS};
use crate::model::sentence_load::SentenceParts;
use crate::model::weights::NamedTensors;
use crate::model::Activation;

struct Block {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    sa_ln: LayerNorm,
    lin1: Linear,
    lin2: Linear,
    out_ln: LayerNorm,
}

impl Block {
    fn load(w: &mut NamedTensors, p: &str) -> Result<Self, EncodeError> {
        let lin = |w: &mut NamedTensors, name: &str| w.linear(&format!("{p}.{name}"), true, None);
        Ok(Self {
            q: lin(w, "attention.q_lin")?,
            k: lin(w, "attention.k_lin")?,
            v: lin(w, "attention.v_lin")?,
            out: lin(w, "attention.out_lin")?,
            sa_ln: LayerNorm::load(w, &format!("{p}.sa_layer_norm"), LAYER_NORM_EPS)?,
            lin1: lin(w, "ffn.lin1")?,
            lin2: lin(w, "ffn.lin2")?,
            out_ln: LayerNorm::load(w, &format!("{p}.output_layer_norm"), LAYER_NORM_EPS)?,
        })
    }
}

/// The DistilBERT, the pooling and the Dense layers.
pub struct SentenceEncoder {
    word: Tensor,
    position: Tensor,
    embed_ln: LayerNorm,
    blocks: Vec<Block>,
    dense: Vec<Linear>,
    heads: usize,
    act: Activation,
    dim: usize,
    out_dim: usize,
    vocab_size: usize,
    max_len: usize,
}

impl SentenceEncoder {
    /// Builds the encoder from checked tensors: the transformer's and one map per Dense.
    pub fn new(
        spec: &SentenceSpec,
        mut transformer: NamedTensors,
        dense: Vec<NamedTensors>,
    ) -> Result<Self, EncodeError> {
        let c = &spec.config;
        let w = &mut transformer;
        let blocks = (0..c.n_layers)
            .map(|i| Block::load(w, &format!("transformer.layer.{i}")))
            .collect::<Result<_, _>>()?;
        let dense = spec
            .dense
            .iter()
            .zip(dense)
            .map(|(d, mut t)| t.linear("linear", d.bias, None))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            word: w.tensor("embeddings.word_embeddings.weight")?,
            position: w.tensor("embeddings.position_embeddings.weight")?,
            embed_ln: LayerNorm::load(w, "embeddings.LayerNorm", LAYER_NORM_EPS)?,
            blocks,
            dense,
            heads: c.n_heads,
            act: c.activation,
            dim: c.dim,
            out_dim: spec.embedding_dim(),
            vocab_size: c.vocab_size,
            max_len: spec.max_seq_length,
        })
    }

    pub fn embedding_dim(&self) -> usize {
        self.out_dim
    }

    /// Embeds token id lists (each `[CLS]` … `[SEP]`, at most `max_seq_length` long).
    pub fn encode_ids(&self, texts: &[Vec<u32>]) -> Result<Embeddings, EncodeError> {
        for (index, ids) in texts.iter().enumerate() {
            if ids.is_empty() || ids.len() > self.max_len {
                return Err(EncodeError::TokenCount {
                    index,
                    expected: self.max_len,
                    got: ids.len(),
                });
            }
            if let Some(id) = ids.iter().find(|id| **id as usize >= self.vocab_size) {
                return Err(EncodeError::TokenOutOfRange {
                    index,
                    id: *id,
                    vocab_size: self.vocab_size,
                });
            }
        }
        let mut data = if texts.is_empty() {
            Vec::new()
        } else {
            self.forward(texts).map_err(ce("query embeddings"))?
        };
        l2_normalize_rows(&mut data, self.out_dim);
        Ok(Embeddings {
            dim: self.out_dim,
            data,
        })
    }

    fn forward(&self, texts: &[Vec<u32>]) -> CResult<Vec<f32>> {
        let (b, t, h) = (
            texts.len(),
            texts.iter().map(Vec::len).max().unwrap_or(1),
            self.dim,
        );
        let mut ids = Vec::with_capacity(b * t);
        let mut keep = Vec::with_capacity(b * t);
        for row in texts {
            ids.extend(row.iter().copied().chain(std::iter::repeat(0)).take(t));
            keep.extend((0..t).map(|i| if i < row.len() { 1f32 } else { 0.0 }));
        }
        let cpu = &Device::Cpu;
        let ids = Tensor::from_vec(ids, b * t, cpu)?;
        let keep = Tensor::from_vec(keep, (b, t), cpu)?;
        let x = self
            .word
            .index_select(&ids, 0)?
            .reshape((b, t, h))?
            .broadcast_add(&self.position.narrow(0, 0, t)?)?;
        let mut x = self.embed_ln.forward(&x)?.reshape((b * t, h))?;
        // Additive key mask [b, 1, 1, t]: 0 where a token is, -f32::MAX on padding.
        let key_mask = ((keep.clone() - 1.0)? * f64::from(f32::MAX))?.reshape((b, 1, 1, t))?;
        for blk in &self.blocks {
            let ctx = attention(
                &x,
                [&blk.q, &blk.k, &blk.v],
                (b, t, self.heads),
                Some(&key_mask),
            )?;
            let y = blk.sa_ln.forward(&(blk.out.forward(&ctx)? + &x)?)?;
            let f = blk
                .lin2
                .forward(&activate(&blk.lin1.forward(&y)?, self.act)?)?;
            x = blk.out_ln.forward(&(f + y)?)?;
        }
        // Mean over the real tokens (every text has at least [CLS] and [SEP]).
        let x = x.reshape((b, t, h))?;
        let summed = x.broadcast_mul(&keep.unsqueeze(D::Minus1)?)?.sum(1)?;
        let counts = keep.sum_keepdim(1)?;
        let mut y = summed.broadcast_div(&counts)?;
        for d in &self.dense {
            y = d.forward(&y)?;
        }
        y.flatten_all()?.to_vec1::<f32>()
    }
}

/// The tokenizer and the encoder: texts in, normalised query embeddings out.
pub struct SentenceModel {
    pub spec: SentenceSpec,
    pub tokenizer: SentenceTokenizer,
    pub encoder: SentenceEncoder,
}

/// Why a query could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum SentenceModelError {
    #[error(transparent)]
    Model(#[from] SentenceError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl SentenceModel {
    /// The model from its checked parts (`model::sentence_load`).
    pub fn from_parts(parts: SentenceParts) -> Result<Self, EncodeError> {
        let encoder = SentenceEncoder::new(&parts.spec, parts.transformer, parts.dense)?;
        Ok(Self {
            spec: parts.spec,
            tokenizer: parts.tokenizer,
            encoder,
        })
    }

    pub fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings, SentenceModelError> {
        let ids = texts
            .iter()
            .map(|t| self.tokenizer.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(self.encoder.encode_ids(&ids)?)
    }

    pub fn embedding_dim(&self) -> usize {
        self.encoder.embedding_dim()
    }
}
