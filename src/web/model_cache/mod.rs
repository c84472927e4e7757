//! The model cache's browser drivers: the IndexedDB [`ChunkStore`](crate::model_cache::ChunkStore)
//! ([`IdbChunkStore`], chunks as Blobs), the hub over `fetch` with Range and abort
//! ([`FetchHub`]) and the page's host services — clock, timer, `navigator.onLine`, the CSP
//! refusals the page saw, the console ([`BrowserEnv`]).
//!
//! No rule lives here: what to fetch, keep, retry or verify is decided by
//! `crate::model_cache` and tested natively; these drivers only make the browser calls and
//! report every failure (nothing is dropped: a failure either reaches the engine as an
//! error or, when nothing can be done about it, is logged once by [`log_once`]).
//! Reference: the Fetch standard (Range, AbortController, ReadableStream) and IndexedDB 3.0.

mod fetch;
mod idb_store;

use std::cell::RefCell;
use std::collections::BTreeSet;

use wasm_bindgen::JsValue;

pub use fetch::{note_blocked, BrowserEnv, FetchAnswer, FetchHub};
pub use idb_store::IdbChunkStore;

thread_local! {
    static LOGGED: RefCell<BTreeSet<&'static str>> = const { RefCell::new(BTreeSet::new()) };
}

/// Says on the console, the first time only for each `what`, that something failed that
/// the caller can do nothing about (e.g. releasing a connection that already broke).
/// Returns whether it was logged now.
pub fn log_once(what: &'static str, detail: &str) -> bool {
    let first = LOGGED.with(|l| l.borrow_mut().insert(what));
    if first {
        web_sys::console::warn_1(&JsValue::from_str(&format!(
            "clipseek: {what}: {detail} (said once)"
        )));
    }
    first
}
