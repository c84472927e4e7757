//! A loaded CLIP model: configuration, tokenizer, preprocessor and an engine, ready to
//! embed images and texts. Built from bytes, so the CLI (files) and the browser
//! (IndexedDB) share it; neither reads anything here.

use sha2::{Digest, Sha256};

use crate::encode::cpu::CpuEncoder;
use crate::encode::{Embeddings, EncodeError, Encoder};
use crate::model::config::{ClipConfig, ConfigError, PreprocessConfig};
use crate::model::preprocess::{PreprocessError, Preprocessor};
use crate::model::tokenizer::{ClipTokenizer, TokenizerError};
use crate::model::weights::{ClipWeights, SafetensorsHeader, Towers, WeightsError};

/// Why a model could not be built or used.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
    #[error(transparent)]
    Preprocess(#[from] PreprocessError),
}

/// The three small JSON files of a model in the Hugging Face layout.
pub struct ModelJson<'a> {
    pub config: &'a [u8],
    pub preprocessor: &'a [u8],
    pub tokenizer: &'a [u8],
}

/// Parsed configuration, known before any weight is read.
pub struct ModelSpec {
    pub config: ClipConfig,
    pub preprocess: PreprocessConfig,
    pub tokenizer: ClipTokenizer,
}

impl ModelSpec {
    pub fn parse(json: &ModelJson<'_>) -> Result<Self, ClipError> {
        let config = ClipConfig::from_json(json.config)?;
        let preprocess = PreprocessConfig::from_json(json.preprocessor)?;
        let tokenizer =
            ClipTokenizer::from_json(json.tokenizer, config.text_config.max_position_embeddings)?;
        Ok(Self {
            config,
            preprocess,
            tokenizer,
        })
    }
}

/// Names a model by its architecture and a fingerprint of its configuration and weight
/// table, so an index made with another model is recognised.
pub fn model_id(config: &ClipConfig, config_json: &[u8], header: &SafetensorsHeader) -> String {
    let mut h = Sha256::new();
    h.update(config_json);
    h.update(header.json.as_bytes());
    let digest = h.finalize();
    let fp: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let v = &config.vision_config;
    let t = &config.text_config;
    format!(
        "clip-vit{}x{}-p{}-{}px-text{}x{}-d{}#{fp}",
        v.hidden_size,
        v.num_hidden_layers,
        v.patch_size,
        v.image_size,
        t.hidden_size,
        t.num_hidden_layers,
        config.projection_dim
    )
}

/// A model ready to embed.
pub struct Clip {
    pub config: ClipConfig,
    pub tokenizer: ClipTokenizer,
    pub preprocessor: Preprocessor,
    pub encoder: CpuEncoder,
    pub model_id: String,
}

impl Clip {
    /// Assembles a model from its parsed files and checked weights.
    pub fn new(spec: ModelSpec, weights: ClipWeights, model_id: String) -> Result<Self, ClipError> {
        let v = &spec.config.vision_config;
        let p = &spec.preprocess;
        if p.crop_height as usize != v.image_size || p.crop_width as usize != v.image_size {
            return Err(ClipError::Config(ConfigError::Invalid {
                file: "preprocessor_config.json",
                field: "crop_size",
                value: format!("{}x{}", p.crop_height, p.crop_width),
                reason: "it must equal vision_config.image_size in config.json",
            }));
        }
        let encoder = CpuEncoder::new(&spec.config, weights)?;
        Ok(Self {
            preprocessor: Preprocessor::new(spec.preprocess),
            config: spec.config,
            tokenizer: spec.tokenizer,
            encoder,
            model_id,
        })
    }

    /// Builds a model from a whole safetensors buffer (tests, small models).
    pub fn from_bytes(json: &ModelJson<'_>, safetensors: &[u8]) -> Result<Self, ClipError> {
        Self::from_bytes_for(json, safetensors, Towers::Both)
    }

    /// [`Self::from_bytes`] loading only some towers.
    pub fn from_bytes_for(
        json: &ModelJson<'_>,
        safetensors: &[u8],
        towers: Towers,
    ) -> Result<Self, ClipError> {
        let spec = ModelSpec::parse(json)?;
        let (weights, header) =
            crate::model::weights::from_bytes_for(safetensors, &spec.config, towers)?;
        let id = model_id(&spec.config, json.config, &header);
        Self::new(spec, weights, id)
    }

    pub fn embedding_dim(&self) -> usize {
        self.encoder.embedding_dim()
    }

    /// Pixel values per preprocessed image.
    pub fn encoder_image_len(&self) -> usize {
        self.encoder.image_shape().iter().product()
    }

    /// Embeds texts.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings, ClipError> {
        let ids = self.tokenizer.encode_batch(texts)?;
        Ok(self.encoder.encode_texts(&ids)?)
    }

    /// Embeds already preprocessed images (`count` CHW tensors back to back).
    pub fn embed_pixels(&self, pixels: &[f32], count: usize) -> Result<Embeddings, ClipError> {
        Ok(self.encoder.encode_images(pixels, count)?)
    }

    /// Decodes, preprocesses and embeds one image file's bytes.
    pub fn embed_image_bytes(&self, bytes: &[u8]) -> Result<Vec<f32>, ClipError> {
        let pixels = self.preprocessor.preprocess(bytes)?;
        Ok(self.encoder.encode_images(&pixels, 1)?.data)
    }
}
