//! Engines that turn preprocessed images and token ids into L2-normalised CLIP embeddings.
//!
//! One trait, several engines: [`cpu::CpuEncoder`] (candle; multi-threaded natively,
//! `+simd128` on wasm32; optionally 8-bit through [`quant`]) and [`gpu::GpuEncoder`] (WGSL kernels through wgpu: WebGPU in the
//! browser, Vulkan / Metal / DX12 natively). Engines take pixels and ids, never
//! bytes or strings: decoding and tokenizing live in `model`. The forward pass mirrors
//! transformers' `CLIPModel.get_image_features` / `get_text_features` followed by L2
//! normalisation.

pub mod cpu;
pub mod gpu;
pub mod packed;
pub mod quant;
pub mod sentence;

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

/// The engine the app is asked for (the page's `backend` URL parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Backend {
    /// WebGPU when an adapter exists and the model fits it, else the CPU engine; a device
    /// lost later moves the work to the CPU engine.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "cpu")]
    Cpu,
    /// WebGPU or a clear error: never the CPU engine in its place.
    #[serde(rename = "webgpu")]
    WebGpu,
}

impl Backend {
    /// Reads the URL parameter (absent or empty: `auto`).
    pub fn from_param(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Ok(Self::Auto),
            Some("cpu") => Ok(Self::Cpu),
            Some("webgpu") => Ok(Self::WebGpu),
            Some(other) => Err(format!(
                "The backend \"{other}\" is unknown; use backend=auto, cpu or webgpu."
            )),
        }
    }
}

/// The numbers the engines compute in (the page's `precision` URL parameter). `int8` is the
/// CPU engine's 8-bit path; the WebGPU engine has no 8-bit kernels and chooses under
/// `int8` as under `auto` (use `backend=cpu` to be sure of the 8-bit path).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum PrecisionChoice {
    /// WebGPU: f16 when the adapter has `shader-f16`, else f32. CPU: [`AUTO_CPU`].
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "f32")]
    F32,
    /// WebGPU in f16; the CPU engine has no f16 path and computes in f32.
    #[serde(rename = "f16")]
    F16,
    #[serde(rename = "int8")]
    Int8,
}

/// What `precision=auto` gives on the CPU engine: the 8-bit path. It meets the fidelity bar
/// (cos ≥ 0.999 to transformers' f32, rankings equal up to 1e-2: `tests/int8_parity.rs`,
/// `tests/wasm_parity.rs`) and is the fastest CPU path (BENCHMARKS.md: in wasm 1.6–1.8× the
/// f32 engine with `simd128`, more with relaxed SIMD; natively, with the AVX2 tile, 2–6×
/// candle's f32 on one thread). The CLI keeps its own default (`--precision f32`), which is
/// the reference the browser tests compare with.
pub const AUTO_CPU: cpu::CpuPrecision = cpu::CpuPrecision::Int8;

impl PrecisionChoice {
    /// Reads the URL parameter (absent or empty: `auto`).
    pub fn from_param(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Ok(Self::Auto),
            Some("f32") => Ok(Self::F32),
            Some("f16") => Ok(Self::F16),
            Some("int8") => Ok(Self::Int8),
            Some(other) => Err(format!(
                "The precision \"{other}\" is unknown; use precision=auto, f32, f16 or int8."
            )),
        }
    }

    /// What the GPU engine is asked for (`None`: its own choice).
    pub fn gpu(self) -> Option<gpu::Precision> {
        match self {
            Self::Auto | Self::Int8 => None,
            Self::F32 => Some(gpu::Precision::F32),
            Self::F16 => Some(gpu::Precision::F16),
        }
    }

    /// What the CPU engine computes in.
    pub fn cpu(self) -> cpu::CpuPrecision {
        match self {
            Self::Auto => AUTO_CPU,
            Self::F32 | Self::F16 => cpu::CpuPrecision::F32,
            Self::Int8 => cpu::CpuPrecision::Int8,
        }
    }
}

/// The engine that runs (the page's `#status[data-backend]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum EngineKind {
    #[serde(rename = "cpu")]
    Cpu,
    #[serde(rename = "webgpu")]
    WebGpu,
}

