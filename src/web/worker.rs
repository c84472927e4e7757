//! Encoder workers: the messages between the page and a worker, the worker's side (load one
//! tower from the model cache, then encode batches of photos or texts), and the page's
//! handle on a worker.
//!
//! Each worker is its own wasm instance (the `clipseek-worker` binary, started by
//! `www/encoder-worker.js`), holding only the weights it needs: a vision worker the vision
//! tower, the query worker the text tower and tokenizer. Nothing is shared (no
//! SharedArrayBuffer, so any static host works). Messages are serde values
//! (serde-wasm-bindgen) plus, beside them, the photos as `File`/`Blob` handles (cloning a
//! File copies no bytes; the worker reads it, so the page never holds photo bytes) and the
//! thumbnails coming back as transferred ArrayBuffers. A worker handles one message at a
//! time, in order; a photo that fails yields its own error sentence and never stops the
//! batch. This module must not touch the DOM or rank anything. Reference: the worker
//! pattern of candle's wasm examples (plain-Rust worker logic, thin binary) and Trunk's
//! `data-type="worker"` targets.

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use js_sys::{Array, ArrayBuffer, Uint8Array};
use sha2::{Digest, Sha256};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, DedicatedWorkerGlobalScope, ErrorEvent, MessageEvent, Worker};

use super::download::{load_weights, ModelStore};
use super::{describe_js, idb, prop, set_prop};
use crate::clip::model_id;
use crate::encode::cpu::CpuEncoder;
use crate::encode::gpu::{request_device, GpuEncoder, GpuError, GpuOptions, Precision};
use crate::encode::{
    gpu_failure, is_engine_failure, Backend, Embeddings, EncodeError, Encoder, EngineKind,
    PrecisionChoice,
};
use crate::model::config::{ClipConfig, PreprocessConfig};
use crate::model::preprocess::Preprocessor;
use crate::model::thumbnail::{display_copy, thumbnail_jpeg};
use crate::model::tokenizer::{ClipTokenizer, TokenIds};
use crate::model::weights::Towers;
use crate::page::protocol::{FromWorker, ItemOut, Photo, ProtocolError, ToWorker, Tower};

/// Photos per forward pass inside a vision worker.
pub const BATCH: usize = 4;
/// Longest side of a thumbnail, in pixels, and its JPEG quality.
pub const THUMB_SIDE: u32 = 256;
pub const THUMB_QUALITY: u8 = 80;

// ---------------------------------------------------------------------------------------
// The worker's side.

/// A tower's engine.
#[allow(
    clippy::large_enum_variant,
    reason = "one engine per worker, behind an Rc, held for the worker's life"
)]
enum Enc {
    Cpu(CpuEncoder),
    Gpu(GpuEncoder),
}

impl Enc {
    fn kind(&self) -> EngineKind {
        match self {
            Enc::Cpu(_) => EngineKind::Cpu,
            Enc::Gpu(_) => EngineKind::WebGpu,
        }
    }

