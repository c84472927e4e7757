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
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, DedicatedWorkerGlobalScope, ErrorEvent, MessageEvent, Worker};

use super::download::{load_weights, ModelStore};
use super::{describe_js, idb, now_ms, prop, set_prop};
use crate::clip::model_id;
use crate::encode::cpu::CpuEncoder;
use crate::encode::Encoder;
use crate::hub::{parse_hex32, to_hex};
use crate::model::config::{ClipConfig, PreprocessConfig};
use crate::model::preprocess::Preprocessor;
use crate::model::thumbnail::thumbnail_jpeg;
use crate::model::tokenizer::ClipTokenizer;
use crate::model::weights::Towers;

/// Photos per forward pass inside a vision worker.
pub const BATCH: usize = 4;
/// Longest side of a thumbnail, in pixels, and its JPEG quality.
pub const THUMB_SIDE: u32 = 256;
pub const THUMB_QUALITY: u8 = 80;

/// Which tower a worker loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tower {
    Vision,
    Text,
}

/// Page → worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToWorker {
    /// Load this tower of this cached model.
    Load { model_key: String, tower: Tower },
    /// Content hashes (hex) already in the index: a photo with one of them is answered
    /// `duplicate` without decoding (a renamed or copied file reuses its embedding).
    KnownHashes { hashes: Vec<String> },
    /// Encode the photos sent alongside as `files` (one per key).
    Encode {
        job: u32,
        keys: Vec<u32>,
        thumbnails: bool,
        dedupe: bool,
    },
    /// Embed one query text.
    Text { job: u32, text: String },
}

/// One photo's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ItemOut {
    pub key: u32,
    /// SHA-256 of the file, hex (empty when it could not be read).
    pub hash: String,
    pub embedding: Option<Vec<f32>>,
    /// The hash is among the known ones: the page reuses that entry's embedding.
    pub duplicate: bool,
    pub error: Option<String>,
    /// A thumbnail was made (it is in `thumbs` at this item's position).
    pub thumb: bool,
}

/// Worker → page.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FromWorker {
    /// The wasm is running and listening.
    Started,
    Loading {
        fraction: f64,
    },
    Loaded {
        model_id: String,
        dim: usize,
        load_ms: f64,
    },
    /// The model could not be loaded.
    Failed {
        error: String,
    },
    /// Photos encoded; `thumbs` (ArrayBuffer or null per item) rides alongside.
    Encoded {
        job: u32,
        items: Vec<ItemOut>,
    },
    Texted {
        job: u32,
        embedding: Option<Vec<f32>>,
        error: Option<String>,
    },
}

// ---------------------------------------------------------------------------------------
// The worker's side.

#[allow(
    clippy::large_enum_variant,
    reason = "one engine per worker, held for the worker's life: size does not matter"
)]
enum Engine {
    None,
    Vision {
        preprocessor: Preprocessor,
        encoder: CpuEncoder,
    },
    Text {
        tokenizer: ClipTokenizer,
        encoder: CpuEncoder,
    },
}

struct WorkerState {
    scope: DedicatedWorkerGlobalScope,
    engine: Engine,
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
        ToWorker::Load { model_key, tower } => {
            let started = now_ms();
            let progress_scope = scope.clone();
            let on_progress = move |fraction: f64| {
                post(&progress_scope, &FromWorker::Loading { fraction }, None);
            };
            match load(&model_key, tower, on_progress).await {
                Ok((engine, model_id, dim)) => {
                    state.borrow_mut().engine = engine;
                    post(
                        &scope,
                        &FromWorker::Loaded {
                            model_id,
                            dim,
                            load_ms: now_ms() - started,
                        },
                        None,
                    );
                }
                Err(error) => post(&scope, &FromWorker::Failed { error }, None),
            }
        }
        ToWorker::KnownHashes { hashes } => {
            state.borrow_mut().known = hashes.iter().filter_map(|h| parse_hex32(h)).collect();
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
            let result = {
                let s = state.borrow();
                match &s.engine {
                    Engine::Text { tokenizer, encoder } => tokenizer
                        .encode_batch(&[text.as_str()])
                        .map_err(|e| e.to_string())
                        .and_then(|ids| encoder.encode_texts(&ids).map_err(|e| e.to_string()))
                        .map(|e| e.data),
                    _ => Err("The query encoder is not loaded.".to_owned()),
                }
            };
            let (embedding, error) = match result {
                Ok(e) => (Some(e), None),
                Err(e) => (None, Some(e)),
            };
            post(
                &scope,
                &FromWorker::Texted {
                    job,
                    embedding,
                    error,
                },
                None,
            );
        }
    }
}

