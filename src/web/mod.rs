//! The browser shell (wasm32 only): the one place that names `web_sys`, `js_sys` and
//! `JsValue`. It is drivers only: the page's rules are in `crate::page`. `driver` holds
//! the one `App` and its one borrow point; `events` turns DOM events into inputs;
//! `workers` carries out the core's effects and turns the workers' messages into inputs;
//! `model` downloads (`download`: the engine of `crate::model_cache` over the drivers of
//! `model_cache`) and opens the model; `photos` reads drops; `search` draws results;
//! `ui` writes the DOM. The photo index is kept in IndexedDB (`idb`, `library` over
//! `photo_store`), the other tabs hear what changed (`tabs`), and the encoding is done by
//! Web Workers (`worker`), each its own wasm instance of the `clipseek-worker` binary.
//!
//! Nothing here computes CLIP or ranks: that is the core (`model`, `encode`, `index`),
//! which this module only feeds with bytes and asks for answers. Errors reach the person
//! as one plain sentence. Reference: DESIGN.md, "Contract: the page".

pub mod actions;
pub mod connected;
pub mod download;
pub mod driver;
pub mod events;
pub mod filters;
pub mod idb;
pub mod library;
pub mod model;
pub mod model_cache;
pub mod photo_store;
pub mod photos;
pub mod search;
pub mod sync;
pub mod tabs;
pub mod ui;
pub mod worker;
pub mod workers;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Starts the page (the `clipseek-app` binary).
pub fn start() {
    console_error_panic_hook::set_once();
    driver::start();
}

/// Starts an encoder worker (the `clipseek-worker` binary).
pub fn start_worker() {
    console_error_panic_hook::set_once();
    worker::serve();
}

/// A JS exception or value as a short text (an `Error`'s message, or its string form).
pub fn describe_js(value: &JsValue) -> String {
    if let Some(e) = value.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    if let Some(e) = value.dyn_ref::<web_sys::DomException>() {
        return e.message();
    }
    value
        .as_string()
        .or_else(|| {
            js_sys::JSON::stringify(value)
                .ok()
                .and_then(|s| s.as_string())
        })
        .unwrap_or_else(|| "unknown error".to_owned())
}

/// The sentence listed beside a file (or folder) the browser could not open or read,
/// from the error it gave (`page::errors::unreadable_entry`).
pub fn unreadable_sentence(error: &JsValue, folder: bool) -> String {
    let name = prop(error, "name")
        .and_then(|n| n.as_string())
        .unwrap_or_default();
    crate::page::errors::unreadable_entry(&name, folder)
}

thread_local! {
    static LOGGED: std::cell::RefCell<crate::page::errors::LogOnce> =
        std::cell::RefCell::new(crate::page::errors::LogOnce::new());
}

/// A failure the page can live with (focus, a revoked object URL, an attribute to remove):
/// logged to the console once per kind, saying what was being done, and never dropped in
/// silence. Failures the person must see are returned and shown instead.
pub fn noted(result: Result<(), JsValue>, what: &'static str) {
    if let Err(e) = result {
        if LOGGED.with(|l| l.borrow_mut().first(what)) {
            let line = crate::page::errors::line(what, &describe_js(&e));
            web_sys::console::warn_1(&JsValue::from_str(&line));
        }
    }
}

/// Milliseconds since the epoch (the page and workers alike).
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Resolves after `ms` milliseconds (`setTimeout` of the page or the worker).
pub async fn sleep_ms(ms: f64) {
    let global = js_sys::global();
    let set_timeout = Reflect::get(&global, &JsValue::from_str("setTimeout"))
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok());
    let Some(set_timeout) = set_timeout else {
        return;
    };
    let promise = Promise::new(&mut |resolve, _reject| {
        if set_timeout
            .call2(&global, &resolve, &JsValue::from_f64(ms.max(0.0)))
            .is_err()
        {
            // No timer: resolve at once rather than never.
            if resolve.call0(&JsValue::UNDEFINED).is_err() {
                web_sys::console::warn_1(&JsValue::from_str("sleep: no timer"));
            }
        }
    });
    if JsFuture::from(promise).await.is_err() {
        // The promise never rejects.
    }
}

/// Reads a property, `None` when missing, null or undefined.
pub fn prop(target: &JsValue, name: &str) -> Option<JsValue> {
    Reflect::get(target, &JsValue::from_str(name))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

/// Sets a property on a plain object we made (cannot fail for those).
pub fn set_prop(target: &JsValue, name: &str, value: &JsValue) -> Result<(), JsValue> {
    Reflect::set(target, &JsValue::from_str(name), value).map(drop)
}

/// Copies a JS `ArrayBuffer`, typed array or Blob contents (already read) into wasm.
pub fn bytes_of(buffer: &JsValue) -> Vec<u8> {
    js_sys::Uint8Array::new(buffer).to_vec()
}

/// Reads a Blob (or File) whole into wasm memory.
pub async fn read_blob(blob: &web_sys::Blob) -> Result<Vec<u8>, JsValue> {
    let buffer = JsFuture::from(blob.array_buffer()).await?;
    Ok(bytes_of(&buffer))
}
