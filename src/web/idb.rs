//! A small async wrapper over IndexedDB, usable from the page and from workers: open a
//! database with a versioned upgrade, then transactions whose requests (get, put, delete,
//! getAll, getAllKeys, count, clear) and whose completion are awaited as JS Promises.
//!
//! Each request and transaction is wrapped in a Promise that always resolves (on success,
//! error, complete or abort) and is then inspected, so nothing here can leave an unhandled
//! rejection behind, and every failure comes back as an [`IdbError`] — quota exhaustion as
//! its own variant, because it needs its own words in the UI. Writes issued without
//! awaiting (`put`, `delete`, `clear`) report their failure through [`Tx::done`], which
//! callers must await: a write is only durable once its transaction completed. This module
//! must not know what is stored (that is `model_cache` and `photo_store.rs`) and must not
//! hold a transaction across an await on anything but its own requests (IndexedDB commits
//! a transaction as soon as it has no pending request). Big binary data belongs in Blobs:
//! an ArrayBuffer value reads back about ten times slower. Reference: the IndexedDB 3.0
//! specification; the shape of huggingface/ratchet's `ratchet-web/src/db.rs`.

use std::rc::Rc;

use js_sys::{Array, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    DomException, Event, IdbDatabase, IdbFactory, IdbKeyRange, IdbObjectStore, IdbOpenDbRequest,
    IdbRequest, IdbTransaction, IdbTransactionMode,
};

/// Why a storage operation failed. Each message is one plain sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdbError {
    #[error("This browser offers no IndexedDB storage here (private browsing can turn it off), so nothing can be kept between visits.")]
    Unavailable,
    #[error("The browser's storage for this site is full.")]
    QuotaExceeded,
    #[error("Another clipseek tab keeps an older version of its storage open; close the other tabs and reload.")]
    Blocked,
    #[error("The browser refused to {op}: {message}")]
    Failed {
        op: &'static str,
        name: String,
        message: String,
    },
    #[error("The browser did not finish saving ({message}).")]
    Aborted { message: String },
}

impl IdbError {
    fn from_dom(op: &'static str, e: &DomException) -> Self {
        if e.name() == "QuotaExceededError" {
            return Self::QuotaExceeded;
        }
        Self::Failed {
            op,
            name: e.name(),
            message: e.message(),
        }
    }

    /// From whatever a synchronous IndexedDB call threw.
    fn from_js(op: &'static str, e: JsValue) -> Self {
        if let Some(dom) = e.dyn_ref::<DomException>() {
            return Self::from_dom(op, dom);
        }
        Self::Failed {
            op,
            name: "Error".into(),
            message: super::describe_js(&e),
        }
    }
}

/// The global `indexedDB` of the page or the worker.
fn factory() -> Result<IdbFactory, IdbError> {
    Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .ok()
        .and_then(|f| f.dyn_into::<IdbFactory>().ok())
        .ok_or(IdbError::Unavailable)
}

/// A Promise that resolves with the event when `target` fires any of `events`; it never
/// rejects (the caller inspects the request or transaction afterwards).
fn settled(target: &JsValue, events: &[&str]) -> Promise {
    let target = target.clone();
    let events: Vec<String> = events.iter().map(|e| format!("on{e}")).collect();
    Promise::new(&mut |resolve, _reject| {
        for e in &events {
            // Setting an event-handler property cannot fail on these objects.
            if Reflect::set(&target, &JsValue::from_str(e), &resolve).is_err() {
                web_sys::console::warn_1(&JsValue::from_str("idb: could not set a handler"));
            }
        }
    })
}

/// Awaits a request and returns its result, or its error.
async fn finish(op: &'static str, request: IdbRequest) -> Result<JsValue, IdbError> {
    let promise = settled(&request, &["success", "error"]);
    JsFuture::from(promise)
        .await
        .map_err(|e| IdbError::from_js(op, e))?;
    match request.error() {
        Ok(Some(e)) => Err(IdbError::from_dom(op, &e)),
        Ok(None) => request.result().map_err(|e| IdbError::from_js(op, e)),
        Err(e) => Err(IdbError::from_js(op, e)),
    }
}

