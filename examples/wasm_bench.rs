//! The WebAssembly benchmark's engine side: a thin wasm-bindgen wrapper over the same
//! `clipseek` core the app uses, driven from Node by `scripts/bench_wasm.mjs` (built and run
//! by `scripts/bench_wasm.sh`). It does no timing itself: the harness times each call.
//!
//! - [`BenchLoader`] builds the model tensor by tensor (the harness reads each tensor's
//!   byte range from `model.safetensors` with `fs` and passes it in), so the 605 MB file is
//!   never held whole in linear memory, as the browser app loads it from IndexedDB.
//! - [`BenchModel`] embeds the benchmark's deterministic pixels and queries (the same
//!   inputs as `benches/engine.rs` and `examples/make_synthetic_model.rs`, whose
//!   `native-fingerprint.json` the harness compares against) and preprocesses JPEG bytes.
//! - [`BenchLoader::finish_int8`] gives the same model with 8-bit linear layers, timed
//!   beside the f32 one.
//! - [`BenchIndex`] fills an `EmbeddingIndex` with random unit vectors and runs top-k.
//!
//! Only built for wasm32; natively this example is an empty cdylib.
#![cfg(target_arch = "wasm32")]

use clipseek::clip::{model_id, Clip, ModelJson, ModelSpec};
use clipseek::encode::cpu::QuantOptions;
use clipseek::index::{EmbeddingIndex, EntryMeta};
use clipseek::model::weights::{SafetensorsHeader, WeightsBuilder};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// Bytes of linear memory this instance holds now (it grows and never shrinks, so after
/// the loads this is the peak).
#[wasm_bindgen]
pub fn memory_bytes() -> f64 {
    (core::arch::wasm32::memory_size::<0>() * 65536) as f64
}

/// How many bytes of `model.safetensors` the header occupies, from its first 8 bytes.
#[wasm_bindgen]
pub fn safetensors_header_len(first8: &[u8], file_len_bytes: f64) -> Result<f64, JsError> {
    Ok(SafetensorsHeader::total_len(first8, file_len_bytes as u64)? as f64)
}

/// Decodes and preprocesses image bytes with the preprocessing of `preprocessor_json`
/// (no model needed), at a reduced JPEG scale where the rule allows (`reduced`) or always
/// at full scale; returns the number of pixel values and their sum.
#[wasm_bindgen]
pub fn preprocess_jpeg(
    preprocessor_json: &[u8],
    image_bytes: &[u8],
    reduced: bool,
) -> Result<Vec<f64>, JsError> {
    let config = clipseek::model::config::PreprocessConfig::from_json(preprocessor_json)?;
    let preprocessor =
        clipseek::model::preprocess::Preprocessor::new(config).with_reduced_decode(reduced);
    let pixels = preprocessor.preprocess(image_bytes)?;
    let sum: f64 = pixels.iter().map(|v| f64::from(*v)).sum();
    Ok(vec![pixels.len() as f64, sum])
}

