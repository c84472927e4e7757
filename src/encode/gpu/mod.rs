//! The WebGPU engine: CLIP's whole forward pass in WGSL kernels through wgpu, natively
//! (Vulkan, Metal, DX12, GL) and in the browser (WebGPU).
//!
//! [`GpuEncoder::new`] takes the caller's `&Device` and `&Queue` (tests inject their own),
//! reads the device's limits and features, compiles the kernels in f16 when the device has
//! `shader-f16` (f32 otherwise, or as [`GpuOptions::precision`] says) and uploads every weight
//! once. Intermediate buffers live in one pooled [`workspace::Workspace`] that grows to the
//! largest batch seen; the launches for each batch shape are recorded once into a
//! [`ops::Program`] (parameters and bind groups included) and replayed. A batch is split
//! into chunks only as the binding limits require; each chunk is one submission, nothing
//! comes back to the CPU between layers, and the embeddings of all chunks are read back
//! once at the end.
//!
//! It mirrors the CPU engine (`encode::cpu`) and transformers' `CLIPModel` exactly: pre-LN
//! layers, softmax with max subtraction, quick_gelu or erf-GELU per tower, class-token and
//! end-token pooling, projections, L2 normalisation. Texts run only up to the last end token
//! of a batch (rounded up to a multiple of 8): exact under causal attention.
//!
//! Must not block in the browser: the async methods are the API there; the blocking
//! [`Encoder`] implementation exists only natively. Device loss and validation failures are
//! returned as [`GpuError`] so the caller can fall back to the CPU engine.

mod buffers;
pub mod kernels;
mod layers;
pub mod ops;
pub mod reference;
mod text;
mod vision;
mod workspace;

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

use std::collections::HashMap;
use std::sync::Mutex;

pub use kernels::Precision;

#[cfg(not(target_arch = "wasm32"))]
use super::Encoder;
use super::{Embeddings, EncodeError};
use crate::model::config::ClipConfig;
use crate::model::tokenizer::TokenIds;
use crate::model::weights::{ClipWeights, WeightsError};
use kernels::{KernelConfig, Kernels};
use ops::{Program, ProgramBuilder};
use workspace::Workspace;

/// Why the GPU engine could not be built or could not encode.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error("no GPU adapter is available: {message}")]
    NoAdapter { message: String },
    #[error("the GPU device could not be opened: {message}")]
    NoDevice { message: String },
    #[error("f16 was asked for, but this GPU device lacks the shader-f16 feature")]
    F16Unsupported,
    #[error("{what} needs {needed}, beyond this GPU's limit of {limit}")]
    Limits {
        what: String,
        needed: u64,
        limit: u64,
    },
    #[error("a weight is missing or malformed: {0}")]
    Weights(#[from] WeightsError),
    #[error("the GPU reported an error while {stage}: {message}")]
    Device {
        stage: &'static str,
        message: String,
    },
    #[error("reading results back from the GPU failed: {message}")]
    Readback { message: String },
    #[error("the GPU stopped answering (device lost)")]
    Lost,
    #[error("this engine was loaded without the {tower} tower")]
    TowerNotLoaded { tower: &'static str },
}

/// Choices a caller may make; the defaults suit every adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuOptions {
    /// `None`: f16 when the device has `shader-f16`, else f32.
    pub precision: Option<Precision>,
    /// Most images or texts per submission (fewer when the binding limits say so).
    pub max_batch: usize,
}

