//! The model cache: downloading a model's files from the hub into IndexedDB (resumable,
//! verified, with progress), and reading them back — the JSON files whole, the weights
//! tensor by tensor — for the page and the encoder workers alike ([`ModelStore`]).
//!
//! Layout in IndexedDB (`idb::schema`): one manifest per file, key `[model key, file]`:
//! URL, size (from `Content-Range`, else `Content-Length` of a `bytes=0-` answer, else
//! `X-Linked-Size`), entity tag, the expected SHA-256 when `X-Linked-Etag` or `ETag` is a
//! 64-hex-digit SHA-256 (the hub's LFS files), chunk size (`chunk_kb`, else
//! `hub::auto_chunk_bytes`: 8 MiB for ViT-B/32, down to 256 KiB for small files) and state
//! (`downloading` → `verified`); and one record per chunk, key `[model key, file, index]`: `{index, blob,
//! sha256, len}`. The small JSON files are fetched whole as one chunk. `model.safetensors`
//! is fetched with Range requests, one per run of missing chunks, and cut into chunks as
//! the bytes stream in; a chunk is stored the moment it is complete, and a partial chunk is
//! never stored. A dropped connection is retried with backoff (1, 2, 4, 8 s; the count
//! starts again whenever a chunk was saved), then reported with a Retry button; a reload
//! or a closed tab resumes from the stored chunks, so only missing chunks are fetched.
//!
//! Verified before anything may load it (only `verified` files are ever read by
//! [`ModelStore::open_verified`]): every chunk present with its exact length, so the total
//! size; the safetensors header parses and every tensor fits in the file
//! (`SafetensorsHeader::parse`); every tensor the configuration needs is there with its
//! shape; and, when the hub published one, the SHA-256 of the whole file, computed
//! incrementally in chunk order while streaming (chunks stored in an earlier session are
//! read back and hashed in their place; their own recorded SHA-256 is checked on the way,
//! and a chunk that changed in storage is fetched again). On a whole-file mismatch or an
//! unreadable header we drop ALL chunks and fetch the file once more, rather than refetch
//! everything while comparing per-chunk hashes: the hub publishes only a whole-file hash,
//! so our per-chunk hashes (of what we received) cannot say which chunk was bad, and
//! refetching every chunk to compare costs the same network as starting over while adding
//! a second code path. A second mismatch is an error in words: a hub that serves a corrupt
//! file will not heal by retrying.
//!
//! Hosts: the real hub answers `resolve` for large files with a redirect to a CDN on
//! another host (`*.hf.co`, `*.huggingface.co`); `fetch` follows it, and Range still
//! applies. Redirected answers do not show the hub's `X-Linked-Etag` (fetch hides the
//! redirect's headers), so there the SHA-256 is checked only when the CDN's `ETag` is one.
//! The page's Content-Security-Policy is a static meta tag: `connect-src` lists the hub, its
//! CDN hosts and loopback (`http://127.0.0.1:*`, `http://localhost:*`, for local mirrors
//! and tests); any other mirror must be served from the page's own origin or added to
//! `connect-src` in index.html. A refused connection is reported in those words.
//!
//! This module must not decode images, run CLIP or touch the DOM; it may be used from a
//! worker (only the reading half is). Reference: RFC 9110 (Range, Content-Range, ETag),
//! huggingface_hub's `hf_hub_download` (resume, `X-Linked-Etag`/`X-Linked-Size`), and
//! huggingface/ratchet's ranged per-tensor loading in `ratchet-web/src/model.rs`.

use std::cell::{Cell, RefCell};
use std::ops::Range;

use js_sys::{Array, Uint8Array};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    AbortController, Blob, ReadableStreamDefaultReader, RequestCache, RequestInit, Response,
};

use super::idb::{self, schema, Database, IdbError};
use super::{describe_js, now_ms, prop, set_prop};
use crate::hub::{
    format_bytes, parse_hex32, published_sha256, range_header, sha256_from_etag, to_hex,
    ChunkLayout, ContentRange, ModelSource, Rate, JSON_FILES, PYTORCH_FILE, WEIGHTS_FILE,
};
use crate::model::config::ClipConfig;
use crate::model::weights::{ClipWeights, SafetensorsHeader, Towers, WeightsBuilder};

/// Consecutive failed attempts before giving up and showing Retry.
const MAX_TRIES: u32 = 5;
/// The first backoff; it doubles with each failure.
const FIRST_BACKOFF_MS: f64 = 1000.0;
/// Progress reports at most this often.
const PROGRESS_EVERY_MS: f64 = 120.0;

/// Why the model could not be downloaded or read. Each message is one plain sentence.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DownloadError {
    #[error("You are offline and the model has not been downloaded yet. Connect to the internet once to download it; after that clipseek works offline.")]
    Offline,
    #[error("The connection to the model hub at {hub} failed several times ({detail}). {saved} of the model are saved and will not be fetched again; press Retry to continue.")]
    Unreachable {
        hub: String,
        detail: String,
        saved: String,
    },
    #[error("This page's security policy does not allow connecting to {hub}. A mirror must be on this page's own site or listed under connect-src in index.html.")]
    Blocked { hub: String },
    #[error("The hub has no {file} for {model} at revision {revision}.")]
    NotFound {
        file: String,
        model: String,
        revision: String,
    },
    #[error("{model} at revision {revision} publishes only pytorch_model.bin; clipseek needs model.safetensors, so choose a revision that has it.")]
    OnlyPytorch { model: String, revision: String },
    #[error("The hub refused to send {file} (HTTP {status}); the model may be private or gated.")]
    Refused { file: String, status: u16 },
    #[error("The hub answered HTTP {status} for {file}.")]
    Http { file: String, status: u16 },
    #[error("The browser has no room left to store the model (it needs about {needed} in all). Free some disk space or allow this site more storage, then press Retry.")]
    Quota { needed: String },
    #[error("The model could not be saved in the browser's storage. {0}")]
    Storage(IdbError),
    #[error("The downloaded {file} does not match the SHA-256 checksum the hub published, even after downloading it again.")]
    Checksum { file: String },
    #[error("The downloaded {file} is not usable: {message}")]
    BadFile { file: String, message: String },
    #[error("The hub changed {file} while it was downloading, twice; try again later.")]
    Unstable { file: String },
    #[error("The model is not completely downloaded and checked yet.")]
    NotVerified,
    #[error("The download was stopped.")]
    Cancelled,
}

