//! The search box as a state machine: typing is debounced, Enter runs at once, a blank box
//! clears the results, a query typed before the query encoder is ready runs when it is, a
//! reply to a query that was overtaken is dropped, a query lost with its worker is sent
//! again to the next one, and "Show more" widens the page of results. `update` takes one
//! [`Input`] and returns the [`Effect`]s the browser must carry out (start a timer, send a
//! text to the query worker, draw the results, say a sentence).
//!
//! It must not rank or touch the DOM (the driver `web::search` ranks with `index` and draws);
//! it only decides what the current search is. Reference: DESIGN.md "Contract: the page"
//! (`#query` ranks as you type, debounced; Enter runs it now); issue 8, item 1.

use super::protocol::JobId;

/// Results shown at first, and added by each "Show more".
pub const RESULTS_PAGE: usize = 24;
/// Typing pauses this long before the query runs.
pub const DEBOUNCE_MS: u32 = 150;

/// What the results are for.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    None,
    Text { text: String, embedding: Vec<f32> },
    Similar { id: u64, path: String },
    Image { name: String, embedding: Vec<f32> },
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
    /// Results for another photo or for a dropped photo.
    Show(Query),
    /// "Clear".
    Cleared,
    ShowMore,
}

/// What the browser must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Call back with [`Input::Paused`] of this generation after `ms`.
    StartTimer { generation: u32, ms: u32 },
    /// Send this text to the query worker as this job.
    SendText { job: JobId, text: String },
    /// Rank for [`Search::query`] (the first [`Search::k`]) and draw the results.
    Render,
    /// Say this in `#search-text`.
    Say(String),
}

/// The search state.
#[derive(Debug, Clone)]
pub struct Search {
    query: Query,
    k: usize,
    generation: u32,
    encoder: Encoder,
    next_job: JobId,
    /// The text query in flight (the newest sent) and its text.
    in_flight: Option<(JobId, String)>,
    /// A text waiting for the query encoder.
    pending: Option<String>,
}

impl Default for Search {
    fn default() -> Self {
        Self::new()
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
        }
    }

    pub fn query(&self) -> &Query {
        &self.query
    }

    /// How many results to show.
    pub fn k(&self) -> usize {
        self.k
    }

    /// A text waits for the query encoder.
    pub fn pending(&self) -> Option<&str> {
        self.pending.as_deref()
    }

    /// The label of `#results[data-query]`.
    pub fn label(&self) -> Option<String> {
        match &self.query {
            Query::None => None,
            Query::Text { text, .. } => Some(text.clone()),
            Query::Similar { path, .. } => Some(format!("similar:{path}")),
            Query::Image { name, .. } => Some(format!("image:{name}")),
        }
    }

    /// The photo `id` left the index: a search by it ends (true when one did; the caller
    /// draws the results again either way).
    pub fn forget(&mut self, id: u64) -> bool {
        let ended = matches!(self.query, Query::Similar { id: s, .. } if s == id);
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
            Input::Enter(text) => {
                // Any timer still running is for older text.
                self.generation = self.generation.wrapping_add(1);
                self.run(text)
            }
            Input::Encoder(state) => self.encoder_is(state),
            Input::Texted { job, result } => self.texted(job, result),
            Input::Show(query) => {
                self.in_flight = None;
                self.pending = None;
                self.show(query)
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
        }
    }

    fn show(&mut self, query: Query) -> Vec<Effect> {
        self.query = query;
        self.k = RESULTS_PAGE;
        vec![Effect::Render]
    }

    /// Runs `text` now, or keeps it for the query encoder.
    fn run(&mut self, text: String) -> Vec<Effect> {
        if text.trim().is_empty() {
            self.pending = None;
            self.in_flight = None;
            return self.show(Query::None);
        }
        if self.encoder != Encoder::Ready {
            self.pending = Some(text);
            return vec![Effect::Say(self.waiting_sentence().to_owned())];
        }
        self.send(text)
    }

    fn send(&mut self, text: String) -> Vec<Effect> {
        let job = self.next_job;
        self.next_job = job.next();
        self.in_flight = Some((job, text.clone()));
        vec![Effect::SendText { job, text }]
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
            if let Some((_, text)) = self.in_flight.take() {
                self.pending.get_or_insert(text);
            }
            return Vec::new();
        }
        match self.pending.take() {
            Some(text) => self.send(text),
            None => Vec::new(),
        }
    }

    fn texted(&mut self, job: JobId, result: Result<Vec<f32>, String>) -> Vec<Effect> {
        let text = match &self.in_flight {
            Some((newest, text)) if *newest == job => text.clone(),
            // An answer to a query that was overtaken (or cleared): dropped.
            _ => return Vec::new(),
        };
        self.in_flight = None;
        match result {
            Ok(embedding) => self.show(Query::Text { text, embedding }),
            Err(e) => vec![Effect::Say(format!("The query could not be encoded: {e}"))],
        }
    }
}

/// The line above the results: what they are, for `shown` of `n` photos.
pub fn results_line(query: &Query, shown: usize, n: usize) -> String {
    if n == 0 {
        return "No photos are indexed yet: drop a folder of photos (or choose one) to start, \
                then describe what you are looking for."
            .to_owned();
    }
    match query {
        Query::None => format!(
            "Type to search {n} photo{}, or drop a photo on the search box to find similar ones.",
            if n == 1 { "" } else { "s" }
        ),
        Query::Text { text, .. } if shown < n => {
            format!("The {shown} best of {n} photos for \u{201c}{text}\u{201d}.")
        }
        Query::Text { text, .. } => {
            format!("All {n} photos, best first, for \u{201c}{text}\u{201d}.")
        }
        Query::Similar { path, .. } => format!("Photos most like {path}."),
        Query::Image { name, .. } => format!("Photos most like {name}."),
    }
}

#[cfg(test)]
#[path = "search_tests.rs"]
mod tests;
