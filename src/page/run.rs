//! Indexing runs as a state machine: the photos of one or more drops are placed
//! (`page::library`), the unchanged ones skipped (`ingest::plan`), the rest queued in
//! indexing order and handed in batches to the photo encoders (`page::pool`), results
//! applied strictly in that order (a small reorder buffer) so ties rank as the CLI ranks
//! them, and saved batch by batch. A photo enters the in-memory index only once its batch
//! is saved: a failed save (quota, abort) pauses the run, is shown with a Retry that sends
//! the same batch again, and the index never claims a photo that is not stored. A dead
//! worker's photos are charged per photo (`page::crash`) and its slot refilled; a reply
//! from a terminated worker is dropped. `update` takes one [`Input`] (a drop, a worker's
//! message, a storage result, a timer, a button) and returns the [`Effect`]s the browser
//! carries out; [`Indexer::view`] is what the DOM shows.
//!
//! It must not name the browser: file and thumbnail handles are type parameters (`F`,
//! `T`: `web_sys::File` and `ArrayBuffer` in the page, plain values in the tests), time
//! comes in with each input. Reference: issue 8, item 1 and "A failed save"; DESIGN.md
//! "The page core".

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use super::crash::{CrashBudget, Lost, CRASH_REASON};
use super::library::{place_drop, DropFile, FolderPlace, ForgetOffer, Known, Origin};
use super::photo_store::{claim_name, Claim};
use super::pool::{Pool, WorkerId};
use super::protocol::{Hash, JobId, Photo, ToWorker, Tower};
use super::refused::{Refused, RefusedFile, RefusedKey};
use super::skipped::{SkippedChange, SkippedList};
use super::status::RunSummary;
use crate::encode::{Backend, EngineKind, PrecisionChoice};
use crate::hub::{format_eta, Rate};
use crate::index::{EmbeddingIndex, IndexError};
use crate::ingest::{self, Candidate};

#[path = "run_apply.rs"]
mod apply;
#[path = "run_life.rs"]
mod life;
#[path = "run_place.rs"]
mod place;
#[path = "run_workers.rs"]
mod workers;

/// Photos per batch sent to a worker.
pub const BATCH: usize = 4;
/// The progress line is rewritten at most this often (ms) unless something changed state.
pub const PROGRESS_EVERY_MS: f64 = 150.0;

/// What the page knows when the model and the index are open.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The cached model the workers load.
    pub model_key: String,
    /// The model's identity: a worker that loaded another is refused.
    pub model_id: String,
    pub dim: usize,
    pub backend: Backend,
    pub precision: PrecisionChoice,
    /// Vision workers to start (`ingest::worker_count`).
    pub pool_size: usize,
    /// Seconds the photo encoders stay loaded when idle.
    pub idle_release_s: u32,
}

/// One stored photo, as read back at start-up and as written by a save: the store's own
/// record (`page::photo_store`), so the shell copies no field.
pub use super::photo_store::PhotoRecord as Stored;

/// Where a saved photo's thumbnail comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ThumbOf<T> {
    /// The JPEG the worker made.
    New(T),
    /// The thumbnail of the stored photo with the same content.
    CopyOf(String),
    None,
}

/// One photo to save.
#[derive(Debug, Clone, PartialEq)]
pub struct ToSave<T> {
    pub record: Stored,
    pub thumb: ThumbOf<T>,
}

/// A save, named so its answer can be matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(pub u32);

/// Why a save failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaveError {
    /// The browser's storage is full.
    Quota,
    /// Anything else (aborted, closed), in words.
    Other(String),
}