/// The benchmark's deterministic pixels: `count` CHW images back to back.
fn bench_pixels(per_image: usize, count: usize) -> Vec<f32> {
    // u64: on wasm32 `usize` is 32 bits and `i * 7919` would wrap past image 3.
    (0..(per_image * count) as u64)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

/// Builds a model from its JSON files and its tensors, one at a time.
#[wasm_bindgen]
pub struct BenchLoader {
    spec: ModelSpec,
    header: SafetensorsHeader,
    builder: WeightsBuilder,
    config_json: Vec<u8>,
}

#[wasm_bindgen]
impl BenchLoader {
    /// `front` holds at least the header's bytes (see [`safetensors_header_len`]).
    #[wasm_bindgen(constructor)]
    pub fn new(
        config: &[u8],
        preprocessor: &[u8],
        tokenizer: &[u8],
        front: &[u8],
        file_len_bytes: f64,
    ) -> Result<BenchLoader, JsError> {
        let spec = ModelSpec::parse(&ModelJson {
            config,
            preprocessor,
            tokenizer,
        })?;
        let header = SafetensorsHeader::parse(front, file_len_bytes as u64)?;
        let builder = WeightsBuilder::new(&header, &spec.config)?;
        Ok(Self {
            spec,
            header,
            builder,
            config_json: config.to_vec(),
        })
    }

    /// Names of the tensors to read, in order.
    pub fn plan_names(&self) -> Vec<String> {
        self.builder.plan().iter().map(|(n, _)| n.clone()).collect()
    }

    /// Absolute byte offsets of the planned tensors in the file.
    pub fn plan_offsets(&self) -> Vec<f64> {
        self.builder
            .plan()
            .iter()
            .map(|(_, i)| i.offset_bytes as f64)
            .collect()
    }

    /// Byte lengths of the planned tensors.
    pub fn plan_sizes(&self) -> Vec<f64> {
        self.builder
            .plan()
            .iter()
            .map(|(_, i)| i.size_bytes as f64)
            .collect()
    }

    /// Converts and keeps one tensor (exactly its byte range).
    pub fn insert(&mut self, name: &str, bytes: &[u8]) -> Result<(), JsError> {
        Ok(self.builder.insert(name, bytes)?)
    }

    /// The model, once every planned tensor was inserted.
    pub fn finish(self) -> Result<BenchModel, JsError> {
        let weights = self.builder.finish()?;
        let id = model_id(&self.spec.config, &self.config_json, &self.header);
        let clip = Clip::new(self.spec, weights, id)?;
        Ok(BenchModel::wrap(clip))
    }

    /// [`Self::finish`] with the CPU engine's 8-bit linear layers (the app's `precision=int8`).
    pub fn finish_int8(self) -> Result<BenchModel, JsError> {
        let mut model = self.finish()?;
        model.clip.encoder = model.clip.encoder.quantized(QuantOptions::default())?;
        Ok(model)
    }
}

/// A loaded model with the benchmark's inputs ready.
#[wasm_bindgen]
pub struct BenchModel {
    clip: Clip,
    /// Eight deterministic images, made once so that timing covers only the engine.
    pixels: Vec<f32>,
}

impl BenchModel {
    fn wrap(clip: Clip) -> Self {
        let pixels = bench_pixels(clip.encoder_image_len(), 8);
        Self { clip, pixels }
    }
}

#[wasm_bindgen]
impl BenchModel {
    /// Loads from whole buffers (small models; a full-size one should use [`BenchLoader`]).
    pub fn from_bytes(
        config: &[u8],
        preprocessor: &[u8],
        tokenizer: &[u8],
        safetensors: &[u8],
    ) -> Result<BenchModel, JsError> {
        let clip = Clip::from_bytes(
            &ModelJson {
                config,
                preprocessor,
                tokenizer,
            },
            safetensors,
        )?;
        Ok(Self::wrap(clip))
    }

    pub fn model_id(&self) -> String {
        self.clip.model_id.clone()
    }

    /// What the CPU engine's linear layers compute in (`f32` or `int8`).
    pub fn precision(&self) -> String {
        self.clip.encoder.precision().name().to_owned()
    }

    pub fn embedding_dim(&self) -> usize {
        self.clip.embedding_dim()
    }

    /// Embeds the first `batch` (1 to 8) deterministic images; returns all embeddings,
    /// row-major.
    /// Runs 8-bit layer stacks fused (the default) or op by op on candle tensors (the
    /// older path), to time the two in one process.
    pub fn set_fused(&mut self, fused: bool) {
        self.clip.encoder.set_fused(fused);
    }

    /// One forward of `batch` benchmark images timed per step on `performance.now`:
    /// `[step, ms, step, ms, …]` as JSON (empty when the model does not run fused).
    pub fn profile_images(&self, batch: usize) -> Result<String, JsError> {
        let per_image = self.clip.encoder_image_len();
        let pixels = self
            .pixels
            .get(..per_image * batch)
            .ok_or_else(|| JsError::new("batch larger than the benchmark's 8 images"))?;
        let clock: fn() -> f64 = performance_now;
        let steps: Vec<(String, f64)> =
            match self.clip.encoder.profile_images(pixels, batch, clock)? {
                Some(p) => p
                    .steps()
                    .into_iter()
                    .map(|(s, ms)| (s.name().to_owned(), ms))
                    .collect(),
                None => Vec::new(),
            };
        Ok(serde_json::to_string(&steps)?)
    }

    pub fn embed_images(&self, batch: usize) -> Result<Vec<f32>, JsError> {
        let per_image = self.clip.encoder_image_len();
        let pixels = self
            .pixels
            .get(..per_image * batch)
            .ok_or_else(|| JsError::new(&format!("batch {batch} is outside 1..=8")))?;
        Ok(self.clip.embed_pixels(pixels, batch)?.data)
    }

    /// Embeds one query.
    pub fn embed_text(&self, query: &str) -> Result<Vec<f32>, JsError> {
        Ok(self.clip.embed_texts(&[query])?.data)
    }

    /// Token positions the text tower computes for this query (through the end token).
    pub fn query_tokens(&self, query: &str) -> Result<usize, JsError> {
        Ok(self.clip.tokenizer.encode(query)?.eos_position + 1)
    }

    /// Decodes and preprocesses image bytes; returns the number of pixel values and their
    /// sum (enough to compare with the native run without copying the tensor out).
    pub fn preprocess(&self, image_bytes: &[u8]) -> Result<Vec<f64>, JsError> {
        let pixels = self.clip.preprocessor.preprocess(image_bytes)?;
        let sum: f64 = pixels.iter().map(|v| f64::from(*v)).sum();
        Ok(vec![pixels.len() as f64, sum])
    }
}

/// SplitMix64: reproducible pseudo-random numbers without a dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// A random unit vector.
    fn unit(&mut self, dim: usize) -> Vec<f32> {
        let mut v: Vec<f32> = (0..dim).map(|_| self.next_f32()).collect();
        let norm = v
            .iter()
            .map(|x| x * x)
            .sum::<f32>()
            .sqrt()
            .max(f32::MIN_POSITIVE);
        v.iter_mut().for_each(|x| *x /= norm);
        v
    }
}

/// An index of random unit vectors and a fixed random query.
#[wasm_bindgen]
pub struct BenchIndex {
    index: EmbeddingIndex,
    query: Vec<f32>,
}

#[wasm_bindgen]
impl BenchIndex {
    /// `count` random `dim`-d unit vectors (seeded, so every run ranks the same data).
    #[wasm_bindgen(constructor)]
    pub fn new(count: usize, dim: usize, seed: u64) -> Result<BenchIndex, JsError> {
        let mut rng = SplitMix(seed);
        let mut index = EmbeddingIndex::new("bench-random".to_owned(), dim);
        for i in 0..count {
            let mut content_hash = [0u8; 32];
            content_hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
            let meta = EntryMeta {
                path: format!("photos/{i:06}.jpg"),
                size_bytes: 1_000_000 + i as u64,
                modified_ms: 1_700_000_000_000 + i as i64,
                content_hash,
                taken_ms: None,
            };
            index.upsert(meta, &rng.unit(dim))?;
        }
        let query = rng.unit(dim);
        Ok(Self { index, query })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Ranks the whole index against the fixed query; returns how many matches came back.
    pub fn search(&self, k: usize) -> Result<usize, JsError> {
        Ok(self.index.search(&self.query, k)?.len())
    }
}
