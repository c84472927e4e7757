//! A worker's engine: one tower of the cached model on the CPU engine or on WebGPU, as
//! the load request says, and what happens when WebGPU fails mid-work — under
//! `backend=auto` the tower is reloaded on the CPU and the work in hand redone there
//! (`Switched`); under `backend=webgpu` a new device is opened a few times, then `Failed`.
//!
//! It must not touch the DOM or know about runs. Reference: `encode` (the engines),
//! `model_cache::load_weights`.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::JsValue;

use super::{post, LoadRequest, WorkerState};
use crate::clip::model_id;
use crate::encode::cpu::CpuEncoder;
use crate::encode::gpu::{request_device, GpuEncoder, GpuError, GpuOptions, Precision};
use crate::encode::packed::PackKey;
use crate::encode::{
    gpu_failure, is_engine_failure, Backend, Embeddings, EncodeError, Encoder, EngineKind,
    PrecisionChoice,
};
use crate::model::config::{ClipConfig, PreprocessConfig};
use crate::model::preprocess::Preprocessor;
use crate::model::tokenizer::{ClipTokenizer, TokenIds};
use crate::model::weights::Towers;
use crate::page::protocol::{FromWorker, LoadReport, Tower};
use crate::web::download::{load_weights, ModelStore};
use crate::web::idb;

/// A tower's engine.
#[allow(
    clippy::large_enum_variant,
    reason = "one engine per worker, behind an Rc, held for the worker's life"
)]
pub(super) enum Enc {
    Cpu(CpuEncoder),
    Gpu(GpuEncoder),
}

impl Enc {
    pub(super) fn kind(&self) -> EngineKind {
        match self {
            Enc::Cpu(_) => EngineKind::Cpu,
            Enc::Gpu(_) => EngineKind::WebGpu,
        }
    }

    pub(super) fn image_shape(&self) -> [usize; 3] {
        match self {
            Enc::Cpu(e) => e.image_shape(),
            Enc::Gpu(e) => e.input_image_shape(),
        }
    }

    async fn run(&self, input: &Input) -> Result<Embeddings, EncodeError> {
        match (self, input) {
            (Enc::Cpu(e), Input::Images { pixels, count }) => e.encode_images(pixels, *count),
            (Enc::Cpu(e), Input::Texts(ids)) => e.encode_texts(ids),
            (Enc::Gpu(e), Input::Images { pixels, count }) => {
                e.encode_images_async(pixels, *count).await
            }
            (Enc::Gpu(e), Input::Texts(ids)) => e.encode_texts_async(ids).await,
        }
    }
}

/// What one call encodes.
pub(super) enum Input {
    Images { pixels: Vec<f32>, count: usize },
    Texts(Vec<TokenIds>),
}

#[allow(
    clippy::large_enum_variant,
    reason = "one engine per worker, held for the worker's life: size does not matter"
)]
pub(super) enum Engine {
    None,
    Vision {
        preprocessor: Preprocessor,
        encoder: Rc<Enc>,
    },
    Text {
        tokenizer: ClipTokenizer,
        encoder: Rc<Enc>,
    },
}

impl Engine {
    pub(super) fn encoder(&self) -> Option<Rc<Enc>> {
        match self {
            Engine::None => None,
            Engine::Vision { encoder, .. } | Engine::Text { encoder, .. } => Some(encoder.clone()),
        }
    }

    fn set_encoder(&mut self, new: Rc<Enc>) {
        match self {
            Engine::None => {}
            Engine::Vision { encoder, .. } | Engine::Text { encoder, .. } => *encoder = new,
        }
    }
}

