//! Engines that turn preprocessed images and token ids into L2-normalised CLIP embeddings.
//!
//! One trait, several engines: [`cpu::CpuEncoder`] (candle; multi-threaded natively,
//! `+simd128` on wasm32) and [`gpu::GpuEncoder`] (WGSL kernels through wgpu: WebGPU in the
//! browser, Vulkan / Metal / DX12 natively). Engines take pixels and ids, never
//! bytes or strings: decoding and tokenizing live in `model`. The forward pass mirrors
//! transformers' `CLIPModel.get_image_features` / `get_text_features` followed by L2
//! normalisation.

pub mod cpu;
pub mod gpu;

use crate::model::tokenizer::TokenIds;

/// Why an engine could not encode.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("the engine failed while computing {stage}: {message}")]
    Compute {
        stage: &'static str,
        message: String,
    },
    #[error("expected {expected} pixel values for {count} images, got {got}")]
    PixelCount {
        count: usize,
        expected: usize,
        got: usize,
    },
    #[error("text {index} has {got} token ids; the model reads exactly {expected}")]
    TokenCount {
        index: usize,
        expected: usize,
        got: usize,
    },
    #[error("text {index} has token id {id}, beyond the vocabulary of {vocab_size}")]
    TokenOutOfRange {
        index: usize,
        id: u32,
        vocab_size: usize,
    },
    #[error("text {index} has its end token at {position}, outside its {len} ids")]
    BadEosPosition {
        index: usize,
        position: usize,
        len: usize,
    },
    #[error("this engine was loaded without the {tower} tower")]
    TowerNotLoaded { tower: &'static str },
    #[error("a weight is missing or malformed: {0}")]
    Weights(#[from] crate::model::weights::WeightsError),
}

/// Checks tokenized texts for an engine reading `context` ids from a vocabulary of
/// `vocab_size`: every engine refuses the same inputs with the same error.
pub fn validate_texts(
    texts: &[TokenIds],
    context: usize,
    vocab_size: usize,
) -> Result<(), EncodeError> {
    for (index, tk) in texts.iter().enumerate() {
        if tk.ids.len() != context {
            return Err(EncodeError::TokenCount {
                index,
                expected: context,
                got: tk.ids.len(),
            });
        }
        if tk.eos_position >= context {
            return Err(EncodeError::BadEosPosition {
                index,
                position: tk.eos_position,
                len: context,
            });
        }
        if let Some(id) = tk.ids.iter().find(|id| **id as usize >= vocab_size) {
            return Err(EncodeError::TokenOutOfRange {
                index,
                id: *id,
                vocab_size,
            });
        }
    }
    Ok(())
}

/// `count` embeddings of `dim` floats, row-major, each row L2-normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    pub dim: usize,
    pub data: Vec<f32>,
}

impl Embeddings {
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.data.chunks_exact(self.dim.max(1))
    }
}

/// What every engine offers.
pub trait Encoder {
    /// Length of an embedding (`projection_dim`).
    fn embedding_dim(&self) -> usize;
    /// `[channels, height, width]` of one image's pixels.
    fn image_shape(&self) -> [usize; 3];
    /// Encodes `count` images given as `count * C * H * W` normalised pixels (CHW each).
    fn encode_images(&self, pixels: &[f32], count: usize) -> Result<Embeddings, EncodeError>;
    /// Encodes tokenized texts.
    fn encode_texts(&self, texts: &[TokenIds]) -> Result<Embeddings, EncodeError>;
}

/// Scales each row of `data` (rows of `dim`) to unit length; zero rows stay zero.
pub fn l2_normalize_rows(data: &mut [f32], dim: usize) {
    for row in data.chunks_exact_mut(dim.max(1)) {
        let norm = row
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            let inv = (1.0 / norm) as f32;
            row.iter_mut().for_each(|v| *v *= inv);
        }
    }
}
