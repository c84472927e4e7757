//! The page's one `App` and its one borrow point. Everything the browser tells the page
//! (DOM events, worker messages, storage results, timers) reaches the state through
//! [`with`], a `try_borrow_mut`: an event that arrives while the state is borrowed (a
//! re-entrant callback) is logged once and dropped, never a panic. The rules live in
//! `page::run` (indexing) and `page::search` (the search box); this file holds their state
//! beside the browser handles, and starts the page.
//!
//! It must not decide anything the core can decide, and never holds a borrow across an
//! `await`. Reference: DESIGN.md "Contract: the page", "The page core"; issue 8, item 1.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use js_sys::ArrayBuffer;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::spawn_local;
use web_sys::{File, UrlSearchParams};

use super::download::{CacheState, Download, ModelStore};
use super::idb::{schema, Database};
use super::library::Library;
use super::model::{begin_download, offer_input, open_model, show_storage};
use super::tabs::TabChannel;
use super::ui::{self, set_text, Dom, State};
use super::worker::WorkerHandle;
use super::{describe_js, events, search};
use crate::page::duplicates::Duplicates;
use crate::page::offer::{Input as OfferInput, ModelOffer};
use crate::page::params::Params;
use crate::page::pool::WorkerId;
use crate::page::protocol::LoadReport;
use crate::page::run::Indexer;
use crate::page::search::Search;
use crate::page::selection::Selection;
use crate::page::tabs::Tabs;
use crate::page::text::QueryEncoder;

/// The worker loader (www/encoder-worker.js), relative to the page.
const WORKER_SCRIPT: &str = "encoder-worker.js";

pub type AppRef = Rc<RefCell<App>>;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Stage {
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

/// The page.
pub struct App {
    pub dom: Rc<Dom>,
    pub params: Params,
    pub worker_url: String,
    pub db: Option<Database>,
    pub store: Option<ModelStore>,
    pub library: Option<Library>,
    pub stage: Stage,
    /// The page's error, and whether its Retry helps.
    pub error: Option<(String, bool)>,
    pub download: Option<Rc<Download>>,
    pub download_text: String,
    /// The identity of the open model.
    pub model_id: Option<String>,
    /// The indexing runs, the photo encoders and the index (`page::run`).
    pub core: Indexer<File, ArrayBuffer>,
    /// The photo encoders the core asked for, by id.
    pub vision: HashMap<WorkerId, WorkerHandle>,
    pub text_worker: Option<WorkerHandle>,
    /// The query encoder's state (`page::text`).
    pub query: QueryEncoder,
    /// Why WebGPU is not used (the latest reason).
    pub engine_fallback: Option<String>,
    /// Where the workers' loads went (`FromWorker::Timings`), by role: `query`, `photos`.
    pub load_reports: BTreeMap<&'static str, LoadReport>,
    /// Drops being read.
    pub collecting: usize,
    /// The search box's state (`page::search`).
    pub search: Search,
    pub last_rerank_ms: f64,
    /// The index (length, next id) whose folders `#folder-filter` lists.
    pub folders_for: Option<(usize, u64)>,
    /// The results selected (`page::selection`) and the ids shown, in order.
    pub selection: Selection,
    pub shown_ids: Vec<u64>,
    /// The duplicates view (`page::duplicates`).
    pub dupes: Duplicates,
    pub thumb_urls: HashMap<String, String>,
    pub preview_url: Option<String>,
    pub preview_id: Option<u64>,
    pub clear_armed_until: f64,
    pub last_storage_ms: f64,
    /// This tab's side of the two-tab rules (`page::tabs`), once the index is loaded.
    pub tabs: Option<Rc<RefCell<Tabs>>>,
    /// The channel to the other tabs (none where the browser offers none).
    pub channel: Option<TabChannel>,
    /// Whether the download may start by itself, or waits for the person (`page::offer`).
    pub offer: ModelOffer,
}

thread_local! {
    static BUSY_LOGGED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The one way to the page's state: `f` under a `try_borrow_mut`. `None` (logged once)
/// when the state is already borrowed: the event is dropped rather than a panic.
pub fn with<R>(app: &AppRef, f: impl FnOnce(&mut App) -> R) -> Option<R> {
    match app.try_borrow_mut() {
        Ok(mut a) => Some(f(&mut a)),
        Err(_) => {
            if !BUSY_LOGGED.with(|l| l.replace(true)) {
                web_sys::console::warn_1(&JsValue::from_str(
                    "clipseek: an event arrived while the page was busy; it was dropped",
                ));
            }
            None
        }
    }
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
                let line = format!("clipseek could not start: {}", describe_js(&e));
                status.set_text_content(Some(&line));
            }
        }
    });
}

