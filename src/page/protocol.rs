//! The messages between the page and its encoder workers, typed: every reply that can fail
//! carries a `Result` (no `Option` pairs that allow "both" or "neither"), job ids are a
//! newtype, content hashes are `[u8; 32]`. They travel as serde values (serde-wasm-bindgen
//! in the browser; the photos and thumbnails ride beside them as File/ArrayBuffer handles).
//! A message the page cannot read — an old worker after an app update — is a
//! [`ProtocolError`] the page shows with [`ProtocolError::sentence`], never a silent drop.
//!
//! It must not know about the browser: `web::worker` posts and reads these, natively they
//! round-trip through serde_json in the tests below. Reference: issue 8, item 3.

use serde::{Deserialize, Serialize};

use crate::encode::{Backend, EngineKind, PrecisionChoice};

/// SHA-256 of a file's bytes.
pub type Hash = [u8; 32];

/// A job the page sent: the reply names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u32);

impl JobId {
    /// The id after this one (wrapping).
    pub fn next(self) -> Self {
        Self(self.0.wrapping_add(1))
    }
}

/// Which tower a worker loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tower {
    Vision,
    Text,
}

/// Page → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ToWorker {
    /// Load this tower of this cached model on the engine `backend` says.
    Load {
        model_key: String,
        tower: Tower,
        backend: Backend,
        precision: PrecisionChoice,
    },
    /// Content hashes already in the index: a photo with one of them is answered
    /// [`Photo::Duplicate`] without decoding (a renamed or copied file reuses its embedding).
    KnownHashes { hashes: Vec<Hash> },
    /// Encode the photos sent alongside as `files` (one per key).
    Encode {
        job: JobId,
        keys: Vec<u32>,
        thumbnails: bool,
        dedupe: bool,
    },
    /// Embed one query text.
    Text { job: JobId, text: String },
}

/// What became of one photo that could be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Photo {
    /// Encoded; a thumbnail rides beside the message at this item's position when
    /// `thumb` is true.
    Embedded {
        hash: Hash,
        embedding: Vec<f32>,
        thumb: bool,
        /// Decoded by the browser, not by our PIL-exact decoders (`page::browser_decode`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        browser: bool,
        /// When it was taken, from its EXIF, read during its decode
        /// (`model::preprocess::exif::date_taken`); absent from an older worker.
        #[serde(default)]
        taken_ms: Option<i64>,
    },
    /// Its hash is among the known ones: the page reuses that entry's embedding (and its
    /// date taken: the same bytes hold the same EXIF).
    Duplicate { hash: Hash },
}

impl Photo {
    pub fn hash(&self) -> &Hash {
        match self {
            Photo::Embedded { hash, .. } | Photo::Duplicate { hash } => hash,
        }
    }
}

/// One photo's outcome: the photo, or the plain sentence saying why not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemOut {
    pub key: u32,
    pub result: Result<Photo, String>,
}

/// Worker → page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FromWorker {
    /// The wasm is running and listening.
    Started,
    Loading {
        fraction: f64,
    },
    Loaded {
        model_id: String,
        engine: EngineKind,
        /// The engine in words, e.g. "WebGPU on SwiftShader Device (f32)".
        detail: String,
        /// Why WebGPU is not used under `backend=auto`.
        fallback: Option<String>,
    },
    /// The WebGPU engine failed (device lost) under `backend=auto`: this worker now runs
    /// the CPU engine; the work in hand was redone there.
    Switched {
        engine: EngineKind,
        detail: String,
        reason: String,
    },
    /// The model could not be loaded.
    Failed {
        error: String,
    },
    /// Photos encoded; `thumbs` (ArrayBuffer or null per item) rides alongside.
    Encoded {
        job: JobId,
        items: Vec<ItemOut>,
    },
    /// A query text embedded, or why not.
    Texted {
        job: JobId,
        result: Result<Vec<f32>, String>,
    },
    /// Where the worker's time went (after `Loaded`, and after its first batch): for
    /// benchmarks and tests only, nothing depends on it.
    Timings {
        report: LoadReport,
    },
}

/// Where a worker's load and first work went, in milliseconds per step (`open`: the cached
/// model opened and its header read; `read` / `convert`: the weights read from storage and
/// turned into f32 tensors; `build`: the engine built, quantised when 8-bit;
/// `packed_read` / `packed_build`: the kept 8-bit weights read and the engine made from
/// them; `packed_absent`: looking for them and finding none; `tokenizer` /
/// `preprocessor`; `first_batch`: the first photos or text encoded), and a vision worker's
/// running totals of its work since the load (`work`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LoadReport {
    /// Where the engine's weights came from: `packed` (the 8-bit weights an earlier load
    /// kept), `model` (`model.safetensors`), or empty when this report does not say.
    pub weights: String,
    pub marks: Vec<(String, f64)>,
    /// Milliseconds spent per step on every batch since the load, summed (`read`, `hash`,
    /// `decode`, `pixels`, `thumb`, `model`, `post`), and `photos`: how many were encoded.
    /// A later report's totals replace these (empty: unchanged).
    #[serde(default)]
    pub work: Vec<(String, f64)>,
}

impl LoadReport {
    pub fn mark(&mut self, step: &str, ms: f64) {
        self.marks
            .push((step.to_owned(), (ms * 10.0).round() / 10.0));
    }

    /// A later report of the same worker added to this one (a worker loaded again, e.g.
    /// after a crash, starts afresh).
    pub fn merge(&mut self, later: LoadReport) {
        if !later.weights.is_empty() {
            *self = later;
            return;
        }
        self.marks.extend(later.marks);
        if !later.work.is_empty() {
            self.work = later.work;
        }
    }
}

/// A vision worker's running totals of its work per step (`LoadReport::work`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorkTotals {
    steps: Vec<(&'static str, f64)>,
}

impl WorkTotals {
    /// Adds `ms` to `step`'s total.
    pub fn add(&mut self, step: &'static str, ms: f64) {
        match self.steps.iter_mut().find(|(s, _)| *s == step) {
            Some((_, total)) => *total += ms,
            None => self.steps.push((step, ms)),
        }
    }

    /// The totals, rounded to 0.1 ms, as a report carries them.
    pub fn report(&self) -> LoadReport {
        let work = self
            .steps
            .iter()
            .map(|(s, ms)| ((*s).to_owned(), (ms * 10.0).round() / 10.0))
            .collect();
        LoadReport {
            work,
            ..LoadReport::default()
        }
    }
}

/// A message that does not fit the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("unreadable message from {from}: {detail}")]
    Unreadable { from: &'static str, detail: String },
}

impl ProtocolError {
    /// What the page says: one plain sentence, with the way out.
    pub fn sentence(&self) -> String {
        match self {
            ProtocolError::Unreadable { from, .. } => format!(
                "The {from} sent a message this page cannot read (it may be from another \
                 version of clipseek); reload the page."
            ),
        }
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