impl Default for GpuOptions {
    fn default() -> Self {
        Self {
            precision: None,
            max_batch: 64,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Tower {
    Vision,
    Text,
}

struct State {
    ws: Workspace,
    programs: HashMap<(Tower, usize, usize), Program>,
}

const STAGE_BUILD: &str = "compiling kernels and uploading weights";

/// Most recorded programs kept (each is a few hundred bind groups).
const MAX_PROGRAMS: usize = 16;

/// CLIP on a wgpu device.
pub struct GpuEncoder {
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    kernels: Kernels,
    vision: Option<vision::Vision>,
    text: Option<text::Text>,
    projection_dim: usize,
    image_shape: [usize; 3],
    context: usize,
    vocab_size: usize,
    /// Set by the device's lost callback: every later call fails fast with [`GpuError::Lost`].
    lost: std::sync::Arc<std::sync::atomic::AtomicBool>,
    max_images: usize,
    max_batch: usize,
    state: Mutex<State>,
}

/// Opens the default adapter's device with its own limits and `shader-f16` when offered:
/// the setup the app and the tests use.
pub async fn request_device(
    power: wgpu::PowerPreference,
) -> Result<(wgpu::Adapter, wgpu::Device, wgpu::Queue), GpuError> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = instance
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: power,
            ..Default::default()
        })
        .await
        .map_err(|e| GpuError::NoAdapter {
            message: e.to_string(),
        })?;
    let (device, queue) = open_device(&adapter).await?;
    Ok((adapter, device, queue))
}

/// Opens `adapter` with all its limits and `shader-f16` when it has it.
pub async fn open_device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue), GpuError> {
    let features = adapter.features() & wgpu::Features::SHADER_F16;
    adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("clipseek"),
            required_features: features,
            required_limits: adapter.limits(),
            ..Default::default()
        })
        .await
        .map_err(|e| GpuError::NoDevice {
            message: e.to_string(),
        })
}

/// Round `seq` up to a multiple of 8 within `context`, so that few text shapes exist.
fn text_positions(max_eos: usize, context: usize) -> usize {
    (max_eos + 1)
        .div_ceil(8)
        .saturating_mul(8)
        .min(context)
        .max(max_eos + 1)
}

impl GpuEncoder {
    /// Builds the engine with default options.
    pub fn new(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        config: &ClipConfig,
        weights: ClipWeights,
    ) -> Result<Self, GpuError> {
        Self::with_options(device, queue, config, weights, &GpuOptions::default())
    }

    /// Builds the engine: checks the model against the device's limits, compiles the
    /// kernels and uploads the weights (consumed to avoid a second copy). Natively it also
    /// waits for the device to confirm; in the browser it cannot wait, so errors the device
    /// reports later (a kernel its compiler rejects) surface at the first encode — use
    /// [`Self::new_async`] there.
    pub fn with_options(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        config: &ClipConfig,
        weights: ClipWeights,
        options: &GpuOptions,
    ) -> Result<Self, GpuError> {
        let (engine, scope) = Self::build(device, queue, config, weights, options)?;
        scope.check_now(device, STAGE_BUILD)?;
        Ok(engine)
    }

    /// Builds the engine and awaits the device's verdict on the kernels and uploads: the
    /// browser's constructor (a kernel Chromium's compiler rejects is an error here, with
    /// its message, and the caller falls back to the CPU engine).
    pub async fn new_async(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        config: &ClipConfig,
        weights: ClipWeights,
        options: &GpuOptions,
    ) -> Result<Self, GpuError> {
        let (engine, scope) = Self::build(device, queue, config, weights, options)?;
        scope.pop().check(STAGE_BUILD).await?;
        Ok(engine)
    }