/// Loads one tower of the cached model, tensor by tensor.
async fn load(
    model_key: &str,
    tower: Tower,
    on_progress: impl FnMut(f64),
) -> Result<(Engine, String, usize), String> {
    let db = idb::schema::open().await.map_err(|e| e.to_string())?;
    let store = ModelStore::new(db, model_key.to_owned());
    let model = store.open_verified().await.map_err(|e| e.to_string())?;
    let config = ClipConfig::from_json(&model.config_json).map_err(|e| e.to_string())?;
    let header = model.weights.header().await.map_err(|e| e.to_string())?;
    let id = model_id(&config, &model.config_json, &header);
    let towers = match tower {
        Tower::Vision => Towers::Vision,
        Tower::Text => Towers::Text,
    };
    let weights = load_weights(&model.weights, &header, &config, towers, on_progress)
        .await
        .map_err(|e| e.to_string())?;
    let encoder = CpuEncoder::new(&config, weights).map_err(|e| e.to_string())?;
    let dim = encoder.embedding_dim();
    let engine = match tower {
        Tower::Vision => {
            let preprocess =
                PreprocessConfig::from_json(&model.preprocessor_json).map_err(|e| e.to_string())?;
            let v = &config.vision_config;
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
                encoder,
            }
        }
        Tower::Text => {
            let json = model.tokenizer_json().await.map_err(|e| e.to_string())?;
            let tokenizer =
                ClipTokenizer::from_json(&json, config.text_config.max_position_embeddings)
                    .map_err(|e| e.to_string())?;
            Engine::Text { tokenizer, encoder }
        }
    };
    Ok((engine, id, dim))
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
        let mut item = ItemOut {
            key,
            hash: String::new(),
            embedding: None,
            duplicate: false,
            error: None,
            thumb: false,
        };
        let mut thumb = None;
        let Some(file) = files.get(position) else {
            item.error = Some("The file was not received.".into());
            items.push(item);
            thumbs.push(thumb);
            continue;
        };
        let bytes = match super::read_blob(file).await {
            Ok(b) => b,
            Err(e) => {
                item.error = Some(format!(
                    "The file could not be read ({}); it may have been moved or deleted.",
                    describe_js(&e)
                ));
                items.push(item);
                thumbs.push(thumb);
                continue;
            }
        };
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        item.hash = to_hex(&hash);
        if dedupe && state.borrow().known.contains(&hash) {
            item.duplicate = true;
            items.push(item);
            thumbs.push(thumb);
            continue;
        }
        let s = state.borrow();
        let Engine::Vision {
            preprocessor,
            encoder,
        } = &s.engine
        else {
            item.error = Some("The photo encoder is not loaded.".into());
            items.push(item);
            thumbs.push(thumb);
            continue;
        };
        match preprocessor.decode(&bytes) {
            Ok(rgb) => {
                drop(bytes);
                let px = preprocessor.pixels(&rgb);
                let want: usize = encoder.image_shape().iter().product();
                if px.len() != want {
                    item.error = Some(format!(
                        "The photo gave {} pixel values where the model reads {want}.",
                        px.len()
                    ));
                } else {
                    if thumbnails {
                        match thumbnail_jpeg(&rgb, THUMB_SIDE, THUMB_QUALITY) {
                            Ok(jpeg) => {
                                thumb = Some(Uint8Array::from(jpeg.as_slice()).buffer());
                                item.thumb = true;
                            }
                            Err(e) => web_sys::console::warn_1(&JsValue::from_str(&e.to_string())),
                        }
                    }
                    pixels.extend_from_slice(&px);
                    to_encode.push(position);
                }
            }
            Err(e) => item.error = Some(e.to_string()),
        }
        drop(s);
        items.push(item);
        thumbs.push(thumb);
    }
    if !to_encode.is_empty() {
        let s = state.borrow();
        let result = match &s.engine {
            Engine::Vision { encoder, .. } => encoder
                .encode_images(&pixels, to_encode.len())
                .map_err(|e| e.to_string()),
            _ => Err("The photo encoder is not loaded.".to_owned()),
        };
        match result {
            Ok(embeddings) => {
                for (row, &position) in to_encode.iter().enumerate() {
                    if let Some(item) = items.get_mut(position) {
                        item.embedding = Some(embeddings.row(row).to_vec());
                    }
                }
            }
            Err(e) => {
                for &position in &to_encode {
                    if let Some(item) = items.get_mut(position) {
                        item.error = Some(format!("The photo could not be encoded: {e}"));
                        item.thumb = false;
                    }
                    if let Some(t) = thumbs.get_mut(position) {
                        *t = None;
                    }
                }
            }
        }
    }
    (items, thumbs)
}

// ---------------------------------------------------------------------------------------
// The page's side.

/// What a worker told the page.
pub enum WorkerEvent {
    Message(FromWorker, JsValue),
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
                    Err(e) => web_sys::console::error_1(&JsValue::from_str(&format!(
                        "clipseek: unreadable worker message: {e}"
                    ))),
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
