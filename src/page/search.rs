//! The search box as a state machine: typing is debounced, Enter runs at once, a blank box
//! clears the results, the box's text is a compound query (`index::query`: `dog -leash`,
//! `beach + sunset`, `2:golden retriever`, `@PATH`) whose distinct texts go to the query
//! encoder one job each (recent ones kept, so `dog -leash` after `dog` encodes `leash`
//! only), a query typed before the query encoder is ready runs when it is, a reply to a
//! query that was overtaken is dropped, a query lost with its worker is sent again to the
//! next one, and "Show more" widens the page of results. A result's Similar and a photo
//! dropped on the box become photo terms in the box, so they combine with words
//! (`@beach.jpg -people`). The filters (minimum score, folder, sort, dates) live here too.
//! `update` takes one [`Input`] and returns the [`Effect`]s the browser must carry out.
//!
//! It must not rank or touch the DOM (`page::results` ranks and shapes the list, the driver
//! `web::search` draws); it only decides what the current search is. Reference: DESIGN.md "Contract: the page"
//! (`#query` ranks as you type, debounced; Enter runs it now); issue 8, item 1.

use super::protocol::JobId;
use crate::index::filters::{DateRange, SortBy};
use crate::index::query::{parse, CompoundQuery, TermSource};

/// Results shown at first, and added by each "Show more".
pub const RESULTS_PAGE: usize = 24;
/// Typing pauses this long before the query runs.
pub const DEBOUNCE_MS: u32 = 150;
/// Text embeddings kept for the next queries (`dog` then `dog -leash` encodes `leash` only).
pub const TEXT_CACHE: usize = 64;
/// Photos dropped on the search box kept as terms (the newest).
pub const DROPPED_KEPT: usize = 8;

/// What the results are for.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    None,
    /// The box's text as a compound query (`index::query`), with the embedding of each of
    /// its distinct texts; photo terms are resolved when ranking.
    Terms {
        text: String,
        query: CompoundQuery,
        texts: Vec<(String, Vec<f32>)>,
    },
}

/// Whether the query encoder can take a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// No model yet: search needs it downloaded.
    NoModel,
    /// The model is open; the query encoder is loading.
    Loading,
    Ready,
}

/// What narrows and orders the results (`index::filters`).
#[derive(Debug, Clone, PartialEq)]
pub struct Filters {
    /// Results scoring below this are not shown; `0` (the default) shows every result.
    pub min_score: f32,
    /// A folder of the dropped tree (`""`: everything).
    pub folder: String,
    pub sort: SortBy,
    /// Dates taken (the file's modified time), inclusive.
    pub range: DateRange,
    /// Near-duplicates shown as one tile with a count (once they are found).
    pub fold: bool,
}

impl Default for Filters {
    fn default() -> Self {
        Self {
            min_score: 0.0,
            folder: String::new(),
            sort: SortBy::Score,
            range: DateRange::default(),
            fold: false,
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The box changed (an `input` event): `text` is its value.
    Typed(String),
    /// Enter in the box: run `text` now.
    Enter(String),
    /// A debounce timer ran out; `text` is the box's value now.
    Paused {
        generation: u32,
        text: String,
    },
    /// The query encoder's state changed.
    Encoder(Encoder),
    /// The query encoder answered.
    Texted {
        job: JobId,
        result: Result<Vec<f32>, String>,
    },
    /// A result's "Similar": the photo becomes the box's query.
    Similar {
        id: u64,
        path: String,
    },
    /// A photo dropped on the search box, encoded: it becomes the box's query.
    Dropped {
        name: String,
        embedding: Vec<f32>,
    },
    /// "Clear".
    Cleared,
    ShowMore,
    /// The minimum-score slider moved (or its remembered value was read at start).
    MinScore(f32),
    Folder(String),
    Sort(SortBy),
    Dates(DateRange),
    Fold(bool),
}

/// What the browser must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Call back with [`Input::Paused`] of this generation after `ms`.
    StartTimer { generation: u32, ms: u32 },
    /// Send this text to the query worker as this job.
    SendText { job: JobId, text: String },
    /// Rank for [`Search::query`] (see `page::results`) and draw the results.
    Render,
    /// Say this in `#search-text`.
    Say(String),
    /// Put this text in the search box (a photo term from Similar or a drop).
    SetBox(String),
    /// Keep the minimum score for the next visit.
    RememberMinScore(f32),
}

/// Texts sent to the query encoder for one query, and what came back so far.
#[derive(Debug, Clone)]
struct InFlight {
    text: String,
    query: CompoundQuery,
    waiting: Vec<(JobId, String)>,
    got: Vec<(String, Vec<f32>)>,
}

/// The search state.
#[derive(Debug, Clone)]
pub struct Search {
    query: Query,
    k: usize,
    generation: u32,
    encoder: Encoder,
    next_job: JobId,
    /// The query whose texts are being encoded (the newest sent).
    in_flight: Option<InFlight>,
    /// A text waiting for the query encoder.
    pending: Option<String>,
    /// Recent text embeddings, oldest first.
    cache: Vec<(String, Vec<f32>)>,
    /// Photos dropped on the box, by the name their term uses, oldest first.
    dropped: Vec<(String, Vec<f32>)>,
    filters: Filters,
}

impl Default for Search {
    fn default() -> Self {
        Self::new()
    }
}

/// The term that names a photo in the box: `@path`, `@"path with spaces"`, or (a path
/// the syntax cannot quote) `@#ID`.
pub fn photo_term(path: &str, id: Option<u64>) -> String {
    if !path.is_empty() && !path.contains('"') && !path.contains(char::is_whitespace) {
        format!("@{path}")
    } else if !path.contains('"') && !path.trim().is_empty() {
        format!("@\"{path}\"")
    } else {
        match id {
            Some(id) => format!("@#{id}"),
            None => format!("@\"{}\"", path.replace('"', "'")),
        }
    }
}

impl Search {
    pub fn new() -> Self {
        Self {
            query: Query::None,
            k: RESULTS_PAGE,
            generation: 0,
            encoder: Encoder::NoModel,
            next_job: JobId(1),
            in_flight: None,
            pending: None,
            cache: Vec::new(),
            dropped: Vec::new(),
            filters: Filters::default(),
        }
    }