fn read_params() -> Result<Params, String> {
    let search = web_sys::window()
        .map(|w| w.location().search().unwrap_or_default())
        .unwrap_or_default();
    let params = UrlSearchParams::new_with_str(&search).map_err(|e| describe_js(&e))?;
    Params::read(|name| params.get(name))
}

fn new_app(dom: Rc<Dom>, params: Params) -> App {
    let backend = params.backend;
    App {
        offer: ModelOffer::new(&params.source),
        worker_url: worker_url(),
        dom,
        params,
        db: None,
        store: None,
        library: None,
        stage: Stage::Starting,
        error: None,
        download: None,
        download_text: String::new(),
        model_id: None,
        core: Indexer::new(),
        vision: HashMap::new(),
        text_worker: None,
        query: QueryEncoder::new(backend),
        engine_fallback: None,
        load_reports: BTreeMap::new(),
        collecting: 0,
        search: Search::new(),
        last_rerank_ms: 0.0,
        folders_for: None,
        selection: Selection::new(),
        shown_ids: Vec::new(),
        dupes: Duplicates::new(),
        thumb_urls: HashMap::new(),
        preview_url: None,
        preview_id: None,
        clear_armed_until: 0.0,
        last_storage_ms: 0.0,
        tabs: None,
        channel: None,
    }
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
    let source = &params.source;
    set_text(&dom.model_name, &source.model);
    let title = format!(
        "{} at revision {} from {}",
        source.model, source.revision, source.hub
    );
    ui::attr(&dom.model_name, "title", &title);
    let app = Rc::new(RefCell::new(new_app(dom.clone(), params)));
    events::wire(&app)?;
    super::filters::restore(&app);
    dom.query.set_disabled(false);
    with(&app, App::update_status);
    search::render_results(&app);
    look_at_storage(&app).await;
    Ok(())
}

/// Opens storage and decides: open the stored model, resume or start a download, or wait.
async fn look_at_storage(app: &AppRef) {
    let db = match schema::open().await {
        Ok(db) => db,
        Err(e) => {
            with(app, |a| {
                a.stage = Stage::NoModel;
                a.fail(e.to_string(), false);
            });
            return;
        }
    };
    let Some((store, explicit)) = with(app, |a| {
        let store = ModelStore::new(db.clone(), a.params.source.key());
        a.library = Some(Library::new(db.clone()));
        a.store = Some(store.clone());
        a.db = Some(db);
        (store, a.params.explicit_source)
    }) else {
        return;
    };
    show_storage(app).await;
    let waiting = with(app, |a| a.core.has_waiting()).unwrap_or(false);
    match store.state().await {
        Ok(CacheState::Verified { .. }) => open_model(app).await,
        Ok(CacheState::Partial { .. }) => begin_download(app).await,
        Ok(CacheState::Empty) => {
            with(app, |a| {
                a.stage = Stage::NoModel;
                if a.params.source.model == crate::hub::DEFAULT_MODEL {
                    set_text(
                        &a.dom.model_text,
                        "CLIP ViT-B/32 is about 605 MB, downloaded once from the Hugging Face \
                         hub and then kept in this browser.",
                    );
                }
                a.update_status();
            });
            let empty = OfferInput::Empty {
                linked: explicit,
                drops_waiting: waiting,
            };
            offer_input(app, empty);
        }
        Err(e) => {
            with(app, |a| {
                a.stage = Stage::NoModel;
                a.fail(e.to_string(), false);
            });
        }
    }
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

impl App {
    /// Shows an error; `retry` offers the Retry button.
    pub fn fail(&mut self, message: String, retry: bool) {
        web_sys::console::warn_1(&JsValue::from_str(&format!("clipseek: {message}")));
        self.error = Some((message, retry));
        self.update_status();
    }

    /// The engines in words: the query encoder's and the photo encoders'.
    pub fn engine_details(&self) -> (Option<&String>, Vec<String>) {
        let (_, mut vision) = self.core.vision_engines();
        vision.sort_unstable();
        vision.dedup();
        (self.query.detail(), vision)
    }

    /// Forgets the thumbnail URLs of `paths` (their photos changed or left).
    pub fn revoke_thumbs<'a>(&mut self, paths: impl IntoIterator<Item = &'a String>) {
        for path in paths {
            if let Some(url) = self.thumb_urls.remove(path) {
                super::noted(
                    web_sys::Url::revoke_object_url(&url),
                    "revoke an object URL",
                );
            }
        }
    }
}