/// One photo's answer from a worker, with its thumbnail beside it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer<T> {
    pub key: u32,
    pub result: Result<Photo, String>,
    pub thumb: Option<T>,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input<F, T> {
    /// The model and the stored index are open: `stored` is what storage held
    /// (`unreadable` records could not be read at all).
    Opened {
        config: Config,
        stored: Vec<Stored>,
        unreadable: usize,
    },
    /// The model was removed: the workers stop and the run ends; the index is kept.
    Closed,
    /// The store was cleared in another tab (or refused a save for it) and was read
    /// again: the run is given up and the index rebuilt from `stored`.
    Reloaded {
        stored: Vec<Stored>,
        unreadable: usize,
    },
    /// Photos were dropped or picked (`roots`: the folders among them, by name).
    Dropped {
        files: Vec<DropFile<F>>,
        roots: Vec<String>,
    },
    /// A folder that stays connected was walked again (`page::connected`): placed as the
    /// stored folder it was indexed as, however many of its photos changed
    /// (`library::Known::place_reconnected`); otherwise as [`Input::Dropped`].
    Reconnected {
        files: Vec<DropFile<F>>,
        roots: Vec<String>,
    },
    /// The refused files the store remembers (`PhotoStore::refused`), read when the index
    /// is: a drop lists them without their being read.
    Remembered(Vec<RefusedFile>),
    /// Files of a drop refused by their first bytes (`ingest::refusal_for_head`), before
    /// the drop itself: remembered and listed, never read whole.
    Refused(Vec<RefusedFile>),
    /// Entries of a dropped tree the browser could not open (dropped path, sentence:
    /// `page::errors::unreadable_entry`): listed; the rest of the tree is indexed.
    NotOpened(Vec<(String, String)>),
    /// The store's answers to [`Effect::Claim`] of this `round`: per claim, won
    /// (`Some(true)`), taken by another tab or by stored photos (`Some(false)`), or not
    /// asked because the store failed (`None`: the drop goes on unguarded).
    Claimed {
        round: u32,
        answers: Vec<(Claim, Option<bool>)>,
    },
    Started(WorkerId),
    Loading(WorkerId, f64),
    Loaded {
        worker: WorkerId,
        model_id: String,
        engine: EngineKind,
        detail: String,
        fallback: Option<String>,
    },
    /// WebGPU failed under `backend=auto`; the worker runs on the CPU now.
    Switched {
        worker: WorkerId,
        engine: EngineKind,
        detail: String,
        reason: String,
    },
    Failed {
        worker: WorkerId,
        error: String,
    },
    Encoded {
        worker: WorkerId,
        job: JobId,
        answers: Vec<Answer<T>>,
    },
    Crashed {
        worker: WorkerId,
        message: String,
    },
    /// The worker could not be created.
    SpawnFailed(WorkerId),
    /// A job could not be posted to its worker.
    SendFailed {
        worker: WorkerId,
        job: JobId,
    },
    /// A message from a worker that does not fit the protocol, in words.
    Unreadable(String),
    TogglePause,
    Cancel,
    SaveDone(BatchId),
    SaveFailed {
        batch: BatchId,
        error: SaveError,
    },
    /// "Retry" after a failed save.
    RetrySave,
    /// The idle timer of this generation ran out.
    IdleTimer(u32),
    /// A photo dropped on the search box (`mime`: its type as the browser says).
    SearchByImage {
        name: String,
        mime: String,
        file: F,
    },
}

/// What the browser must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect<F, T> {
    /// Start a vision worker; its messages come back under this id.
    Spawn(WorkerId),
    Terminate(WorkerId),
    Send {
        worker: WorkerId,
        message: ToWorker,
    },
    /// Post `message` with `files` beside it.
    Encode {
        worker: WorkerId,
        message: ToWorker,
        files: Vec<F>,
    },
    /// Claim these new folders' names in the store (`page::tabs::Tabs::claims_for`, then
    /// `PhotoStore::claim`) before anything is indexed into them; answer
    /// [`Input::Claimed`] with this `round`.
    Claim {
        round: u32,
        folders: Vec<FolderPlace>,
    },
    /// Remember these refused files in the store (`PhotoStore::put_refused`).
    Remember(Vec<RefusedFile>),
    /// Write these photos; answer [`Input::SaveDone`] or [`Input::SaveFailed`]. The save's
    /// guard names [`Indexer::claims_covering`] its paths.
    Save {
        batch: BatchId,
        photos: Vec<ToSave<T>>,
    },
    /// Answer [`Input::IdleTimer`] after `ms`.
    StartIdleTimer {
        generation: u32,
        ms: u32,
    },
    /// Show this error (with the page's Retry when `retry`).
    Fail {
        message: String,
        retry: bool,
    },
    /// Why WebGPU is not used.
    Fallback(String),
    /// These photos entered (or changed in) the index: their thumbnails are stale.
    Indexed {
        paths: Vec<String>,
    },
    /// A run ended: draw the results again.
    RunEnded,
    /// Search by this photo's embedding.
    SearchImage {
        name: String,
        embedding: Vec<f32>,
    },
    /// Say this in `#search-text`.
    SaySearch(String),
    /// Log this to the console.
    Warn(String),
}

/// What `#status` says while the photo encoders are busy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    Loading,
    Indexing,
    Error,
}