    fn build(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        config: &ClipConfig,
        mut weights: ClipWeights,
        options: &GpuOptions,
    ) -> Result<(Self, ErrorScopes), GpuError> {
        let limits = device.limits();
        let has_f16 = device.features().contains(wgpu::Features::SHADER_F16);
        let precision = match options.precision {
            Some(Precision::F16) if !has_f16 => return Err(GpuError::F16Unsupported),
            Some(p) => p,
            None if has_f16 => Precision::F16,
            None => Precision::F32,
        };
        let v = &config.vision_config;
        let t = &config.text_config;
        let seq_max = v.num_positions().max(t.max_position_embeddings);
        let dh_max =
            (v.hidden_size / v.num_attention_heads).max(t.hidden_size / t.num_attention_heads);
        let mut kernel_config = KernelConfig::for_limits(
            &limits,
            precision,
            u32::try_from(seq_max).unwrap_or(u32::MAX),
            u32::try_from(dh_max).unwrap_or(u32::MAX),
        )?;
        if device.adapter_info().device_type == wgpu::DeviceType::Cpu {
            // A software rasteriser (lavapipe, SwiftShader) has a few cores: fewer, larger
            // tiles are faster there whatever the product's size.
            kernel_config.min_groups = 0;
        }
        let scope = ErrorScopes::push(device);
        let kernels = Kernels::new(device, kernel_config);
        let towers = weights.towers();
        let vision = towers
            .vision()
            .then(|| {
                let projection = config.projection_dim;
                vision::Vision::upload(device, &limits, &mut weights, v, projection, precision)
            })
            .transpose()?;
        let text = towers
            .text()
            .then(|| {
                let projection = config.projection_dim;
                text::Text::upload(device, &limits, &mut weights, t, projection, precision)
            })
            .transpose()?;
        drop(weights);
        let ws = Workspace::new(device, &limits)?;

        let binding = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        let per_image = vision
            .as_ref()
            .map_or(1, |v| v.needs(1, precision).largest().max(1));
        let per_text = text.as_ref().map_or(1, |x| {
            x.needs(1, t.max_position_embeddings, precision)
                .largest()
                .max(1)
        });
        let fit = |per_item: u64| usize::try_from(binding / per_item).unwrap_or(usize::MAX);
        let max_images = fit(per_image).min(options.max_batch.max(1));
        let max_batch = fit(per_text).min(options.max_batch.max(1));
        if max_images == 0 || max_batch == 0 {
            return Err(GpuError::Limits {
                what: "the activations of one image or text (bytes in one storage binding)".into(),
                needed: per_image.max(per_text),
                limit: binding,
            });
        }
        let lost = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let lost = lost.clone();
            device.set_device_lost_callback(move |_reason, _message| {
                lost.store(true, std::sync::atomic::Ordering::Relaxed);
            });
        }
        let engine = Self {
            device: device.clone(),
            queue: queue.clone(),
            limits,
            kernels,
            vision,
            text,
            projection_dim: config.projection_dim,
            image_shape: [v.num_channels, v.image_size, v.image_size],
            context: t.max_position_embeddings,
            vocab_size: t.vocab_size,
            lost,
            max_images,
            max_batch,
            state: Mutex::new(State {
                ws,
                programs: HashMap::new(),
            }),
        };
        Ok((engine, scope))
    }

    fn vision(&self) -> Result<&vision::Vision, GpuError> {
        self.vision
            .as_ref()
            .ok_or(GpuError::TowerNotLoaded { tower: "vision" })
    }

    fn text(&self) -> Result<&text::Text, GpuError> {
        self.text
            .as_ref()
            .ok_or(GpuError::TowerNotLoaded { tower: "text" })
    }

    /// Whether the device was lost (every call fails from then on).
    pub fn is_lost(&self) -> bool {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Length of an embedding (`projection_dim`).
    pub fn dim(&self) -> usize {
        self.projection_dim
    }

    /// `[channels, height, width]` of one image's pixels.
    pub fn input_image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    /// The precision the kernels were compiled for.
    pub fn precision(&self) -> Precision {
        self.kernels.config.precision
    }

    /// The kernel variants chosen for this device.
    pub fn kernel_config(&self) -> &KernelConfig {
        &self.kernels.config
    }

    /// Images per submission.
    pub fn max_images_per_submission(&self) -> usize {
        self.max_images
    }

    /// Whether the token lookup runs on the CPU because the table exceeds a binding.
    pub fn token_lookup_on_host(&self) -> bool {
        self.text.as_ref().is_some_and(text::Text::lookup_on_host)
    }

    /// Records (or reuses) the program for a shape, writes the inputs, submits, and adds
    /// the copy of the embeddings into `staging` at `offset` bytes.
    #[allow(clippy::too_many_arguments)]
    fn submit_chunk(
        &self,
        tower: Tower,
        batch: usize,
        seq: usize,
        inputs: &[(Input, &[u8])],
        staging: &wgpu::Buffer,
        offset: u64,
    ) -> Result<(), GpuError> {
        let mut state = self.state.lock().map_err(|_| GpuError::Device {
            stage: "recording",
            message: "an earlier failure poisoned the engine's state".into(),
        })?;
        let precision = self.precision();
        let needs = match tower {
            Tower::Vision => self.vision()?.needs(batch, precision),
            Tower::Text => self.text()?.needs(batch, seq, precision),
        };
        let state = &mut *state;
        if state.ws.ensure(&self.device, &self.limits, &needs)? {
            state.programs.clear();
        }
        let key = (tower, batch, seq);
        if !state.programs.contains_key(&key) {
            if state.programs.len() >= MAX_PROGRAMS {
                state.programs.clear();
            }
            let mut prog = ProgramBuilder::new(&self.kernels, &self.limits);
            match tower {
                Tower::Vision => self.vision()?.record(&mut prog, &state.ws, batch)?,
                Tower::Text => self.text()?.record(&mut prog, &state.ws, batch, seq)?,
            }
            state.programs.insert(key, prog.finish(&self.device));
        }
        let Some(program) = state.programs.get(&key) else {
            return Err(GpuError::Lost);
        };
        for (input, bytes) in inputs {
            let buffer = match input {
                Input::Pixels => &state.ws.pixels,
                Input::Ids => &state.ws.ids,
                Input::Rows => &state.ws.rows,
                Input::Residual => &state.ws.x,
            };
            self.queue.write_buffer(buffer, 0, bytes);
        }
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("clipseek batch"),
            });
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("clipseek forward"),
                timestamp_writes: None,
            });
            program.record(&self.kernels, &mut pass);
        }
        let bytes = (batch * self.projection_dim * 4) as u64;
        encoder.copy_buffer_to_buffer(&state.ws.out, 0, staging, offset, bytes);
        self.queue.submit([encoder.finish()]);
        Ok(())
    }

    async fn finish(
        &self,
        scopes: PoppedScopes,
        staging: wgpu::Buffer,
        count: usize,
    ) -> Result<Vec<f32>, GpuError> {
        scopes.check("encoding").await?;
        let read = buffers::read_mapped(&staging).await;
        // A failed map on a lost device is the loss, said plainly.
        if self.is_lost() {
            return Err(GpuError::Lost);
        }
        let bytes = read?;
        let mut data = buffers::from_bytes(&bytes, Precision::F32);
        data.truncate(count * self.projection_dim);
        Ok(data)
    }

    /// Encodes `count` items in chunks of at most `per_chunk`, all in one error scope and one
    /// staging buffer: `submit(start, batch, staging, offset)` records and submits one chunk,
    /// whose embeddings land at `offset` bytes; everything is read back once at the end.
    async fn run_chunked(
        &self,
        count: usize,
        per_chunk: usize,
        mut submit: impl FnMut(usize, usize, &wgpu::Buffer, u64) -> Result<(), GpuError>,
    ) -> Result<Vec<f32>, GpuError> {
        if self.is_lost() {
            return Err(GpuError::Lost);
        }
        let row_bytes = self.projection_dim * 4;
        let staging = buffers::staging(&self.device, (count * row_bytes) as u64);
        let scope = ErrorScopes::push(&self.device);
        let mut start = 0;
        while start < count {
            let batch = per_chunk.min(count - start);
            if let Err(e) = submit(start, batch, &staging, (start * row_bytes) as u64) {
                drop(scope.pop());
                return Err(e);
            }
            start += batch;
        }
        self.finish(scope.pop(), staging, count).await
    }

    async fn run_images(&self, pixels: &[f32], count: usize) -> Result<Vec<f32>, GpuError> {
        let vision = self.vision()?;
        let per_image = vision.channels * vision.image * vision.image;
        self.run_chunked(count, self.max_images, |start, batch, staging, offset| {
            let px = &pixels[start * per_image..(start + batch) * per_image];
            let rows: Vec<u32> = (0..batch).map(|b| (b * vision.seq) as u32).collect();
            self.submit_chunk(
                Tower::Vision,
                batch,
                vision.seq,
                &[
                    (Input::Pixels, bytemuck::cast_slice(px)),
                    (Input::Rows, bytemuck::cast_slice(&rows)),
                ],
                staging,
                offset,
            )
        })
        .await
    }

    async fn run_texts(&self, texts: &[TokenIds]) -> Result<Vec<f32>, GpuError> {
        let text = self.text()?;
        let precision = self.precision();
        self.run_chunked(
            texts.len(),
            self.max_batch,
            |start, batch, staging, offset| {
                let chunk = &texts[start..start + batch];
                let max_eos = chunk.iter().map(|t| t.eos_position).max().unwrap_or(0);
                let seq = text_positions(max_eos, text.context);
                let ids: Vec<u32> = chunk
                    .iter()
                    .flat_map(|t| t.ids[..seq].iter().copied())
                    .collect();
                let rows: Vec<u32> = chunk
                    .iter()
                    .enumerate()
                    .map(|(b, t)| (b * seq + t.eos_position) as u32)
                    .collect();
                let host = text.host_embedding(&ids, seq, precision);
                let mut inputs: Vec<(Input, &[u8])> =
                    vec![(Input::Rows, bytemuck::cast_slice(&rows))];
                match &host {
                    Some(x) => inputs.push((Input::Residual, x)),
                    None => inputs.push((Input::Ids, bytemuck::cast_slice(&ids))),
                }
                self.submit_chunk(Tower::Text, batch, seq, &inputs, staging, offset)
            },
        )
        .await
    }

    fn check_pixels(&self, pixels: &[f32], count: usize) -> Result<(), EncodeError> {
        let [c, h, w] = self.image_shape;
        let expected = count * c * h * w;
        if pixels.len() != expected {
            return Err(EncodeError::PixelCount {
                count,
                expected,
                got: pixels.len(),
            });
        }
        Ok(())
    }

    fn embeddings(&self, data: Vec<f32>) -> Embeddings {
        Embeddings {
            dim: self.projection_dim,
            data,
        }
    }

    /// Encodes `count` images (CHW f32 pixels each); the browser's entry point.
    pub async fn encode_images_async(
        &self,
        pixels: &[f32],
        count: usize,
    ) -> Result<Embeddings, EncodeError> {
        self.check_pixels(pixels, count)?;
        if count == 0 {
            return Ok(self.embeddings(Vec::new()));
        }
        let data = self
            .run_images(pixels, count)
            .await
            .map_err(gpu_stage("image embeddings"))?;
        Ok(self.embeddings(data))
    }

    /// Encodes tokenized texts; the browser's entry point.
    pub async fn encode_texts_async(&self, texts: &[TokenIds]) -> Result<Embeddings, EncodeError> {
        super::validate_texts(texts, self.context, self.vocab_size)?;
        if texts.is_empty() {
            return Ok(self.embeddings(Vec::new()));
        }
        let data = self
            .run_texts(texts)
            .await
            .map_err(gpu_stage("text embeddings"))?;
        Ok(self.embeddings(data))
    }
}