/// Upgrades the schema from `old_version` (0 for a new database) inside the
/// `versionchange` transaction.
pub type Upgrade = fn(&IdbDatabase, u32) -> Result<(), JsValue>;

/// The `upgradeneeded` handler: runs `upgrade` from the old version and, when it fails,
/// keeps the reason in `failure` and aborts the upgrade (the database stays as it was).
fn upgrade_handler(
    request: &IdbOpenDbRequest,
    failure: &Rc<std::cell::RefCell<Option<String>>>,
    upgrade: Upgrade,
) -> Closure<dyn FnMut(Event)> {
    let request = request.clone();
    let failure = failure.clone();
    Closure::<dyn FnMut(Event)>::new(move |event: Event| {
        let old = Reflect::get(&event, &JsValue::from_str("oldVersion"))
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0) as u32;
        let result = request
            .result()
            .and_then(|db| db.dyn_into::<IdbDatabase>())
            .and_then(|db| upgrade(&db, old));
        if let Err(e) = result {
            *failure.borrow_mut() = Some(super::describe_js(&e));
            if let Some(tx) = request.transaction() {
                if tx.abort().is_err() {
                    web_sys::console::warn_1(&JsValue::from_str(
                        "idb: could not abort the failed upgrade",
                    ));
                }
            }
        }
    })
}

/// An open database. Cheap to clone.
#[derive(Clone)]
pub struct Database {
    inner: Rc<Inner>,
}

struct Inner {
    db: IdbDatabase,
    /// Closes this connection when another context upgrades the schema, so the upgrade is
    /// not blocked by us; kept alive as long as the connection.
    _on_version_change: Closure<dyn FnMut(Event)>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.close();
    }
}

impl Database {
    /// Opens (creating or upgrading with `upgrade`) the database `name` at `version`.
    pub async fn open(name: &str, version: u32, upgrade: Upgrade) -> Result<Self, IdbError> {
        let request: IdbOpenDbRequest = factory()?
            .open_with_u32(name, version)
            .map_err(|e| IdbError::from_js("open the database", e))?;
        let failure: Rc<std::cell::RefCell<Option<String>>> = Rc::default();
        let on_upgrade = upgrade_handler(&request, &failure, upgrade);
        request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
        let promise = settled(&request, &["success", "error", "blocked"]);
        let event = JsFuture::from(promise)
            .await
            .map_err(|e| IdbError::from_js("open the database", e))?;
        request.set_onupgradeneeded(None);
        drop(on_upgrade);
        if let Some(message) = failure.borrow_mut().take() {
            return Err(IdbError::Failed {
                op: "prepare its storage",
                name: "UpgradeError".into(),
                message,
            });
        }
        Self::opened(&request, &event)
    }

    /// The connection an open request settled with (`event`), or why there is none.
    fn opened(request: &IdbOpenDbRequest, event: &JsValue) -> Result<Self, IdbError> {
        let kind = Reflect::get(event, &JsValue::from_str("type"))
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default();
        if kind == "blocked" {
            return Err(IdbError::Blocked);
        }
        if let Ok(Some(e)) = request.error() {
            return Err(IdbError::from_dom("open the database", &e));
        }
        let db: IdbDatabase = request
            .result()
            .and_then(|db| db.dyn_into::<IdbDatabase>())
            .map_err(|e| IdbError::from_js("open the database", e))?;
        let on_version_change = {
            let db = db.clone();
            Closure::<dyn FnMut(Event)>::new(move |_event: Event| db.close())
        };
        db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        Ok(Self {
            inner: Rc::new(Inner {
                db,
                _on_version_change: on_version_change,
            }),
        })
    }

    /// A read-only transaction over `stores`.
    pub fn read(&self, stores: &[&str]) -> Result<Tx, IdbError> {
        self.transaction(stores, IdbTransactionMode::Readonly)
    }

    /// A read-write transaction over `stores`.
    pub fn write(&self, stores: &[&str]) -> Result<Tx, IdbError> {
        self.transaction(stores, IdbTransactionMode::Readwrite)
    }