/// What the indexing panel shows.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    /// `#status` while busy (none: the page says where it stands).
    pub status: Option<(Busy, String)>,
    /// `#index-progress`: done of total (no total: empty).
    pub progress: (f64, Option<f64>),
    /// `#index-text`.
    pub line: String,
    /// Pause and Cancel shown.
    pub running: bool,
    pub paused: bool,
    /// The failed save's sentence: `#retry-save-button` shown.
    pub save_error: Option<String>,
    /// `#forget-button`'s words, when shown.
    pub forget: Option<String>,
    /// "Clear index" shown.
    pub can_clear: bool,
    pub indexed: usize,
    pub skipped: usize,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome<T> {
    Embedded {
        embedding: Vec<f32>,
        hash: Hash,
        thumb: Option<T>,
        browser: bool,
        taken_ms: Option<i64>,
    },
    Duplicate {
        hash: Hash,
    },
    Failed(String),
    /// Not encoded: the run was cancelled.
    Dropped,
}

#[derive(Debug, Clone)]
struct Item<F> {
    path: String,
    size_bytes: u64,
    modified_ms: i64,
    file: F,
}

/// One run: the photos of one or more drops, in indexing order.
#[derive(Debug, Clone)]
struct Run<F, T> {
    items: Vec<Item<F>>,
    next_dispatch: usize,
    /// Photos to try again alone (after a crash), in this order.
    solo: VecDeque<usize>,
    finished: BTreeMap<usize, Outcome<T>>,
    next_apply: usize,
    /// Photos that will be applied (all, or those dispatched before a cancel).
    limit: usize,
    added: usize,
    reused: usize,
    failed: usize,
    unchanged: usize,
    /// Photos in saves thrown away by a cancel.
    discarded: usize,
    vanished: Vec<u64>,
    paused: bool,
    cancelled: bool,
    rate: Rate,
    started_ms: f64,
}

#[derive(Debug, Clone)]
enum JobKind {
    Index { keys: Vec<usize> },
    Query { name: String },
}

#[derive(Debug, Clone)]
struct Job {
    worker: WorkerId,
    /// Sent order: a worker runs its jobs one at a time, oldest first.
    sent: u64,
    kind: JobKind,
}

/// A batch being saved (or waiting for the one before it).
#[derive(Debug, Clone)]
struct Batch<T> {
    id: BatchId,
    photos: Vec<ToSave<T>>,
}

/// The saves: one at a time, in order.
#[derive(Debug, Clone)]
struct Saves<T> {
    next_id: u32,
    /// Sent and not answered, or failed (with the sentence) until retried.
    in_flight: Option<(Batch<T>, Option<String>)>,
    /// Gathered while one is in flight.
    waiting: Vec<ToSave<T>>,
}

impl<T> Default for Saves<T> {
    fn default() -> Self {
        Self {
            next_id: 1,
            in_flight: None,
            waiting: Vec::new(),
        }
    }
}

impl<T> Saves<T> {
    fn error(&self) -> Option<&str> {
        self.in_flight.as_ref().and_then(|(_, e)| e.as_deref())
    }

    fn is_idle(&self) -> bool {
        self.in_flight.is_none() && self.waiting.is_empty()
    }
}

/// The indexing side of the page.
#[derive(Debug, Clone)]
pub struct Indexer<F, T> {
    config: Option<Config>,
    index: Option<EmbeddingIndex>,
    seqs: HashMap<String, f64>,
    /// Content hashes of the photos the browser decoded (`page::browser_decode`).
    by_browser: HashSet<Hash>,
    next_seq: f64,
    originals: HashMap<String, F>,
    skipped: SkippedList,
    refused: Refused,
    waiting: Vec<(Vec<DropFile<F>>, Vec<String>, Origin)>,
    /// Folder names this tab claimed (`None`: the store could not be asked).
    claims: HashMap<String, Option<Claim>>,
    /// Folder names another tab (or stored photos) holds: never placed into as new.
    reserved: BTreeSet<String>,
    /// The round of the [`Effect::Claim`] awaiting its answer.
    claiming: Option<u32>,
    claim_rounds: u32,
    run: Option<Run<F, T>>,
    pool: Pool,
    pool_activity: u32,
    crashes: CrashBudget,
    jobs: HashMap<JobId, Job>,
    next_job: JobId,
    sent_jobs: u64,
    saves: Saves<T>,
    pending_image: Option<(String, F)>,
    forget: Option<ForgetOffer>,
    /// A failure the page shows stops new runs until the model is opened again.
    stopped: bool,
    note: Option<String>,
    line: String,
    progress: (f64, Option<f64>),
    last_progress_ms: f64,
}