    fn image_shape(&self) -> [usize; 3] {
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
enum Input {
    Images { pixels: Vec<f32>, count: usize },
    Texts(Vec<TokenIds>),
}

#[allow(
    clippy::large_enum_variant,
    reason = "one engine per worker, held for the worker's life: size does not matter"
)]
enum Engine {
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
    fn encoder(&self) -> Option<Rc<Enc>> {
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

/// What the worker was asked to load, kept to reload the tower on the CPU after a device loss.
#[derive(Clone)]
struct LoadRequest {
    model_key: String,
    tower: Tower,
    backend: Backend,
    precision: PrecisionChoice,
}

struct WorkerState {
    scope: DedicatedWorkerGlobalScope,
    engine: Engine,
    request: Option<LoadRequest>,
    /// A WebGPU failure under `backend=webgpu`: the worker refuses further work.
    broken: Option<String>,
    /// New devices opened after a loss (see [`MAX_GPU_RECOVERIES`]).
    recoveries: u32,
    known: HashSet<[u8; 32]>,
    inbox: VecDeque<JsValue>,
    busy: bool,
}

thread_local! {
    static STATE: RefCell<Option<Rc<RefCell<WorkerState>>>> = const { RefCell::new(None) };
}

/// Runs in the worker: listens for messages and answers them one at a time.
pub fn serve() {
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let state = Rc::new(RefCell::new(WorkerState {
        scope: scope.clone(),
        engine: Engine::None,
        request: None,
        broken: None,
        recoveries: 0,
        known: HashSet::new(),
        inbox: VecDeque::new(),
        busy: false,
    }));
    STATE.with(|s| *s.borrow_mut() = Some(state.clone()));
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let start = {
            let mut s = state.borrow_mut();
            s.inbox.push_back(event.data());
            !std::mem::replace(&mut s.busy, true)
        };
        if start {
            wasm_bindgen_futures::spawn_local(drain(state.clone()));
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The worker lives as long as its handler.
    on_message.forget();
    post(&scope, &FromWorker::Started, None);
}

fn post(
    scope: &DedicatedWorkerGlobalScope,
    message: &FromWorker,
    extra: Option<(&str, &Array, &Array)>,
) {
    let value = match serde_wasm_bindgen::to_value(message) {
        Ok(v) => v,
        Err(e) => {
            web_sys::console::error_1(&JsValue::from_str(&format!("worker: {e}")));
            return;
        }
    };
    let sent = match extra {
        Some((name, values, transfer)) => set_prop(&value, name, values)
            .and_then(|()| scope.post_message_with_transfer(&value, transfer)),
        None => scope.post_message(&value),
    };
    if let Err(e) = sent {
        web_sys::console::error_1(&e);
    }
}

async fn drain(state: Rc<RefCell<WorkerState>>) {
    loop {
        let next = state.borrow_mut().inbox.pop_front();
        let Some(data) = next else {
            state.borrow_mut().busy = false;
            return;
        };
        handle(&state, data).await;
    }
}

async fn handle(state: &Rc<RefCell<WorkerState>>, data: JsValue) {
    let scope = state.borrow().scope.clone();
    let message: ToWorker = match serde_wasm_bindgen::from_value(data.clone()) {
        Ok(m) => m,
        Err(e) => {
            web_sys::console::error_1(&JsValue::from_str(&format!("worker: bad message: {e}")));
            return;
        }
    };
    match message {
        ToWorker::Load {
            model_key,
            tower,
            backend,
            precision,
        } => {
            let progress_scope = scope.clone();
            let on_progress = move |fraction: f64| {
                post(&progress_scope, &FromWorker::Loading { fraction }, None);
            };
            let request = LoadRequest {
                model_key,
                tower,
                backend,
                precision,
            };
            match load(&request, on_progress).await {
                Ok(loaded) => {
                    let engine = loaded.encoder.kind();
                    {
                        let mut s = state.borrow_mut();
                        s.engine = loaded.engine;
                        s.request = Some(request);
                        s.broken = None;
                    }
                    post(
                        &scope,
                        &FromWorker::Loaded {
                            model_id: loaded.model_id,
                            engine,
                            detail: loaded.detail,
                            fallback: loaded.fallback,
                        },
                        None,
                    );
                }
                Err(error) => post(&scope, &FromWorker::Failed { error }, None),
            }
        }
        ToWorker::KnownHashes { hashes } => {
            state.borrow_mut().known = hashes.into_iter().collect();
        }
        ToWorker::Encode {
            job,
            keys,
            thumbnails,
            dedupe,
        } => {
            let files: Vec<Blob> = prop(&data, "files")
                .and_then(|f| f.dyn_into::<Array>().ok())
                .map(|a| a.iter().filter_map(|f| f.dyn_into::<Blob>().ok()).collect())
                .unwrap_or_default();
            let (items, thumbs) = encode(state, &keys, &files, thumbnails, dedupe).await;
            let transfer = Array::new();
            let values = Array::new();
            for t in thumbs {
                match t {
                    Some(buffer) => {
                        transfer.push(&buffer);
                        values.push(&buffer);
                    }
                    None => {
                        values.push(&JsValue::NULL);
                    }
                }
            }
            post(
                &scope,
                &FromWorker::Encoded { job, items },
                Some(("thumbs", &values, &transfer)),
            );
        }
        ToWorker::Text { job, text } => {
            let ids = {
                let s = state.borrow();
                match &s.engine {
                    Engine::Text { tokenizer, .. } => tokenizer
                        .encode_batch(&[text.as_str()])
                        .map_err(|e| e.to_string()),
                    _ => Err("The query encoder is not loaded.".to_owned()),
                }
            };
            let result = match ids {
                Ok(ids) => compute(state, &Input::Texts(ids)).await.map(|e| e.data),
                Err(e) => Err(e),
            };
            post(&scope, &FromWorker::Texted { job, result }, None);
        }
    }
}

/// Encodes with the worker's engine. When the WebGPU engine fails under `backend=auto`, the
/// worker reloads its tower on the CPU engine, says so (`Switched`) and encodes the same
/// input there, so nothing in hand is lost; under `backend=webgpu` it opens a new device and
/// redoes the input there (up to [`MAX_GPU_RECOVERIES`] times), then says `Failed` and
/// refuses further work.
async fn compute(state: &Rc<RefCell<WorkerState>>, input: &Input) -> Result<Embeddings, String> {
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
    web_sys::console::warn_1(&JsValue::from_str(&format!(
        "clipseek: moving to the CPU engine: {reason}"
    )));
    let reloaded = match open(&request.model_key).await {
        Ok(o) => cpu_engine(&o, request.tower, request.precision, |_| {}).await,
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
    let o = open(&request.model_key).await.ok()?;
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

/// A loaded tower.
struct Loaded {
    engine: Engine,
    encoder: Rc<Enc>,
    model_id: String,
    detail: String,
    fallback: Option<String>,
}

/// The cached model, opened and verified.
struct Opened {
    model: super::download::VerifiedModel,
    config: ClipConfig,
    header: crate::model::weights::SafetensorsHeader,
    id: String,
}

async fn open(model_key: &str) -> Result<Opened, String> {
    let db = idb::schema::open().await.map_err(|e| e.to_string())?;
    let store = ModelStore::new(db, model_key.to_owned());
    let model = store.open_verified().await.map_err(|e| e.to_string())?;
    let config = ClipConfig::from_json(&model.config_json).map_err(|e| e.to_string())?;
    let header = model.weights.header().await.map_err(|e| e.to_string())?;
    let id = model_id(&config, &model.config_json, &header);
    Ok(Opened {
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

/// The tower on the CPU engine, read from the opened cache, in the precision asked for
/// (`int8`: 8-bit weights; `auto`: `encode::AUTO_CPU`).
async fn cpu_engine(
    o: &Opened,
    tower: Tower,
    precision: PrecisionChoice,
    on_progress: impl FnMut(f64),
) -> Result<CpuEncoder, String> {
    let weights = load_weights(
        &o.model.weights,
        &o.header,
        &o.config,
        towers_of(tower),
        on_progress,
    )
    .await
    .map_err(|e| e.to_string())?;
    CpuEncoder::new_with(&o.config, weights, precision.cpu()).map_err(|e| e.to_string())
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
    let unavailable = |error: String| GpuLoadError {
        what: "WebGPU is not available here".into(),
        error,
    };
    let (adapter, device, queue) =
        match request_device(wgpu::PowerPreference::HighPerformance).await {
            Ok(d) => d,
            Err(GpuError::NoAdapter { .. }) => {
                return Err(unavailable("this browser offers no WebGPU adapter".into()))
            }
            Err(e) => return Err(unavailable(e.to_string())),
        };
    let mut precision = request.precision.gpu();
    let mut note = None;
    if precision == Some(Precision::F16) && !device.features().contains(wgpu::Features::SHADER_F16)
    {
        precision = Some(Precision::F32);
        note =
            Some("f16 was asked for, but this WebGPU adapter lacks shader-f16: f32 is used".into());
    }
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
    // Browsers often hide the adapter's name.
    let name = adapter.get_info().name;
    let on = if name.is_empty() {
        String::new()
    } else {
        format!(" on {name}")
    };
    let detail = format!("WebGPU{on} ({})", gpu.precision().name());
    Ok((gpu, detail, note))
}

/// Loads one tower of the cached model, tensor by tensor, on the engine the request says:
/// WebGPU when asked and possible (the device is requested before any weight is read), the
/// CPU engine otherwise — or an error under `backend=webgpu`.
async fn load(request: &LoadRequest, mut on_progress: impl FnMut(f64)) -> Result<Loaded, String> {
    let o = open(&request.model_key).await?;
    let mut fallback = None;
    let (encoder, detail) = match request.backend {
        Backend::Cpu => {
            let cpu = cpu_engine(&o, request.tower, request.precision, &mut on_progress).await?;
            (Enc::Cpu(cpu), CPU_DETAIL.to_owned())
        }
        Backend::Auto | Backend::WebGpu => match gpu_engine(&o, request, &mut on_progress).await {
            Ok((gpu, detail, note)) => {
                fallback = note;
                (Enc::Gpu(gpu), detail)
            }
            Err(GpuLoadError { what, error }) => {
                fallback = Some(gpu_failure(request.backend, &what, &error)?);
                // The weights went to the failed engine: read them again.
                let cpu =
                    cpu_engine(&o, request.tower, request.precision, &mut on_progress).await?;
                (Enc::Cpu(cpu), CPU_DETAIL.to_owned())
            }
        },
    };
    let encoder = Rc::new(encoder);
    let engine = match request.tower {
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
    Ok(Loaded {
        engine,
        encoder,
        model_id: o.id,
        detail,
        fallback,
    })
}

/// Reads, hashes, decodes, thumbnails and encodes a batch of photos.
async fn encode(
    state: &Rc<RefCell<WorkerState>>,
    keys: &[u32],
    files: &[Blob],
    thumbnails: bool,
    dedupe: bool,
) -> (Vec<ItemOut>, Vec<Option<ArrayBuffer>>) {
    let mut items = Vec::with_capacity(keys.len());
    let mut thumbs = Vec::with_capacity(keys.len());
    let mut pixels: Vec<f32> = Vec::new();
    let mut to_encode: Vec<usize> = Vec::new();
    for (position, &key) in keys.iter().enumerate() {
        let (result, thumb) = match files.get(position) {
            None => (Err("The file was not received.".to_owned()), None),
            Some(file) => {
                let read = read_photo(state, file, thumbnails, dedupe).await;
                match read {
                    Read::Pixels { hash, px, thumb } => {
                        pixels.extend_from_slice(&px);
                        to_encode.push(position);
                        let result = Ok(Photo::Embedded {
                            hash,
                            embedding: Vec::new(),
                            thumb: thumb.is_some(),
                        });
                        (result, thumb)
                    }
                    Read::Duplicate(hash) => (Ok(Photo::Duplicate { hash }), None),
                    Read::Failed(e) => (Err(e), None),
                }
            }
        };
        items.push(ItemOut { key, result });
        thumbs.push(thumb);
    }
    if to_encode.is_empty() {
        return (items, thumbs);
    }
    let input = Input::Images {
        pixels: std::mem::take(&mut pixels),
        count: to_encode.len(),
    };
    let result = compute(state, &input).await;
    for (row, &position) in to_encode.iter().enumerate() {
        let Some(item) = items.get_mut(position) else {
            continue;
        };
        match (&result, &mut item.result) {
            (Ok(embeddings), Ok(Photo::Embedded { embedding, .. })) => {
                *embedding = embeddings.row(row).to_vec();
            }
            (Err(e), _) => {
                item.result = Err(format!("The photo could not be encoded: {e}"));
                if let Some(t) = thumbs.get_mut(position) {
                    *t = None;
                }
            }
            _ => {}
        }
    }
    (items, thumbs)
}

/// One photo read for encoding.
enum Read {
    /// Its pixels as the model reads them, and its thumbnail.
    Pixels {
        hash: [u8; 32],
        px: Vec<f32>,
        thumb: Option<ArrayBuffer>,
    },
    Duplicate([u8; 32]),
    Failed(String),
}

/// Reads, hashes and decodes one photo (and makes its thumbnail).
async fn read_photo(
    state: &Rc<RefCell<WorkerState>>,
    file: &Blob,
    thumbnails: bool,
    dedupe: bool,
) -> Read {
    let bytes = match super::read_blob(file).await {
        Ok(b) => b,
        Err(e) => {
            return Read::Failed(format!(
                "The file could not be read ({}); it may have been moved or deleted.",
                describe_js(&e)
            ))
        }
    };
    let hash: [u8; 32] = Sha256::digest(&bytes).into();
    if dedupe && state.borrow().known.contains(&hash) {
        return Read::Duplicate(hash);
    }
    let s = state.borrow();
    let Engine::Vision {
        preprocessor,
        encoder,
    } = &s.engine
    else {
        return Read::Failed("The photo encoder is not loaded.".into());
    };
    // Large JPEGs arrive decoded at a reduced DCT scale (still >= 2x the model's input):
    // the thumbnail below is made from that smaller image too.
    let image = match preprocessor.decode_for_model(&bytes) {
        Ok(image) => image,
        Err(e) => return Read::Failed(e.to_string()),
    };
    let display = if thumbnails {
        display_copy(&bytes)
    } else {
        None
    };
    drop(bytes);
    let px = preprocessor.model_pixels(&image);
    let want: usize = encoder.image_shape().iter().product();
    if px.len() != want {
        return Read::Failed(format!(
            "The photo gave {} pixel values where the model reads {want}.",
            px.len()
        ));
    }
    let mut thumb = None;
    if thumbnails {
        let shown = display.as_ref().unwrap_or(&image.rgb);
        match thumbnail_jpeg(shown, THUMB_SIDE, THUMB_QUALITY) {
            Ok(jpeg) => thumb = Some(Uint8Array::from(jpeg.as_slice()).buffer()),
            Err(e) => web_sys::console::warn_1(&JsValue::from_str(&e.to_string())),
        }
    }
    Read::Pixels { hash, px, thumb }
}

// ---------------------------------------------------------------------------------------
// The page's side.

/// What a worker told the page.
pub enum WorkerEvent {
    Message(FromWorker, JsValue),
    /// A message that does not fit the protocol (an old worker after an app update).
    Unreadable(ProtocolError),
    /// The worker died (a trap, out of memory, or its script failed to load).
    Crashed(String),
}

/// The page's handle on one worker; dropping it terminates the worker.
pub struct WorkerHandle {
    worker: Worker,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

impl WorkerHandle {
    /// Starts the worker script at `url`; `on_event` receives its messages.
    pub fn spawn(url: &str, on_event: Rc<dyn Fn(WorkerEvent)>) -> Result<Self, JsValue> {
        let worker = Worker::new(url)?;
        let on_message = {
            let on_event = on_event.clone();
            Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
                let data = event.data();
                match serde_wasm_bindgen::from_value::<FromWorker>(data.clone()) {
                    Ok(m) => on_event(WorkerEvent::Message(m, data)),
                    Err(e) => on_event(WorkerEvent::Unreadable(ProtocolError::Unreadable {
                        from: "encoder worker",
                        detail: e.to_string(),
                    })),
                }
            })
        };
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            event.prevent_default();
            let message = event.message();
            on_event(WorkerEvent::Crashed(if message.is_empty() {
                "the encoder worker could not start".to_owned()
            } else {
                message
            }));
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            worker,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    pub fn send(&self, message: &ToWorker) -> Result<(), JsValue> {
        let value = serde_wasm_bindgen::to_value(message).map_err(JsValue::from)?;
        self.worker.post_message(&value)
    }

    /// Sends an `Encode` with the photos as File/Blob handles.
    pub fn send_files(&self, message: &ToWorker, files: &[Blob]) -> Result<(), JsValue> {
        let value = serde_wasm_bindgen::to_value(message).map_err(JsValue::from)?;
        let list: Array = files.iter().collect();
        set_prop(&value, "files", &list)?;
        self.worker.post_message(&value)
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.worker.set_onmessage(None);
        self.worker.set_onerror(None);
        self.worker.terminate();
    }
}

/// The thumbnails riding beside an `Encoded` message, by item position.
pub fn thumbs_of(data: &JsValue) -> Vec<Option<ArrayBuffer>> {
    prop(data, "thumbs")
        .and_then(|t| t.dyn_into::<Array>().ok())
        .map(|a| a.iter().map(|v| v.dyn_into::<ArrayBuffer>().ok()).collect())
        .unwrap_or_default()
}