    fn transaction(&self, stores: &[&str], mode: IdbTransactionMode) -> Result<Tx, IdbError> {
        let names: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
        let tx = self
            .inner
            .db
            .transaction_with_str_sequence_and_mode(&names, mode)
            .map_err(|e| IdbError::from_js("start a storage transaction", e))?;
        // Listen from the start, so completion is never missed.
        let done = settled(&tx, &["complete", "abort", "error"]);
        Ok(Tx { tx, done })
    }
}

/// One transaction. Await [`Tx::done`] after the last request: that is when the writes
/// are durable (or their failure is known).
pub struct Tx {
    tx: IdbTransaction,
    done: Promise,
}

impl Tx {
    pub fn store(&self, name: &str) -> Result<Store, IdbError> {
        self.tx
            .object_store(name)
            .map(|inner| Store { inner })
            .map_err(|e| IdbError::from_js("open a storage table", e))
    }

    /// Waits until the transaction completes; its error (quota included) if it aborted.
    pub async fn done(self) -> Result<(), IdbError> {
        let event = JsFuture::from(self.done.clone())
            .await
            .map_err(|e| IdbError::from_js("finish saving", e))?;
        let kind = Reflect::get(&event, &JsValue::from_str("type"))
            .ok()
            .and_then(|t| t.as_string())
            .unwrap_or_default();
        if kind == "complete" {
            return Ok(());
        }
        // An "error" event precedes the abort; wait for the abort so the transaction has
        // really ended before the caller goes on.
        if kind == "error" {
            let aborted = settled(&self.tx, &["abort", "complete"]);
            JsFuture::from(aborted)
                .await
                .map_err(|e| IdbError::from_js("finish saving", e))?;
        }
        match self.tx.error() {
            Some(e) if e.name() == "QuotaExceededError" => Err(IdbError::QuotaExceeded),
            Some(e) => Err(IdbError::Aborted {
                message: format!("{}: {}", e.name(), e.message()),
            }),
            None => Err(IdbError::Aborted {
                message: "the transaction was aborted".into(),
            }),
        }
    }

    /// Abandons every write of this transaction.
    pub fn abort(&self) {
        // Fails only when the transaction already finished: nothing is left to undo.
        super::noted(self.tx.abort(), "abort a storage transaction");
    }
}

/// One object store inside a transaction.
pub struct Store {
    inner: IdbObjectStore,
}

impl Store {
    /// The value at `key`, `None` if there is none.
    pub async fn get(&self, key: &JsValue) -> Result<Option<JsValue>, IdbError> {
        let request = self
            .inner
            .get(key)
            .map_err(|e| IdbError::from_js("read from storage", e))?;
        let value = finish("read from storage", request).await?;
        Ok((!value.is_undefined()).then_some(value))
    }

    /// Every value with a key in `range` (all of them for `None`), in key order.
    pub async fn get_all(&self, range: Option<&IdbKeyRange>) -> Result<Vec<JsValue>, IdbError> {
        let request = match range {
            Some(r) => self.inner.get_all_with_key(r),
            None => self.inner.get_all(),
        }
        .map_err(|e| IdbError::from_js("read from storage", e))?;
        let values = finish("read from storage", request).await?;
        Ok(values
            .dyn_into::<Array>()
            .map(|a| a.to_vec())
            .unwrap_or_default())
    }

    /// Every key in `range` (all for `None`), in order.
    pub async fn keys(&self, range: Option<&IdbKeyRange>) -> Result<Vec<JsValue>, IdbError> {
        let request = match range {
            Some(r) => self.inner.get_all_keys_with_key(r),
            None => self.inner.get_all_keys(),
        }
        .map_err(|e| IdbError::from_js("read from storage", e))?;
        let keys = finish("read from storage", request).await?;
        Ok(keys
            .dyn_into::<Array>()
            .map(|a| a.to_vec())
            .unwrap_or_default())
    }

