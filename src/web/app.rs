//! The page's state machine: from the URL parameters to a searchable photo index.
//!
//! States (`#status[data-state]`): `idle` (no model yet: waiting for "Download the model",
//! or for photos, which start the download), `downloading`, `loading` (the model or the
//! encoders are being read from IndexedDB), `ready`, `indexing`, `error` (one plain
//! sentence, and a Retry button where retrying can help). The model is fetched on the first
//! visit only when asked — by the button, by dropping photos, or by a URL that names a
//! `hub`, `model` or `revision` (a link that picks a model is asked for it) — and resumes
//! by itself when a download was under way. With a verified model the page reads the
//! stored index, starts the query worker (text tower) and is `ready`: search works before
//! any folder is dropped. Dropped photos are sorted as the CLI sorts them, and the unchanged
//! ones skipped; the vision workers (started on first need) encode the rest in batches,
//! and results are applied and saved strictly in that order (a small reorder buffer), so
//! ties rank as the CLI ranks them and a crash loses at most the batches in flight.
//!
//! It must not compute CLIP, rank or talk HTTP itself (that is the core, `download` and the
//! workers), and it never holds a `RefCell` borrow across an `await`. Reference: DESIGN.md
//! "Contract: the page"; the issue "The web app".

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::rc::Rc;

use js_sys::ArrayBuffer;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    Blob, BlobPropertyBag, DragEvent, Event, File, HtmlElement, KeyboardEvent, Url, UrlSearchParams,
};

use super::download::{CacheState, Download, DownloadError, ModelStore, Phase, Progress};
use super::idb::{schema, Database, IdbError};
use super::library::{Library, PhotoRecord, Thumb};
use super::ui::drop::{entries_of_drop, from_input, walk, PickedSet};
use super::ui::results::{self, ResultView};
use super::ui::{self, set_progress, set_text, show, Dom, State};
use super::worker::{thumbs_of, WorkerEvent, WorkerHandle, BATCH};
use super::{describe_js, noted, now_ms, prop};
use crate::clip::model_id;
use crate::encode::{Backend, EngineKind, PrecisionChoice};
use crate::hub::{format_bytes, format_eta, ModelSource, Rate};
use crate::index::{EmbeddingIndex, EntryMeta, Match};
use crate::ingest::{self, Candidate};
use crate::model::config::ClipConfig;
use crate::page::library::{place_drop, DropFile, ForgetOffer, Known};
use crate::page::protocol::{FromWorker, ItemOut, JobId, Photo, ToWorker, Tower};
use crate::page::run::{CrashBudget, Lost, CRASH_REASON};
use crate::page::search::{results_line, Effect as SearchEffect, Encoder, Input, Query, Search};
use crate::page::status::RunSummary;

/// Batches a vision worker holds at once (one running, one waiting).
const IN_FLIGHT_PER_WORKER: usize = 2;
/// Query-worker crashes in a row (with no query answered between them) before giving up.
const MAX_RESPAWNS: u32 = 3;
/// The worker loader (www/encoder-worker.js), relative to the page.
const WORKER_SCRIPT: &str = "encoder-worker.js";

type AppRef = Rc<RefCell<App>>;

/// The page's URL parameters.
struct Params {
    source: ModelSource,
    /// The URL names the model (hub, model or revision): download without asking.
    explicit_source: bool,
    workers: Option<usize>,
    backend: Backend,
    precision: PrecisionChoice,
    /// Seconds the photo encoders stay loaded when idle (`idle_s`).
    idle_release_s: u32,
}

fn read_params() -> Result<Params, String> {
    let search = web_sys::window()
        .map(|w| w.location().search().unwrap_or_default())
        .unwrap_or_default();
    let params = UrlSearchParams::new_with_str(&search).map_err(|e| describe_js(&e))?;
    let get = |name: &str| params.get(name);
    let source = ModelSource::from_params(
        get("hub").as_deref(),
        get("model").as_deref(),
        get("revision").as_deref(),
        get("chunk_kb").as_deref(),
    )
    .map_err(|e| e.to_string())?;
    let explicit_source = ["hub", "model", "revision"]
        .iter()
        .any(|p| get(p).is_some_and(|v| !v.trim().is_empty()));
    let backend = Backend::from_param(get("backend").as_deref())?;
    let precision = PrecisionChoice::from_param(get("precision").as_deref())?;
    let idle_release_s = ingest::idle_release_s(get("idle_s").as_deref())?;
    let workers = match get("workers").as_deref().map(str::trim) {
        None | Some("") | Some("auto") => None,
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=ingest::MAX_WORKERS).contains(&n) => Some(n),
            _ => {
                return Err(format!(
                    "workers must be a whole number from 1 to {}, not \"{n}\".",
                    ingest::MAX_WORKERS
                ))
            }
        },
    };
    Ok(Params {
        source,
        explicit_source,
        workers,
        backend,
        precision,
        idle_release_s,
    })
}

/// What the page knows of the loaded model.
struct ModelInfo {
    model_id: String,
    /// f32 bytes of the vision tower, for the worker budget.
    vision_bytes: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Looking at what is stored (the page just opened).
    Starting,
    /// Nothing stored: waiting for the person.
    NoModel,
    Downloading,
    /// Reading the model and the index from IndexedDB.
    Opening,
    /// The model and index are open (the query worker may still be loading).
    Open,
}

struct PoolWorker {
    handle: WorkerHandle,
    /// Its wasm runs (it said `started`).
    started: bool,
    /// It was asked to load the vision tower.
    loading: bool,
    ready: bool,
    in_flight: usize,
    load_fraction: f64,
    /// The engine it runs, once loaded.
    engine: Option<EngineKind>,
}

enum JobKind {
    Index { keys: Vec<usize> },
    Query { name: String },
}

struct JobInfo {
    worker: usize,
    /// Sent order: a worker runs its jobs one at a time, oldest first.
    sent: u64,
    kind: JobKind,
}

struct RunItem {
    path: String,
    size_bytes: u64,
    modified_ms: i64,
    file: File,
}

enum Outcome {
    Embedded {
        embedding: Vec<f32>,
        hash: [u8; 32],
        thumb: Option<ArrayBuffer>,
    },
    Duplicate {
        hash: [u8; 32],
    },
    Failed(String),
    /// Not encoded: the run was cancelled.
    Dropped,
}

/// One indexing run: the photos of one or more drops, in indexing order.
struct Run {
    items: Vec<RunItem>,
    next_dispatch: usize,
    /// Items to try again alone after their worker crashed.
    solo: VecDeque<usize>,
    finished: BTreeMap<usize, Outcome>,
    next_apply: usize,
    /// Items that will be applied (all, or those dispatched before a cancel).
    limit: usize,
    added: usize,
    reused: usize,
    failed: usize,
    unchanged: usize,
    vanished: Vec<u64>,
    paused: bool,
    cancelled: bool,
    rate: Rate,
    started_ms: f64,
}

/// The search by photo waiting for a photo encoder, and when results were last re-ranked.
struct PhotoSearch {
    pending_image: Option<File>,
    last_rerank_ms: f64,
}

struct App {
    dom: Rc<Dom>,
    params: Params,
    worker_url: String,
    db: Option<Database>,
    store: Option<ModelStore>,
    library: Option<Library>,
    stage: Stage,
    error: Option<(String, bool)>,
    download: Option<Rc<Download>>,
    download_text: String,
    model: Option<ModelInfo>,
    index: Option<EmbeddingIndex>,
    seqs: HashMap<String, f64>,
    next_seq: f64,
    originals: HashMap<String, File>,
    skipped: BTreeMap<String, String>,
    text_worker: Option<WorkerHandle>,
    text_ready: bool,
    /// The query worker's engine, once loaded.
    text_engine: Option<EngineKind>,
    /// The engines in words (by worker: "text" or "vision N"), and why WebGPU is not used.
    engine_details: BTreeMap<String, String>,
    engine_fallback: Option<String>,
    next_job: JobId,
    pool: Vec<Option<PoolWorker>>,
    /// Bumped by every piece of photo-encoder work; an idle timer stops the pool only if it
    /// is still the latest.
    pool_activity: u32,
    /// Query-worker crashes since it last answered.
    respawns: u32,
    /// The photo encoders' crashes, charged per photo (`page::run`).
    crashes: CrashBudget,
    /// Jobs sent so far (orders `JobInfo::sent`).
    sent_jobs: u64,
    jobs: HashMap<JobId, JobInfo>,
    run: Option<Run>,
    collecting: usize,
    waiting: Vec<PickedSet>,
    /// The search box's state (`page::search`); `update` is called only by `search_input`.
    search: Search,
    photo_search: PhotoSearch,
    thumb_urls: HashMap<String, String>,
    preview_url: Option<String>,
    preview_id: Option<u64>,
    clear_armed_until: f64,
    /// Photos of re-dropped folders that are no longer in them, offered for forgetting.
    forget: Option<ForgetOffer>,
    last_index_report_ms: f64,
    last_storage_ms: f64,
    note: Option<String>,
}

/// Starts the page.
pub fn start() {
    spawn_local(async {
        if let Err(e) = boot().await {
            web_sys::console::error_1(&e);
            if let Some(status) = web_sys::window()
                .and_then(|w| w.document())
                .and_then(|d| d.get_element_by_id("status"))
            {
                ui::attr(&status, "data-state", "error");
                status.set_text_content(Some(&format!(
                    "clipseek could not start: {}",
                    describe_js(&e)
                )));
            }
        }
    });
}