#[derive(Debug, Clone, Copy)]
enum Input {
    Pixels,
    Ids,
    Rows,
    Residual,
}

fn gpu_stage(stage: &'static str) -> impl Fn(GpuError) -> EncodeError {
    move |e| match e {
        GpuError::TowerNotLoaded { tower } => EncodeError::TowerNotLoaded { tower },
        e => EncodeError::Compute {
            stage,
            message: e.to_string(),
        },
    }
}

/// Validation and out-of-memory scopes around a piece of work.
struct ErrorScopes {
    validation: wgpu::ErrorScopeGuard,
    memory: wgpu::ErrorScopeGuard,
}

type ScopeFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Option<wgpu::Error>>>>;

struct PoppedScopes {
    validation: ScopeFuture,
    memory: ScopeFuture,
}

impl ErrorScopes {
    fn push(device: &wgpu::Device) -> Self {
        let memory = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
        Self { validation, memory }
    }

    fn pop(self) -> PoppedScopes {
        let validation = Box::pin(self.validation.pop());
        let memory = Box::pin(self.memory.pop());
        PoppedScopes { validation, memory }
    }

    /// Natively waits for the scopes; in the browser creation errors surface at the first
    /// encode (the caller may also wrap construction in its own scope).
    fn check_now(self, device: &wgpu::Device, stage: &'static str) -> Result<(), GpuError> {
        let popped = self.pop();
        #[cfg(not(target_arch = "wasm32"))]
        {
            buffers::block_on(device, popped.check(stage)).unwrap_or(Err(GpuError::Lost))
        }
        #[cfg(target_arch = "wasm32")]
        {
            // Nothing may block here; the popped scopes are dropped unread.
            drop((popped, device, stage));
            Ok(())
        }
    }
}

