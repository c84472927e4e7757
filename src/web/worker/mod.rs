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
//!
//! Here: the worker's message loop; `engine` loads a tower and runs it (with the WebGPU
//! fallbacks), `photo` reads and encodes photos, `handle` is the page's side.

mod browser;
mod engine;
mod handle;
mod photo;

use std::cell::RefCell;
use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use js_sys::Array;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Blob, DedicatedWorkerGlobalScope, MessageEvent};

pub use handle::{thumbs_of, WorkerEvent, WorkerHandle};

use super::{prop, set_prop};
use crate::encode::{Backend, PrecisionChoice};
use crate::page::protocol::{FromWorker, JobId, LoadReport, ToWorker, Tower, WorkTotals};
use engine::{compute, load, Engine, Input};

/// Longest side of a thumbnail, in pixels, and its JPEG quality.
pub const THUMB_SIDE: u32 = 256;
pub const THUMB_QUALITY: u8 = 80;

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
    /// New devices opened after a loss (see `engine::MAX_GPU_RECOVERIES`).
    recoveries: u32,
    /// The first batch after the load was timed (`Timings`).
    first_batch_timed: bool,
    /// Where the batches' time went since the load (`LoadReport::work`).
    work: WorkTotals,
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
        first_batch_timed: false,
        work: WorkTotals::default(),
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
            let request = LoadRequest {
                model_key,
                tower,
                backend,
                precision,
            };
            handle_load(state, request).await;
        }
        ToWorker::KnownHashes { hashes } => {
            state.borrow_mut().known = hashes.into_iter().collect();
        }
        ToWorker::Encode {
            job,
            keys,
            thumbnails,
            dedupe,
        } => handle_encode(state, &data, job, &keys, thumbnails, dedupe).await,
        ToWorker::Text { job, text } => handle_text(state, job, &text).await,
    }
}

/// Loads the tower asked for and says how it went.
async fn handle_load(state: &Rc<RefCell<WorkerState>>, request: LoadRequest) {
    let scope = state.borrow().scope.clone();
    let progress_scope = scope.clone();
    let on_progress = move |fraction: f64| {
        post(&progress_scope, &FromWorker::Loading { fraction }, None);
    };
    match load(&request, on_progress).await {
        Ok(loaded) => {
            let engine = loaded.encoder.kind();
            {
                let mut s = state.borrow_mut();
                s.engine = loaded.engine;
                s.request = Some(request);
                s.broken = None;
                s.first_batch_timed = false;
                s.work = WorkTotals::default();
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
            let report = loaded.report;
            post(&scope, &FromWorker::Timings { report }, None);
            if let Some((store, key)) = loaded.pack {
                let encoder = loaded.encoder;
                // Beside the work that follows: the write is IndexedDB's, off this thread.
                wasm_bindgen_futures::spawn_local(async move {
                    engine::keep_packed(&store, &key, &encoder).await;
                });
            }
        }
        Err(error) => post(&scope, &FromWorker::Failed { error }, None),
    }
}

/// Encodes the photos that came with the message; their thumbnails go back transferred.
async fn handle_encode(
    state: &Rc<RefCell<WorkerState>>,
    data: &JsValue,
    job: JobId,
    keys: &[u32],
    thumbnails: bool,
    dedupe: bool,
) {
    let scope = state.borrow().scope.clone();
    let files: Vec<Blob> = prop(data, "files")
        .and_then(|f| f.dyn_into::<Array>().ok())
        .map(|a| a.iter().filter_map(|f| f.dyn_into::<Blob>().ok()).collect())
        .unwrap_or_default();
    let t = engine::now_ms();
    let (items, thumbs) = photo::encode(state, keys, &files, thumbnails, dedupe).await;
    note_first_batch(state, engine::now_ms() - t);
    let posting = engine::now_ms();
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
    let report = {
        let mut s = state.borrow_mut();
        s.work.add("post", engine::now_ms() - posting);
        s.work.report()
    };
    post(&scope, &FromWorker::Timings { report }, None);
}

/// Embeds one query text.
async fn handle_text(state: &Rc<RefCell<WorkerState>>, job: JobId, text: &str) {
    let scope = state.borrow().scope.clone();
    let ids = {
        let s = state.borrow();
        match &s.engine {
            Engine::Text { tokenizer, .. } => {
                tokenizer.encode_batch(&[text]).map_err(|e| e.to_string())
            }
            _ => Err("The query encoder is not loaded.".to_owned()),
        }
    };
    let t = engine::now_ms();
    let result = match ids {
        Ok(ids) => compute(state, &Input::Texts(ids)).await.map(|e| e.data),
        Err(e) => Err(e),
    };
    note_first_batch(state, engine::now_ms() - t);
    post(&scope, &FromWorker::Texted { job, result }, None);
}

/// Says how long the first batch after a load took (`Timings`), once per load.
fn note_first_batch(state: &Rc<RefCell<WorkerState>>, ms: f64) {
    let scope = {
        let mut s = state.borrow_mut();
        if std::mem::replace(&mut s.first_batch_timed, true) {
            return;
        }
        s.scope.clone()
    };
    let mut report = LoadReport::default();
    report.mark("first_batch", ms);
    post(&scope, &FromWorker::Timings { report }, None);
}