impl<F: Clone, T: Clone> Default for Indexer<F, T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Clone, T: Clone> Indexer<F, T> {
    pub fn new() -> Self {
        Self {
            config: None,
            index: None,
            seqs: HashMap::new(),
            by_browser: HashSet::new(),
            next_seq: 0.0,
            originals: HashMap::new(),
            skipped: SkippedList::new(),
            refused: Refused::default(),
            waiting: Vec::new(),
            claims: HashMap::new(),
            reserved: BTreeSet::new(),
            claiming: None,
            claim_rounds: 0,
            run: None,
            pool: Pool::new(),
            pool_activity: 0,
            crashes: CrashBudget::new(),
            jobs: HashMap::new(),
            next_job: JobId(1),
            sent_jobs: 0,
            saves: Saves::default(),
            pending_image: None,
            forget: None,
            stopped: false,
            note: None,
            line: String::new(),
            progress: (0.0, None),
            last_progress_ms: f64::NEG_INFINITY,
        }
    }

    pub fn index(&self) -> Option<&EmbeddingIndex> {
        self.index.as_ref()
    }

    /// Whether the browser, not our PIL-exact decoders, decoded the photo of this content.
    pub fn decoded_by_browser(&self, hash: &Hash) -> bool {
        self.by_browser.contains(hash)
    }

    pub fn indexed(&self) -> usize {
        self.index.as_ref().map_or(0, EmbeddingIndex::len)
    }

    /// The dropped file behind a stored path (for the full-size preview).
    pub fn original(&self, path: &str) -> Option<&F> {
        self.originals.get(path)
    }

    /// Files that could not be indexed, by path.
    pub fn skipped(&self) -> &SkippedList {
        &self.skipped
    }

    /// The changes to the skipped list since the last call, for the view to apply.
    pub fn take_skipped_changes(&mut self) -> Vec<SkippedChange> {
        self.skipped.take_changes()
    }

    /// Why this very file (dropped path, size, date) was refused before, if it was: the
    /// shell does not read its first bytes again.
    pub fn refusal(&self, key: &RefusedKey) -> Option<&str> {
        self.refused.reason(key)
    }

    /// The claims a save of `paths` must name (those of this tab's new folders among them).
    pub fn claims_covering(&self, paths: &[String]) -> Vec<Claim> {
        let names: BTreeSet<&str> = paths.iter().map(|p| claim_name(p)).collect();
        names
            .into_iter()
            .filter_map(|n| self.claims.get(n).cloned().flatten())
            .collect()
    }

