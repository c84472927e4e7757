//! The hub over the browser's `fetch` ([`FetchHub`], answers streamed through a
//! `ReadableStreamDefaultReader`, the request in flight abortable) and the page's host
//! services for the download engine ([`BrowserEnv`]).
//!
//! Requests bypass the HTTP cache (`no-store`): IndexedDB is the cache, and the HTTP cache
//! would keep a second copy. Redirects are followed (the real hub sends large files to a
//! CDN; Range still applies). Nothing here decides; failures come back as text.

use std::cell::RefCell;

use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, ReadableStreamDefaultReader, RequestCache, RequestInit, Response};

use super::log_once;
use crate::model_cache::{Answer, Env, Hub};
use crate::web::{describe_js, prop};

/// The hub, reached with `fetch`.
#[derive(Default)]
pub struct FetchHub {
    abort: RefCell<Option<AbortController>>,
}

/// One answer of [`FetchHub`].
pub struct FetchAnswer {
    response: Response,
    reader: Option<ReadableStreamDefaultReader>,
}

fn js(e: JsValue) -> String {
    describe_js(&e)
}

impl Hub for FetchHub {
    type Answer = FetchAnswer;

    async fn get(&self, url: &str, range: Option<&str>) -> Result<FetchAnswer, String> {
        self.request("GET", url, range).await
    }

    async fn head(&self, url: &str) -> Result<FetchAnswer, String> {
        self.request("HEAD", url, None).await
    }

    fn abort(&self) {
        if let Some(c) = self.abort.borrow().as_ref() {
            c.abort();
        }
    }
}

impl FetchHub {
    async fn request(
        &self,
        method: &str,
        url: &str,
        range: Option<&str>,
    ) -> Result<FetchAnswer, String> {
        let window = web_sys::window().ok_or_else(|| "downloads need a page".to_owned())?;
        let init = RequestInit::new();
        init.set_method(method);
        init.set_cache(RequestCache::NoStore);
        if let Some(range) = range {
            let headers = web_sys::Headers::new().map_err(js)?;
            headers.set("Range", range).map_err(js)?;
            init.set_headers(&headers);
        }
        let controller = AbortController::new().map_err(js)?;
        init.set_signal(Some(&controller.signal()));
        *self.abort.borrow_mut() = Some(controller);
        let response = JsFuture::from(window.fetch_with_str_and_init(url, &init))
            .await
            .map_err(js)?
            .dyn_into::<Response>()
            .map_err(js)?;
        Ok(FetchAnswer {
            response,
            reader: None,
        })
    }
}

impl FetchAnswer {
    fn reader(&mut self) -> Result<&ReadableStreamDefaultReader, String> {
        if self.reader.is_none() {
            let body = self
                .response
                .body()
                .ok_or_else(|| "the answer had no body".to_owned())?;
            self.reader = Some(ReadableStreamDefaultReader::new(&body).map_err(js)?);
        }
        self.reader
            .as_ref()
            .ok_or_else(|| "the answer had no body".to_owned())
    }
}

impl Answer for FetchAnswer {
    fn status(&self) -> u16 {
        self.response.status()
    }

    fn header(&self, name: &str) -> Option<String> {
        match self.response.headers().get(name) {
            Ok(value) => value,
            Err(e) => {
                log_once("reading a response header", &describe_js(&e));
                None
            }
        }
    }

    async fn next_piece(&mut self) -> Result<Option<Vec<u8>>, String> {
        let reader = self.reader()?;
        let next = JsFuture::from(reader.read()).await.map_err(js)?;
        if prop(&next, "done").and_then(|d| d.as_bool()) == Some(true) {
            return Ok(None);
        }
        Ok(Some(
            prop(&next, "value")
                .and_then(|v| v.dyn_into::<Uint8Array>().ok())
                .map(|piece| piece.to_vec())
                .unwrap_or_default(),
        ))
    }

    async fn release(&mut self) {
        let cancelled = match (&self.reader, self.response.body()) {
            (Some(reader), _) => JsFuture::from(reader.cancel()).await,
            (None, Some(body)) => JsFuture::from(body.cancel()).await,
            (None, None) => return,
        };
        if let Err(e) = cancelled {
            // A stream that already failed rejects its cancel: nothing is left to release.
            log_once("releasing a download connection", &describe_js(&e));
        }
    }

    async fn bytes(&mut self) -> Result<Vec<u8>, String> {
        if self.reader.is_some() {
            let mut out = Vec::new();
            while let Some(piece) = self.next_piece().await? {
                out.extend_from_slice(&piece);
            }
            return Ok(out);
        }
        let buffer = JsFuture::from(self.response.array_buffer().map_err(js)?)
            .await
            .map_err(js)?;
        Ok(Uint8Array::new(&buffer).to_vec())
    }
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

/// The page (or worker) the download runs in.
#[derive(Default)]
pub struct BrowserEnv;

impl Env for BrowserEnv {
    fn now_ms(&self) -> f64 {
        crate::web::now_ms()
    }

    async fn sleep_ms(&self, ms: f64) {
        crate::web::sleep_ms(ms).await;
    }

    fn online(&self) -> bool {
        web_sys::window().is_none_or(|w| w.navigator().on_line())
    }

    fn blocked(&self, hub: &str) -> bool {
        BLOCKED.with(|b| {
            b.borrow()
                .iter()
                .any(|uri| uri.starts_with(hub) || hub.starts_with(uri.as_str()))
        })
    }

    fn warn(&self, message: &str) {
        web_sys::console::warn_1(&JsValue::from_str(message));
    }
}