/// Encodes with the worker's engine. When the WebGPU engine fails under `backend=auto`, the
/// worker reloads its tower on the CPU engine, says so (`Switched`) and encodes the same
/// input there, so nothing in hand is lost; under `backend=webgpu` it opens a new device and
/// redoes the input there (up to [`MAX_GPU_RECOVERIES`] times), then says `Failed` and
/// refuses further work.
pub(super) async fn compute(
    state: &Rc<RefCell<WorkerState>>,
    input: &Input,
) -> Result<Embeddings, String> {
    let (encoder, request, broken) = {
        let s = state.borrow();
        (s.engine.encoder(), s.request.clone(), s.broken.clone())
    };
    if let Some(message) = broken {
        return Err(message);
    }
    let Some(encoder) = encoder else {
        return Err("The encoder is not loaded.".to_owned());
    };
    let error = match encoder.run(input).await {
        Ok(e) => return Ok(e),
        Err(e) => e,
    };
    let (Enc::Gpu(_), Some(request), true) = (&*encoder, request, is_engine_failure(&error)) else {
        return Err(error.to_string());
    };
    let scope = state.borrow().scope.clone();
    let reason = match gpu_failure(
        request.backend,
        "the WebGPU engine failed",
        &error.to_string(),
    ) {
        Ok(reason) => reason,
        Err(message) => {
            // backend=webgpu: a new device, a few times per worker, before giving up.
            let recovered = match recover_on_new_device(state, &request, &error).await {
                Some(gpu) => gpu.run(input).await.ok(),
                None => None,
            };
            if let Some(embeddings) = recovered {
                return Ok(embeddings);
            }
            state.borrow_mut().broken = Some(message.clone());
            post(
                &scope,
                &FromWorker::Failed {
                    error: message.clone(),
                },
                None,
            );
            return Err(message);
        }
    };
    switch_to_cpu(state, &request, reason, input).await
}

/// Under `backend=auto`, after the WebGPU engine failed: the tower reloaded on the CPU
/// engine, `Switched` said, and `input` encoded there.
async fn switch_to_cpu(
    state: &Rc<RefCell<WorkerState>>,
    request: &LoadRequest,
    reason: String,
    input: &Input,
) -> Result<Embeddings, String> {
    let scope = state.borrow().scope.clone();
    web_sys::console::warn_1(&JsValue::from_str(&format!(
        "clipseek: moving to the CPU engine: {reason}"
    )));
    let mut report = LoadReport::default();
    let reloaded = match open(&request.model_key, &mut report).await {
        Ok(o) => cpu_engine(&o, request, |_| {}, &mut report)
            .await
            .map(|built| built.encoder),
        Err(e) => Err(e),
    };
    let cpu = reloaded.map_err(|e| {
        format!("The WebGPU engine failed ({reason}) and the CPU engine could not be loaded: {e}")
    })?;
    let cpu = Rc::new(Enc::Cpu(cpu));
    state.borrow_mut().engine.set_encoder(cpu.clone());
    post(
        &scope,
        &FromWorker::Switched {
            engine: EngineKind::Cpu,
            detail: CPU_DETAIL.to_owned(),
            reason,
        },
        None,
    );
    cpu.run(input).await.map_err(|e| e.to_string())
}

/// New WebGPU devices a worker opens after losing one, under `backend=webgpu`.
const MAX_GPU_RECOVERIES: u32 = 3;

/// Under `backend=webgpu`, after the engine failed: the tower on a new device (a lost device
/// stays lost, but the adapter may give another, as after a GPU process restart). Says
/// `switched` and returns the new engine, or `None` when the recoveries are used up or the
/// new device cannot be had.
async fn recover_on_new_device(
    state: &Rc<RefCell<WorkerState>>,
    request: &LoadRequest,
    error: &EncodeError,
) -> Option<Rc<Enc>> {
    {
        let mut s = state.borrow_mut();
        if s.recoveries >= MAX_GPU_RECOVERIES {
            return None;
        }
        s.recoveries += 1;
    }
    let o = open(&request.model_key, &mut LoadReport::default())
        .await
        .ok()?;
    let (gpu, detail, _) = gpu_engine(&o, request, |_| {}).await.ok()?;
    let gpu = Rc::new(Enc::Gpu(gpu));
    let scope = {
        let mut s = state.borrow_mut();
        s.engine.set_encoder(gpu.clone());
        s.scope.clone()
    };
    post(
        &scope,
        &FromWorker::Switched {
            engine: EngineKind::WebGpu,
            detail,
            reason: format!("the WebGPU device failed ({error}); a new one was opened"),
        },
        None,
    );
    Some(gpu)
}

const CPU_DETAIL: &str = "the CPU (WebAssembly SIMD)";

mod cpu;
use cpu::cpu_engine;
pub(super) use cpu::keep_packed;

/// A loaded tower.
pub(super) struct Loaded {
    pub(super) engine: Engine,
    pub(super) encoder: Rc<Enc>,
    pub(super) model_id: String,
    pub(super) detail: String,
    pub(super) fallback: Option<String>,
    /// Where the load's time went.
    pub(super) report: LoadReport,
    /// The 8-bit engine was built from the model: keep it packed for the next start.
    pub(super) pack: Option<(ModelStore, PackKey)>,
}