async fn boot() -> Result<(), JsValue> {
    let dom = Rc::new(Dom::find()?);
    dom.set_counts(0, 0);
    let params = match read_params() {
        Ok(p) => p,
        Err(message) => {
            dom.set_status(State::Error, &message);
            return Ok(());
        }
    };
    let app = Rc::new(RefCell::new(App {
        worker_url: worker_url(),
        dom: dom.clone(),
        params,
        db: None,
        store: None,
        library: None,
        stage: Stage::Starting,
        error: None,
        download: None,
        download_text: String::new(),
        model: None,
        index: None,
        seqs: HashMap::new(),
        next_seq: 0.0,
        originals: HashMap::new(),
        skipped: BTreeMap::new(),
        text_worker: None,
        text_ready: false,
        text_engine: None,
        engine_details: BTreeMap::new(),
        engine_fallback: None,
        next_job: JobId(1),
        pool: Vec::new(),
        pool_activity: 0,
        respawns: 0,
        crashes: CrashBudget::new(),
        sent_jobs: 0,
        jobs: HashMap::new(),
        run: None,
        collecting: 0,
        waiting: Vec::new(),
        search: Search::new(),
        photo_search: PhotoSearch {
            pending_image: None,
            last_rerank_ms: 0.0,
        },
        thumb_urls: HashMap::new(),
        preview_url: None,
        preview_id: None,
        clear_armed_until: 0.0,
        forget: None,
        last_index_report_ms: 0.0,
        last_storage_ms: 0.0,
        note: None,
    }));
    {
        let a = app.borrow();
        set_text(&dom.model_name, &a.params.source.model);
        ui::attr(
            &dom.model_name,
            "title",
            &format!(
                "{} at revision {} from {}",
                a.params.source.model, a.params.source.revision, a.params.source.hub
            ),
        );
    }
    wire(&app)?;
    dom.query.set_disabled(false);
    app.borrow_mut().update_status();
    render_results(&app);

    let db = match schema::open().await {
        Ok(db) => db,
        Err(e) => {
            let mut a = app.borrow_mut();
            a.stage = Stage::NoModel;
            a.fail(e.to_string(), false);
            return Ok(());
        }
    };
    let (store, state) = {
        let mut a = app.borrow_mut();
        let store = ModelStore::new(db.clone(), a.params.source.key());
        a.library = Some(Library::new(db.clone()));
        a.store = Some(store.clone());
        a.db = Some(db);
        (store, a.params.explicit_source)
    };
    show_storage(&app).await;
    match store.state().await {
        Ok(CacheState::Verified { .. }) => open_model(&app).await,
        Ok(CacheState::Partial { .. }) => begin_download(&app).await,
        Ok(CacheState::Empty) if state || !app.borrow().waiting.is_empty() => {
            begin_download(&app).await
        }
        Ok(CacheState::Empty) => {
            let mut a = app.borrow_mut();
            a.stage = Stage::NoModel;
            let dom = a.dom.clone();
            if a.params.source.model == crate::hub::DEFAULT_MODEL {
                set_text(
                    &dom.model_text,
                    "CLIP ViT-B/32 is about 605 MB, downloaded once from the Hugging Face hub and then kept in this browser.",
                );
            }
            a.update_status();
        }
        Err(e) => {
            let mut a = app.borrow_mut();
            a.stage = Stage::NoModel;
            a.fail(e.to_string(), false);
        }
    }
    Ok(())
}

/// `encoder-worker.js?v=<the app's build hash>`, so a new build never meets an old
/// worker in an HTTP cache (the worker files are not renamed by Trunk).
fn worker_url() -> String {
    let version = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("script[data-clipseek-js]").ok().flatten())
        .and_then(|s| s.get_attribute("data-clipseek-js"))
        .and_then(|js| {
            js.rsplit('/').next().map(|n| {
                n.trim_end_matches(".js")
                    .rsplit('-')
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
        })
        .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric()));
    match version {
        Some(v) => format!("{WORKER_SCRIPT}?v={v}"),
        None => WORKER_SCRIPT.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------
// Status

impl App {
    fn indexed(&self) -> usize {
        self.index.as_ref().map_or(0, EmbeddingIndex::len)
    }

    /// The engine that encodes: the photo encoders' once one is loaded (WebGPU only when
    /// every loaded one runs it), else the query encoder's, else the one asked for.
    fn engine(&self) -> EngineKind {
        let vision: Vec<EngineKind> = self
            .pool
            .iter()
            .flatten()
            .filter_map(|w| w.engine)
            .collect();
        if !vision.is_empty() {
            return if vision.iter().all(|e| *e == EngineKind::WebGpu) {
                EngineKind::WebGpu
            } else {
                EngineKind::Cpu
            };
        }
        match (self.text_engine, self.params.backend) {
            (Some(e), _) => e,
            (None, Backend::WebGpu) => EngineKind::WebGpu,
            (None, _) => EngineKind::Cpu,
        }
    }

    /// A worker's engine in words (`worker`: "text" or "vision N"), and why WebGPU is not
    /// used when it is not (the latest reason is kept).
    fn note_engine(&mut self, worker: String, detail: String, fallback: Option<String>) {
        self.engine_details.insert(worker, detail);
        if fallback.is_some() {
            self.engine_fallback = fallback;
        }
    }

    /// `#status[data-backend]` and the engine line of the model panel.
    fn show_engine(&self) {
        let engine = self.engine();
        self.dom.set_backend(engine.as_str());
        let text_detail = self.engine_details.get("text");
        let mut vision: Vec<&String> = self
            .engine_details
            .iter()
            .filter(|(k, _)| k.starts_with("vision"))
            .map(|(_, v)| v)
            .collect();
        vision.sort_unstable();
        vision.dedup();
        let mut text = match (vision.as_slice(), text_detail) {
            ([], None) => String::new(),
            ([], Some(t)) => format!("Encoding on {t}."),
            ([v], Some(t)) if *v == t => format!("Encoding on {t}."),
            (many, t) => {
                let photos = many
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" and ");
                match t {
                    Some(t) => format!("Photos are encoded on {photos}, queries on {t}."),
                    None => format!("Photos are encoded on {photos}."),
                }
            }
        };
        if let Some(why) = &self.engine_fallback {
            let mut chars = why.chars();
            let why: String = chars
                .next()
                .map(|c| c.to_uppercase().chain(chars).collect())
                .unwrap_or_default();
            text.push(' ');
            text.push_str(why.trim_end_matches('.'));
            text.push('.');
        }
        set_text(&self.dom.engine_text, &text);
    }

    /// Derives `#status` from where things stand.
    fn update_status(&mut self) {
        let dom = self.dom.clone();
        dom.set_counts(self.indexed(), self.skipped.len());
        self.show_engine();
        let (state, text) = self.status();
        dom.set_status(state, &text);
        let downloading = self.stage == Stage::Downloading;
        let retry = matches!(self.error, Some((_, true)));
        show(
            &dom.download_button,
            self.stage == Stage::NoModel && self.error.is_none(),
        );
        show(&dom.retry_button, retry);
        show(
            &dom.remove_model_button,
            matches!(self.stage, Stage::Open | Stage::Downloading) || retry,
        );
        set_text(
            &dom.remove_model_button,
            if downloading {
                "Stop and remove the download"
            } else {
                "Remove model"
            },
        );
        let running = self.run.is_some();
        show(&dom.pause_button, running);
        show(&dom.cancel_button, running);
        if let Some(run) = &self.run {
            set_text(
                &dom.pause_button,
                if run.paused { "Resume" } else { "Pause" },
            );
        }
        show(&dom.clear_button, self.indexed() > 0 && !running);
        match self.forget.as_ref().filter(|_| !running) {
            Some(offer) => {
                set_text(&dom.forget_button, &offer.label());
                show(&dom.forget_button, true);
            }
            None => show(&dom.forget_button, false),
        }
        if self.index.is_none() {
            let hint = match self.stage {
                Stage::Starting => "",
                Stage::NoModel => "Search needs the CLIP model: download it (or drop photos, which starts the download).",
                Stage::Downloading => "Search works once the model is downloaded; you can drop photos already, they are indexed right after.",
                Stage::Opening | Stage::Open => "Opening your index…",
            };
            set_text(&dom.search_text, hint);
        }
    }

    fn status(&self) -> (State, String) {
        if let Some((e, _)) = &self.error {
            return (State::Error, e.clone());
        }
        match self.stage {
            Stage::Starting => (State::Loading, "Opening clipseek's storage…".to_owned()),
            Stage::NoModel => {
                let text = if self.waiting.is_empty() {
                    "clipseek needs the CLIP model, downloaded once and then kept in this browser: press \"Download the model\" or drop photos to start."
                } else {
                    "Your photos will be indexed once the model is downloaded."
                };
                (State::Idle, text.to_owned())
            }
            Stage::Downloading => (State::Downloading, self.download_text.clone()),
            Stage::Opening => (
                State::Loading,
                "Opening the model and your index…".to_owned(),
            ),
            Stage::Open => {
                if self.collecting > 0 {
                    return (State::Indexing, "Reading the dropped files…".to_owned());
                }
                if let Some(run) = &self.run {
                    let ready = self.pool.iter().flatten().any(|w| w.ready);
                    if !ready {
                        let fraction = self
                            .pool
                            .iter()
                            .flatten()
                            .map(|w| w.load_fraction)
                            .fold(0.0, f64::max);
                        return (
                            State::Loading,
                            format!("Loading the photo encoder ({:.0}%)…", fraction * 100.0),
                        );
                    }
                    let done = run.next_apply.min(run.limit);
                    let verb = if run.paused { "Paused" } else { "Indexing" };
                    return (
                        State::Indexing,
                        format!("{verb}: {done} of {} photos.", run.limit),
                    );
                }
                if !self.text_ready {
                    return (State::Loading, "Loading the query encoder…".to_owned());
                }
                let n = self.indexed();
                let text = match (n, &self.note) {
                    (_, Some(note)) => note.clone(),
                    (0, None) => "Ready. Drop a folder of photos to index it.".to_owned(),
                    (1, None) => "Ready: 1 photo indexed.".to_owned(),
                    (n, None) => format!("Ready: {n} photos indexed."),
                };
                (State::Ready, text)
            }
        }
    }

    /// Shows an error; `retry` offers the Retry button.
    fn fail(&mut self, message: String, retry: bool) {
        web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: {message}")));
        self.error = Some((message, retry));
        self.update_status();
    }
}

