//! What the download engine needs from its surroundings, as traits: the hub ([`Hub`]: a
//! GET with an optional Range, whose [`Answer`] streams its body, and a HEAD) and the host ([`Env`]:
//! a clock, a timer, whether the browser is online or its security policy blocked the hub,
//! and a console for warnings).
//!
//! The browser implements them with `fetch`, `setTimeout` and `navigator.onLine`
//! (`web::model_cache`); native tests with a scripted hub and a virtual clock. Nothing
//! here decides anything.

use super::rules::Headers;

/// One answer of the hub.
#[allow(async_fn_in_trait)]
pub trait Answer {
    fn status(&self) -> u16;
    /// A response header (case-insensitive name), `None` when absent or not exposed.
    fn header(&self, name: &str) -> Option<String>;
    /// The next piece of the body; `None` at its end.
    async fn next_piece(&mut self) -> Result<Option<Vec<u8>>, String>;
    /// Lets go of the rest of the body (the connection is released).
    async fn release(&mut self);

    /// The headers the rules read.
    fn headers(&self) -> Headers {
        Headers {
            content_range: self.header("content-range"),
            content_length: self.header("content-length"),
            etag: self.header("etag"),
            x_linked_etag: self.header("x-linked-etag"),
            x_linked_size: self.header("x-linked-size"),
        }
    }

    /// The whole body.
    async fn bytes(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        while let Some(piece) = self.next_piece().await? {
            out.extend_from_slice(&piece);
        }
        Ok(out)
    }
}

/// The model hub (redirects followed).
#[allow(async_fn_in_trait)]
pub trait Hub {
    type Answer: Answer;
    /// A GET of `url`, with `Range: {range}` when given. `Err` is a network failure.
    async fn get(&self, url: &str, range: Option<&str>) -> Result<Self::Answer, String>;
    /// A HEAD of `url`: the headers a GET would have, no body. `Err` is a network failure.
    async fn head(&self, url: &str) -> Result<Self::Answer, String>;
    /// Aborts the request in flight, if any (the download was cancelled).
    fn abort(&self);
}

/// The host the download runs in.
#[allow(async_fn_in_trait)]
pub trait Env {
    fn now_ms(&self) -> f64;
    async fn sleep_ms(&self, ms: f64);
    /// `false` when the browser knows it is offline.
    fn online(&self) -> bool;
    /// Whether the page's security policy refused a connection to `hub`.
    fn blocked(&self, hub: &str) -> bool;
    /// Says something worth knowing that is not an error (on the console).
    fn warn(&self, message: &str);
}