    pub fn query(&self) -> &Query {
        &self.query
    }

    /// How many results to show.
    pub fn k(&self) -> usize {
        self.k
    }

    pub fn filters(&self) -> &Filters {
        &self.filters
    }

    /// A text waits for the query encoder.
    pub fn pending(&self) -> Option<&str> {
        self.pending.as_deref()
    }

    /// The embedding of a photo dropped on the box, by the name its term uses.
    pub fn dropped(&self, name: &str) -> Option<&[f32]> {
        self.dropped
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, e)| e.as_slice())
    }

    /// The label of `#results[data-query]`: the box's text the results are for.
    pub fn label(&self) -> Option<String> {
        match &self.query {
            Query::None => None,
            Query::Terms { text, .. } => Some(text.clone()),
        }
    }

    /// The photo `path` (entry `id`) left the index: a search with it as a term ends
    /// (true when one did; the caller draws the results again either way).
    pub fn forget(&mut self, id: u64, path: &str) -> bool {
        let hash_id = format!("#{id}");
        let ended = match &self.query {
            Query::None => false,
            Query::Terms { query, .. } => query
                .terms
                .iter()
                .any(|t| matches!(&t.source, TermSource::Photo(r) if r == path || *r == hash_id)),
        };
        if ended {
            self.query = Query::None;
            self.k = RESULTS_PAGE;
        }
        ended
    }

    pub fn update(&mut self, input: Input) -> Vec<Effect> {
        match input {
            Input::Typed(_) => {
                self.generation = self.generation.wrapping_add(1);
                vec![Effect::StartTimer {
                    generation: self.generation,
                    ms: DEBOUNCE_MS,
                }]
            }
            Input::Paused { generation, text } if generation == self.generation => self.run(text),
            Input::Paused { .. } => Vec::new(),
            Input::Enter(text) => self.run_now(text),
            Input::Encoder(state) => self.encoder_is(state),
            Input::Texted { job, result } => self.texted(job, result),
            Input::Similar { id, path } => self.set_box(photo_term(&path, Some(id))),
            Input::Dropped { name, embedding } => {
                let term = photo_term(&name, None);
                let key = term_reference(&term);
                self.dropped.retain(|(n, _)| *n != key);
                self.dropped.push((key, embedding));
                if self.dropped.len() > DROPPED_KEPT {
                    self.dropped.remove(0);
                }
                self.set_box(term)
            }
            Input::Cleared => {
                self.generation = self.generation.wrapping_add(1);
                self.in_flight = None;
                self.pending = None;
                self.show(Query::None)
            }
            Input::ShowMore => {
                self.k += RESULTS_PAGE;
                vec![Effect::Render]
            }
            Input::MinScore(score) => {
                let score = if score.is_finite() {
                    score.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                self.filters.min_score = score;
                vec![Effect::RememberMinScore(score), Effect::Render]
            }
            Input::Folder(folder) => self.filtered(|f| f.folder = folder),
            Input::Sort(sort) => self.filtered(|f| f.sort = sort),
            Input::Dates(range) => self.filtered(|f| f.range = range),
            Input::Fold(fold) => self.filtered(|f| f.fold = fold),
        }
    }

    fn filtered(&mut self, change: impl FnOnce(&mut Filters)) -> Vec<Effect> {
        change(&mut self.filters);
        self.k = RESULTS_PAGE;
        vec![Effect::Render]
    }

    /// The box says `text` (set by the page) and it runs now.
    fn set_box(&mut self, text: String) -> Vec<Effect> {
        let mut effects = vec![Effect::SetBox(text.clone())];
        effects.extend(self.run_now(text));
        effects
    }

    fn run_now(&mut self, text: String) -> Vec<Effect> {
        // Any timer still running is for older text.
        self.generation = self.generation.wrapping_add(1);
        self.run(text)
    }

    fn show(&mut self, query: Query) -> Vec<Effect> {
        self.query = query;
        self.k = RESULTS_PAGE;
        vec![Effect::Render]
    }

    fn cached(&self, text: &str) -> Option<&[f32]> {
        self.cache
            .iter()
            .find(|(t, _)| t == text)
            .map(|(_, e)| e.as_slice())
    }

    fn remember(&mut self, text: &str, embedding: &[f32]) {
        self.cache.retain(|(t, _)| t != text);
        self.cache.push((text.to_owned(), embedding.to_vec()));
        if self.cache.len() > TEXT_CACHE {
            self.cache.remove(0);
        }
    }

    /// Runs `text` now, or keeps it for the query encoder.
    fn run(&mut self, text: String) -> Vec<Effect> {
        if text.trim().is_empty() {
            self.pending = None;
            self.in_flight = None;
            return self.show(Query::None);
        }
        let query = match parse(&text) {
            Ok(q) => q,
            Err(e) => {
                // The results stay those of the last query that could be read.
                self.in_flight = None;
                return vec![Effect::Say(format!("The query could not be read: {e}."))];
            }
        };
        let mut got = Vec::new();
        let mut missing = Vec::new();
        for t in query.texts() {
            match self.cached(t) {
                Some(e) => got.push((t.to_owned(), e.to_vec())),
                None => missing.push(t.to_owned()),
            }
        }
        if missing.is_empty() {
            self.in_flight = None;
            self.pending = None;
            return self.show(Query::Terms {
                text,
                query,
                texts: got,
            });
        }
        if self.encoder != Encoder::Ready {
            self.in_flight = None;
            self.pending = Some(text);
            return vec![Effect::Say(self.waiting_sentence().to_owned())];
        }
        let mut effects = Vec::new();
        let mut waiting = Vec::new();
        for t in missing {
            let job = self.next_job;
            self.next_job = job.next();
            waiting.push((job, t.clone()));
            effects.push(Effect::SendText { job, text: t });
        }
        self.in_flight = Some(InFlight {
            text,
            query,
            waiting,
            got,
        });
        effects
    }

    fn waiting_sentence(&self) -> &'static str {
        match self.encoder {
            Encoder::NoModel => "Search needs the model: download it first.",
            _ => "The query encoder is loading; your search runs as soon as it is ready.",
        }
    }

    fn encoder_is(&mut self, state: Encoder) -> Vec<Effect> {
        self.encoder = state;
        if state != Encoder::Ready {
            // A query in flight died with its worker: it runs again on the next one.
            if let Some(f) = self.in_flight.take() {
                self.pending.get_or_insert(f.text);
            }
            return Vec::new();
        }
        match self.pending.take() {
            Some(text) => self.run(text),
            None => Vec::new(),
        }
    }

    fn texted(&mut self, job: JobId, result: Result<Vec<f32>, String>) -> Vec<Effect> {
        let Some(flight) = self.in_flight.as_mut() else {
            return Vec::new();
        };
        // An answer to a query that was overtaken (or cleared): dropped.
        let Some(at) = flight.waiting.iter().position(|(j, _)| *j == job) else {
            return Vec::new();
        };
        let (_, text) = flight.waiting.remove(at);
        let embedding = match result {
            Ok(e) => e,
            Err(e) => {
                self.in_flight = None;
                return vec![Effect::Say(format!("The query could not be encoded: {e}"))];
            }
        };
        flight.got.push((text.clone(), embedding.clone()));
        let done = flight.waiting.is_empty();
        self.remember(&text, &embedding);
        if !done {
            return Vec::new();
        }
        match self.in_flight.take() {
            Some(f) => self.show(Query::Terms {
                text: f.text,
                query: f.query,
                texts: f.got,
            }),
            None => Vec::new(),
        }
    }
}

/// The photo reference inside a term made by [`photo_term`] (`@"a b.jpg"` -> `a b.jpg`).
fn term_reference(term: &str) -> String {
    let inner = term.strip_prefix('@').unwrap_or(term);
    inner
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(inner)
        .to_owned()
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