/// The cached model, opened and verified.
struct Opened {
    store: ModelStore,
    model: crate::web::download::VerifiedModel,
    config: ClipConfig,
    header: crate::model::weights::SafetensorsHeader,
    id: String,
}

/// The worker's clock in milliseconds: `performance.now()` (sub-millisecond), else `Date`.
pub(super) fn now_ms() -> f64 {
    use js_sys::{Function, Reflect};
    use wasm_bindgen::JsCast;
    let performance = || -> Option<f64> {
        let perf = Reflect::get(&js_sys::global(), &JsValue::from_str("performance")).ok()?;
        let now: Function = Reflect::get(&perf, &JsValue::from_str("now"))
            .ok()?
            .dyn_into()
            .ok()?;
        now.call0(&perf).ok()?.as_f64()
    };
    performance().unwrap_or_else(js_sys::Date::now)
}

async fn open(model_key: &str, report: &mut LoadReport) -> Result<Opened, String> {
    let t = now_ms();
    let db = idb::schema::open().await.map_err(|e| e.to_string())?;
    let store = ModelStore::new(db, model_key.to_owned());
    let model = store.open_verified().await.map_err(|e| e.to_string())?;
    let config = ClipConfig::from_json(&model.config_json).map_err(|e| e.to_string())?;
    let header = model.weights.header().await.map_err(|e| e.to_string())?;
    let id = model_id(&config, &model.config_json, &header);
    report.mark("open", now_ms() - t);
    Ok(Opened {
        store,
        model,
        config,
        header,
        id,
    })
}

fn towers_of(tower: Tower) -> Towers {
    match tower {
        Tower::Vision => Towers::Vision,
        Tower::Text => Towers::Text,
    }
}

/// Why the WebGPU engine could not be built: what went wrong, and the error.
struct GpuLoadError {
    what: String,
    error: String,
}

/// The tower on a new WebGPU device: the device is requested before any weight is read (no
/// adapter costs nothing). f16 asked for on an adapter without `shader-f16` runs in f32, and
/// f16 chosen by default that the device refuses is tried once more in f32, each with a note
/// saying so.
async fn gpu_engine(
    o: &Opened,
    request: &LoadRequest,
    mut on_progress: impl FnMut(f64),
) -> Result<(GpuEncoder, String, Option<String>), GpuLoadError> {
    let (adapter, device, queue) = gpu_device().await?;
    let (mut precision, mut note) = gpu_precision(request.precision, &device);
    // f16 chosen by us (not asked for) gets a second chance in f32: a browser's shader
    // compiler may refuse what naga and Vulkan accepted, and f32 on the GPU beats the CPU.
    let retry_in_f32 =
        precision.is_none() && device.features().contains(wgpu::Features::SHADER_F16);
    let mut attempt = 0;
    let gpu = loop {
        attempt += 1;
        let weights = load_weights(
            &o.model.weights,
            &o.header,
            &o.config,
            towers_of(request.tower),
            &mut on_progress,
        )
        .await
        .map_err(|e| GpuLoadError {
            what: "the model could not be read".into(),
            error: e.to_string(),
        })?;
        let options = GpuOptions {
            precision,
            ..GpuOptions::default()
        };
        match GpuEncoder::new_async(&device, &queue, &o.config, weights, &options).await {
            Ok(gpu) => break gpu,
            Err(e) if retry_in_f32 && attempt == 1 => {
                precision = Some(Precision::F32);
                let first_line = e.to_string().lines().next().unwrap_or_default().to_owned();
                note = Some(format!(
                    "the f16 kernels failed on this WebGPU adapter ({first_line}): f32 is used"
                ));
            }
            Err(e) => {
                return Err(GpuLoadError {
                    what: "the model cannot run on this WebGPU adapter".into(),
                    error: e.to_string(),
                })
            }
        }
    };
    let detail = gpu_detail(&adapter, &gpu);
    Ok((gpu, detail, note))
}

/// The GPU precision for `asked` on `device` (`None`: the engine chooses), and the note
/// when f16 was asked for on an adapter without `shader-f16` (f32 is used then).
fn gpu_precision(
    asked: PrecisionChoice,
    device: &wgpu::Device,
) -> (Option<Precision>, Option<String>) {
    let precision = asked.gpu();
    if precision == Some(Precision::F16) && !device.features().contains(wgpu::Features::SHADER_F16)
    {
        let note = "f16 was asked for, but this WebGPU adapter lacks shader-f16: f32 is used";
        return (Some(Precision::F32), Some(note.into()));
    }
    (precision, None)
}

