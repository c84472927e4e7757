//! `#status`, the buttons beside it and the indexing panel, drawn from where the page
//! stands: the stage (storage, download, model), the page's error, and the core's
//! [`View`](crate::page::run::View) of the indexing run (status while busy, progress, the
//! `#index-text` line, Pause / Cancel / Retry saving / Forget / Clear), plus the engine
//! line of the model panel.
//!
//! It must not change the state: it only reads it and writes the DOM. Reference: DESIGN.md
//! "Contract: the page" (the hooks).

use super::{attr, set_progress, set_text, show, State};
use crate::encode::{Backend, EngineKind};
use crate::page::offer::Stage as OfferStage;
use crate::page::protocol::LoadReport;
use crate::page::run::Busy;
use crate::web::driver::{App, Stage};

impl App {
    /// The engine that encodes: the photo encoders' once one is loaded (WebGPU only when
    /// every loaded one runs it), else the query encoder's, else the one asked for.
    fn engine(&self) -> EngineKind {
        let (vision, _) = self.core.vision_engines();
        if !vision.is_empty() {
            return if vision.iter().all(|e| *e == EngineKind::WebGpu) {
                EngineKind::WebGpu
            } else {
                EngineKind::Cpu
            };
        }
        match (self.query.engine(), self.params.backend) {
            (Some(e), _) => e,
            (None, Backend::WebGpu) => EngineKind::WebGpu,
            (None, _) => EngineKind::Cpu,
        }
    }

    /// `#status[data-backend]` and the engine line of the model panel.
    fn show_engine(&self) {
        self.dom.set_backend(self.engine().as_str());
        let (text, vision) = self.engine_details();
        let mut line = match (vision.as_slice(), text) {
            ([], None) => String::new(),
            ([], Some(t)) => format!("Encoding on {t}."),
            ([v], Some(t)) if v == t => format!("Encoding on {t}."),
            (many, t) => {
                let photos = many.join(" and ");
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
            line.push(' ');
            line.push_str(why.trim_end_matches('.'));
            line.push('.');
        }
        set_text(&self.dom.engine_text, &line);
    }

    /// A worker's timings (`role`: `query` or `photos`, the latest photo encoder's) on
    /// `#engine-text` as `data-load-ROLE`, JSON `{"weights": …, "marks": [[step, ms], …]}`:
    /// a hook for benchmarks and tests.
    pub fn note_timings(&mut self, role: &'static str, report: LoadReport) {
        let entry = self.load_reports.entry(role).or_default();
        entry.merge(report);
        match serde_json::to_string(entry) {
            Ok(json) => attr(&self.dom.engine_text, &format!("data-load-{role}"), &json),
            Err(e) => web_sys::console::warn_1(&format!("clipseek: timings: {e}").into()),
        }
    }

    /// Derives `#status`, its buttons and the indexing panel from where things stand.
    pub fn update_status(&mut self) {
        let dom = self.dom.clone();
        let view = self.core.view();
        dom.set_counts(view.indexed, view.skipped);
        self.show_engine();
        let (state, text) = self.status();
        dom.set_status(state, &text);
        let retry = matches!(self.error, Some((_, true)));
        show(
            &dom.download_button,
            self.stage == Stage::NoModel && self.error.is_none() && !self.download_chosen(),
        );
        set_text(&dom.download_button, &self.offer.view().button);
        show(&dom.retry_button, retry);
        show(
            &dom.remove_model_button,
            matches!(self.stage, Stage::Open | Stage::Downloading) || retry,
        );
        let remove = if self.stage == Stage::Downloading {
            "Stop and remove the download"
        } else {
            "Remove model"
        };
        set_text(&dom.remove_model_button, remove);
        self.show_run();
        if self.core.index().is_none() {
            set_text(&dom.search_text, self.search_hint());
        }
    }

    /// The indexing panel from the core's view.
    fn show_run(&mut self) {
        let dom = self.dom.clone();
        let view = self.core.view();
        show(&dom.pause_button, view.running);
        show(&dom.cancel_button, view.running);
        set_text(
            &dom.pause_button,
            if view.paused { "Resume" } else { "Pause" },
        );
        show(&dom.retry_save_button, view.save_error.is_some());
        show(&dom.clear_button, view.can_clear);
        match &view.forget {
            Some(label) => {
                set_text(&dom.forget_button, label);
                show(&dom.forget_button, true);
            }
            None => show(&dom.forget_button, false),
        }
        if !view.line.is_empty() {
            set_text(&dom.index_text, &view.line);
        }
        let (done, total) = view.progress;
        set_progress(&dom.index_progress, done, total);
        let changes = self.core.take_skipped_changes();
        if !changes.is_empty() {
            dom.apply_skipped(changes, view.skipped);
        }
    }

    /// The download was chosen and is about to start (`page::offer`): no button, no question.
    fn download_chosen(&self) -> bool {
        *self.offer.stage() == OfferStage::Chosen
    }

    fn search_hint(&self) -> &'static str {
        match self.stage {
            Stage::Starting => "",
            Stage::NoModel => {
                "Search needs the CLIP model: download it (or drop photos, which starts the \
                 download)."
            }
            Stage::Downloading => {
                "Search works once the model is downloaded; you can drop photos already, they \
                 are indexed right after."
            }
            Stage::Opening | Stage::Open => "Opening your index…",
        }
    }

    fn status(&self) -> (State, String) {
        if let Some((e, _)) = &self.error {
            return (State::Error, e.clone());
        }
        match self.stage {
            Stage::Starting => (State::Loading, "Opening clipseek's storage…".to_owned()),
            Stage::NoModel if self.download_chosen() => (
                State::Downloading,
                "Starting the model download…".to_owned(),
            ),
            Stage::NoModel => {
                if let Some(asked) = self.offer.view().status {
                    return (State::Idle, asked);
                }
                let text = if self.core.has_waiting() {
                    "Your photos will be indexed once the model is downloaded."
                } else {
                    "clipseek needs the CLIP model, downloaded once and then kept in this \
                     browser: press \"Download the model\" or drop photos to start."
                };
                (State::Idle, text.to_owned())
            }
            Stage::Downloading => (State::Downloading, self.download_text.clone()),
            Stage::Opening => (
                State::Loading,
                "Opening the model and your index…".to_owned(),
            ),
            Stage::Open => self.open_status(),
        }
    }

    fn open_status(&self) -> (State, String) {
        if self.collecting > 0 {
            return (State::Indexing, "Reading the dropped files…".to_owned());
        }
        if let Some((busy, text)) = self.core.view().status {
            let state = match busy {
                Busy::Loading => State::Loading,
                Busy::Indexing => State::Indexing,
                Busy::Error => State::Error,
            };
            return (state, text);
        }
        if !self.query.ready() {
            return (State::Loading, "Loading the query encoder…".to_owned());
        }
        let text = match (self.core.indexed(), self.core.note()) {
            (_, Some(note)) => note.to_owned(),
            (0, None) => "Ready. Drop a folder of photos to index it.".to_owned(),
            (1, None) => "Ready: 1 photo indexed.".to_owned(),
            (n, None) => format!("Ready: {n} photos indexed."),
        };
        (State::Ready, text)
    }
}