    /// How many records have a key in `range` (all for `None`).
    pub async fn count(&self, range: Option<&IdbKeyRange>) -> Result<u32, IdbError> {
        let request = match range {
            Some(r) => self.inner.count_with_key(r),
            None => self.inner.count(),
        }
        .map_err(|e| IdbError::from_js("count stored records", e))?;
        let n = finish("count stored records", request).await?;
        Ok(n.as_f64().unwrap_or(0.0) as u32)
    }

    /// Writes `value` at `key` (its failure surfaces in [`Tx::done`]).
    pub fn put(&self, key: &JsValue, value: &JsValue) -> Result<(), IdbError> {
        self.inner
            .put_with_key(value, key)
            .map(drop)
            .map_err(|e| IdbError::from_js("save to storage", e))
    }

    /// Deletes the record at `key` or every record in a key range.
    pub fn delete(&self, key_or_range: &JsValue) -> Result<(), IdbError> {
        self.inner
            .delete(key_or_range)
            .map(drop)
            .map_err(|e| IdbError::from_js("delete from storage", e))
    }

    /// Deletes every record.
    pub fn clear(&self) -> Result<(), IdbError> {
        self.inner
            .clear()
            .map(drop)
            .map_err(|e| IdbError::from_js("clear storage", e))
    }
}

/// Keys from `[prefix..., anything]`: every array key that starts with `prefix`. Arrays
/// sort after numbers and strings, so `[...prefix, []]` bounds them from above.
pub fn prefix_range(prefix: &[JsValue]) -> Result<IdbKeyRange, IdbError> {
    let lower: Array = prefix.iter().collect();
    let upper: Array = prefix.iter().collect();
    upper.push(&Array::new());
    IdbKeyRange::bound(&lower, &upper).map_err(|e| IdbError::from_js("select stored records", e))
}

/// An array key.
pub fn key(parts: &[JsValue]) -> JsValue {
    parts.iter().collect::<Array>().into()
}

/// The app's database: its name, version and schema, shared by the page and the workers.
pub mod schema {
    use super::*;

    pub const NAME: &str = "clipseek";
    /// Bump with every schema change, and teach [`upgrade`] the step.
    pub const VERSION: u32 = 2;

    /// Per model file (key `[model key, file]`): its manifest ([`super::super::download`]).
    pub const MODEL_FILES: &str = "model-files";
    /// Per chunk of a model file (key `[model key, file, index]`): `{blob, sha256, len}`.
    pub const MODEL_CHUNKS: &str = "model-chunks";
    /// Per indexed photo (key: its relative path): identity, model and embedding, and the
    /// EXIF date taken (`taken`, absent when unknown: an optional property, no version step).
    pub const PHOTOS: &str = "photos";
    /// Per indexed photo (key: its relative path): the thumbnail JPEG Blob.
    pub const THUMBS: &str = "thumbs";
    /// The photo index's own facts (key `generation`: moved on by every clear). Since 2.
    pub const PHOTO_META: &str = "photo-meta";
    /// Per new folder name a tab claimed (key: the name): the claim's owner. Since 2.
    pub const PHOTO_CLAIMS: &str = "photo-claims";
    /// Per refused file (key `[folder, rel, size, mtime]`): why it cannot be read. Since 2.
    pub const PHOTO_REFUSED: &str = "photo-refused";

    fn upgrade(db: &IdbDatabase, old_version: u32) -> Result<(), JsValue> {
        if old_version < 1 {
            for store in [MODEL_FILES, MODEL_CHUNKS, PHOTOS, THUMBS] {
                if !db.object_store_names().contains(store) {
                    db.create_object_store(store)?;
                }
            }
        }
        if old_version < 2 {
            for store in [PHOTO_META, PHOTO_CLAIMS, PHOTO_REFUSED] {
                if !db.object_store_names().contains(store) {
                    db.create_object_store(store)?;
                }
            }
        }
        Ok(())
    }

    /// Opens the app's database, creating or upgrading it.
    pub async fn open() -> Result<Database, IdbError> {
        Database::open(NAME, VERSION, upgrade).await
    }
}