async fn show_storage(app: &AppRef) {
    let (dom, total) = {
        let a = app.borrow();
        (a.dom.clone(), a.model.is_some())
    };
    let Some(storage) = web_sys::window().map(|w| w.navigator().storage()) else {
        return;
    };
    let estimate = match storage.estimate() {
        Ok(p) => JsFuture::from(p).await.ok(),
        Err(_) => None,
    };
    let persisted = match storage.persisted() {
        Ok(p) => JsFuture::from(p)
            .await
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false),
        Err(_) => false,
    };
    let Some(estimate) = estimate else { return };
    let usage = prop(&estimate, "usage")
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0);
    let quota = prop(&estimate, "quota").and_then(|v| v.as_f64());
    let mut text = format!("This site stores {} in this browser", format_bytes(usage));
    if let Some(q) = quota {
        text.push_str(&format!(" (it may use up to {})", format_bytes(q)));
    }
    text.push_str(if persisted {
        "; the browser keeps it until you remove it."
    } else if total {
        "; the browser may clear it if the disk runs low."
    } else {
        "."
    });
    set_text(&dom.storage_text, &text);
}

// ---------------------------------------------------------------------------------------
// Events

fn listen<E: wasm_bindgen::convert::FromWasmAbi + 'static>(
    target: &web_sys::EventTarget,
    event: &str,
    handler: impl FnMut(E) + 'static,
) -> Result<(), JsValue> {
    let closure = Closure::<dyn FnMut(E)>::new(handler);
    target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref())?;
    // Page-lifetime listeners.
    closure.forget();
    Ok(())
}

/// Makes `el` a drop target: `data-dragging` while something is dragged over it, the
/// browser's own handling (opening the file) prevented, and `on_drop` called with the drop.
fn drop_target(
    el: &web_sys::Element,
    on_drop: impl Fn(DragEvent) + 'static,
) -> Result<(), JsValue> {
    let target: &web_sys::EventTarget = el.as_ref();
    for event in ["dragenter", "dragover"] {
        let z = el.clone();
        listen(target, event, move |e: DragEvent| {
            e.prevent_default();
            if let Some(dt) = e.data_transfer() {
                dt.set_drop_effect("copy");
            }
            ui::attr(&z, "data-dragging", "true");
        })?;
    }
    let z = el.clone();
    listen(target, "dragleave", move |_e: DragEvent| {
        noted(
            z.remove_attribute("data-dragging"),
            "clear the drop highlight",
        );
    })?;
    let z = el.clone();
    listen(target, "drop", move |e: DragEvent| {
        e.prevent_default();
        e.stop_propagation();
        noted(
            z.remove_attribute("data-dragging"),
            "clear the drop highlight",
        );
        on_drop(e);
    })
}