    /// Drops are waiting for the model.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    pub fn is_running(&self) -> bool {
        self.run.is_some()
    }

    /// A photo search waits for a photo encoder.
    pub fn has_pending_image(&self) -> bool {
        self.pending_image.is_some()
    }

    /// The sentence after "Ready" when the stored index had something to say.
    pub fn note(&self) -> Option<&str> {
        self.note.as_deref()
    }

    /// The engines the loaded photo encoders run, and in words.
    pub fn vision_engines(&self) -> (Vec<EngineKind>, Vec<String>) {
        let engines = self.pool.iter().filter_map(|w| w.engine).collect();
        let details = self.pool.iter().filter_map(|w| w.detail.clone()).collect();
        (engines, details)
    }

    /// Writes `#index-text` (for what the page says outside runs).
    pub fn say(&mut self, line: impl Into<String>) {
        self.line = line.into();
    }

    pub fn view(&self) -> View {
        let running = self.run.is_some();
        View {
            status: self.busy(),
            progress: self.progress,
            line: self.line.clone(),
            running,
            paused: self.run.as_ref().is_some_and(|r| r.paused),
            save_error: self.saves.error().map(str::to_owned),
            forget: self
                .forget
                .as_ref()
                .filter(|_| !running)
                .map(ForgetOffer::label),
            can_clear: self.indexed() > 0 && !running,
            indexed: self.indexed(),
            skipped: self.skipped.len(),
        }
    }

    fn busy(&self) -> Option<(Busy, String)> {
        if let Some(e) = self.saves.error() {
            return Some((Busy::Error, e.to_owned()));
        }
        let run = self.run.as_ref()?;
        if !self.pool.any_ready() && run.next_apply < run.limit {
            let percent = self.pool.load_fraction() * 100.0;
            return Some((
                Busy::Loading,
                format!("Loading the photo encoder ({percent:.0}%)…"),
            ));
        }
        let done = run.next_apply.min(run.limit);
        let verb = if run.paused { "Paused" } else { "Indexing" };
        Some((
            Busy::Indexing,
            format!("{verb}: {done} of {} photos.", run.limit),
        ))
    }

    pub fn update(&mut self, now: f64, input: Input<F, T>) -> Vec<Effect<F, T>> {
        let mut out = Vec::new();
        match input {
            Input::Opened {
                config,
                stored,
                unreadable,
            } => {
                self.open(config, stored, unreadable);
                self.maybe_start(now, &mut out);
                self.retry_image(&mut out);
            }
            Input::Closed => self.close(&mut out),
            Input::Reloaded { stored, unreadable } => {
                self.reload(stored, unreadable, &mut out);
                self.maybe_start(now, &mut out);
            }
            Input::Dropped { files, roots } => {
                self.waiting.push((files, roots, Origin::Dropped));
                self.maybe_start(now, &mut out);
            }
            Input::Reconnected { files, roots } => {
                self.waiting.push((files, roots, Origin::Reconnected));
                self.maybe_start(now, &mut out);
            }
            Input::Remembered(files) => {
                for f in files {
                    self.refused.record(f.key, f.reason);
                }
            }
            Input::Refused(files) => {
                let new: Vec<RefusedFile> = files
                    .into_iter()
                    .filter_map(|f| self.refused.record(f.key, f.reason))
                    .collect();
                if !new.is_empty() {
                    out.push(Effect::Remember(new));
                }
            }
            Input::NotOpened(entries) => {
                for (path, reason) in entries {
                    self.skipped.insert(path, reason);
                }
            }
            Input::Claimed { round, answers } => self.claimed(now, round, answers, &mut out),
            Input::TogglePause => self.toggle_pause(now, &mut out),
            Input::Cancel => self.cancel(now, &mut out),
            Input::SaveDone(batch) => self.save_done(now, batch, &mut out),
            Input::SaveFailed { batch, error } => self.save_failed(batch, error),
            Input::RetrySave => self.retry_save(&mut out),
            Input::IdleTimer(generation) => self.idle_timer(generation, &mut out),
            Input::SearchByImage { name, mime, file } => {
                self.search_by_image(name, &mime, file, &mut out)
            }
            Input::Unreadable(sentence) => self.fail(sentence, false, &mut out),
            other => self.worker_input(now, other, &mut out),
        }
        out
    }

    fn close(&mut self, out: &mut Vec<Effect<F, T>>) {
        out.extend(self.pool.clear().into_iter().map(Effect::Terminate));
        self.jobs.clear();
        self.run = None;
        self.saves = Saves::default();
        self.config = None;
    }

    fn fail(&mut self, message: String, retry: bool, out: &mut Vec<Effect<F, T>>) {
        self.stopped = true;
        out.push(Effect::Fail { message, retry });
    }

    fn toggle_pause(&mut self, now: f64, out: &mut Vec<Effect<F, T>>) {
        let Some(run) = self.run.as_mut() else { return };
        run.paused = !run.paused;
        run.rate.reset();
        self.dispatch(out);
        self.report(now, true);
    }

    /// Stops handing out photos; those in hand are applied, the rest dropped. A save that
    /// failed is given up (its photos were never in the index).
    fn cancel(&mut self, now: f64, out: &mut Vec<Effect<F, T>>) {
        let Some(run) = self.run.as_mut() else { return };
        run.cancelled = true;
        run.paused = false;
        run.limit = run.next_dispatch;
        for k in std::mem::take(&mut run.solo) {
            run.finished.insert(k, Outcome::Dropped);
        }
        if self.saves.error().is_some() {
            let lost = self
                .saves
                .in_flight
                .take()
                .map_or(0, |(b, _)| b.photos.len());
            run.discarded += lost + std::mem::take(&mut self.saves.waiting).len();
        }
        self.apply(now, out);
        self.report(now, true);
    }
}

/// The checks `EmbeddingIndex::upsert` makes, so a photo that would be refused is listed
/// as skipped before it is saved rather than after.
fn admissible(dim: usize, embedding: &[f32]) -> Result<(), IndexError> {
    if embedding.len() != dim {
        return Err(IndexError::DimMismatch {
            expected_dim: dim,
            got_dim: embedding.len(),
        });
    }
    if let Some(position) = embedding.iter().position(|v| !v.is_finite()) {
        return Err(IndexError::NonFinite { position });
    }
    if embedding.iter().all(|v| *v == 0.0) {
        return Err(IndexError::ZeroVector);
    }
    Ok(())
}

/// The load request for a vision worker.
fn load_message(config: &Config) -> ToWorker {
    ToWorker::Load {
        model_key: config.model_key.clone(),
        tower: Tower::Vision,
        backend: config.backend,
        precision: config.precision,
    }
}

#[cfg(test)]
#[path = "run_tests.rs"]
mod tests;