impl PoppedScopes {
    async fn check(self, stage: &'static str) -> Result<(), GpuError> {
        let validation = self.validation.await;
        let memory = self.memory.await;
        match validation.or(memory) {
            Some(e) => Err(GpuError::Device {
                stage,
                message: e.to_string(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl Encoder for GpuEncoder {
    fn embedding_dim(&self) -> usize {
        self.projection_dim
    }

    fn image_shape(&self) -> [usize; 3] {
        self.image_shape
    }

    fn encode_images(&self, pixels: &[f32], count: usize) -> Result<Embeddings, EncodeError> {
        buffers::block_on(&self.device, self.encode_images_async(pixels, count))
            .unwrap_or_else(|| Err(gpu_stage("image embeddings")(GpuError::Lost)))
    }

    fn encode_texts(&self, texts: &[TokenIds]) -> Result<Embeddings, EncodeError> {
        buffers::block_on(&self.device, self.encode_texts_async(texts))
            .unwrap_or_else(|| Err(gpu_stage("text embeddings")(GpuError::Lost)))
    }
}

/// Times the matmul kernel alone: `reps` products `[m, k] x [n, k]ᵀ` in one submission after
/// a warm-up; returns seconds per product. For the benchmarks (fraction of peak FLOP/s).
#[cfg(not(target_arch = "wasm32"))]
pub fn time_matmul(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    precision: Precision,
    m: usize,
    n: usize,
    k: usize,
    reps: usize,
) -> Result<f64, GpuError> {
    let limits = device.limits();
    let kernels = Kernels::new(device, KernelConfig::for_limits(&limits, precision, 1, 1)?);
    let fill = |len: usize, seed: u64| -> Vec<f32> {
        (0..len as u64)
            .map(|i| crate::model::synthetic::unit(seed, i) * 0.5)
            .collect()
    };
    let a = buffers::upload(device, &limits, "bench a", &fill(m * k, 1), precision)?;
    let b = buffers::upload(device, &limits, "bench b", &fill(n * k, 2), precision)?;
    let c = buffers::storage(
        device,
        &limits,
        "bench c",
        (m * n) as u64 * precision.size_bytes(),
    )?;
    let mut prog = ProgramBuilder::new(&kernels, &limits);
    for _ in 0..reps.max(1) {
        prog.matmul(&a, &b, None, &c, m, n, k, ops::Act::None, false)?;
    }
    let program = prog.finish(device);
    let run = || -> Result<f64, GpuError> {
        let started = std::time::Instant::now();
        let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            program.record(&kernels, &mut pass);
        }
        queue.submit([encoder.finish()]);
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Device {
                stage: "timing a matmul",
                message: e.to_string(),
            })?;
        Ok(started.elapsed().as_secs_f64())
    };
    run()?;
    Ok(run()? / reps.max(1) as f64)
}