fn wire(app: &AppRef) -> Result<(), JsValue> {
    let dom = app.borrow().dom.clone();
    let on = |el: &web_sys::EventTarget, event: &str, f: fn(&AppRef, Event)| {
        let app = app.clone();
        listen(el, event, move |e: Event| f(&app, e))
    };
    on(&dom.download_button, "click", |app, _| {
        let app = app.clone();
        spawn_local(async move { begin_download(&app).await });
    })?;
    on(&dom.retry_button, "click", |app, _| {
        let app = app.clone();
        spawn_local(async move { retry(&app).await });
    })?;
    on(&dom.remove_model_button, "click", |app, _| {
        let app = app.clone();
        spawn_local(async move { remove_model(&app).await });
    })?;
    on(&dom.pause_button, "click", |app, _| toggle_pause(app))?;
    on(&dom.cancel_button, "click", |app, _| cancel_run(app))?;
    on(&dom.forget_button, "click", |app, _| {
        let app = app.clone();
        spawn_local(async move { forget_vanished(&app).await });
    })?;
    on(&dom.clear_button, "click", |app, _| {
        let app = app.clone();
        spawn_local(async move { clear_index(&app).await });
    })?;
    on(&dom.folder_input, "change", |app, _| picked(app, true))?;
    on(&dom.files_input, "change", |app, _| picked(app, false))?;

    // Drops: on the zone they index, on the search box they search by image, elsewhere
    // they must not make the browser navigate away to the file.
    {
        let app = app.clone();
        drop_target(&dom.drop_zone, move |e: DragEvent| {
            let Some(dt) = e.data_transfer() else { return };
            let dropped = entries_of_drop(&dt);
            let app = app.clone();
            app.borrow_mut().collecting += 1;
            app.borrow_mut().update_status();
            spawn_local(async move {
                let set = walk(dropped).await;
                app.borrow_mut().collecting -= 1;
                match set {
                    Ok(set) => accept(&app, set).await,
                    Err(e) => app.borrow_mut().fail(
                        format!("The dropped folder could not be read: {}", describe_js(&e)),
                        false,
                    ),
                }
            });
        })?;
    }
    let document: &web_sys::EventTarget = &dom.document;
    for event in ["dragover", "drop"] {
        listen(document, event, move |e: DragEvent| e.prevent_default())?;
    }
    let query: &web_sys::EventTarget = &dom.query;
    {
        let app = app.clone();
        drop_target(&dom.query, move |e: DragEvent| {
            let file = e
                .data_transfer()
                .and_then(|dt| dt.files())
                .and_then(|f| f.get(0));
            if let Some(file) = file {
                search_by_image(&app, file);
            }
        })?;
    }
    on(&dom.query, "input", |app, _| {
        let text = app.borrow().dom.query.value();
        search_input(app, Input::Typed(text));
    })?;
    {
        let app = app.clone();
        listen(query, "keydown", move |e: KeyboardEvent| {
            if e.key() == "Enter" {
                e.prevent_default();
                let text = app.borrow().dom.query.value();
                search_input(&app, Input::Enter(text));
            }
        })?;
    }
    on(&dom.clear_search_button, "click", |app, _| {
        let dom = app.borrow().dom.clone();
        dom.query.set_value("");
        search_input(app, Input::Cleared);
        noted(dom.query.focus(), "move the focus");
    })?;
    on(&dom.more_button, "click", |app, _| {
        search_input(app, Input::ShowMore)
    })?;
    let grid: &web_sys::EventTarget = &dom.results;
    on(grid, "click", result_clicked)?;
    {
        let dom2 = dom.clone();
        listen(grid, "keydown", move |e: KeyboardEvent| {
            if results::move_focus(&dom2, &e) {
                e.prevent_default();
            }
        })?;
    }
    on(&dom.preview_close, "click", |app, _| {
        app.borrow().dom.preview.close();
    })?;
    on(&dom.preview, "close", |app, _| preview_closed(app))?;
    on(&dom.preview_similar, "click", |app, _| {
        let id = app.borrow().preview_id;
        app.borrow().dom.preview.close();
        if let Some(id) = id {
            similar_to(app, id);
        }
    })?;
    {
        let window: web_sys::EventTarget = web_sys::window()
            .ok_or_else(|| JsValue::from_str("no window"))?
            .into();
        listen(&window, "securitypolicyviolation", move |e: Event| {
            let uri = prop(&e, "blockedURI")
                .and_then(|v| v.as_string())
                .unwrap_or_default();
            super::download::note_blocked(&uri);
            web_sys::console::warn_1(&JsValue::from_str(&format!(
                "clipseek: the page's security policy refused {uri}"
            )));
        })?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The model

async fn begin_download(app: &AppRef) {
    let (source, store) = {
        let mut a = app.borrow_mut();
        if matches!(
            a.stage,
            Stage::Starting | Stage::Downloading | Stage::Opening | Stage::Open
        ) {
            // Starting: the page decides by itself once it has looked at its storage.
            if a.stage != Stage::Starting || a.store.is_none() {
                return;
            }
        }
        let Some(store) = a.store.clone() else { return };
        a.error = None;
        a.stage = Stage::Downloading;
        a.download_text = "Starting the model download…".into();
        a.update_status();
        (a.params.source.clone(), store)
    };
    // Ask that the model and index survive storage pressure (a no-op where refused).
    if let Some(w) = web_sys::window() {
        if let Ok(p) = w.navigator().storage().persist() {
            if JsFuture::from(p).await.is_err() {
                web_sys::console::warn_1(&JsValue::from_str("clipseek: persist() failed"));
            }
        }
    }
    let weak = Rc::downgrade(app);
    let on_progress = Box::new(move |p: &Progress| {
        if let Some(app) = weak.upgrade() {
            download_progress(&app, p);
        }
    });
    let download = Rc::new(Download::new(source, store, on_progress));
    app.borrow_mut().download = Some(download.clone());
    let result = download.run().await;
    {
        let mut a = app.borrow_mut();
        a.download = None;
        match result {
            Ok(()) => {}
            Err(DownloadError::Cancelled) => {
                a.stage = Stage::NoModel;
                a.update_status();
                return;
            }
            Err(e) => {
                a.stage = Stage::NoModel;
                let dom = a.dom.clone();
                set_text(
                    &dom.model_text,
                    "The download stopped. Whatever was saved is kept and will not be fetched again.",
                );
                let retry = !matches!(
                    e,
                    DownloadError::NotFound { .. }
                        | DownloadError::OnlyPytorch { .. }
                        | DownloadError::Blocked { .. }
                );
                a.fail(e.to_string(), retry);
                return;
            }
        }
    }
    show_storage(app).await;
    open_model(app).await;
}

fn download_progress(app: &AppRef, p: &Progress) {
    let mut a = app.borrow_mut();
    let dom = a.dom.clone();
    set_progress(
        &dom.model_progress,
        p.done_bytes as f64,
        p.total_bytes.map(|t| t as f64),
    );
    let amount = match p.total_bytes {
        Some(t) if t > 0 => format!(
            "{} of {} ({:.0}%)",
            format_bytes(p.done_bytes as f64),
            format_bytes(t as f64),
            p.done_bytes as f64 * 100.0 / t as f64
        ),
        _ => format_bytes(p.done_bytes as f64),
    };
    let line = match &p.phase {
        Phase::Starting => "Fetching the model's configuration…".to_owned(),
        Phase::Fetching => {
            let mut line = format!("Downloading the model: {amount}");
            if let Some(rate) = p.bytes_per_s {
                line.push_str(&format!(" · {}/s", format_bytes(rate)));
            }
            if let Some(eta) = p.eta_s {
                line.push_str(&format!(" · {} left", format_eta(eta)));
            }
            line
        }
        Phase::Checking => format!("Checking the part downloaded earlier: {amount}"),
        Phase::Retrying { attempt, in_ms } => format!(
            "The connection dropped at {amount}; trying again (attempt {attempt}) in {:.0} s…",
            in_ms / 1000.0
        ),
        Phase::Verifying => "Verifying the downloaded model…".to_owned(),
        Phase::Refetching { reason } => {
            format!("Verification failed: {reason}. Downloading it again…")
        }
    };
    ui::attr(
        &dom.status,
        "data-verify-failures",
        &p.verify_failures.to_string(),
    );
    set_text(&dom.model_text, &line);
    let status = match &p.phase {
        Phase::Fetching | Phase::Checking => format!("Downloading the model: {amount}."),
        _ => line,
    };
    a.download_text = status;
    a.update_status();
    let now = now_ms();
    if now - a.last_storage_ms > 3000.0 {
        a.last_storage_ms = now;
        drop(a);
        let app = app.clone();
        spawn_local(async move { show_storage(&app).await });
    }
}

async fn retry(app: &AppRef) {
    let stage = {
        let mut a = app.borrow_mut();
        a.error = None;
        a.update_status();
        a.stage
    };
    match stage {
        Stage::Starting | Stage::NoModel | Stage::Downloading => begin_download(app).await,
        Stage::Opening | Stage::Open => open_model(app).await,
    }
}

async fn remove_model(app: &AppRef) {
    let (store, download) = {
        let mut a = app.borrow_mut();
        let download = a.download.take();
        a.text_worker = None;
        a.text_ready = false;
        a.pool.clear();
        a.jobs.clear();
        a.run = None;
        a.model = None;
        a.stage = Stage::NoModel;
        a.error = None;
        (a.store.clone(), download)
    };
    if let Some(d) = download {
        d.cancel();
    }
    // Any query waiting or in flight waits for a model again.
    search_input(app, Input::Encoder(Encoder::NoModel));
    let Some(store) = store else { return };
    let result = store.remove().await;
    {
        let mut a = app.borrow_mut();
        let dom = a.dom.clone();
        set_progress(&dom.model_progress, 0.0, None);
        match result {
            Ok(()) => {
                set_text(
                    &dom.model_text,
                    "The model was removed. Your index is kept; download the model again to search it.",
                );
                a.update_status();
            }
            Err(e) => a.fail(e.to_string(), false),
        }
    }
    show_storage(app).await;
}

/// Opens the verified model: reads its configuration and header, restores the index and
/// starts the query worker.
async fn open_model(app: &AppRef) {
    let (store, library) = {
        let mut a = app.borrow_mut();
        a.stage = Stage::Opening;
        a.update_status();
        (a.store.clone(), a.library.clone())
    };
    let (Some(store), Some(library)) = (store, library) else {
        return;
    };
    let opened = async {
        let model = store.open_verified().await.map_err(|e| e.to_string())?;
        let config = ClipConfig::from_json(&model.config_json).map_err(|e| e.to_string())?;
        let header = model.weights.header().await.map_err(|e| e.to_string())?;
        let id = model_id(&config, &model.config_json, &header);
        let vision_bytes: f64 = header
            .tensors
            .iter()
            .filter(|(n, _)| n.starts_with("vision_model.") || n.starts_with("visual_projection"))
            .map(|(_, t)| t.shape.iter().product::<usize>() as f64 * 4.0)
            .sum();
        let (records, unreadable) = library.load_all().await.map_err(|e| e.to_string())?;
        Ok::<_, String>((
            config,
            id,
            vision_bytes,
            records,
            unreadable,
            model.weights.size_bytes(),
        ))
    }
    .await;
    let (config, id, vision_bytes, records, unreadable, size) = match opened {
        Ok(v) => v,
        Err(e) => {
            app.borrow_mut().fail(e, true);
            return;
        }
    };
    {
        let mut a = app.borrow_mut();
        let mut index = EmbeddingIndex::new(id.clone(), config.projection_dim);
        let mut other_model = 0;
        let mut bad = unreadable;
        a.seqs.clear();
        a.next_seq = 0.0;
        for r in records {
            if r.model_id != id {
                other_model += 1;
                continue;
            }
            let meta = EntryMeta {
                path: r.path.clone(),
                size_bytes: r.size_bytes,
                modified_ms: r.modified_ms,
                content_hash: r.content_hash,
            };
            match index.upsert(meta, &r.embedding) {
                Ok(_) => {
                    a.next_seq = a.next_seq.max(r.seq + 1.0);
                    a.seqs.insert(r.path, r.seq);
                }
                Err(_) => bad += 1,
            }
        }
        a.index = Some(index);
        a.model = Some(ModelInfo {
            model_id: id,
            vision_bytes,
        });
        a.note = match (other_model, bad) {
            (0, 0) => None,
            (n, 0) => Some(format!("Ready. {n} saved photos were indexed with another model; drop their folders again to index them with this one.")),
            (_, n) => Some(format!("Ready. {n} saved index records were unreadable and were skipped; drop their folders again to index them.")),
        };
        a.stage = Stage::Open;
        let dom = a.dom.clone();
        let n = a.indexed();
        set_text(
            &dom.index_text,
            &match n {
                0 => "No photos indexed yet.".to_owned(),
                1 => "1 photo in the index.".to_owned(),
                n => format!("{n} photos in the index."),
            },
        );
        set_progress(&dom.model_progress, size as f64, Some(size as f64));
        set_text(
            &dom.model_text,
            &format!(
                "The model is stored in this browser ({}) and verified.",
                format_bytes(size as f64)
            ),
        );
        a.update_status();
    }
    search_input(app, Input::Encoder(Encoder::Loading));
    start_text_worker(app);
    render_results(app);
    show_storage(app).await;
    maybe_start_run(app);
    let pending_image = app.borrow_mut().photo_search.pending_image.take();
    if let Some(file) = pending_image {
        search_by_image(app, file);
    }
}

fn start_text_worker(app: &AppRef) {
    let url = app.borrow().worker_url.clone();
    let weak = Rc::downgrade(app);
    let on_event: Rc<dyn Fn(WorkerEvent)> = Rc::new(move |event| {
        if let Some(app) = weak.upgrade() {
            text_event(&app, event);
        }
    });
    match WorkerHandle::spawn(&url, on_event) {
        Ok(handle) => {
            let mut a = app.borrow_mut();
            a.text_worker = Some(handle);
            a.text_ready = false;
            a.update_status();
        }
        Err(e) => app.borrow_mut().fail(
            format!("The query encoder could not start: {}", describe_js(&e)),
            true,
        ),
    }
}

fn text_event(app: &AppRef, event: WorkerEvent) {
    match event {
        WorkerEvent::Message(FromWorker::Started, _) => {
            let mut a = app.borrow_mut();
            let key = a.params.source.key();
            let sent = a.text_worker.as_ref().map(|w| {
                w.send(&ToWorker::Load {
                    model_key: key,
                    tower: Tower::Text,
                    backend: a.params.backend,
                    precision: a.params.precision,
                })
            });
            if let Some(Err(e)) = sent {
                a.fail(
                    format!("The query encoder could not start: {}", describe_js(&e)),
                    true,
                );
            }
        }
        WorkerEvent::Message(
            FromWorker::Loaded {
                model_id,
                engine,
                detail,
                fallback,
                ..
            },
            _,
        ) => {
            {
                let mut a = app.borrow_mut();
                if a.model.as_ref().is_some_and(|m| m.model_id != model_id) {
                    a.fail("The query encoder loaded a different model than the page; reload the page.".into(), false);
                    return;
                }
                a.text_ready = true;
                a.text_engine = Some(engine);
                a.note_engine("text".into(), detail, fallback);
                a.update_status();
            }
            search_input(app, Input::Encoder(Encoder::Ready));
        }
        WorkerEvent::Message(FromWorker::Failed { error }, _) => {
            let mut a = app.borrow_mut();
            let (message, retry) = if a.text_ready {
                (format!("The query encoder stopped: {error}"), false)
            } else {
                (
                    format!("The query encoder could not load the model: {error}"),
                    a.params.backend != Backend::WebGpu,
                )
            };
            a.fail(message, retry);
        }
        WorkerEvent::Message(
            FromWorker::Switched {
                engine,
                detail,
                reason,
            },
            _,
        ) => {
            let mut a = app.borrow_mut();
            a.text_engine = Some(engine);
            a.note_engine("text".into(), detail, Some(reason));
            a.update_status();
        }
        WorkerEvent::Message(FromWorker::Texted { job, result }, _) => {
            app.borrow_mut().respawns = 0;
            search_input(app, Input::Texted { job, result });
        }
        WorkerEvent::Unreadable(e) => {
            web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: {e}")));
            app.borrow_mut().fail(e.sentence(), false);
        }
        WorkerEvent::Message(_, _) => {}
        WorkerEvent::Crashed(message) => {
            let old = {
                let mut a = app.borrow_mut();
                a.text_ready = false;
                a.respawns += 1;
                if a.respawns > MAX_RESPAWNS {
                    a.fail(
                        format!("The query encoder stopped ({message}); reload the page."),
                        false,
                    );
                    return;
                }
                a.text_worker.take()
            };
            // Drop the dead worker's handle after this event handler has returned.
            spawn_local(async move { drop(old) });
            search_input(app, Input::Encoder(Encoder::Loading));
            start_text_worker(app);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Photos in

fn picked(app: &AppRef, folder: bool) {
    let dom = app.borrow().dom.clone();
    let input = if folder {
        &dom.folder_input
    } else {
        &dom.files_input
    };
    let set = from_input(input);
    // Let the same folder be picked again later.
    input.set_value("");
    let app = app.clone();
    spawn_local(async move { accept(&app, set).await });
}

/// Keeps the files that are photos by name or by their first bytes (others, such as
/// `.txt` or `.DS_Store`, are ignored) and queues them for indexing.
async fn accept(app: &AppRef, set: PickedSet) {
    app.borrow_mut().collecting += 1;
    let mut kept = PickedSet {
        files: Vec::new(),
        roots: set.roots,
    };
    for picked in set.files {
        let keep = if ingest::has_image_extension(&picked.path) {
            true
        } else if picked.file.size() >= 1.0 {
            match picked
                .file
                .slice_with_f64_and_f64(0.0, ingest::SNIFF_BYTES as f64)
            {
                Ok(head) => super::read_blob(&head)
                    .await
                    .is_ok_and(|b| ingest::looks_like_image_bytes(&b)),
                Err(_) => false,
            }
        } else {
            false
        };
        if keep {
            kept.files.push(picked);
        }
    }
    let start_download = {
        let mut a = app.borrow_mut();
        a.collecting -= 1;
        if kept.files.is_empty() {
            let dom = a.dom.clone();
            set_text(&dom.index_text, "No photos were found in what was dropped.");
            a.update_status();
            return;
        }
        a.waiting.push(kept);
        a.update_status();
        a.stage == Stage::NoModel && a.error.is_none()
    };
    if start_download {
        begin_download(app).await;
    } else {
        maybe_start_run(app);
    }
}

/// Starts indexing what is waiting, once the model is open and no run is going.
fn maybe_start_run(app: &AppRef) {
    let mut a = app.borrow_mut();
    if a.stage != Stage::Open || a.run.is_some() || a.waiting.is_empty() || a.error.is_some() {
        return;
    }
    if a.index.is_none() {
        return;
    }
    let sets = std::mem::take(&mut a.waiting);
    let Some(index) = a.index.as_ref() else {
        return;
    };
    let (mut candidates, files, roots) = place_sets(index, sets);
    let plan = ingest::plan(index, &mut candidates, &roots);
    for c in &candidates {
        if let Some(f) = files.get(&c.path) {
            a.originals.insert(c.path.clone(), f.clone());
        }
    }
    let items: Vec<RunItem> = plan
        .encode
        .iter()
        .filter_map(|&i| {
            let c = candidates.get(i)?;
            Some(RunItem {
                path: c.path.clone(),
                size_bytes: c.size_bytes,
                modified_ms: c.modified_ms,
                file: files.get(&c.path)?.clone(),
            })
        })
        .collect();
    let limit = items.len();
    a.note = None;
    a.forget = None;
    a.crashes = CrashBudget::new();
    a.run = Some(Run {
        items,
        next_dispatch: 0,
        solo: VecDeque::new(),
        finished: BTreeMap::new(),
        next_apply: 0,
        limit,
        added: 0,
        reused: 0,
        failed: 0,
        unchanged: plan.unchanged,
        vanished: plan.vanished,
        paused: false,
        cancelled: false,
        rate: Rate::new(10_000.0),
        started_ms: now_ms(),
    });
    drop(a);
    if limit == 0 {
        finish_run(app);
        return;
    }
    ensure_pool(app);
    send_known_hashes(app);
    dispatch(app);
    index_progress(app, true);
}

/// Where the waiting drops' files go in the index (`page::library`: a second folder with
/// the same name is a second folder; no drop replaces another's photos): the candidates
/// under their stored paths, their files by those paths, and the stored folders that were
/// dropped again (whose missing photos are offered for forgetting).
fn place_sets(
    index: &EmbeddingIndex,
    sets: Vec<PickedSet>,
) -> (Vec<Candidate>, HashMap<String, File>, Vec<String>) {
    let mut known = Known::new(
        index
            .entries()
            .iter()
            .map(|e| (e.path.as_str(), e.size_bytes, e.modified_ms)),
    );
    let mut files: HashMap<String, File> = HashMap::new();
    let mut candidates = Vec::new();
    let mut roots = Vec::new();
    for set in sets {
        let dropped = set
            .files
            .into_iter()
            .map(|p| DropFile {
                size_bytes: p.file.size() as u64,
                modified_ms: p.file.last_modified() as i64,
                path: p.path,
                folder: p.folder,
                handle: p.file,
            })
            .collect();
        let placed = place_drop(&mut known, &set.roots, dropped);
        roots.extend(
            placed
                .folders
                .into_iter()
                .filter(|f| f.same)
                .map(|f| f.root),
        );
        for p in placed.files {
            candidates.push(Candidate {
                path: p.path.clone(),
                size_bytes: p.size_bytes,
                modified_ms: p.modified_ms,
            });
            files.entry(p.path).or_insert(p.handle);
        }
    }
    (candidates, files, roots)
}

fn send_known_hashes(app: &AppRef) {
    let a = app.borrow();
    let Some(index) = &a.index else { return };
    let hashes: Vec<[u8; 32]> = index.entries().iter().map(|e| e.content_hash).collect();
    let message = ToWorker::KnownHashes { hashes };
    for w in a.pool.iter().flatten().filter(|w| w.ready) {
        if let Err(e) = w.handle.send(&message) {
            web_sys::console::warn_1(&e);
        }
    }
}

/// Starts the vision workers if none run: `ingest::worker_count` of them.
fn ensure_pool(app: &AppRef) {
    let (count, url) = {
        let a = app.borrow();
        if a.pool.iter().any(Option::is_some) {
            return;
        }
        let Some(model) = &a.model else { return };
        let navigator = web_sys::window().map(|w| w.navigator());
        let cores = navigator.as_ref().map(|n| n.hardware_concurrency());
        let memory = navigator
            .as_ref()
            .and_then(|n| prop(n, "deviceMemory"))
            .and_then(|v| v.as_f64());
        let count = ingest::worker_count(cores, memory, model.vision_bytes, a.params.workers);
        let dom = a.dom.clone();
        ui::attr(
            &dom.index_text,
            "title",
            &format!(
                "{} This device: {} cores, {} of memory; {count} worker{}.",
                ingest::WORKER_RULE,
                cores.map_or("unknown".into(), |c| format!("{c:.0}")),
                memory.map_or("an unknown amount".into(), |m| format!("{m} GB")),
                if count == 1 { "" } else { "s" }
            ),
        );
        (count, a.worker_url.clone())
    };
    let mut pool = Vec::with_capacity(count);
    for slot in 0..count {
        pool.push(spawn_vision_worker(app, &url, slot));
    }
    let mut a = app.borrow_mut();
    a.pool = pool;
    a.update_status();
}

fn spawn_vision_worker(app: &AppRef, url: &str, slot: usize) -> Option<PoolWorker> {
    let weak = Rc::downgrade(app);
    let on_event: Rc<dyn Fn(WorkerEvent)> = Rc::new(move |event| {
        if let Some(app) = weak.upgrade() {
            pool_event(&app, slot, event);
        }
    });
    match WorkerHandle::spawn(url, on_event) {
        Ok(handle) => Some(PoolWorker {
            handle,
            started: false,
            loading: false,
            ready: false,
            in_flight: 0,
            load_fraction: 0.0,
            engine: None,
        }),
        Err(e) => {
            web_sys::console::error_1(&e);
            None
        }
    }
}

fn pool_event(app: &AppRef, slot: usize, event: WorkerEvent) {
    match event {
        WorkerEvent::Message(FromWorker::Started, _) => {
            let mut a = app.borrow_mut();
            if let Some(Some(w)) = a.pool.get_mut(slot) {
                w.started = true;
            }
            load_next_worker(&mut a);
        }
        WorkerEvent::Message(FromWorker::Loading { fraction }, _) => {
            let mut a = app.borrow_mut();
            if let Some(Some(w)) = a.pool.get_mut(slot) {
                w.load_fraction = fraction;
            }
            a.update_status();
        }
        WorkerEvent::Message(
            FromWorker::Loaded {
                model_id,
                engine,
                detail,
                fallback,
                ..
            },
            _,
        ) => {
            {
                let mut a = app.borrow_mut();
                if a.model.as_ref().is_some_and(|m| m.model_id != model_id) {
                    a.fail("The photo encoder loaded a different model than the page; reload the page.".into(), false);
                    return;
                }
                if let Some(Some(w)) = a.pool.get_mut(slot) {
                    w.ready = true;
                    w.loading = false;
                    w.engine = Some(engine);
                }
                a.crashes.progress();
                a.note_engine(format!("vision {slot}"), detail, fallback);
                load_next_worker(&mut a);
                a.update_status();
            }
            send_known_hashes(app);
            let pending = app.borrow_mut().photo_search.pending_image.take();
            if let Some(file) = pending {
                search_by_image(app, file);
            }
            dispatch(app);
            index_progress(app, true);
        }
        WorkerEvent::Message(FromWorker::Failed { error }, _) => {
            let mut a = app.borrow_mut();
            let ready = matches!(a.pool.get(slot), Some(Some(w)) if w.ready);
            if ready {
                // Under backend=webgpu a lost device stops the run; what was indexed is saved.
                a.fail(
                    format!("The photo encoder stopped: {error} The photos indexed so far are kept; reload the page and drop the folder again to index the rest."),
                    false,
                );
            } else {
                let retry = a.params.backend != Backend::WebGpu;
                a.fail(
                    format!("The photo encoder could not load the model: {error}"),
                    retry,
                );
            }
        }
        WorkerEvent::Message(
            FromWorker::Switched {
                engine,
                detail,
                reason,
            },
            _,
        ) => {
            let mut a = app.borrow_mut();
            if let Some(Some(w)) = a.pool.get_mut(slot) {
                w.engine = Some(engine);
            }
            a.note_engine(format!("vision {slot}"), detail, Some(reason));
            a.update_status();
        }
        WorkerEvent::Message(FromWorker::Encoded { job, items }, data) => {
            encoded(app, slot, job, items, thumbs_of(&data));
        }
        WorkerEvent::Unreadable(e) => {
            web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: {e}")));
            app.borrow_mut().fail(e.sentence(), false);
        }
        WorkerEvent::Message(_, _) => {}
        WorkerEvent::Crashed(message) => worker_crashed(app, slot, message),
    }
}

/// Asks one started worker to load the vision tower, unless another is loading: loading
/// one at a time makes the first worker ready (and indexing) sooner and keeps the peak
/// memory to one tower being converted at a time.
fn load_next_worker(a: &mut App) {
    if a.pool.iter().flatten().any(|w| w.loading) {
        return;
    }
    let key = a.params.source.key();
    let Some(w) = a
        .pool
        .iter_mut()
        .flatten()
        .find(|w| w.started && !w.loading && !w.ready)
    else {
        return;
    };
    w.loading = true;
    let sent = w.handle.send(&ToWorker::Load {
        model_key: key,
        tower: Tower::Vision,
        backend: a.params.backend,
        precision: a.params.precision,
    });
    if let Err(e) = sent {
        a.fail(
            format!("The photo encoder could not start: {}", describe_js(&e)),
            true,
        );
    }
}

/// Hands batches to every ready worker with room, in indexing order.
fn dispatch(app: &AppRef) {
    let mut a = app.borrow_mut();
    let a = &mut *a;
    let Some(run) = a.run.as_mut() else { return };
    if run.paused {
        return;
    }
    for slot in 0..a.pool.len() {
        while let Some(Some(w)) = a.pool.get(slot) {
            if !w.ready || w.in_flight >= IN_FLIGHT_PER_WORKER {
                break;
            }
            let (keys, solo) = if let Some(k) = run.solo.pop_front() {
                (vec![k], true)
            } else if !run.cancelled && run.next_dispatch < run.items.len() {
                let end = (run.next_dispatch + BATCH).min(run.items.len());
                let keys: Vec<usize> = (run.next_dispatch..end).collect();
                run.next_dispatch = end;
                (keys, false)
            } else {
                break;
            };
            let files: Vec<Blob> = keys
                .iter()
                .filter_map(|&k| run.items.get(k).map(|i| i.file.clone().into()))
                .collect();
            let job = a.next_job;
            a.next_job = a.next_job.next();
            let message = ToWorker::Encode {
                job,
                keys: keys.iter().map(|&k| k as u32).collect(),
                thumbnails: true,
                // A retry encodes for real: its hash may be why it came back.
                dedupe: !solo,
            };
            let sent = a
                .pool
                .get(slot)
                .and_then(Option::as_ref)
                .map(|w| w.handle.send_files(&message, &files));
            match sent {
                Some(Ok(())) => {
                    if let Some(Some(w)) = a.pool.get_mut(slot) {
                        w.in_flight += 1;
                    }
                    a.sent_jobs += 1;
                    a.jobs.insert(
                        job,
                        JobInfo {
                            worker: slot,
                            sent: a.sent_jobs,
                            kind: JobKind::Index { keys },
                        },
                    );
                }
                _ => {
                    for k in keys {
                        run.finished.insert(
                            k,
                            Outcome::Failed("The photo could not be sent to the encoder.".into()),
                        );
                    }
                }
            }
        }
    }
}

fn encoded(
    app: &AppRef,
    slot: usize,
    job: JobId,
    items: Vec<ItemOut>,
    thumbs: Vec<Option<ArrayBuffer>>,
) {
    let info = {
        let mut a = app.borrow_mut();
        if let Some(Some(w)) = a.pool.get_mut(slot) {
            w.in_flight = w.in_flight.saturating_sub(1);
        }
        a.crashes.progress();
        a.jobs.remove(&job)
    };
    let Some(info) = info else { return };
    match info.kind {
        JobKind::Query { name } => {
            release_pool_when_idle(app);
            let item = items.into_iter().next();
            match item.map(|i| i.result) {
                Some(Ok(Photo::Embedded { embedding, .. })) => {
                    search_input(app, Input::Show(Query::Image { name, embedding }))
                }
                _ => {
                    let dom = app.borrow().dom.clone();
                    set_text(
                        &dom.search_text,
                        &format!(
                            "{name} could not be read as a photo, so it cannot be searched by."
                        ),
                    );
                }
            }
        }
        JobKind::Index { .. } => {
            {
                let mut a = app.borrow_mut();
                let Some(run) = a.run.as_mut() else { return };
                for (position, item) in items.into_iter().enumerate() {
                    let key = item.key as usize;
                    let outcome = match item.result {
                        Err(e) => Outcome::Failed(e),
                        Ok(Photo::Duplicate { hash }) => Outcome::Duplicate { hash },
                        Ok(Photo::Embedded {
                            embedding, hash, ..
                        }) => Outcome::Embedded {
                            embedding,
                            hash,
                            thumb: thumbs.get(position).cloned().flatten(),
                        },
                    };
                    run.finished.insert(key, outcome);
                }
            }
            apply_finished(app);
            dispatch(app);
        }
    }
}

/// A vision worker died: the photos it was running are charged one crash each and tried
/// again alone, those waiting behind them go back to the queue, a photo charged twice is
/// skipped (`page::run`), and a fresh worker takes the dead one's slot.
fn worker_crashed(app: &AppRef, slot: usize, message: String) {
    web_sys::console::warn_1(&JsValue::from_str(&format!(
        "clipseek: a photo encoder stopped: {message}"
    )));
    let (old, url, give_up) = {
        let mut a = app.borrow_mut();
        let a = &mut *a;
        let mut held: Vec<(u64, JobKind)> = Vec::new();
        let ids: Vec<JobId> = a
            .jobs
            .iter()
            .filter(|(_, j)| j.worker == slot)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            if let Some(job) = a.jobs.remove(&id) {
                held.push((job.sent, job.kind));
            }
        }
        held.sort_by_key(|(sent, _)| *sent);
        let mut lost = Lost::default();
        for (_, kind) in held {
            match kind {
                JobKind::Index { keys } => lost.jobs.push(keys),
                JobKind::Query { name } => {
                    // It ran (or waited) in the dead worker; it holds no photo of the run.
                    lost.jobs.push(Vec::new());
                    let dom = a.dom.clone();
                    set_text(
                        &dom.search_text,
                        &format!("The encoder stopped while reading {name}."),
                    );
                }
            }
        }
        let verdict = a.crashes.crashed(lost);
        if let Some(run) = a.run.as_mut() {
            for k in verdict.skipped {
                run.finished
                    .insert(k, Outcome::Failed(CRASH_REASON.to_owned()));
            }
            // Alone-retries first, in indexing order; then the untouched ones.
            for k in verdict.retry_alone.into_iter().chain(verdict.requeue) {
                run.solo.push_back(k);
            }
        }
        let old = a.pool.get_mut(slot).and_then(Option::take);
        (old, a.worker_url.clone(), verdict.give_up)
    };
    spawn_local(async move { drop(old) });
    apply_finished(app);
    if give_up {
        app.borrow_mut().fail(
            format!("The photo encoder stopped several times before it could encode anything ({message}); reload the page and try fewer photos at once."),
            false,
        );
        return;
    }
    let fresh = spawn_vision_worker(app, &url, slot);
    let mut a = app.borrow_mut();
    if let Some(place) = a.pool.get_mut(slot) {
        *place = fresh;
    }
    a.update_status();
    drop(a);
    dispatch(app);
}

/// Applies finished photos in indexing order and saves them.
fn apply_finished(app: &AppRef) {
    let mut batch: Vec<(PhotoRecord, Thumb)> = Vec::new();
    let mut requeued = false;
    let done = {
        let mut a = app.borrow_mut();
        let a = &mut *a;
        let (Some(run), Some(index), Some(model)) =
            (a.run.as_mut(), a.index.as_mut(), a.model.as_ref())
        else {
            return;
        };
        while run.next_apply < run.limit {
            let key = run.next_apply;
            let Some(outcome) = run.finished.remove(&key) else {
                break;
            };
            if let Outcome::Duplicate { hash } = &outcome {
                let resolvable = index
                    .find_by_hash(hash)
                    .is_some_and(|e| index.embedding(e.id).is_some());
                if !resolvable {
                    // The entry it duplicates went away meanwhile: encode this photo
                    // after all (alone, without the hash shortcut), and wait for it.
                    run.solo.push_back(key);
                    requeued = true;
                    break;
                }
            }
            run.next_apply += 1;
            let Some(item) = run.items.get(key) else {
                continue;
            };
            let meta = EntryMeta {
                path: item.path.clone(),
                size_bytes: item.size_bytes,
                modified_ms: item.modified_ms,
                content_hash: [0; 32],
            };
            let (embedding, hash, thumb) = match outcome {
                Outcome::Embedded {
                    embedding,
                    hash,
                    thumb,
                } => {
                    let blob = thumb.and_then(|buffer| {
                        let parts = js_sys::Array::of1(&buffer);
                        let options = BlobPropertyBag::new();
                        options.set_type("image/jpeg");
                        Blob::new_with_buffer_source_sequence_and_options(&parts, &options).ok()
                    });
                    run.added += 1;
                    (embedding, hash, blob.map_or(Thumb::None, Thumb::Jpeg))
                }
                Outcome::Duplicate { hash } => {
                    let Some(source) = index.find_by_hash(&hash).cloned() else {
                        continue;
                    };
                    let Some(embedding) = index.embedding(source.id).map(<[f32]>::to_vec) else {
                        continue;
                    };
                    run.reused += 1;
                    (embedding, hash, Thumb::CopyOf(source.path))
                }
                Outcome::Failed(error) => {
                    run.failed += 1;
                    a.skipped.insert(item.path.clone(), error);
                    continue;
                }
                Outcome::Dropped => continue,
            };
            let meta = EntryMeta {
                content_hash: hash,
                ..meta
            };
            match index.upsert(meta, &embedding) {
                Ok(_) => {
                    a.skipped.remove(&item.path);
                    let seq = match a.seqs.get(&item.path) {
                        Some(&s) => s,
                        None => {
                            let s = a.next_seq;
                            a.next_seq += 1.0;
                            a.seqs.insert(item.path.clone(), s);
                            s
                        }
                    };
                    if let Some(url) = a.thumb_urls.remove(&item.path) {
                        noted(Url::revoke_object_url(&url), "revoke an object URL");
                    }
                    batch.push((
                        PhotoRecord {
                            path: item.path.clone(),
                            size_bytes: item.size_bytes,
                            modified_ms: item.modified_ms,
                            content_hash: hash,
                            model_id: model.model_id.clone(),
                            seq,
                            embedding,
                        },
                        thumb,
                    ));
                }
                Err(e) => {
                    run.failed += 1;
                    a.skipped.insert(
                        item.path.clone(),
                        format!("The photo could not be indexed: {e}"),
                    );
                }
            }
        }
        run.rate.record(now_ms(), run.next_apply as f64);
        run.next_apply >= run.limit
    };
    if !batch.is_empty() {
        save(app, batch);
    }
    {
        let dom = app.borrow().dom.clone();
        let a = app.borrow();
        dom.show_skipped(a.skipped.iter());
    }
    index_progress(app, false);
    rerank_if_due(app);
    if requeued {
        dispatch(app);
    }
    if done {
        finish_run(app);
    }
}

/// Saves a batch of photos; a failure stops indexing with a plain sentence.
fn save(app: &AppRef, batch: Vec<(PhotoRecord, Thumb)>) {
    let Some(library) = app.borrow().library.clone() else {
        return;
    };
    let app = app.clone();
    spawn_local(async move {
        if let Err(e) = library.save(&batch).await {
            let message = match e {
                IdbError::QuotaExceeded => "The browser's storage is full, so the index could not be saved. Free some disk space, then drop the folder again (the photos already saved are kept).".to_owned(),
                other => format!("The index could not be saved: {other}"),
            };
            {
                let mut a = app.borrow_mut();
                if let Some(run) = a.run.as_mut() {
                    run.paused = true;
                }
                a.fail(message, false);
            }
        }
    });
}

fn index_progress(app: &AppRef, force: bool) {
    let mut a = app.borrow_mut();
    let now = now_ms();
    if !force && now - a.last_index_report_ms < 150.0 {
        return;
    }
    a.last_index_report_ms = now;
    let dom = a.dom.clone();
    let workers = a.pool.iter().flatten().count();
    if let Some(run) = &a.run {
        let done = run.next_apply.min(run.limit);
        set_progress(&dom.index_progress, done as f64, Some(run.limit as f64));
        let mut line = format!("{done} of {} photos", run.limit);
        if run.paused {
            line.push_str(" · paused");
        } else {
            if let Some(rate) = run.rate.per_second() {
                line.push_str(&format!(" · {rate:.1} photos/s"));
            }
            if let Some(eta) = run.rate.eta_seconds((run.limit - done) as f64) {
                line.push_str(&format!(" · {} left", format_eta(eta)));
            }
        }
        if run.unchanged > 0 {
            line.push_str(&format!(" · {} already indexed", run.unchanged));
        }
        line.push_str(&format!(
            " · {workers} encoder worker{}",
            if workers == 1 { "" } else { "s" }
        ));
        set_text(&dom.index_text, &line);
    }
    a.update_status();
}

fn finish_run(app: &AppRef) {
    let summary = {
        let mut a = app.borrow_mut();
        let a = &mut *a;
        let Some(run) = a.run.take() else { return };
        // Photos no longer in a re-dropped folder are kept, and offered for forgetting.
        let vanished: Vec<String> = match (&a.index, run.cancelled) {
            (Some(index), false) => run
                .vanished
                .iter()
                .filter_map(|id| index.entry(*id).map(|e| e.path.clone()))
                .collect(),
            _ => Vec::new(),
        };
        let kept = vanished.len();
        a.forget = ForgetOffer::new(vanished);
        let summary = RunSummary {
            cancelled: run.cancelled,
            done: run.next_apply.min(run.limit),
            total: run.items.len(),
            added: run.added,
            reused: run.reused,
            unchanged: run.unchanged,
            failed: run.failed,
            kept,
            seconds: (now_ms() - run.started_ms) / 1000.0,
        }
        .sentence();
        let dom = a.dom.clone();
        set_progress(
            &dom.index_progress,
            run.limit as f64,
            Some(run.limit.max(1) as f64),
        );
        summary
    };
    {
        let a = app.borrow();
        set_text(&a.dom.index_text, &summary);
    }
    app.borrow_mut().update_status();
    render_results(app);
    maybe_start_run(app);
    release_pool_when_idle(app);
}

/// "Forget N photos no longer in FOLDER": removes the offered photos from the index and
/// from storage.
async fn forget_vanished(app: &AppRef) {
    let (library, paths) = {
        let mut a = app.borrow_mut();
        let Some(offer) = a.forget.take() else { return };
        let mut removed = Vec::with_capacity(offer.paths.len());
        for path in offer.paths {
            if a.index.as_mut().is_some_and(|i| i.remove_path(&path)) {
                a.seqs.remove(&path);
                a.originals.remove(&path);
                if let Some(url) = a.thumb_urls.remove(&path) {
                    noted(Url::revoke_object_url(&url), "revoke an object URL");
                }
                removed.push(path);
            }
        }
        let dom = a.dom.clone();
        let n = removed.len();
        set_text(
            &dom.index_text,
            &format!("Forgot {n} photo{}.", if n == 1 { "" } else { "s" }),
        );
        a.update_status();
        (a.library.clone(), removed)
    };
    render_results(app);
    if let (Some(library), false) = (library, paths.is_empty()) {
        if let Err(e) = library.remove(&paths).await {
            app.borrow_mut()
                .fail(format!("The index could not be updated: {e}"), false);
        }
    }
}

/// Stops the photo encoders once they have been idle for `idle_s` seconds (one minute by
/// default), giving back their memory — a vision tower each — and their GPU devices. The
/// next drop or search by photo starts them again.
fn release_pool_when_idle(app: &AppRef) {
    let (generation, seconds) = {
        let mut a = app.borrow_mut();
        a.pool_activity = a.pool_activity.wrapping_add(1);
        (a.pool_activity, a.params.idle_release_s)
    };
    let app = app.clone();
    spawn_local(async move {
        super::sleep_ms(f64::from(seconds) * 1000.0).await;
        let old = {
            let mut a = app.borrow_mut();
            let idle = a.pool_activity == generation
                && a.run.is_none()
                && a.photo_search.pending_image.is_none()
                && a.pool
                    .iter()
                    .flatten()
                    .all(|w| w.in_flight == 0 && !w.loading);
            if !idle || a.pool.is_empty() {
                return;
            }
            a.engine_details.retain(|k, _| !k.starts_with("vision"));
            let old = std::mem::take(&mut a.pool);
            a.update_status();
            old
        };
        // Terminates the workers.
        drop(old);
    });
}

fn toggle_pause(app: &AppRef) {
    {
        let mut a = app.borrow_mut();
        let Some(run) = a.run.as_mut() else { return };
        run.paused = !run.paused;
        run.rate.reset();
    }
    dispatch(app);
    index_progress(app, true);
}

fn cancel_run(app: &AppRef) {
    {
        let mut a = app.borrow_mut();
        let Some(run) = a.run.as_mut() else { return };
        run.cancelled = true;
        run.paused = false;
        run.limit = run.next_dispatch;
        for k in std::mem::take(&mut run.solo) {
            run.finished.insert(k, Outcome::Dropped);
        }
    }
    apply_finished(app);
    index_progress(app, true);
}

async fn clear_index(app: &AppRef) {
    let library = {
        let mut a = app.borrow_mut();
        let now = now_ms();
        let dom = a.dom.clone();
        if now > a.clear_armed_until {
            a.clear_armed_until = now + 5000.0;
            let n = a.indexed();
            set_text(
                &dom.clear_button,
                &format!("Press again to remove all {n} photos from the index"),
            );
            let dom2 = dom.clone();
            spawn_local(async move {
                super::sleep_ms(5000.0).await;
                set_text(&dom2.clear_button, "Clear index");
            });
            return;
        }
        a.clear_armed_until = 0.0;
        set_text(&dom.clear_button, "Clear index");
        if let Some(index) = a.index.as_mut() {
            index.clear();
        }
        a.seqs.clear();
        a.skipped.clear();
        a.forget = None;
        for (_, url) in a.thumb_urls.drain() {
            noted(Url::revoke_object_url(&url), "revoke an object URL");
        }
        a.library.clone()
    };
    search_input(app, Input::Cleared);
    {
        let a = app.borrow();
        a.dom.show_skipped(a.skipped.iter());
        set_text(&a.dom.index_text, "The index was cleared.");
        set_progress(&a.dom.index_progress, 0.0, None);
    }
    app.borrow_mut().update_status();
    if let Some(library) = library {
        if let Err(e) = library.clear().await {
            app.borrow_mut()
                .fail(format!("The index could not be cleared: {e}"), false);
        }
    }
    show_storage(app).await;
}

// ---------------------------------------------------------------------------------------
// Search

/// The one way into the search box's state: `update` under a `try_borrow_mut` (an input
/// arriving while the page is busy is logged and dropped, never a panic), then its effects
/// carried out with no borrow held.
fn search_input(app: &AppRef, input: Input) {
    let effects = match app.try_borrow_mut() {
        Ok(mut a) => a.search.update(input),
        Err(_) => {
            web_sys::console::warn_1(&JsValue::from_str(
                "clipseek: a search input arrived while the page was busy; it was dropped",
            ));
            return;
        }
    };
    for effect in effects {
        match effect {
            SearchEffect::StartTimer { generation, ms } => start_search_timer(app, generation, ms),
            SearchEffect::SendText { job, text } => send_text(app, job, text),
            SearchEffect::Render => render_results(app),
            SearchEffect::Say(line) => {
                let dom = app.borrow().dom.clone();
                set_text(&dom.search_text, &line);
            }
        }
    }
}

fn start_search_timer(app: &AppRef, generation: u32, ms: u32) {
    let app = app.clone();
    let callback = Closure::once_into_js(move || {
        let text = app.borrow().dom.query.value();
        search_input(&app, Input::Paused { generation, text });
    });
    let set = web_sys::window().map(|w| {
        w.set_timeout_with_callback_and_timeout_and_arguments_0(
            callback.unchecked_ref(),
            ms.min(i32::MAX as u32) as i32,
        )
        .map(|_| ())
    });
    noted(
        set.unwrap_or_else(|| Err(JsValue::from_str("no window"))),
        "start the search timer",
    );
}

fn send_text(app: &AppRef, job: JobId, text: String) {
    let a = app.borrow();
    let sent = match &a.text_worker {
        Some(w) => w.send(&ToWorker::Text { job, text }),
        None => Err(JsValue::from_str("the query encoder is not running")),
    };
    if let Err(e) = sent {
        set_text(
            &a.dom.search_text,
            &format!("The query could not be sent: {}", describe_js(&e)),
        );
    }
}

fn search_by_image(app: &AppRef, file: File) {
    let name = file.name();
    if !ingest::has_image_extension(&name) && !file.type_().starts_with("image/") {
        let dom = app.borrow().dom.clone();
        set_text(
            &dom.search_text,
            &format!("{name} is not a photo, so it cannot be searched by."),
        );
        return;
    }
    if app.borrow().stage != Stage::Open {
        let mut a = app.borrow_mut();
        a.photo_search.pending_image = Some(file);
        let dom = a.dom.clone();
        set_text(
            &dom.search_text,
            "Searching by a photo needs the model: download it first.",
        );
        return;
    }
    ensure_pool(app);
    let mut a = app.borrow_mut();
    let slot = a
        .pool
        .iter()
        .enumerate()
        .filter_map(|(i, w)| w.as_ref().filter(|w| w.ready).map(|w| (i, w.in_flight)))
        .min_by_key(|(_, n)| *n)
        .map(|(i, _)| i);
    let dom = a.dom.clone();
    let Some(slot) = slot else {
        a.photo_search.pending_image = Some(file);
        set_text(
            &dom.search_text,
            &format!("Loading the photo encoder to search by {name}…"),
        );
        return;
    };
    let job = a.next_job;
    a.next_job = a.next_job.next();
    let message = ToWorker::Encode {
        job,
        keys: vec![0],
        thumbnails: false,
        dedupe: false,
    };
    let blob: Blob = file.clone().into();
    let sent = a
        .pool
        .get(slot)
        .and_then(Option::as_ref)
        .map(|w| w.handle.send_files(&message, &[blob]));
    match sent {
        Some(Ok(())) => {
            if let Some(Some(w)) = a.pool.get_mut(slot) {
                w.in_flight += 1;
            }
            a.sent_jobs += 1;
            let sent = a.sent_jobs;
            a.jobs.insert(
                job,
                JobInfo {
                    worker: slot,
                    sent,
                    kind: JobKind::Query { name: name.clone() },
                },
            );
            set_text(&dom.search_text, &format!("Reading {name}…"));
        }
        _ => set_text(
            &dom.search_text,
            &format!("{name} could not be sent to the encoder."),
        ),
    }
}

fn similar_to(app: &AppRef, id: u64) {
    let path = app
        .borrow()
        .index
        .as_ref()
        .and_then(|i| i.entry(id))
        .map(|e| e.path.clone());
    if let Some(path) = path {
        search_input(app, Input::Show(Query::Similar { id, path }));
        let dom = app.borrow().dom.clone();
        if let Ok(Some(first)) = dom.results.query_selector("button.thumb") {
            if let Ok(el) = first.dyn_into::<HtmlElement>() {
                noted(el.focus(), "move the focus");
            }
        }
    }
}

fn rerank_if_due(app: &AppRef) {
    let due = {
        let mut a = app.borrow_mut();
        let now = now_ms();
        // With no search this only refreshes the hint line (the photo count).
        let due = now - a.photo_search.last_rerank_ms > 700.0;
        if due {
            a.photo_search.last_rerank_ms = now;
        }
        due
    };
    if due {
        render_results(app);
    }
}

/// Ranks for the current search and draws the grid.
fn render_results(app: &AppRef) {
    let (views, missing, dom, more, line, query_label) = {
        let a = app.borrow();
        let dom = a.dom.clone();
        let Some(index) = a.index.as_ref() else {
            // The hint comes from update_status.
            results::render(&dom, &[]);
            return;
        };
        let k = a.search.k();
        let ranked: Result<Vec<Match>, String> = match a.search.query() {
            Query::None => Ok(Vec::new()),
            Query::Text { embedding, .. } | Query::Image { embedding, .. } => {
                index.search(embedding, k + 1).map_err(|e| e.to_string())
            }
            Query::Similar { id, .. } => index.similar(*id, k + 1).map_err(|e| e.to_string()),
        };
        let mut ranked = match ranked {
            Ok(r) => r,
            Err(e) => {
                set_text(&dom.search_text, &format!("The search failed: {e}"));
                Vec::new()
            }
        };
        let more = ranked.len() > k;
        ranked.truncate(k);
        let n = index.len();
        let line = results_line(a.search.query(), ranked.len(), n);
        let mut missing = Vec::new();
        let views: Vec<ResultView> = ranked
            .iter()
            .filter_map(|m| {
                let path = index.entry(m.id)?.path.clone();
                let thumb_url = a.thumb_urls.get(&path).cloned();
                if thumb_url.is_none() {
                    missing.push(path.clone());
                }
                Some(ResultView {
                    id: m.id,
                    path,
                    score: m.score,
                    thumb_url,
                })
            })
            .collect();
        let query_label = a.search.label();
        (views, missing, dom, more, line, query_label)
    };
    results::render(&dom, &views);
    match &query_label {
        Some(q) => ui::attr(&dom.results, "data-query", q),
        None => {
            noted(
                dom.results.remove_attribute("data-query"),
                "clear the results' query",
            );
        }
    }
    show(&dom.more_button, more);
    show(
        &dom.clear_search_button,
        !matches!(app.borrow().search.query(), Query::None),
    );
    set_text(&dom.search_text, &line);
    if !missing.is_empty() {
        let app = app.clone();
        spawn_local(async move { load_thumbs(&app, missing).await });
    }
}

async fn load_thumbs(app: &AppRef, paths: Vec<String>) {
    let Some(library) = app.borrow().library.clone() else {
        return;
    };
    let blobs = match library.thumbs(&paths).await {
        Ok(b) => b,
        Err(e) => {
            web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: thumbnails: {e}")));
            return;
        }
    };
    let mut a = app.borrow_mut();
    let dom = a.dom.clone();
    for (path, blob) in paths.into_iter().zip(blobs) {
        let Some(blob) = blob else { continue };
        if a.thumb_urls.contains_key(&path) {
            continue;
        }
        if let Ok(url) = Url::create_object_url_with_blob(&blob) {
            results::set_thumb(&dom, &path, &url);
            a.thumb_urls.insert(path, url);
        }
    }
}

fn result_clicked(app: &AppRef, event: Event) {
    let Some(target) = event
        .target()
        .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
    else {
        return;
    };
    let Some(li) = target.closest("li[data-id]").ok().flatten() else {
        return;
    };
    let Some(id) = li
        .get_attribute("data-id")
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return;
    };
    let button = target.closest("button").ok().flatten();
    let class = button.map(|b| b.class_name()).unwrap_or_default();
    if class.contains("similar") {
        similar_to(app, id);
    } else if class.contains("remove") {
        let app = app.clone();
        spawn_local(async move { remove_entry(&app, id).await });
    } else if class.contains("thumb") {
        let score = li.get_attribute("data-score").unwrap_or_default();
        open_preview(app, id, &score);
    }
}

fn open_preview(app: &AppRef, id: u64, score: &str) {
    let mut a = app.borrow_mut();
    let dom = a.dom.clone();
    let Some(path) = a
        .index
        .as_ref()
        .and_then(|i| i.entry(id))
        .map(|e| e.path.clone())
    else {
        return;
    };
    let original = a
        .originals
        .get(&path)
        .and_then(|f| Url::create_object_url_with_blob(f).ok());
    let (url, note) = match original {
        Some(url) => {
            a.preview_url = Some(url.clone());
            (Some(url), "")
        }
        None => (
            a.thumb_urls.get(&path).cloned(),
            " (a thumbnail: drop the folder again to see the original)",
        ),
    };
    a.preview_id = Some(id);
    match url {
        Some(u) => ui::attr(&dom.preview_image, "src", &u),
        None => {
            noted(
                dom.preview_image.remove_attribute("src"),
                "clear the preview image",
            );
        }
    }
    ui::attr(&dom.preview_image, "alt", &path);
    set_text(
        &dom.preview_caption,
        &format!("{path} · score {score}{note}"),
    );
    drop(a);
    noted(dom.preview.show_modal(), "open the preview");
}

fn preview_closed(app: &AppRef) {
    let mut a = app.borrow_mut();
    if let Some(url) = a.preview_url.take() {
        noted(Url::revoke_object_url(&url), "revoke an object URL");
    }
    let id = a.preview_id.take();
    let dom = a.dom.clone();
    drop(a);
    // Back to the result that was opened.
    if let Some(id) = id {
        let selector = format!("li[data-id=\"{id}\"] button.thumb");
        if let Ok(Some(el)) = dom.results.query_selector(&selector) {
            if let Ok(el) = el.dyn_into::<HtmlElement>() {
                noted(el.focus(), "move the focus");
            }
        }
    }
}

async fn remove_entry(app: &AppRef, id: u64) {
    let (library, path) = {
        let mut a = app.borrow_mut();
        let Some(path) = a
            .index
            .as_ref()
            .and_then(|i| i.entry(id))
            .map(|e| e.path.clone())
        else {
            return;
        };
        if let Some(index) = a.index.as_mut() {
            index.remove(id);
        }
        a.seqs.remove(&path);
        if let Some(url) = a.thumb_urls.remove(&path) {
            noted(Url::revoke_object_url(&url), "revoke an object URL");
        }
        // A search by this photo ends; the results are drawn again just below.
        a.search.forget(id);
        a.update_status();
        (a.library.clone(), path)
    };
    render_results(app);
    if let Some(library) = library {
        if let Err(e) = library.remove(std::slice::from_ref(&path)).await {
            app.borrow_mut().fail(
                format!("{path} could not be removed from the saved index: {e}"),
                false,
            );
        }
    }
}