impl From<IdbError> for DownloadError {
    fn from(e: IdbError) -> Self {
        match e {
            IdbError::QuotaExceeded => Self::Quota {
                needed: "the model's size".into(),
            },
            other => Self::Storage(other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileState {
    Downloading,
    Verified,
}

/// What the cache knows about one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileManifest {
    pub url: String,
    pub size_bytes: u64,
    pub etag: Option<String>,
    /// Hex, when the hub published the file's SHA-256.
    pub sha256: Option<String>,
    pub chunk_bytes: u64,
    pub state: FileState,
    /// A checksum or header failure already caused one complete refetch.
    pub refetched: bool,
}

/// One stored chunk.
#[derive(Clone)]
pub struct StoredChunk {
    pub index: u64,
    pub blob: Blob,
    pub sha256: String,
    pub len: u64,
}

/// How much of a model the cache holds.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheState {
    Empty,
    Partial {
        stored_bytes: u64,
        total_bytes: Option<u64>,
    },
    Verified {
        total_bytes: u64,
    },
}

/// The model cache of one model (hub + model + revision) in IndexedDB.
#[derive(Clone)]
pub struct ModelStore {
    db: Database,
    key: String,
}

impl ModelStore {
    pub fn new(db: Database, model_key: String) -> Self {
        Self { db, key: model_key }
    }

    pub fn model_key(&self) -> &str {
        &self.key
    }

    fn file_key(&self, file: &str) -> JsValue {
        idb::key(&[JsValue::from_str(&self.key), JsValue::from_str(file)])
    }

    fn chunk_key(&self, file: &str, index: u64) -> JsValue {
        idb::key(&[
            JsValue::from_str(&self.key),
            JsValue::from_str(file),
            JsValue::from_f64(index as f64),
        ])
    }

    fn chunk_range(&self, file: &str) -> Result<web_sys::IdbKeyRange, IdbError> {
        idb::prefix_range(&[JsValue::from_str(&self.key), JsValue::from_str(file)])
    }

    pub async fn manifest(&self, file: &str) -> Result<Option<FileManifest>, DownloadError> {
        let tx = self.db.read(&[schema::MODEL_FILES])?;
        let value = tx
            .store(schema::MODEL_FILES)?
            .get(&self.file_key(file))
            .await?;
        tx.done().await?;
        Ok(value.and_then(|v| serde_wasm_bindgen::from_value(v).ok()))
    }

    async fn put_manifest(&self, file: &str, manifest: &FileManifest) -> Result<(), DownloadError> {
        let value = to_js(manifest)?;
        let tx = self.db.write(&[schema::MODEL_FILES])?;
        tx.store(schema::MODEL_FILES)?
            .put(&self.file_key(file), &value)?;
        tx.done().await?;
        Ok(())
    }

    /// The stored chunks of `file`, by index.
    pub async fn chunks(&self, file: &str) -> Result<Vec<StoredChunk>, DownloadError> {
        let tx = self.db.read(&[schema::MODEL_CHUNKS])?;
        let values = tx
            .store(schema::MODEL_CHUNKS)?
            .get_all(Some(&self.chunk_range(file)?))
            .await?;
        tx.done().await?;
        let mut chunks: Vec<StoredChunk> = values
            .iter()
            .filter_map(|v| {
                Some(StoredChunk {
                    index: prop(v, "index")?.as_f64()? as u64,
                    blob: prop(v, "blob")?.dyn_into::<Blob>().ok()?,
                    sha256: prop(v, "sha256")?.as_string()?,
                    len: prop(v, "len")?.as_f64()? as u64,
                })
            })
            .collect();
        chunks.sort_by_key(|c| c.index);
        Ok(chunks)
    }

    async fn put_chunk(&self, file: &str, chunk: &StoredChunk) -> Result<(), DownloadError> {
        let record = js_sys::Object::new();
        let set = |k: &str, v: &JsValue| set_prop(&record, k, v);
        set("index", &JsValue::from_f64(chunk.index as f64))
            .and_then(|()| set("blob", &chunk.blob))
            .and_then(|()| set("sha256", &JsValue::from_str(&chunk.sha256)))
            .and_then(|()| set("len", &JsValue::from_f64(chunk.len as f64)))
            .map_err(|e| DownloadError::Storage(js_idb_error(e)))?;
        let tx = self.db.write(&[schema::MODEL_CHUNKS])?;
        tx.store(schema::MODEL_CHUNKS)?
            .put(&self.chunk_key(file, chunk.index), &record)?;
        tx.done().await?;
        Ok(())
    }

    /// Stores a small file whole (one chunk) and its verified manifest, atomically.
    async fn put_whole(
        &self,
        file: &str,
        chunk: &StoredChunk,
        manifest: &FileManifest,
    ) -> Result<(), DownloadError> {
        let record = js_sys::Object::new();
        set_prop(&record, "index", &JsValue::from_f64(0.0))
            .and_then(|()| set_prop(&record, "blob", &chunk.blob))
            .and_then(|()| set_prop(&record, "sha256", &JsValue::from_str(&chunk.sha256)))
            .and_then(|()| set_prop(&record, "len", &JsValue::from_f64(chunk.len as f64)))
            .map_err(|e| DownloadError::Storage(js_idb_error(e)))?;
        let value = to_js(manifest)?;
        let tx = self
            .db
            .write(&[schema::MODEL_FILES, schema::MODEL_CHUNKS])?;
        let chunks = tx.store(schema::MODEL_CHUNKS)?;
        chunks.delete(&self.chunk_range(file)?.into())?;
        chunks.put(&self.chunk_key(file, 0), &record)?;
        tx.store(schema::MODEL_FILES)?
            .put(&self.file_key(file), &value)?;
        tx.done().await?;
        Ok(())
    }

    async fn delete_chunk(&self, file: &str, index: u64) -> Result<(), DownloadError> {
        let tx = self.db.write(&[schema::MODEL_CHUNKS])?;
        tx.store(schema::MODEL_CHUNKS)?
            .delete(&self.chunk_key(file, index))?;
        tx.done().await?;
        Ok(())
    }

    /// Forgets `file`: its manifest and every chunk.
    async fn reset_file(&self, file: &str) -> Result<(), DownloadError> {
        let tx = self
            .db
            .write(&[schema::MODEL_FILES, schema::MODEL_CHUNKS])?;
        tx.store(schema::MODEL_CHUNKS)?
            .delete(&self.chunk_range(file)?.into())?;
        tx.store(schema::MODEL_FILES)?
            .delete(&self.file_key(file))?;
        tx.done().await?;
        Ok(())
    }

    /// Removes this model from the cache.
    pub async fn remove(&self) -> Result<(), DownloadError> {
        let range = idb::prefix_range(&[JsValue::from_str(&self.key)])?;
        let tx = self
            .db
            .write(&[schema::MODEL_FILES, schema::MODEL_CHUNKS])?;
        tx.store(schema::MODEL_CHUNKS)?
            .delete(&range.clone().into())?;
        tx.store(schema::MODEL_FILES)?.delete(&range.into())?;
        tx.done().await?;
        Ok(())
    }

    /// How much of the model is stored.
    pub async fn state(&self) -> Result<CacheState, DownloadError> {
        let mut verified = 0;
        let mut any = false;
        let mut total_bytes = None;
        for file in JSON_FILES.iter().chain([&WEIGHTS_FILE]) {
            if let Some(m) = self.manifest(file).await? {
                any = true;
                if m.state == FileState::Verified {
                    verified += 1;
                }
                if *file == WEIGHTS_FILE {
                    total_bytes = Some(m.size_bytes);
                }
            }
        }
        if verified == JSON_FILES.len() + 1 {
            return Ok(CacheState::Verified {
                total_bytes: total_bytes.unwrap_or(0),
            });
        }
        let stored_bytes: u64 = self.chunks(WEIGHTS_FILE).await?.iter().map(|c| c.len).sum();
        if !any && stored_bytes == 0 {
            return Ok(CacheState::Empty);
        }
        Ok(CacheState::Partial {
            stored_bytes,
            total_bytes,
        })
    }

    /// Reads a verified small file whole.
    async fn read_small(&self, file: &str) -> Result<Vec<u8>, DownloadError> {
        match self.manifest(file).await? {
            Some(m) if m.state == FileState::Verified => {}
            _ => return Err(DownloadError::NotVerified),
        }
        let blob = self
            .chunks(file)
            .await?
            .into_iter()
            .next()
            .map(|c| c.blob)
            .ok_or(DownloadError::NotVerified)?;
        super::read_blob(&blob)
            .await
            .map_err(|e| DownloadError::Storage(js_idb_error(e)))
    }

    /// The model's files, once every one of them is verified.
    pub async fn open_verified(&self) -> Result<VerifiedModel, DownloadError> {
        let config_json = self.read_small("config.json").await?;
        let preprocessor_json = self.read_small("preprocessor_config.json").await?;
        let manifest = match self.manifest(WEIGHTS_FILE).await? {
            Some(m) if m.state == FileState::Verified => m,
            _ => return Err(DownloadError::NotVerified),
        };
        let layout = ChunkLayout::new(manifest.size_bytes, manifest.chunk_bytes);
        let chunks = self.chunks(WEIGHTS_FILE).await?;
        if chunks.len() as u64 != layout.count()
            || chunks.iter().enumerate().any(|(i, c)| c.index != i as u64)
        {
            return Err(DownloadError::NotVerified);
        }
        Ok(VerifiedModel {
            store: self.clone(),
            config_json,
            preprocessor_json,
            weights: BlobFile {
                layout,
                blobs: chunks.into_iter().map(|c| c.blob).collect(),
            },
        })
    }
}

fn js_idb_error(e: JsValue) -> IdbError {
    IdbError::Failed {
        op: "save to storage",
        name: "Error".into(),
        message: describe_js(&e),
    }
}

fn to_js<T: Serialize>(value: &T) -> Result<JsValue, DownloadError> {
    serde_wasm_bindgen::to_value(value).map_err(|e| {
        DownloadError::Storage(IdbError::Failed {
            op: "save to storage",
            name: "SerializeError".into(),
            message: e.to_string(),
        })
    })
}

/// A verified model, ready to be loaded.
pub struct VerifiedModel {
    store: ModelStore,
    pub config_json: Vec<u8>,
    pub preprocessor_json: Vec<u8>,
    pub weights: BlobFile,
}

impl VerifiedModel {
    /// `tokenizer.json` (3.6 MB for CLIP: read only by those who tokenize).
    pub async fn tokenizer_json(&self) -> Result<Vec<u8>, DownloadError> {
        self.store.read_small("tokenizer.json").await
    }
}

/// A file stored as chunk Blobs, read by byte range without ever holding it whole.
pub struct BlobFile {
    layout: ChunkLayout,
    blobs: Vec<Blob>,
}

impl BlobFile {
    pub fn size_bytes(&self) -> u64 {
        self.layout.size_bytes
    }

    /// The bytes in `range`, sliced from the chunks it spans.
    pub async fn read(&self, range: Range<u64>) -> Result<Vec<u8>, DownloadError> {
        let bad = |message: String| DownloadError::BadFile {
            file: WEIGHTS_FILE.into(),
            message,
        };
        if range.end > self.layout.size_bytes || range.start > range.end {
            return Err(bad(format!(
                "bytes {}..{} lie outside the file of {} bytes",
                range.start, range.end, self.layout.size_bytes
            )));
        }
        let parts = Array::new();
        for index in self.layout.covering(range.clone()) {
            let chunk = self.layout.range(index);
            let blob = self
                .blobs
                .get(index as usize)
                .ok_or_else(|| bad(format!("chunk {index} is missing")))?;
            let start = range.start.max(chunk.start) - chunk.start;
            let end = range.end.min(chunk.end) - chunk.start;
            let slice = blob
                .slice_with_f64_and_f64(start as f64, end as f64)
                .map_err(|e| bad(describe_js(&e)))?;
            parts.push(&slice);
        }
        let whole = if parts.length() == 1 {
            parts.get(0).unchecked_into::<Blob>()
        } else {
            Blob::new_with_blob_sequence(&parts).map_err(|e| bad(describe_js(&e)))?
        };
        let bytes = super::read_blob(&whole)
            .await
            .map_err(|e| bad(format!("it could not be read back: {}", describe_js(&e))))?;
        if bytes.len() as u64 != range.end - range.start {
            return Err(bad(format!(
                "reading {} bytes gave {}",
                range.end - range.start,
                bytes.len()
            )));
        }
        Ok(bytes)
    }

    /// Reads and checks the safetensors header (every tensor must fit in the file).
    pub async fn header(&self) -> Result<SafetensorsHeader, DownloadError> {
        let size = self.layout.size_bytes;
        let bad = |e: crate::model::weights::WeightsError| DownloadError::BadFile {
            file: WEIGHTS_FILE.into(),
            message: e.to_string(),
        };
        let first8 = self.read(0..8.min(size)).await?;
        let total = SafetensorsHeader::total_len(&first8, size).map_err(bad)?;
        let front = self.read(0..total).await?;
        SafetensorsHeader::parse(&front, size).map_err(bad)
    }
}

/// Loads the weights of `towers` tensor by tensor (one tensor's bytes in wasm memory at a
/// time, converted to f32 at once), reporting the fraction done.
pub async fn load_weights(
    file: &BlobFile,
    header: &SafetensorsHeader,
    config: &ClipConfig,
    towers: Towers,
    mut on_progress: impl FnMut(f64),
) -> Result<ClipWeights, DownloadError> {
    let bad = |e: crate::model::weights::WeightsError| DownloadError::BadFile {
        file: WEIGHTS_FILE.into(),
        message: e.to_string(),
    };
    let mut builder = WeightsBuilder::for_towers(header, config, towers).map_err(bad)?;
    let plan = builder.plan().to_vec();
    let total: u64 = plan.iter().map(|(_, i)| i.size_bytes).sum::<u64>().max(1);
    let mut done = 0u64;
    for (name, info) in plan {
        let bytes = file
            .read(info.offset_bytes..info.offset_bytes + info.size_bytes)
            .await?;
        builder.insert(&name, &bytes).map_err(bad)?;
        done += info.size_bytes;
        on_progress(done as f64 / total as f64);
    }
    builder.finish().map_err(bad)
}

/// What a download is doing, for the progress bar and its text line.
#[derive(Debug, Clone, PartialEq)]
pub enum Phase {
    /// Fetching the small files or starting the weights.
    Starting,
    /// Streaming the weights.
    Fetching,
    /// Reading back chunks stored earlier to hash them in order.
    Checking,
    /// Waiting `in_ms` before try `attempt` after a failure.
    Retrying { attempt: u32, in_ms: f64 },
    /// Checking the complete file.
    Verifying,
    /// Verification failed; the file is being fetched again.
    Refetching { reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub phase: Phase,
    /// Bytes of the weights stored (plus the chunk in flight).
    pub done_bytes: u64,
    pub total_bytes: Option<u64>,
    pub bytes_per_s: Option<f64>,
    pub eta_s: Option<f64>,
    /// Verification failures so far (each one caused a refetch).
    pub verify_failures: u32,
}

/// Why one attempt failed, and whether to try again.
enum Failure {
    /// The network or the server failed: retry with backoff.
    Transient(String),
    /// The file on the hub is not the one we were downloading: start over.
    Changed,
    /// No retry will help.
    Fatal(DownloadError),
}

impl From<DownloadError> for Failure {
    fn from(e: DownloadError) -> Self {
        Failure::Fatal(e)
    }
}

impl From<IdbError> for Failure {
    fn from(e: IdbError) -> Self {
        Failure::Fatal(e.into())
    }
}

/// Where an in-progress weights download stands, kept across retries in one session.
struct Job {
    manifest: FileManifest,
    layout: ChunkLayout,
    present: Vec<Option<StoredChunk>>,
    /// The first chunk not yet accounted for (hashed and stored).
    next: u64,
    /// SHA-256 of chunks `0..next`, when the hub published the file's hash.
    hasher: Option<Sha256>,
}

impl Job {
    fn stored_bytes(&self) -> u64 {
        self.present.iter().flatten().map(|c| c.len).sum()
    }
}

/// Downloads a model into its [`ModelStore`].
pub struct Download {
    source: ModelSource,
    store: ModelStore,
    on_progress: Box<dyn Fn(&Progress)>,
    cancelled: Cell<bool>,
    abort: RefCell<Option<AbortController>>,
    rate: RefCell<Rate>,
    last_report_ms: Cell<f64>,
    verify_failures: Cell<u32>,
}

impl Download {
    pub fn new(
        source: ModelSource,
        store: ModelStore,
        on_progress: Box<dyn Fn(&Progress)>,
    ) -> Self {
        Self {
            source,
            store,
            on_progress,
            cancelled: Cell::new(false),
            abort: RefCell::new(None),
            rate: RefCell::new(Rate::new(5000.0)),
            last_report_ms: Cell::new(0.0),
            verify_failures: Cell::new(0),
        }
    }

    /// Stops the download at the next chance (the request in flight is aborted).
    pub fn cancel(&self) {
        self.cancelled.set(true);
        if let Some(c) = self.abort.borrow().as_ref() {
            c.abort();
        }
    }

    fn check_cancelled(&self) -> Result<(), DownloadError> {
        if self.cancelled.get() {
            Err(DownloadError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn report(&self, phase: Phase, done: u64, total: Option<u64>, force: bool) {
        let now = now_ms();
        if phase == Phase::Fetching {
            self.rate.borrow_mut().record(now, done as f64);
        }
        if !force && now - self.last_report_ms.get() < PROGRESS_EVERY_MS {
            return;
        }
        self.last_report_ms.set(now);
        let rate = self.rate.borrow();
        let bytes_per_s = rate.per_second();
        let eta_s = total.and_then(|t| rate.eta_seconds(t.saturating_sub(done) as f64));
        (self.on_progress)(&Progress {
            phase,
            done_bytes: done,
            total_bytes: total,
            bytes_per_s,
            eta_s,
            verify_failures: self.verify_failures.get(),
        });
    }

    /// Counts and reports a failed verification (the file is fetched again).
    fn verification_failed(&self, reason: String, total: Option<u64>) {
        self.verify_failures.set(self.verify_failures.get() + 1);
        self.report(Phase::Refetching { reason }, 0, total, true);
    }

    /// Fetches whatever is missing and verifies it. Returns once every file is verified.
    pub async fn run(&self) -> Result<(), DownloadError> {
        self.report(Phase::Starting, 0, None, true);
        for file in JSON_FILES {
            self.with_retries(file, || self.fetch_small(file)).await?;
        }
        self.fetch_weights().await
    }

    /// Runs `attempt` until it succeeds, retrying transient failures with backoff.
    async fn with_retries<F, Fut>(&self, file: &str, attempt: F) -> Result<(), DownloadError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), Failure>>,
    {
        let mut tries = 0;
        let mut changes = 0;
        loop {
            self.check_cancelled()?;
            match attempt().await {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Changed) => {
                    changes += 1;
                    self.store.reset_file(file).await?;
                    if changes > 1 {
                        return Err(DownloadError::Unstable { file: file.into() });
                    }
                }
                Err(Failure::Transient(detail)) => {
                    tries += 1;
                    self.give_up_or_wait(tries, detail, 0, None).await?;
                }
            }
        }
    }

    /// After the `tries`-th failure in a row: an error once there were too many, else a
    /// backoff wait.
    async fn give_up_or_wait(
        &self,
        tries: u32,
        detail: String,
        saved_bytes: u64,
        total: Option<u64>,
    ) -> Result<(), DownloadError> {
        self.check_cancelled()?;
        if let Some(hub) = blocked_by_policy(&self.source.hub) {
            return Err(DownloadError::Blocked { hub });
        }
        let offline = web_sys::window().is_some_and(|w| !w.navigator().on_line());
        if offline && saved_bytes == 0 {
            return Err(DownloadError::Offline);
        }
        if tries >= MAX_TRIES {
            return Err(DownloadError::Unreachable {
                hub: self.source.hub.clone(),
                detail,
                saved: format_bytes(saved_bytes as f64),
            });
        }
        let wait = FIRST_BACKOFF_MS * f64::from(1u32 << (tries - 1).min(4));
        self.report(
            Phase::Retrying {
                attempt: tries + 1,
                in_ms: wait,
            },
            saved_bytes,
            total,
            true,
        );
        super::sleep_ms(wait).await;
        self.rate.borrow_mut().reset();
        self.check_cancelled()
    }

    /// Starts a request (following redirects), with a `Range` header if given.
    async fn request(&self, url: &str, range: Option<&str>) -> Result<Response, Failure> {
        let window =
            web_sys::window().ok_or_else(|| Failure::Transient("downloads need a page".into()))?;
        let init = RequestInit::new();
        init.set_method("GET");
        // The cache is ours (IndexedDB); the HTTP cache would keep a second copy.
        init.set_cache(RequestCache::NoStore);
        if let Some(range) = range {
            let headers =
                web_sys::Headers::new().map_err(|e| Failure::Transient(describe_js(&e)))?;
            headers
                .set("Range", range)
                .map_err(|e| Failure::Transient(describe_js(&e)))?;
            init.set_headers(&headers);
        }
        let controller = AbortController::new().ok();
        if let Some(c) = &controller {
            init.set_signal(Some(&c.signal()));
        }
        *self.abort.borrow_mut() = controller;
        let response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
            .await
            .map_err(|e| Failure::Transient(describe_js(&e)))?;
        self.check_cancelled()?;
        response
            .dyn_into::<Response>()
            .map_err(|e| Failure::Transient(describe_js(&e)))
    }

    /// Turns an unsuccessful HTTP status into a failure.
    async fn status_failure(&self, file: &str, status: u16) -> Failure {
        match status {
            404 if file == WEIGHTS_FILE => {
                let has_bin = match self
                    .request(&self.source.url(PYTORCH_FILE), Some("bytes=0-0"))
                    .await
                {
                    Ok(r) => {
                        if let Some(body) = r.body() {
                            if JsFuture::from(body.cancel()).await.is_err() {
                                // Nothing to release.
                            }
                        }
                        r.ok()
                    }
                    Err(_) => false,
                };
                Failure::Fatal(if has_bin {
                    DownloadError::OnlyPytorch {
                        model: self.source.model.clone(),
                        revision: self.source.revision.clone(),
                    }
                } else {
                    self.not_found(file)
                })
            }
            404 | 410 => Failure::Fatal(self.not_found(file)),
            401 | 403 => Failure::Fatal(DownloadError::Refused {
                file: file.into(),
                status,
            }),
            416 => Failure::Changed,
            408 | 425 | 429 | 500..=599 => Failure::Transient(format!("HTTP {status}")),
            _ => Failure::Fatal(DownloadError::Http {
                file: file.into(),
                status,
            }),
        }
    }

    fn not_found(&self, file: &str) -> DownloadError {
        DownloadError::NotFound {
            file: file.into(),
            model: self.source.model.clone(),
            revision: self.source.revision.clone(),
        }
    }

    /// Fetches a small file whole, checks it against a published SHA-256 and stores it.
    async fn fetch_small(&self, file: &str) -> Result<(), Failure> {
        if let Some(m) = self.store.manifest(file).await? {
            if m.state == FileState::Verified {
                return Ok(());
            }
        }
        let url = self.source.url(file);
        let response = self.request(&url, None).await?;
        if !response.ok() {
            return Err(self.status_failure(file, response.status()).await);
        }
        let expected = expected_sha256(&response);
        let etag = header(&response, "etag");
        let buffer = JsFuture::from(
            response
                .array_buffer()
                .map_err(|e| Failure::Transient(describe_js(&e)))?,
        )
        .await
        .map_err(|e| Failure::Transient(describe_js(&e)))?;
        let bytes = Uint8Array::new(&buffer);
        let sha = Sha256::digest(bytes.to_vec());
        if let Some(expected) = expected {
            if expected != <[u8; 32]>::from(sha) {
                // Fetched again once by the retry loop; a second mismatch is an error.
                let previous = self.store.manifest(file).await?;
                if previous.is_some_and(|m| m.refetched) {
                    return Err(Failure::Fatal(DownloadError::Checksum {
                        file: file.into(),
                    }));
                }
                self.verification_failed(
                    format!("{file} did not match its SHA-256 checksum"),
                    None,
                );
                let marker = FileManifest {
                    url: url.clone(),
                    size_bytes: u64::from(bytes.length()),
                    etag,
                    sha256: Some(to_hex(&expected)),
                    chunk_bytes: u64::from(bytes.length()).max(1),
                    state: FileState::Downloading,
                    refetched: true,
                };
                self.store.put_manifest(file, &marker).await?;
                return Err(Failure::Transient("checksum mismatch".into()));
            }
        }
        let parts = Array::of1(&bytes);
        let blob = Blob::new_with_u8_array_sequence(&parts)
            .map_err(|e| Failure::Transient(describe_js(&e)))?;
        let len = u64::from(bytes.length());
        let chunk = StoredChunk {
            index: 0,
            blob,
            sha256: to_hex(&sha),
            len,
        };
        let manifest = FileManifest {
            url,
            size_bytes: len,
            etag,
            sha256: expected.map(|e| to_hex(&e)),
            chunk_bytes: len.max(1),
            state: FileState::Verified,
            refetched: false,
        };
        self.store.put_whole(file, &chunk, &manifest).await?;
        Ok(())
    }

    /// Downloads, resumes and verifies `model.safetensors`.
    async fn fetch_weights(&self) -> Result<(), DownloadError> {
        let file = WEIGHTS_FILE;
        let mut job: Option<Job> = None;
        let mut tries = 0;
        let mut changes = 0;
        loop {
            self.check_cancelled()?;
            if job.is_none() {
                match self.store.manifest(file).await? {
                    Some(m) if m.state == FileState::Verified => {
                        let total = m.size_bytes;
                        self.report(Phase::Verifying, total, Some(total), true);
                        return Ok(());
                    }
                    Some(m) => job = Some(self.resume_job(m).await?),
                    None => {}
                }
            }
            let saved_before = job.as_ref().map_or(0, Job::stored_bytes);
            let outcome = match job.as_mut() {
                Some(j) => self.advance(j).await,
                None => self.start_job(&mut job).await,
            };
            match outcome {
                Ok(()) => {
                    let Some(j) = job.as_mut() else { continue };
                    if j.next < j.layout.count() {
                        continue;
                    }
                    match self.verify(j).await {
                        Ok(()) => {
                            j.manifest.state = FileState::Verified;
                            self.store.put_manifest(file, &j.manifest).await?;
                            let total = j.layout.size_bytes;
                            self.report(Phase::Verifying, total, Some(total), true);
                            return Ok(());
                        }
                        Err(Failure::Changed) if !j.manifest.refetched => {
                            // Corrupt: drop every chunk and fetch the file once more.
                            self.verification_failed(
                                "model.safetensors did not pass verification (its SHA-256 checksum or header did not match)".into(),
                                Some(j.layout.size_bytes),
                            );
                            let mut manifest = j.manifest.clone();
                            manifest.refetched = true;
                            self.store.reset_file(file).await?;
                            self.store.put_manifest(file, &manifest).await?;
                            job = Some(self.resume_job(manifest).await?);
                        }
                        Err(Failure::Changed) => {
                            return Err(DownloadError::Checksum { file: file.into() })
                        }
                        Err(Failure::Fatal(e)) => return Err(e),
                        // A chunk went missing meanwhile: take stock from storage again.
                        Err(Failure::Transient(_)) => job = None,
                    }
                }
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Changed) => {
                    changes += 1;
                    self.store.reset_file(file).await?;
                    job = None;
                    if changes > 1 {
                        return Err(DownloadError::Unstable { file: file.into() });
                    }
                }
                Err(Failure::Transient(detail)) => {
                    let saved = job.as_ref().map_or(0, Job::stored_bytes);
                    if saved > saved_before {
                        tries = 0;
                    }
                    tries += 1;
                    let total = job.as_ref().map(|j| j.layout.size_bytes);
                    self.give_up_or_wait(tries, detail, saved, total).await?;
                }
            }
        }
    }

    /// A job for a download begun earlier: what is stored, in order.
    async fn resume_job(&self, manifest: FileManifest) -> Result<Job, DownloadError> {
        let layout = ChunkLayout::new(manifest.size_bytes, manifest.chunk_bytes);
        let mut present: Vec<Option<StoredChunk>> = vec![None; layout.count() as usize];
        for chunk in self.store.chunks(WEIGHTS_FILE).await? {
            let fits = chunk.len == layout.len_of(chunk.index);
            match present.get_mut(chunk.index as usize) {
                Some(slot) if fits => *slot = Some(chunk),
                _ => self.store.delete_chunk(WEIGHTS_FILE, chunk.index).await?,
            }
        }
        let hasher = manifest.sha256.as_ref().map(|_| Sha256::new());
        Ok(Job {
            manifest,
            layout,
            present,
            next: 0,
            hasher,
        })
    }

    /// The SHA-256 the hub's API publishes for the weights, for when the file's own answer
    /// does not carry it (the real hub redirects LFS files to a CDN whose headers do not).
    /// Any failure means `None`, said on the console: the size and header checks remain.
    async fn published_sha256(&self) -> Option<[u8; 32]> {
        let url = self.source.info_url();
        let found = async {
            let window = web_sys::window().ok_or_else(|| "no window".to_owned())?;
            let init = RequestInit::new();
            init.set_method("GET");
            init.set_cache(RequestCache::NoStore);
            let response: Response = JsFuture::from(window.fetch_with_str_and_init(&url, &init))
                .await
                .map_err(|e| describe_js(&e))?
                .dyn_into()
                .map_err(|e| describe_js(&e))?;
            if !response.ok() {
                return Err(format!("HTTP {}", response.status()));
            }
            let text = JsFuture::from(response.text().map_err(|e| describe_js(&e))?)
                .await
                .map_err(|e| describe_js(&e))?
                .as_string()
                .unwrap_or_default();
            published_sha256(text.as_bytes(), WEIGHTS_FILE)
                .ok_or_else(|| format!("it lists no SHA-256 for {WEIGHTS_FILE}"))
        }
        .await;
        match found {
            Ok(sha) => Some(sha),
            Err(e) => {
                web_sys::console::warn_1(&JsValue::from_str(&format!(
                    "clipseek: {WEIGHTS_FILE} will be checked by size and header only: the hub's answer carries no SHA-256 and its API ({url}) did not give one ({e})"
                )));
                None
            }
        }
    }

    /// The first request of a new download: `bytes=0-`, whose answer says the size.
    async fn start_job(&self, job: &mut Option<Job>) -> Result<(), Failure> {
        let file = WEIGHTS_FILE;
        let url = self.source.url(file);
        let response = self.request(&url, Some("bytes=0-")).await?;
        let status = response.status();
        if status != 206 && status != 200 {
            return Err(self.status_failure(file, status).await);
        }
        let size = ContentRange::parse(&header(&response, "content-range").unwrap_or_default())
            .filter(|r| r.first == 0)
            .and_then(|r| r.total)
            .or_else(|| header(&response, "content-length").and_then(|v| v.parse().ok()))
            .or_else(|| header(&response, "x-linked-size").and_then(|v| v.parse().ok()))
            .ok_or_else(|| {
                Failure::Fatal(DownloadError::BadFile {
                    file: file.into(),
                    message: "the hub did not say how large it is".into(),
                })
            })?;
        let sha256 = match expected_sha256(&response) {
            Some(s) => Some(s),
            None => self.published_sha256().await,
        };
        let manifest = FileManifest {
            url,
            size_bytes: size,
            etag: header(&response, "etag"),
            sha256: sha256.map(|s| to_hex(&s)),
            chunk_bytes: self.source.chunk_bytes_for(size),
            state: FileState::Downloading,
            refetched: false,
        };
        self.store.put_manifest(file, &manifest).await?;
        let mut new_job = self.resume_job(manifest).await?;
        let run = 0..new_job.layout.count();
        let result = self.consume(&mut new_job, &response, run, 0).await;
        *job = Some(new_job);
        result
    }

    /// Accounts for chunks from `job.next` on: stored ones are hashed in place (when a
    /// whole-file hash is expected), each run of missing ones is fetched with one Range
    /// request. Returns when every chunk is stored, or at the first failure.
    async fn advance(&self, job: &mut Job) -> Result<(), Failure> {
        let count = job.layout.count();
        while job.next < count {
            self.check_cancelled()?;
            let i = job.next;
            if let Some(chunk) = job.present[i as usize].clone() {
                if job.hasher.is_some() {
                    self.report(
                        Phase::Checking,
                        job.layout.range(i).end,
                        Some(job.layout.size_bytes),
                        false,
                    );
                    let bytes = super::read_blob(&chunk.blob)
                        .await
                        .map_err(|e| Failure::Transient(describe_js(&e)))?;
                    let sha = to_hex(&Sha256::digest(&bytes));
                    if sha != chunk.sha256 || bytes.len() as u64 != chunk.len {
                        // Changed in storage: fetch it again.
                        self.store.delete_chunk(WEIGHTS_FILE, i).await?;
                        job.present[i as usize] = None;
                        continue;
                    }
                    if let Some(h) = job.hasher.as_mut() {
                        h.update(&bytes);
                    }
                }
                job.next += 1;
                continue;
            }
            let mut end = i + 1;
            while end < count && job.present[end as usize].is_none() {
                end += 1;
            }
            let run = i..end;
            let range = range_header(&job.layout, &run);
            let response = self.request(&job.manifest.url, Some(&range)).await?;
            let status = response.status();
            let start_byte = job.layout.range(i).start;
            let skip = match status {
                206 => {
                    let want_len = job.layout.range(end - 1).end - start_byte;
                    let content_range = ContentRange::parse(
                        &header(&response, "content-range").unwrap_or_default(),
                    );
                    let fits = match content_range {
                        Some(r) => {
                            r.first == start_byte
                                && r.total.is_none_or(|t| t == job.layout.size_bytes)
                        }
                        // Content-Range not exposed to us: the length must still match.
                        None => header(&response, "content-length")
                            .and_then(|v| v.parse::<u64>().ok())
                            .is_none_or(|n| n == want_len),
                    };
                    if !fits || self.etag_changed(&response, &job.manifest) {
                        return Err(Failure::Changed);
                    }
                    0
                }
                // The server ignored Range: read from the start, dropping what we have.
                200 => {
                    let len = header(&response, "content-length").and_then(|v| v.parse().ok());
                    if len.is_some_and(|n: u64| n != job.layout.size_bytes)
                        || self.etag_changed(&response, &job.manifest)
                    {
                        return Err(Failure::Changed);
                    }
                    start_byte
                }
                _ => return Err(self.status_failure(WEIGHTS_FILE, status).await),
            };
            self.consume(job, &response, run, skip).await?;
        }
        Ok(())
    }

    fn etag_changed(&self, response: &Response, manifest: &FileManifest) -> bool {
        match (&manifest.etag, header(response, "etag")) {
            (Some(a), Some(b)) => strip_weak(a) != strip_weak(&b),
            _ => false,
        }
    }

    /// Streams `response` (which starts `skip` bytes before chunk `run.start`) into the
    /// chunks of `run`, hashing and storing each chunk as soon as it is complete.
    async fn consume(
        &self,
        job: &mut Job,
        response: &Response,
        run: Range<u64>,
        mut skip: u64,
    ) -> Result<(), Failure> {
        let body = response
            .body()
            .ok_or_else(|| Failure::Transient("the answer had no body".into()))?;
        let reader = ReadableStreamDefaultReader::new(&body)
            .map_err(|e| Failure::Transient(describe_js(&e)))?;
        let mut result = self.consume_reader(job, &reader, run, &mut skip).await;
        if result.is_ok() {
            // Normally the answer ends exactly here; reading its end (rather than cancelling)
            // lets the request finish cleanly.
            match JsFuture::from(reader.read()).await {
                Ok(next) if prop(&next, "done").and_then(|d| d.as_bool()) == Some(true) => {
                    return result
                }
                Ok(_) => {}
                Err(e) => result = Err(Failure::Transient(describe_js(&e))),
            }
        }
        // More bytes than asked for, or a failure: let go of the connection.
        if JsFuture::from(reader.cancel()).await.is_err() {
            // Cancelling an errored stream rejects; there is nothing left to release.
        }
        result
    }

    async fn consume_reader(
        &self,
        job: &mut Job,
        reader: &ReadableStreamDefaultReader,
        run: Range<u64>,
        skip: &mut u64,
    ) -> Result<(), Failure> {
        let total = job.layout.size_bytes;
        let mut index = run.start;
        let mut filled = 0u64;
        let mut parts = Array::new();
        let mut chunk_hasher = Sha256::new();
        let mut file_hasher = job.hasher.clone();
        let mut buffer: Vec<u8> = Vec::new();
        let mut stored = job.stored_bytes();
        while index < run.end {
            self.check_cancelled()?;
            let next = JsFuture::from(reader.read())
                .await
                .map_err(|e| Failure::Transient(describe_js(&e)))?;
            if prop(&next, "done").and_then(|d| d.as_bool()) == Some(true) {
                return Err(Failure::Transient("the connection closed early".into()));
            }
            let Some(piece) = prop(&next, "value").and_then(|v| v.dyn_into::<Uint8Array>().ok())
            else {
                continue;
            };
            let len = u64::from(piece.length());
            let mut offset = 0u64;
            while offset < len && index < run.end {
                if *skip > 0 {
                    let n = (*skip).min(len - offset);
                    *skip -= n;
                    offset += n;
                    continue;
                }
                let chunk_len = job.layout.len_of(index);
                let n = (chunk_len - filled).min(len - offset);
                let sub = piece.subarray(offset as u32, (offset + n) as u32);
                buffer.resize(n as usize, 0);
                sub.copy_to(&mut buffer);
                chunk_hasher.update(&buffer);
                if let Some(h) = file_hasher.as_mut() {
                    h.update(&buffer);
                }
                parts.push(&sub);
                filled += n;
                offset += n;
                if filled == chunk_len {
                    let blob = Blob::new_with_u8_array_sequence(&parts)
                        .map_err(|e| Failure::Transient(describe_js(&e)))?;
                    let sha = std::mem::take(&mut chunk_hasher).finalize();
                    let chunk = StoredChunk {
                        index,
                        blob,
                        sha256: to_hex(&sha),
                        len: chunk_len,
                    };
                    self.store
                        .put_chunk(WEIGHTS_FILE, &chunk)
                        .await
                        .map_err(|e| match e {
                            DownloadError::Quota { .. } => Failure::Fatal(DownloadError::Quota {
                                needed: format_bytes(total as f64),
                            }),
                            other => Failure::Fatal(other),
                        })?;
                    stored += chunk_len;
                    job.present[index as usize] = Some(chunk);
                    job.next = index + 1;
                    job.hasher = file_hasher.clone();
                    index += 1;
                    filled = 0;
                    parts = Array::new();
                }
            }
            self.report(Phase::Fetching, stored + filled, Some(total), false);
        }
        Ok(())
    }

    /// Checks the complete file. `Failure::Changed` means corrupt (refetch once).
    async fn verify(&self, job: &Job) -> Result<(), Failure> {
        let file = WEIGHTS_FILE;
        let total = job.layout.size_bytes;
        self.report(Phase::Verifying, total, Some(total), true);
        let mut blobs = Vec::with_capacity(job.present.len());
        for (i, chunk) in job.present.iter().enumerate() {
            match chunk {
                Some(c) if c.len == job.layout.len_of(i as u64) => blobs.push(c.blob.clone()),
                _ => return Err(Failure::Transient(format!("chunk {i} is missing"))),
            }
        }
        let weights = BlobFile {
            layout: job.layout,
            blobs,
        };
        let header = match weights.header().await {
            Ok(h) => h,
            Err(DownloadError::BadFile { message, .. }) => {
                web_sys::console::warn_1(&JsValue::from_str(&format!(
                    "model.safetensors: unreadable header ({message}); fetching it again"
                )));
                return Err(Failure::Changed);
            }
            Err(e) => return Err(Failure::Fatal(e)),
        };
        if let (Some(expected), Some(hasher)) = (&job.manifest.sha256, &job.hasher) {
            let got = to_hex(&hasher.clone().finalize());
            if parse_hex32(expected).map(|e| to_hex(&e)) != Some(got.clone()) {
                web_sys::console::warn_1(&JsValue::from_str(&format!(
                    "model.safetensors: SHA-256 {got}, expected {expected}"
                )));
                return Err(Failure::Changed);
            }
        }
        // The configuration must find every tensor it needs (a wrong or partial
        // checkpoint is not fixed by fetching it again).
        let config_json = self.store.read_small("config.json").await?;
        let config = ClipConfig::from_json(&config_json).map_err(|e| {
            Failure::Fatal(DownloadError::BadFile {
                file: "config.json".into(),
                message: e.to_string(),
            })
        })?;
        header.plan(&config, Towers::Both).map_err(|e| {
            Failure::Fatal(DownloadError::BadFile {
                file: file.into(),
                message: e.to_string(),
            })
        })?;
        Ok(())
    }
}

fn strip_weak(etag: &str) -> &str {
    etag.trim().trim_start_matches("W/").trim_matches('"')
}

fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).ok().flatten()
}

/// The SHA-256 the hub published for this answer's file, if any.
fn expected_sha256(response: &Response) -> Option<[u8; 32]> {
    header(response, "x-linked-etag")
        .and_then(|v| sha256_from_etag(&v))
        .or_else(|| header(response, "etag").and_then(|v| sha256_from_etag(&v)))
}

thread_local! {
    /// Origins the page's CSP refused to connect to (set by the page's
    /// `securitypolicyviolation` listener).
    static BLOCKED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// Records a `connect-src` refusal (called by the page).
pub fn note_blocked(uri: &str) {
    BLOCKED.with(|b| b.borrow_mut().push(uri.to_owned()));
}

/// `Some(hub)` if the CSP refused a connection to the hub.
fn blocked_by_policy(hub: &str) -> Option<String> {
    BLOCKED.with(|b| {
        b.borrow()
            .iter()
            .any(|uri| uri.starts_with(hub) || hub.starts_with(uri.as_str()))
            .then(|| hub.to_owned())
    })
}