impl EngineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::WebGpu => "webgpu",
        }
    }
}

/// Which engine to call when a WebGPU engine fails: `Ok` with the reason to move to the CPU
/// engine (under `auto`), `Err` with the sentence to show (under `webgpu`, which never runs
/// on the CPU in its place). Input errors are the caller's and never reach here.
pub fn gpu_failure(backend: Backend, what: &str, error: &str) -> Result<String, String> {
    match backend {
        Backend::WebGpu => Err(format!(
            "WebGPU was asked for (backend=webgpu), but {what}: {error}. Open the page with backend=auto to use the CPU instead."
        )),
        Backend::Auto | Backend::Cpu => Ok(format!("{what}: {error}")),
    }
}

/// Whether an encoding error is the engine's (a device lost, a kernel the driver refused)
/// rather than the input's: only the former is a reason to change engines.
pub fn is_engine_failure(error: &EncodeError) -> bool {
    matches!(error, EncodeError::Compute { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_and_precision_parameters_are_read_or_refused_with_the_choices() {
        assert_eq!(Backend::from_param(None), Ok(Backend::Auto));
        assert_eq!(Backend::from_param(Some(" ")), Ok(Backend::Auto));
        assert_eq!(Backend::from_param(Some("cpu")), Ok(Backend::Cpu));
        assert_eq!(Backend::from_param(Some("webgpu")), Ok(Backend::WebGpu));
        let e = Backend::from_param(Some("cuda")).err().unwrap_or_default();
        assert!(
            e.contains("\"cuda\"") && e.contains("auto, cpu or webgpu"),
            "{e}"
        );
        assert_eq!(PrecisionChoice::from_param(None), Ok(PrecisionChoice::Auto));
        assert_eq!(
            PrecisionChoice::from_param(Some("f16")).map(PrecisionChoice::gpu),
            Ok(Some(gpu::Precision::F16))
        );
        assert_eq!(
            PrecisionChoice::from_param(Some("f32")).map(PrecisionChoice::gpu),
            Ok(Some(gpu::Precision::F32))
        );
        assert_eq!(
            PrecisionChoice::from_param(Some("int8")).map(PrecisionChoice::cpu),
            Ok(cpu::CpuPrecision::Int8)
        );
        assert_eq!(PrecisionChoice::Int8.gpu(), None);
        assert_eq!(PrecisionChoice::F16.cpu(), cpu::CpuPrecision::F32);
        assert_eq!(PrecisionChoice::Auto.cpu(), AUTO_CPU);
        assert!(PrecisionChoice::from_param(Some("bf16"))
            .err()
            .unwrap_or_default()
            .contains("unknown"));
    }

    #[test]
    fn the_serialised_names_are_the_url_and_attribute_values() {
        let names: Vec<String> = [Backend::Auto, Backend::Cpu, Backend::WebGpu]
            .iter()
            .map(|b| serde_json::to_string(b).unwrap_or_default())
            .collect();
        assert_eq!(names, ["\"auto\"", "\"cpu\"", "\"webgpu\""]);
        for kind in [EngineKind::Cpu, EngineKind::WebGpu] {
            assert_eq!(
                serde_json::to_string(&kind).unwrap_or_default(),
                format!("\"{}\"", kind.as_str())
            );
        }
    }

    #[test]
    fn gpu_failures_fall_back_under_auto_and_are_errors_under_webgpu() {
        let auto = gpu_failure(Backend::Auto, "the device was lost", "gone");
        assert_eq!(auto, Ok("the device was lost: gone".to_owned()));
        let strict = gpu_failure(Backend::WebGpu, "no adapter exists", "null")
            .err()
            .unwrap_or_default();
        assert!(
            strict.contains("backend=webgpu") && strict.contains("backend=auto"),
            "{strict}"
        );
        assert!(is_engine_failure(&EncodeError::Compute {
            stage: "x",
            message: "lost".into()
        }));
        assert!(!is_engine_failure(&EncodeError::PixelCount {
            count: 1,
            expected: 3,
            got: 2
        }));
    }
}