/// The engine in words: "WebGPU on NAME (f32)" (browsers often hide the adapter's name).
fn gpu_detail(adapter: &wgpu::Adapter, gpu: &GpuEncoder) -> String {
    let name = adapter.get_info().name;
    let on = if name.is_empty() {
        String::new()
    } else {
        format!(" on {name}")
    };
    format!("WebGPU{on} ({})", gpu.precision().name())
}

/// A WebGPU device, or why there is none.
async fn gpu_device() -> Result<(wgpu::Adapter, wgpu::Device, wgpu::Queue), GpuLoadError> {
    let unavailable = |error: String| GpuLoadError {
        what: "WebGPU is not available here".into(),
        error,
    };
    match request_device(wgpu::PowerPreference::HighPerformance).await {
        Ok(d) => Ok(d),
        Err(GpuError::NoAdapter { .. }) => {
            Err(unavailable("this browser offers no WebGPU adapter".into()))
        }
        Err(e) => Err(unavailable(e.to_string())),
    }
}

/// Loads one tower of the cached model, tensor by tensor, on the engine the request says:
/// WebGPU when asked and possible (the device is requested before any weight is read), the
/// CPU engine otherwise — or an error under `backend=webgpu`.
pub(super) async fn load(
    request: &LoadRequest,
    mut on_progress: impl FnMut(f64),
) -> Result<Loaded, String> {
    let mut report = LoadReport::default();
    let o = open(&request.model_key, &mut report).await?;
    let mut fallback = None;
    let mut pack = None;
    let (encoder, detail) = match request.backend {
        Backend::Cpu => {
            let cpu = cpu_engine(&o, request, &mut on_progress, &mut report).await?;
            pack = cpu.pack;
            (Enc::Cpu(cpu.encoder), CPU_DETAIL.to_owned())
        }
        Backend::Auto | Backend::WebGpu => match gpu_engine(&o, request, &mut on_progress).await {
            Ok((gpu, detail, note)) => {
                fallback = note;
                (Enc::Gpu(gpu), detail)
            }
            Err(GpuLoadError { what, error }) => {
                fallback = Some(gpu_failure(request.backend, &what, &error)?);
                // The weights went to the failed engine: read them again.
                let cpu = cpu_engine(&o, request, &mut on_progress, &mut report).await?;
                pack = cpu.pack;
                (Enc::Cpu(cpu.encoder), CPU_DETAIL.to_owned())
            }
        },
    };
    let encoder = Rc::new(encoder);
    let engine = engine_of(&o, request.tower, &encoder, &mut report).await?;
    Ok(Loaded {
        engine,
        encoder,
        model_id: o.id,
        detail,
        fallback,
        report,
        pack: pack.map(|key| (o.store, key)),
    })
}

/// The loaded tower with what it reads through: the preprocessor or the tokenizer.
async fn engine_of(
    o: &Opened,
    tower: Tower,
    encoder: &Rc<Enc>,
    report: &mut LoadReport,
) -> Result<Engine, String> {
    let t = now_ms();
    let engine = match tower {
        Tower::Vision => {
            let preprocess = PreprocessConfig::from_json(&o.model.preprocessor_json)
                .map_err(|e| e.to_string())?;
            let v = &o.config.vision_config;
            if preprocess.crop_height as usize != v.image_size
                || preprocess.crop_width as usize != v.image_size
            {
                return Err(format!(
                    "preprocessor_config.json crops to {}x{} but the model reads {} pixels square.",
                    preprocess.crop_height, preprocess.crop_width, v.image_size
                ));
            }
            Engine::Vision {
                preprocessor: Preprocessor::new(preprocess),
                encoder: encoder.clone(),
            }
        }
        Tower::Text => {
            let json = o.model.tokenizer_json().await.map_err(|e| e.to_string())?;
            let tokenizer =
                ClipTokenizer::from_json(&json, o.config.text_config.max_position_embeddings)
                    .map_err(|e| e.to_string())?;
            Engine::Text {
                tokenizer,
                encoder: encoder.clone(),
            }
        }
    };
    let step = match tower {
        Tower::Vision => "preprocessor",
        Tower::Text => "tokenizer",
    };
    report.mark(step, now_ms() - t);
    Ok(engine)
}
